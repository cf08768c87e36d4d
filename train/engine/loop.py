"""The training loop: `run(config, data, options)` trains a Glow and returns its results.

The loop is the Python side of a run: it restores or initialises the state, runs the
device loop (train/step.py) `steps_per_loop` steps at a time, lets the guard
(train/guard.py) restore a checkpoint after too many non-finite steps, and at loop
boundaries logs, evaluates (train/heldout_reports.py), writes sample grids
(train/sample_grids.py) and checkpoints, and after SIGTERM saves and stops
(train/preemption.py). Periodic checkpoints are only written after a good step.
Evaluation and samples use the EMA weights (glow_tfp/training/ema.py) unless `eval_weights`
is "raw".
"""

import dataclasses
import time

from absl import logging
import tensorflow as tf

from glow_tfp import execution
from glow_tfp import flow
from glow_tfp import precision
from glow_tfp import workdir as workdir_lib
from glow_tfp.training import ema as ema_lib
from glow_tfp.training import schedule
from glow_tfp.training import update as update_lib
from . import checkpointing
from . import guard as guard_lib
from . import heldout_reports
from . import preemption
from . import quality_reports
from . import sample_grids
from . import step as step_lib
from . import strategy as strategy_lib
from . import summaries
from ..data import pipeline
from ..errors import InputError


EVAL_WEIGHTS = ("ema", "raw")


