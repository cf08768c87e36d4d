"""glow_tfp: Glow (Kingma & Dhariwal, 2018) as TensorFlow Probability bijectors."""

import importlib

from glow_tfp import bijectors
from glow_tfp import grid
from glow_tfp import workdir
from glow_tfp.config import GlowConfig
from glow_tfp.config import PRESETS
from glow_tfp.flow import Glow
from glow_tfp.metrics import bits_per_dim
from glow_tfp.metrics import discrete_log_likelihood
from glow_tfp.metrics import to_images
from glow_tfp.metrics import to_model_space


def __getattr__(name):
  # GlowModel imports Keras, so it loads on first use and `import glow_tfp` stays light.
  if name == "GlowModel":
    return importlib.import_module("glow_tfp.keras").GlowModel
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
