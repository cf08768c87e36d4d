"""glow_tfp: Glow (Kingma & Dhariwal, 2018) as TensorFlow Probability bijectors.

The public names and the submodules load on first use (PEP 562), so `import glow_tfp` imports
neither TensorFlow nor TensorFlow Probability: the applications installed inside the package
(`glow_tfp.train`, `glow_tfp.serving`) configure TensorFlow in their `__init__` before it
loads, and the model-agnostic server never loads the library at all.
"""

import importlib
import importlib.util

# Public name -> the submodule that defines it.
_EXPORTS = {
    "Glow": "flow",
    "GlowConfig": "config",
    "GlowModel": "keras",
    "PRESETS": "config",
    "bits_per_dim": "likelihood",
    "log_likelihood": "likelihood",
    "to_images": "model_space",
    "to_model_space": "model_space",
}

__all__ = sorted([*_EXPORTS, "bijectors", "grid", "workdir"])


def __getattr__(name):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
  elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
    value = importlib.import_module(f"{__name__}.{name}")
  else:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  # Kept as a module attribute, so later lookups no longer come here.
  globals()[name] = value
  return value


def __dir__():
  return sorted({*globals(), *__all__})
