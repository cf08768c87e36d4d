"""What every benchmark writes: the machine and versions, Markdown tables, JSON + Markdown files."""

import datetime
import json
import os
import platform
import subprocess
import sys

import tensorflow as tf
import tensorflow_probability as tfp

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environment():
  """The facts a reader needs to compare a figure with another run's."""
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
      "command": " ".join([os.path.basename(sys.executable), "-m",
                           _module_name(sys.argv[0])] + sys.argv[1:]),
      "git_commit": _git_commit(),
      "device": _device(),
      "cpu_count": os.cpu_count(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "tensorflow_probability": tfp.__version__,
  }


def environment_lines(env):
  return [f"Measured {env['date_utc']} UTC on {env['device']} ({env['cpu_count']} CPU cores "
          f"visible), TensorFlow {env['tensorflow']}, TFP {env['tensorflow_probability']}, "
          f"commit {env['git_commit']}.",
          "", f"Command: `{env['command']}`"]


def table(header, rows):
  """A Markdown table; cells are formatted by the caller."""
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
  return lines


def write(results, markdown_lines, out_dir, name):
  """Writes `<out_dir>/<name>.json` and `<name>.md`; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  json_path = os.path.join(out_dir, name + ".json")
  md_path = os.path.join(out_dir, name + ".md")
  with open(json_path, "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
    f.write("\n")
  with open(md_path, "w") as f:
    f.write("\n".join(markdown_lines) + "\n")
  return json_path, md_path


def _module_name(path):
  """`benchmarks/run.py` -> `benchmarks.run`, so the recorded command can be rerun."""
  relative = os.path.relpath(os.path.abspath(path), _REPO_ROOT)
  return os.path.splitext(relative)[0].replace(os.sep, ".")


def _git_commit():
  """HEAD, marked "+changes" when the measured code (glow_tfp, benchmarks) differs from it."""
  done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True, cwd=_REPO_ROOT, check=False)
  changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "glow_tfp", "benchmarks"],
                           cwd=_REPO_ROOT, check=False).returncode
  return (done.stdout.strip() or "unknown") + ("+changes" if changed else "")


def _device():
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU {details.get('device_name', gpus[0].name)}"
  return f"CPU {_cpu_model()}"


def _cpu_model():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:  # not Linux: fall back to what Python knows.
    pass
  return platform.processor() or platform.machine()
