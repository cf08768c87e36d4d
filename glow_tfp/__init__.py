"""glow_tfp: Glow (Kingma & Dhariwal, 2018) as TensorFlow Probability bijectors."""

from glow_tfp import bijectors
from glow_tfp.config import GlowConfig
from glow_tfp.config import PRESETS
from glow_tfp.flow import Glow
from glow_tfp.metrics import bits_per_dim
from glow_tfp.metrics import discrete_log_likelihood
from glow_tfp.metrics import to_images
from glow_tfp.metrics import to_model_space
