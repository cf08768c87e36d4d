"""The flags that several training applications take, each defined and validated here once.

`python -m train`, `train.ablation`, `train.latents`, `train.ood` and `train.records` call the
`define_*` functions that fit them at the top of their modules, then read the returned
`FlagHolder`s. Where the CLIs' defaults differ, the caller passes its own; names, meanings
and validators are the same in every CLI. Each function may run once in a process, as any
absl flag definition.
"""

import os

from absl import flags
from absl import logging

from glow_tfp import execution
from glow_tfp.training import schedule

from .data import datasets as data_lib
from .errors import InputError

_SPEC_MESSAGE = ("{} must be 'mnist', 'tfds:NAME[:SPLIT]', 'folder:PATH' or "
                 "'tfrecord:GLOB'.")


def define_data_flags():
  """--dataset, --data_dir and --heldout_fraction: the images and their held-out part.

  Returns:
    {name: FlagHolder}.
  """
  holders = {
      "dataset": flags.DEFINE_string(
          "dataset", "mnist", "'mnist' (bundled, offline), 'tfds:NAME[:SPLIT]', "
          "'folder:PATH' (PNG/JPEG, optionally one subdirectory per class) or "
          "'tfrecord:GLOB' (train.records); all but mnist stream from disk (docs/data.md)."),
      "data_dir": flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data_dir."),
      "heldout_fraction": flags.DEFINE_float(
          "heldout_fraction", 0.1, "Fraction of the images held out for evaluation; the "
          "same as in training for the held-out images to be unseen."),
  }
  flags.register_validator("dataset", data_lib.is_spec, _SPEC_MESSAGE.format("--dataset"))
  flags.register_validator("heldout_fraction", accepted_by(data_lib.check_heldout_fraction))
  return holders


def define_heldout_flags():
  """--heldout_dataset and --eval_examples: what held-out evaluation reads.

  Returns:
    {name: FlagHolder}.
  """
  holders = {
      "heldout_dataset": flags.DEFINE_string(
          "heldout_dataset", None, "A streaming source (e.g. 'tfds:NAME:test') to evaluate "
          "on instead of holding out --heldout_fraction of --dataset, which then trains on "
          "all its images."),
      "eval_examples": flags.DEFINE_integer(
          "eval_examples", 500, "Held-out images each evaluation reads (all if fewer): a "
          "seeded choice, the same at every evaluation.", lower_bound=1),
  }
  flags.register_validator("heldout_dataset", lambda spec: spec is None or (
      data_lib.is_spec(spec) and spec != "mnist"), _SPEC_MESSAGE.format("--heldout_dataset")
                           + " It cannot be 'mnist'.")
  return holders


def define_seed_flag(help_text):
  """--seed (default 0); `help_text` says what it seeds in the calling CLI."""
  return flags.DEFINE_integer("seed", 0, help_text, lower_bound=0)


def define_workdir_flag(default, help_text):
  """--workdir, which must not be empty."""
  holder = flags.DEFINE_string("workdir", default, help_text)
  flags.register_validator("workdir", bool, "--workdir must not be empty.")
  return holder


def define_model_flags(levels=None, steps_per_level=None, hidden_channels=None, n_bits=None):
  """--levels, --steps_per_level, --hidden_channels and --n_bits: the size of the model.

  Returns:
    {GlowConfig field: FlagHolder}.
  """
  return {
      "levels": flags.DEFINE_integer("levels", levels, "Multi-scale levels L.",
                                     lower_bound=1),
      "steps_per_level": flags.DEFINE_integer("steps_per_level", steps_per_level,
                                              "Steps of flow K per level.", lower_bound=1),
      "hidden_channels": flags.DEFINE_integer("hidden_channels", hidden_channels,
                                              "Coupling network width.", lower_bound=1),
      "n_bits": flags.DEFINE_integer("n_bits", n_bits, "Bits per colour channel the model "
                                     "sees.", lower_bound=1, upper_bound=8),
  }


