"""README.md and docs/: links and images resolve, the README stays short and its Python runs;
they and the code's comments and docstrings speak of the project alone.

The README's Python examples run each in a fresh namespace; where an example is followed
by a plain code block (its output), the printed lines must match it, numbers to within
rounding.
"""

import ast
import contextlib
import io
import math
import pathlib
import re
import tokenize

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README] + sorted((REPO / "docs").rglob("*.md"))
README_MAX_LINES = 250

# Words about how the project is developed, or paths outside it: the docs speak of the
# project alone.
LEAK = re.compile(r"\.\./shared|fresh-start|\bissue\b|\bsessions?\b|\blent\b|\bagents?\b|"
                  r"/tmp/|/work/|DESIGN\.md|\bcommit [0-9a-f]{7,40}\b", re.IGNORECASE)
_URL = re.compile(r"https?://\S+")
# The packages whose comments and docstrings the same check reads.
CODE_PACKAGES = ("glow_tfp", "train", "serving", "benchmarks", "tests")

_FENCE = re.compile(r"^(```+)(\S*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_SRC = re.compile(r"""<(?:img|a)\s[^>]*?(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def parse(path):
  """(prose lines, headings, code blocks) of a Markdown file.

  Code blocks are (language, text, index of the heading section they are in).
  """
  prose, headings, blocks = [], [], []
  fence, language, body = None, None, []
  for line in path.read_text(encoding="utf-8").splitlines():
    match = _FENCE.match(line)
    if fence is None and match:
      fence, language, body = match.group(1), match.group(2), []
    elif fence is not None and line.startswith(fence) and not line.strip(fence).strip():
      blocks.append((language, "\n".join(body) + "\n", len(headings)))
      fence = None
    elif fence is not None:
      body.append(line)
    else:
      prose.append(line)
      heading = _HEADING.match(line)
      if heading:
        headings.append(heading.group(2))
  return prose, headings, blocks


def slug(heading):
  """GitHub's anchor of a heading."""
  text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
  text = text.replace("`", "").strip().lower()
  text = re.sub(r"[^\w\- ]", "", text)
  return text.replace(" ", "-")


def anchors(path):
  seen, result = {}, set()
  for heading in parse(path)[1]:
    base = slug(heading)
    count = seen.get(base, 0)
    seen[base] = count + 1
    result.add(base if count == 0 else f"{base}-{count}")
  return result


def links(path):
  targets = []
  for line in parse(path)[0]:
    line = _INLINE_CODE.sub("", line)
    targets += _LINK.findall(line) + _HTML_SRC.findall(line)
  return targets


def relative_links():
  for page in PAGES:
    for target in links(page):
      if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
        continue
      yield pytest.param(page, target, id=f"{page.relative_to(REPO)}->{target}")


@pytest.mark.parametrize("page,target", list(relative_links()))
def test_relative_link_resolves(page, target):
  path_part, _, anchor = target.partition("#")
  resolved = (page.parent / path_part).resolve() if path_part else page
  assert resolved.exists(), f"{page.relative_to(REPO)}: link {target!r} names no file"
  assert REPO in resolved.parents or resolved == REPO, (
      f"{page.relative_to(REPO)}: link {target!r} leaves the repository")
  if anchor:
    assert resolved.suffix == ".md", f"{page.relative_to(REPO)}: anchor into {resolved.name}"
    assert anchor in anchors(resolved), (
        f"{page.relative_to(REPO)}: no heading for #{anchor} in {resolved.relative_to(REPO)}")


def test_every_page_is_linked_from_the_readme_or_another_page():
  linked = set()
  for page in PAGES:
    for target in links(page):
      path_part = target.partition("#")[0]
      if path_part and not re.match(r"^[a-z][a-z0-9+.-]*:", path_part, re.IGNORECASE):
        linked.add((page.parent / path_part).resolve())
  orphans = [str(p.relative_to(REPO)) for p in PAGES[1:] if p.resolve() not in linked]
  assert not orphans, f"pages no other page links to: {orphans}"


def test_readme_is_short():
  lines = len(README.read_text(encoding="utf-8").splitlines())
  assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it to {README_MAX_LINES}"


def test_quick_start_is_one_block_of_two_commands():
  prose, headings, blocks = parse(README)
  section = headings.index("Quick start") + 1
  language, text, _ = next(b for b in blocks if b[2] == section)
  assert language == "bash"
  commands = text.splitlines()
  assert len(commands) == 2
  assert commands[0].endswith(".venv/bin/python -m train")
  assert commands[1].endswith(".venv/bin/python -m pytest -q tests")


def leaks(numbered_lines):
  """The lines, "line N: text", with words from outside the project; URLs do not count (a
  link to an upstream project's bug tracker is a reference)."""
  return [f"line {number}: {line.strip()}" for number, line in numbered_lines
          if LEAK.search(_URL.sub("", line))]


def prose_of_python(path):
  """(line number, text) of the comments and docstrings of a Python file."""
  source = path.read_text(encoding="utf-8")
  lines = source.splitlines()
  found = [(token.start[0], token.string) for token in
           tokenize.generate_tokens(io.StringIO(source).readline)
           if token.type == tokenize.COMMENT]
  for node in ast.walk(ast.parse(source)):
    body = getattr(node, "body", None)
    if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
      found += [(number, lines[number - 1])
                for number in range(body[0].lineno, body[0].end_lineno + 1)]
  return sorted(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_words_from_outside_the_project(page):
  found = leaks(enumerate(page.read_text(encoding="utf-8").splitlines(), 1))
  assert not found, f"{page.relative_to(REPO)}:\n" + "\n".join(found)


@pytest.mark.parametrize("package", CODE_PACKAGES)
def test_no_words_from_outside_the_project_in_comments_and_docstrings(package):
  found = [f"{path.relative_to(REPO)} {leak}"
           for path in sorted((REPO / package).rglob("*.py"))
           for leak in leaks(prose_of_python(path))]
  assert not found, "\n".join(found)


def test_leak_check_reads_comments_and_docstrings_but_not_urls(tmp_path):
  path = tmp_path / "example.py"
  path.write_text('"""Module doc.\n\nAs the issue asked."""\n\n'
                  "x = 'issue'  # see https://github.com/tensorflow/tensorflow/issues/1\n"
                  "# a comment from a session\n")
  assert leaks(prose_of_python(path)) == ["line 3: As the issue asked.\"\"\"",
                                          "line 6: # a comment from a session"]


def readme_examples():
  blocks = parse(README)[2]
  for i, (language, text, section) in enumerate(blocks):
    if language != "python":
      continue
    following = blocks[i + 1] if i + 1 < len(blocks) else None
    expected = (following[1] if following and following[0] == "" and following[2] == section
                else None)
    yield pytest.param(text, expected, id=f"python-block-{i}")


def same_output(printed, expected):
  """Lines equal but for numbers, which must agree to within rounding."""
  printed, expected = printed.strip().splitlines(), expected.strip().splitlines()
  if len(printed) != len(expected):
    return False
  for got, want in zip(printed, expected):
    if _NUMBER.sub("#", got) != _NUMBER.sub("#", want):
      return False
    for a, b in zip(_NUMBER.findall(got), _NUMBER.findall(want)):
      if not math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-5):
        return False
  return True


@pytest.mark.parametrize("code,expected", list(readme_examples()))
def test_readme_python_example_runs(code, expected, tmp_path, monkeypatch):
  # In this process (TensorFlow is already imported) but in a fresh namespace, from a file so
  # that AutoGraph finds the source of the example's tf.functions.
  script = tmp_path / "example.py"
  script.write_text(code, encoding="utf-8")
  monkeypatch.chdir(tmp_path)
  monkeypatch.syspath_prepend(str(REPO))
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    exec(compile(code, str(script), "exec"), {"__name__": "__main__"})  # pylint: disable=exec-used
  if expected is not None:
    assert same_output(printed.getvalue(), expected), (
        f"README example printed\n{printed.getvalue()}\nbut the README shows\n{expected}")
