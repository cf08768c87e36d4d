"""GlowConfig: every architecture choice of a Glow model, validated and serialisable."""

import dataclasses
import json

from glow_tfp.bijectors import coupling as coupling_lib
from glow_tfp.bijectors import permute

COUPLINGS = coupling_lib.COUPLING_KINDS
COUPLING_SCALES = coupling_lib.SCALE_KINDS
# The scale of configs written before `coupling_scale` existed: their JSON lacks the field.
LEGACY_COUPLING_SCALE = "sigmoid"
# The "tanh_bounded" bound of configs written before `coupling_log_scale_bound` existed: the
# one the coupling then had built in.
LEGACY_COUPLING_LOG_SCALE_BOUND = 2.0
# What a class-conditional top prior's class embedding tells apart (`TopPrior`): each
# channel, as in the paper, or each position and channel.
CLASS_PRIORS = ("per_channel", "per_position")
# The class prior of configs written before `class_prior` existed.
LEGACY_CLASS_PRIOR = "per_channel"
# Channel mixings: the learned 1x1 convolution (LU form or plain), then the fixed permutations.
PERMUTATIONS = ("lu", "conv") + permute.PERMUTATION_KINDS


@dataclasses.dataclass(frozen=True)
class GlowConfig:
  """The architecture of a Glow model.

  Attributes:
    image_shape: (H, W, C) of the images; H and W divisible by 2**levels.
    levels: number of multi-scale levels L (>= 1).
    steps_per_level: steps of flow K per level (>= 1).
    hidden_channels: width of each coupling network (>= 1).
    coupling: "affine" or "additive".
    coupling_scale: the affine coupling's scale, one of `COUPLING_SCALES`: "sigmoid" (the
      paper's; can collapse towards 0, so decode(encode(x)) can be far from x),
      "sigmoid_floor" or "tanh_bounded" (bounded, so the inverse stays accurate); see
      `glow_tfp.bijectors.coupling.Coupling`. Default "tanh_bounded"; configs written
      before the field existed load as "sigmoid", the scale they were trained with.
    coupling_log_scale_bound: B > 0 of "tanh_bounded", log s = B tanh(raw / B) in (-B, B):
      one coupling's scale amplifies by at most e**B either way. Ignored by the other
      scales. Default `coupling.LOG_SCALE_BOUND` (0.75); configs written before the field
      existed load with 2.0, the bound they were trained with.
    permutation: channel mixing before each coupling: "lu" (1x1 conv in LU form), "conv"
      (plain 1x1 conv), "shuffle" or "reverse" (fixed permutations, the paper's baselines).
    n_bits: bits per colour channel the model sees (1..8).
    learn_top_prior: learn the mean and scale of the top-level prior.
    num_classes: number of classes of a class-conditional model; 0 = unconditional.
    class_prior: the class-conditional top prior's class mean and log-std, one of
      `CLASS_PRIORS`: "per_position" (default; one per position and channel of the top
      latent, a latent template of each class) or "per_channel" (the paper's). Ignored by
      an unconditional model. Configs written before the field existed load as
      "per_channel".
  """

  image_shape: tuple = (28, 28, 1)
  levels: int = 2
  steps_per_level: int = 8
  hidden_channels: int = 128
  coupling: str = "affine"
  # The bounded log-scale kept every decode(encode(x)) exact, unusual inputs included, and
  # trained to lower held-out bits/dim than the paper's sigmoid at the default run's size
  # (docs/ood.md, three seeds).
  coupling_scale: str = "tanh_bounded"
  # 0.75, not the 2 it once was: noise then comes back exact too (docs/ood.md).
  coupling_log_scale_bound: float = coupling_lib.LOG_SCALE_BOUND
  permutation: str = "lu"
  n_bits: int = 8
  learn_top_prior: bool = True
  num_classes: int = 0
  # Per position: the paper's per-channel prior left the default run's classes apart by
  # nothing (samples of the asked digit 11% of the time, chance 10%; docs/training.md).
  class_prior: str = "per_position"

  def __post_init__(self):
    object.__setattr__(self, "image_shape", tuple(self.image_shape))
    _check_image_shape(self.image_shape, self.levels)
    _check_int_at_least("steps_per_level", self.steps_per_level, 1)
    _check_int_at_least("hidden_channels", self.hidden_channels, 1)
    _check_int_at_least("num_classes", self.num_classes, 0)
    _check_choice("coupling", self.coupling, COUPLINGS)
    _check_choice("coupling_scale", self.coupling_scale, COUPLING_SCALES)
    _check_choice("class_prior", self.class_prior, CLASS_PRIORS)
    coupling_lib.check_log_scale_bound(self.coupling_log_scale_bound,
                                       "GlowConfig.coupling_log_scale_bound")
    object.__setattr__(self, "coupling_log_scale_bound", float(self.coupling_log_scale_bound))
    _check_choice("permutation", self.permutation, PERMUTATIONS)
    if not _is_int(self.n_bits) or not 1 <= self.n_bits <= 8:
      raise ValueError(f"GlowConfig.n_bits must be an integer in 1..8; got {self.n_bits!r}.")
    if not isinstance(self.learn_top_prior, bool):
      raise ValueError("GlowConfig.learn_top_prior must be True or False; "
                       f"got {self.learn_top_prior!r}.")

  @property
  def num_dims(self):
    """D = H * W * C, the dimension of the data."""
    height, width, channels = self.image_shape
    return height * width * channels

  def replace(self, **changes):
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, text):
    fields = json.loads(text)
    unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ValueError(f"GlowConfig JSON has unknown fields {sorted(unknown)}.")
    fields.setdefault("coupling_scale", LEGACY_COUPLING_SCALE)
    fields.setdefault("coupling_log_scale_bound", LEGACY_COUPLING_LOG_SCALE_BOUND)
    fields.setdefault("class_prior", LEGACY_CLASS_PRIOR)
    return cls(**fields)

  @classmethod
  def preset(cls, name, **changes):
    """A named configuration from `PRESETS`, with optional field changes."""
    if name not in PRESETS:
      raise ValueError(f"Unknown GlowConfig preset {name!r}; choose from {sorted(PRESETS)}.")
    return dataclasses.replace(PRESETS[name], **changes)


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