@dataclasses.dataclass(frozen=True)
class Options:
  """How to train (the model itself is a `GlowConfig`).

  Attributes:
    workdir: where checkpoints, config.json, logs, samples and results.json go.
    steps: training steps in all (a resumed run continues up to this step).
    batch_size: global batch size, split evenly over the replicas.
    learning_rate: peak learning rate, reached by linear warmup over `warmup_steps`.
    lr_decay: "none" keeps the peak after the warmup; "cosine" decays it to 0 at `steps`
      along a half cosine (`glow_tfp.training.schedule`).
    optimizer: "adam" or "adamax".
    grad_clip_norm: clip the gradients to this global norm; 0 disables clipping.
    seed: seeds the model's initial values, the data order, the dequantisation noise, the
      held-out split (through the data source) and the sample grids.
    eval_every, sample_every, checkpoint_every, log_every: intervals in steps.
    keep_checkpoints: checkpoints kept in the workdir.
    strategy: "default", "mirrored", "multi_worker" or "tpu".
    tpu_address: the TPU for strategy "tpu" ("" = local / TPU_NAME).
    jit_compile: compile the loss and gradient computation with XLA; None (default) picks
      by device (`step.resolve_jit_compile`).
    compute_dtype: "float32", or "bfloat16" / "float16" to run the coupling networks in
      mixed precision (log-dets, loss and variables stay float32; `glow_tfp.Glow`);
      float16 trains with dynamic loss scaling (glow_tfp/training/loss_scale.py).
    reversible_gradients: recompute activations during backprop instead of storing them
      (`glow_tfp.Glow`): training memory flat in depth, steps about 1.4-1.5x slower.
    batch_parts: cut each replica's batch into this many parts that run side by side
      (`glow_tfp.execution`); None (default): `execution.default_batch_parts()`, one per
      CPU core on a machine without a GPU, else 1.
    max_bad_steps: non-finite steps in a row that trigger a checkpoint restore.
    restore_lr_factor: learning-rate multiplier applied at each such restore.
    max_restores: restores after which the run gives up with an error.
    num_samples: images per sample grid.
    temperatures: sampling temperatures of the grids and of the sample quality.
    quality_samples: N, the samples per temperature whose quality a classifier of the
      training images judges at each evaluation (train/quality_reports.py): 0 (default,
      measures none) or >= 2, as a covariance needs.
    eval_batch_size: batch size of held-out evaluation.
    likelihood_draws: K, the uniform dequantisation draws per held-out image of the reported
      likelihood bound (`glow_tfp.likelihood`; 1 is the Glow paper's bound).
    ema_decay: decay of the exponential moving average of the weights; 0 keeps none.
    eval_weights: "ema" or "raw": the weights of held-out evaluation and samples ("ema"
      falls back to the raw weights when `ema_decay` is 0).
    steps_per_loop: training steps per `tf.function` call; logging, evaluation, sample and
      checkpoint intervals must be multiples of it. None: `step.resolve_steps_per_loop`.
    perturb_fraction: mu in [0, 1): train a background model on training images whose
      values are each replaced, with probability mu, by uniform noise
      (`train.data.pipeline.perturb`); 0 (default) trains on the images as they are.
      Evaluation, samples and the reference images always use clean images.
  """

  workdir: str
  steps: int = 2000
  batch_size: int = 64
  learning_rate: float = update_lib.Settings.learning_rate
  warmup_steps: int = update_lib.Settings.warmup_steps
  lr_decay: str = "none"
  optimizer: str = update_lib.Settings.optimizer
  grad_clip_norm: float = update_lib.Settings.grad_clip_norm
  seed: int = 0
  eval_every: int = 500
  sample_every: int = 500
  checkpoint_every: int = 250
  log_every: int = 50
  keep_checkpoints: int = 3
  strategy: str = "default"
  tpu_address: str = ""
  jit_compile: bool | None = None
  compute_dtype: str = "float32"
  reversible_gradients: bool = False
  batch_parts: int | None = None
  max_bad_steps: int = 5
  restore_lr_factor: float = 0.5
  max_restores: int = 3
  num_samples: int = 64
  temperatures: tuple = (0.0, 0.5, 0.7, 1.0)
  quality_samples: int = 0
  eval_batch_size: int = 500
  likelihood_draws: int = 1
  ema_decay: float = 0.999
  eval_weights: str = "ema"
  steps_per_loop: int | None = None
  perturb_fraction: float = 0.0

  def __post_init__(self):
    object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
    if not self.workdir:
      raise InputError("Options.workdir must be a directory path; got an empty string.")
    for name in ("steps", "batch_size", "eval_every", "sample_every", "checkpoint_every",
                 "log_every", "keep_checkpoints", "max_bad_steps", "num_samples",
                 "eval_batch_size", "likelihood_draws"):
      _check_at_least(name, getattr(self, name), 1)
    for name in ("warmup_steps", "grad_clip_norm", "max_restores"):
      _check_at_least(name, getattr(self, name), 0)
    if self.quality_samples != 0:
      _check_at_least("quality_samples", self.quality_samples, 2)
    if self.batch_parts is not None:
      _check_at_least("batch_parts", self.batch_parts, 1)
    if not self.learning_rate > 0:
      raise InputError(f"Options.learning_rate must be > 0; got {self.learning_rate!r}.")
    if not 0 < self.restore_lr_factor < 1:
      raise InputError("Options.restore_lr_factor must be in (0, 1); got "
                       f"{self.restore_lr_factor!r}.")
    if not 0 <= self.ema_decay < 1:
      raise InputError(f"Options.ema_decay must be in [0, 1); got {self.ema_decay!r}.")
    if self.lr_decay not in schedule.DECAYS:
      raise InputError(f"Options.lr_decay must be one of {schedule.DECAYS}; got {self.lr_decay!r}.")
    if self.lr_decay == "cosine" and self.steps <= self.warmup_steps:
      raise InputError(f"--lr_decay=cosine needs --steps ({self.steps}) above --warmup_steps "
                       f"({self.warmup_steps}): the decay runs from the warmup's end to "
                       "the last step.")
    if self.eval_weights not in EVAL_WEIGHTS:
      raise InputError(f"Options.eval_weights must be one of {EVAL_WEIGHTS}; got "
                       f"{self.eval_weights!r}.")
    if self.steps_per_loop is not None:
      self._check_steps_per_loop()
    if isinstance(self.perturb_fraction, bool) or not isinstance(self.perturb_fraction,
                                                                 (int, float)):
      raise InputError(f"Options.perturb_fraction must be a number; got "
                       f"{self.perturb_fraction!r}.")
    pipeline.check_perturb_fraction(self.perturb_fraction)
    unsupported = precision.unsupported_reason(self.compute_dtype)
    if unsupported:
      raise InputError(f"--compute_dtype={self.compute_dtype}: {unsupported}; use float32.")
    if self.optimizer not in update_lib.optimizer_lib.KINDS:
      raise InputError(f"Options.optimizer must be one of {update_lib.optimizer_lib.KINDS}; "
                       f"got {self.optimizer!r}.")
    if self.strategy not in strategy_lib.NAMES:
      raise InputError(f"Options.strategy must be one of {strategy_lib.NAMES}; got "
                       f"{self.strategy!r}.")
    if not self.temperatures or min(self.temperatures) < 0:
      raise InputError(f"Options.temperatures must be non-negative; got {self.temperatures}.")

  @property
  def update_settings(self):
    """The `glow_tfp.training.update.Settings` of these options."""
    decay_steps = self.steps if self.lr_decay == "cosine" else 0
    return update_lib.Settings(self.optimizer, self.learning_rate, self.warmup_steps,
                               self.grad_clip_norm, decay_steps)

  @property
  def intervals(self):
    return self.log_every, self.eval_every, self.sample_every, self.checkpoint_every

  def _check_steps_per_loop(self):
    _check_at_least("steps_per_loop", self.steps_per_loop, 1)
    if any(interval % self.steps_per_loop for interval in self.intervals):
      raise InputError(f"Options.steps_per_loop={self.steps_per_loop} must divide log_every, "
                       "eval_every, sample_every and checkpoint_every; got "
                       f"{self.intervals}.")


