"""The training job: `python -m train` (absl flags), and the reusable `train.loop.run`."""