def _check_int_at_least(field, value, minimum):
  if not _is_int(value) or value < minimum:
    raise ValueError(f"GlowConfig.{field} must be an integer >= {minimum}; got {value!r}.")


def _check_choice(field, value, allowed):
  if value not in allowed:
    raise ValueError(f"GlowConfig.{field} must be one of {allowed}; got {value!r}.")


def _check_image_shape(image_shape, levels):
  _check_int_at_least("levels", levels, 1)
  if len(image_shape) != 3 or not all(_is_int(d) and d > 0 for d in image_shape):
    raise ValueError("GlowConfig.image_shape must be three positive integers (H, W, C); "
                     f"got {image_shape!r}.")
  if padded_image_shape(image_shape, levels) != tuple(image_shape):
    raise ValueError(f"GlowConfig.image_shape {image_shape}: H and W must be divisible by "
                     f"2**levels = {2 ** levels} (levels={levels}).")


def padded_image_shape(image_shape, levels):
  """The smallest (H', W', C) at least `image_shape` whose H' and W' 2**levels divides: each
  level's squeeze halves H and W. The one rule of what image sizes a model of `levels`
  takes; the data pipeline pads to it, or refuses images it does not equal."""
  block = 2 ** levels
  height, width, channels = image_shape
  return (height + -height % block, width + -width % block, channels)


PRESETS = {
    # The paper's CIFAR-10 model (Table 4): L=3, K=32, width 512, affine, 8 bits.
    "cifar10": GlowConfig(image_shape=(32, 32, 3), levels=3, steps_per_level=32,
                          hidden_channels=512, coupling="affine", n_bits=8),
    # The paper's CelebA-HQ 256x256 model: L=6, K=32, additive, 5 bits.
    "celeba_hq_256": GlowConfig(image_shape=(256, 256, 3), levels=6, steps_per_level=32,
                                hidden_channels=512, coupling="additive", n_bits=5),
    # A small model for the 28x28 digits that trains in minutes on a CPU (docs/training.md).
    "mnist": GlowConfig(image_shape=(28, 28, 1), levels=2, steps_per_level=8,
                        hidden_channels=64, coupling="affine", n_bits=8),
}
