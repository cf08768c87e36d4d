"""Serving a Glow model: SavedModel export, a TF-Serving-compatible REST server, a client."""

import os

# oneDNN convolutions are ~1.6x faster on AVX2 CPUs, where TensorFlow leaves them off; the
# variable only counts before TensorFlow is imported, and a user's explicit "0" wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