def _check_at_least(name, value, minimum):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
    raise InputError(f"Options.{name} must be a number >= {minimum}; got {value!r}.")


def run(config, data, options, strategy=None):
  """Trains (or resumes training) a Glow of `config` on `data` (`train.data.load`).

  Every check of the inputs and of the workdir happens before anything is written.

  Returns a dict: `heldout_bits_per_dim` (final, with the `eval_weights`: the mean K-draw
  dequantisation bound of `glow_tfp.likelihood`, seeded, so repeatable),
  `heldout_bits_per_dim_stderr` (its standard error over the images), `likelihood_draws` (K),
  `heldout_images`, `heldout_bits_per_dim_raw` and, with EMA, `heldout_bits_per_dim_ema` (the
  same with either set of weights), `ema_decay`, `steps_per_loop`, `train_history` ([step, bits/dim] per good step of this process),
  `eval_history` ([step, held-out bits/dim]), `heldout_reconstruction` (final
  `glow_tfp.reconstruction.Reconstruction.scalars()`), `sample_quality` (with
  `quality_samples` and labelled data: `quality_reports.results`), `steps`, `skipped_steps`,
  `restores`, `resumed_from` (checkpoint path or None), `seconds`, `sample_paths`,
  `perturb_fraction` (0 unless the run trains a background model).

  Raises `preemption.Preempted` after SIGTERM, once the checkpoint of the step reached is
  saved, and `errors.CheckpointSaveError` when a checkpoint cannot be saved.
  """
  check_data(config, data, options)
  strategy = strategy or strategy_lib.make(options.strategy, options.tpu_address)
  replicas = strategy.num_replicas_in_sync
  if options.batch_size % replicas:
    raise InputError(f"--batch_size={options.batch_size} must be divisible by the "
                     f"{replicas} replicas of --strategy={options.strategy}.")
  resume = checkpointing.check_workdir(options.workdir, config)
  resume = strategy_lib.chief_decision(strategy, resume)
  trainer = Trainer(config, data, options, strategy)
  try:
    return trainer.fit(resume)
  finally:
    trainer.close()


def check_data(config, data, options):
  """Raises `InputError` if `data` cannot train a model of `config` with `options`."""
  if tuple(config.image_shape) != data.image_shape:
    raise InputError(f"The model's image_shape {tuple(config.image_shape)} differs from the "
                     f"images of {data.name}, {data.image_shape}.")
  if config.num_classes and config.num_classes != data.num_classes:
    raise InputError(f"A class-conditional model needs labelled data with "
                     f"{config.num_classes} classes; {data.name} has {data.num_classes}.")
  if options.batch_size > data.num_train:
    raise InputError(f"--batch_size={options.batch_size} exceeds the "
                     f"{data.num_train} training images of {data.name}.")


