"""The training job: `python -m train` (absl flags), and the reusable `train.loop.run`."""

import os

# oneDNN's fused convolutions: TensorFlow enables them by default only on CPUs with AVX-512;
# on AVX2-only CPUs they trained the default model about 1.6x faster (docs/training.md,
# "Speed on a CPU"). TensorFlow reads the variable when it loads, hence here, before any
# module of the package imports it; TF_ENABLE_ONEDNN_OPTS=0 in the environment still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
