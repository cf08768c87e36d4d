"""Served model names: one safe path component, as TF Serving's model directories need."""

import re

_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RULE = ("letters, digits, '.', '_' and '-' (at most 128), starting with a letter or digit, "
        "and not '.' or '..'")


def is_valid(name):
  """Whether `name` can name a served model: it can never lead out of the base path."""
  return isinstance(name, str) and bool(_PATTERN.fullmatch(name)) and name not in (".", "..")
