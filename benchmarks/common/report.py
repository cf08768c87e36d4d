"""What every benchmark writes: the machine and versions, Markdown tables, JSON + Markdown files."""

import datetime
import json
import os
import platform
import sys

import tensorflow as tf
import tensorflow_probability as tfp

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def environment():
  """The facts a reader needs to compare a figure with another run's."""
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
      "command": command(sys.argv),
      "device": _device(),
      "cpu_count": os.cpu_count(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "tensorflow_probability": tfp.__version__,
  }


def environment_lines(env):
  return [f"Measured {env['date_utc']} UTC on {env['device']} ({env['cpu_count']} CPU cores "
          f"visible), Python {env['python']}, TensorFlow {env['tensorflow']}, "
          f"TFP {env['tensorflow_probability']}.",
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


def publish(results, markdown_lines, out_dir, name):
  """Prints `markdown_lines`, then writes them and `results` (`write`), naming each file."""
  print("\n".join(markdown_lines))
  for path in write(results, markdown_lines, out_dir, name):
    print("wrote", path)


def command(argv):
  """`argv` as a command to rerun from the repository root: `python -m <module> <flags>`.

  A flag's path outside the repository becomes a variable named after the flag
  (`--torch_python=$TORCH_PYTHON`): it is a directory of the measuring machine, not part of
  the measurement. Paths inside the repository are made relative to it.
  """
  return " ".join([os.path.basename(sys.executable), "-m", _module_name(argv[0])]
                  + [_portable(arg) for arg in argv[1:]])


def _portable(arg):
  name, equals, value = arg.partition("=")
  if not (equals and name.startswith("--") and os.path.isabs(value)):
    return arg
  relative = os.path.relpath(value, _REPO_ROOT)
  if relative.split(os.sep)[0] != os.pardir:
    return f"{name}={relative}"
  return f"{name}=${name[2:].upper()}"


def _module_name(path):
  """`benchmarks/speed/run.py` -> `benchmarks.speed.run`, so the recorded command can be rerun."""
  relative = os.path.relpath(os.path.abspath(path), _REPO_ROOT)
  return os.path.splitext(relative)[0].replace(os.sep, ".")


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