def define_training_flags(defaults):
  """The training flags of `loop.Options` that every training CLI takes.

  Args:
    defaults: a `loop.Options` whose values are the flags' defaults.

  Returns:
    {`loop.Options` field: FlagHolder}.
  """
  holders = {
      "steps": flags.DEFINE_integer(
          "steps", defaults.steps, "The step the workdir trains up to, counted from its "
          "first run: a resumed run trains only the steps it lacks (a finished 1,500-step "
          "workdir given --steps=1560 trains 60 more).", lower_bound=1),
      "batch_size": flags.DEFINE_integer("batch_size", defaults.batch_size,
                                         "Global batch size.", lower_bound=1),
      "learning_rate": flags.DEFINE_float("learning_rate", defaults.learning_rate,
                                          "Peak learning rate."),
      "warmup_steps": flags.DEFINE_integer("warmup_steps", defaults.warmup_steps,
                                           "Linear learning-rate warmup steps.",
                                           lower_bound=0),
      "lr_decay": flags.DEFINE_enum(
          "lr_decay", defaults.lr_decay, list(schedule.DECAYS), "Learning rate after the "
          "warmup: none keeps the peak; cosine decays it to 0 at --steps along a half "
          "cosine."),
      "eval_every": flags.DEFINE_integer("eval_every", defaults.eval_every,
                                         "Held-out evaluation interval (steps).",
                                         lower_bound=1),
      "likelihood_draws": flags.DEFINE_integer(
          "likelihood_draws", defaults.likelihood_draws, "K, the uniform dequantisation "
          "draws per held-out image of the reported bits/dim (importance-weighted bound on "
          "the discrete likelihood, tighter as K grows; 1: the Glow paper's bound).",
          lower_bound=1),
      "jit_compile": flags.DEFINE_bool("jit_compile", defaults.jit_compile,
                                       "Compile the loss and gradients with XLA (unset: on a "
                                       "GPU or TPU, off on CPUs, where it is slower)."),
      "ema_decay": flags.DEFINE_float(
          "ema_decay", defaults.ema_decay, "Decay of the exponential moving average (EMA) "
          "of the weights, saved as ema_model in the checkpoints; 0 keeps none."),
      "eval_weights": flags.DEFINE_enum(
          "eval_weights", defaults.eval_weights, ["ema", "raw"], "Weights of held-out "
          "evaluation and sample grids: the EMA (when kept) or the raw ones."),
      "steps_per_loop": flags.DEFINE_integer(
          "steps_per_loop", defaults.steps_per_loop, "Training steps per tf.function call; "
          "must divide the log, eval, sample and checkpoint intervals (unset: 1 on CPUs, up "
          "to 50 on a GPU or TPU).", lower_bound=1),
  }
  flags.register_validator("learning_rate", lambda v: v > 0, "--learning_rate must be > 0.")
  flags.register_validator("ema_decay", lambda v: 0 <= v < 1, "--ema_decay must be in [0, 1).")
  return holders


def define_temperatures_flag(default, help_text):
  """--temperatures: a comma-separated list of sampling temperatures, each >= 0."""
  holder = flags.DEFINE_list("temperatures", [str(t) for t in default], help_text)
  flags.register_validator("temperatures", lambda values: are_numbers(values, minimum=0.0),
                           "--temperatures must be a comma-separated list of numbers >= 0.")
  return holder


def are_numbers(values, minimum=None):
  """Whether the list flag `values` is a non-empty list of numbers, each >= `minimum`."""
  try:
    return bool(values) and all(minimum is None or float(v) >= minimum for v in values)
  except ValueError:
    return False


def accepted_by(check):
  """An absl validator of `check`, a function that raises `InputError` for a bad value."""

  def validate(value):
    try:
      check(value)
    except InputError as error:
      raise flags.ValidationError(str(error)) from error
    return True

  return validate


def define_thread_flags():
  """--intra_op_threads, --inter_op_threads and --batch_parts: how a CPU runs the model.

  Unset, they take what trained fastest in docs/training.md, "Speed on a CPU": with no GPU,
  each batch cut into one part per core, one thread per operation and one operation per
  core at once; with a GPU or one core, whole batches and TensorFlow's
  thread choice (0).

  Returns:
    {name: FlagHolder}.
  """
  return {
      "intra_op_threads": flags.DEFINE_integer(
          "intra_op_threads", None, "Threads within one operation (a convolution's GEMM); "
          "0: TensorFlow's choice; unset: 1 when batches are cut into parts, else 0.",
          lower_bound=0),
      "inter_op_threads": flags.DEFINE_integer(
          "inter_op_threads", None, "Operations run at once; 0: TensorFlow's choice; unset: "
          "--batch_parts when batches are cut into parts, else 0.", lower_bound=0),
      "batch_parts": flags.DEFINE_integer(
          "batch_parts", None, "Parts each batch is cut into, run side by side "
          "(glow_tfp.execution); unset: one per CPU core on a machine without a GPU, else 1.",
          lower_bound=1),
  }


def apply_thread_flags(holders):
  """Sizes TensorFlow's thread pools from `define_thread_flags`' holders and returns the
  batch_parts to run the model in; call before the first operation runs (TensorFlow
  fixes the pools then)."""
  intra, inter, parts = execution.configure_threads(*(holders[name].value for name in (
      "intra_op_threads", "inter_op_threads", "batch_parts")))
  logging.info("CPU threads: intra-op %s, inter-op %s (0: TensorFlow's choice); batches in "
               "%s parts; TF_ENABLE_ONEDNN_OPTS=%s.", intra, inter, parts,
               os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"))
  return parts
