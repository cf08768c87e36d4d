"""`python -m train`: see train/cli.py for the flags."""

from absl import app

from train import cli

if __name__ == "__main__":
  app.run(cli.main)