class Trainer:
  """The state of one training run and the loop that steps it.

  Attributes:
    model: the `Glow`; ema: its `ExponentialMovingAverage` or None; update: the
    `glow_tfp.training.update.Update` that trains them (its step counter, optimizer,
    learning rate, skipped steps and float16 loss scale); guard: the
    `guard.NonFiniteGuard`. All of them are saved in every checkpoint. heldout: the
    `heldout_reports.HeldOutReports` of the run.
  """

  def __init__(self, config, data, options, strategy):
    self.config, self.data, self.options, self.strategy = config, data, options, strategy
    self.chief = strategy_lib.is_chief(strategy)
    batch_parts = execution.resolve_batch_parts(options.batch_parts)
    self.steps_per_loop = step_lib.resolve_steps_per_loop(options.steps_per_loop,
                                                          options.intervals)
    with strategy.scope():
      self.model = self._glow()
      self.ema = (ema_lib.ExponentialMovingAverage(self.model, self._glow(), options.ema_decay)
                  if options.ema_decay else None)
      self.update = update_lib.Update(
          self.model, options.update_settings, options.seed, self.ema,
          loss_scaling=options.compute_dtype == "float16",
          gradients_fn=step_lib.gradients_fn(
              options.jit_compile, batch_parts))
      # A lambda: the checkpointer, which saves the update's counters, is made below.
      self.guard = guard_lib.NonFiniteGuard(options.max_bad_steps, options.max_restores,
                                            options.restore_lr_factor, self.update,
                                            lambda: self.checkpointer.restore_latest())
    update = self.update
    extra = {}
    if self.ema:
      extra["ema_model"] = self.ema.shadow
    if update.loss_scale:
      extra["loss_scale"] = update.loss_scale
    checkpoint = tf.train.Checkpoint(model=self.model, optimizer=update.optimizer,
                                     step=update.step, lr_scale=update.learning_rate.scale,
                                     skipped_steps=update.skipped_steps, **extra)
    self.checkpointer = checkpointing.Checkpointer(checkpoint, options.workdir,
                                                   options.keep_checkpoints, self.chief)
    self.reporter = summaries.Reporter(options.workdir, options.steps, self.chief)
    self.train_step = step_lib.DistributedStep(update, strategy, self.guard)
    weights = {"raw": self.model, **({"ema": self.ema.shadow} if self.ema else {})}
    eval_weights = options.eval_weights if self.ema else "raw"
    self.heldout = heldout_reports.HeldOutReports(weights, eval_weights, data,
                                                  options.eval_batch_size, options.seed,
                                                  options.likelihood_draws, self.reporter,
                                                  batch_parts)
    self.samples = sample_grids.SampleGrids(weights[eval_weights], options.num_samples,
                                            options.temperatures, options.seed, self.reporter)
    self.quality = quality_reports.QualityReports(
        weights[eval_weights], data, options.workdir, options.quality_samples,
        options.temperatures, options.seed, options.eval_batch_size, self.reporter)
    self.preemption = preemption.PreemptionWatch(strategy)

  def _glow(self):
    options = self.options
    return flow.Glow(self.config, seed=options.seed, compute_dtype=options.compute_dtype,
                     reversible_gradients=options.reversible_gradients)

  def close(self):
    self.checkpointer.close()

  def fit(self, resume):
    """Restores or initialises, trains to `options.steps`, evaluates; returns results."""
    started = time.perf_counter()
    resumed_from = self.restore_or_initialize(resume)
    if self.chief:
      workdir_lib.save_reference_images(self.options.workdir, *self.data.heldout_arrays())
      if not tf.io.gfile.exists(workdir_lib.train_reference_path(self.options.workdir)):
        workdir_lib.save_training_images(self.options.workdir, *self.data.train_arrays(
            workdir_lib.MAX_TRAIN_REFERENCE_IMAGES))
    history = []
    step = int(self.update.step.numpy())
    self.reporter.start(step)
    with self.preemption:
      while step < self.options.steps:
        step = self.train_segment(step, history)
    logging.info("Training done at step %d; final evaluation and samples.", step)
    heldout = self.heldout.final(step)
    quality = self.quality.final(step)
    paths = self.samples.write(step)
    if step % self.options.checkpoint_every:
      self._save(step)
    results = {**heldout, **quality, "ema_decay": self.options.ema_decay,
               "steps_per_loop": self.steps_per_loop, "train_history": history, "steps": step,
               "skipped_steps": self.guard.skipped, "restores": self.guard.restores,
               "resumed_from": resumed_from, "seconds": time.perf_counter() - started,
               "sample_paths": paths, "perturb_fraction": self.options.perturb_fraction}
    self.reporter.results(results)
    self.reporter.flush()
    return results

  def restore_or_initialize(self, resume):
    """Resumes from the latest checkpoint, or initialises ActNorm and saves step 0.

    Returns the restored checkpoint path, or None for a fresh run.
    """
    if resume:
      path = self.checkpointer.restore_latest()
      logging.info("Resuming from %s at step %d.", path, int(self.update.step.numpy()))
      return path
    if self.chief:
      workdir_lib.save_config(self.options.workdir, self.config)
    batch = next(iter(self._batches(0, 1)))
    self.train_step.initialize(batch)
    self._save(0)
    return None

  def train_segment(self, step, history):
    """Trains from `step` until the end or until the guard restores; returns the step."""
    window = []
    # Exactly as many batches as steps, so the loop never waits for the end of the data.
    batches = iter(self._batches(step, self.options.steps))
    while step < self.options.steps:
      records = self.train_step(batches, min(self.steps_per_loop, self.options.steps - step))
      step = self._record(step, records, history, window)
      if self.guard.check():
        return int(self.update.step.numpy())
      if records.ok[-1]:
        self._periodic(step, window, records)
      if self.preemption.requested():
        self._stop_preempted(step)
    return step

  def _stop_preempted(self, step):
    path = self.checkpointer.last_good
    if path is None or not path.endswith(f"-{step}"):  # no periodic save at this boundary
      path = self._save(step)
    self.reporter.flush()
    logging.warning("Preempted at step %d: saved %s.", step, path)
    raise preemption.Preempted(step, path)

  def _record(self, step, records, history, window):
    """Notes the steps of one loop after `step`; returns the step it reached."""
    for loss, norm, ok, overflow, _, in_a_row, skipped in zip(*records):
      step += 1
      if ok:
        history.append([step, float(loss)])
        window.append(float(loss))
      else:
        self.guard.log_skipped(step, loss, norm, in_a_row, skipped, overflow)
    return step

  def _periodic(self, step, window, records):
    options = self.options
    if (step % options.log_every == 0 or step == options.steps) and window:
      mean = sum(window) / len(window)
      learning_rate, norm = float(records.learning_rate[-1]), float(records.norm[-1])
      skipped = self.guard.skipped
      self.reporter.progress(step, mean, options.batch_size, learning_rate, skipped)
      scalars = {"train/bits_per_dim": mean, "learning_rate": learning_rate,
                 "gradient_norm": norm, "skipped_steps": skipped}
      if self.update.loss_scale:
        scalars["loss_scale"] = float(self.update.loss_scale.scale.numpy())
      self.reporter.scalars(step, scalars)
      window.clear()
    if step % options.eval_every == 0 and step < options.steps:
      self.heldout.evaluate(step)
      self.quality.evaluate(step)
    if step % options.sample_every == 0 and step < options.steps:
      self.samples.write(step)
    if step % options.checkpoint_every == 0:
      self._save(step)

  def _save(self, step):
    self.update.step.assign(step)
    return self.checkpointer.save(step)

  def _batches(self, start_step, end_step):
    options = self.options
    dataset_fn = self.data.training_dataset_fn(options.batch_size, options.seed, start_step,
                                               end_step,
                                               perturb_fraction=options.perturb_fraction)
    return self.strategy.distribute_datasets_from_function(dataset_fn)
