"""The training loop on the device: `steps_per_loop` steps in one `tf.function`.

Each step is `glow_tfp.training.replica_step` under `strategy.run` (dequantisation, ActNorm
initialisation once, the loss, its all-reduced and clipped gradients, the guard's verdict),
then, in cross-replica context, the optimizer applies the update only if the step is good,
and the EMA weights and the loss scale follow. The learning rate of each step comes from
the step counter in the graph; the guard counts skipped steps there too and ends the loop
early after too many failures in a row, for the Python loop to restore a checkpoint.
"""

import functools
import math
import typing

from absl import logging
import tensorflow as tf

from glow_tfp import training

DEVICE_STEPS_PER_LOOP = 50


def resolve_jit_compile(jit_compile):
  """`jit_compile`, or for None: XLA on a GPU or TPU, not on CPUs.

  On CPU, XLA made the default model's training steps about 10% slower
  (docs/performance.md, "XLA and mixed precision"), since TensorFlow's oneDNN convolutions
  beat XLA's; on GPUs XLA's fused elementwise kernels are the usual win, as Keras's
  `jit_compile="auto"` assumes.
  """
  if jit_compile is not None:
    return jit_compile
  return _on_accelerator()


def resolve_steps_per_loop(steps_per_loop, intervals):
  """`steps_per_loop`, or for None: 1 on CPUs; on a GPU or TPU, the greatest common divisor
  of `DEVICE_STEPS_PER_LOOP` and the logging, evaluation, sample and checkpoint `intervals`,
  so that every interval ends at a loop boundary."""
  if steps_per_loop is not None:
    return steps_per_loop
  if not _on_accelerator():
    return 1
  return math.gcd(DEVICE_STEPS_PER_LOOP, *intervals)


def _on_accelerator():
  return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


class Records(typing.NamedTuple):
  """Per step of a loop (numpy arrays of the steps it ran): loss, gradient norm, whether
  the update was applied, whether float16 gradients overflowed, the learning rate, the
  guard's failures in a row and skipped steps in all after the step."""

  loss: object
  norm: object
  ok: object
  overflow: object
  learning_rate: object
  in_a_row: object
  skipped: object


class DistributedStep:
  """The training loop of `model` under `strategy`; create it after the state it updates.

  Args:
    model: the `Glow`, made under `strategy.scope()`.
    optimizer: its `optim.Optimizer`.
    strategy: the `tf.distribute.Strategy`.
    state: the run's `step` counter variable, `schedule.LearningRate` and
      `guard.NonFiniteGuard`, as (step, learning_rate, guard).
    global_batch_size: images per step over all replicas.
    seed: seeds the dequantisation noise.
    grad_clip_norm: clip the gradients to this global norm; 0 disables clipping.
    jit_compile: True, False or None (`resolve_jit_compile`) for the loss and gradients.
    ema: an `glow_tfp.ema.ExponentialMovingAverage`, or None.
    loss_scale: a `glow_tfp.loss_scale.DynamicLossScale`, or None.
    batch_parts: cut each replica's batch into this many parts that run side by side
      (`glow_tfp.execution.map_parts`).
  """

  def __init__(self, model, optimizer, strategy, state, global_batch_size, seed,
               grad_clip_norm, jit_compile, ema=None, loss_scale=None, batch_parts=1):
    self.model, self.optimizer, self.strategy = model, optimizer, strategy
    self.step, self.learning_rate, self.guard = state
    self.ema, self.loss_scale, self._seed = ema, loss_scale, seed
    self._conditional = bool(model.config.num_classes)
    jit_compile = resolve_jit_compile(jit_compile)
    logging.info("XLA for the loss and gradients: %s", "on" if jit_compile else "off")
    self._replica_step = functools.partial(
        training.replica_step, model, seed=seed, global_batch_size=global_batch_size,
        grad_clip_norm=grad_clip_norm, loss_scale=loss_scale, ema=ema,
        gradients_fn=tf.function(
            functools.partial(training.loss_and_gradients, batch_parts=batch_parts),
            jit_compile=jit_compile))

  def _labels(self, labels):
    return labels if self._conditional else None

  @tf.function
  def initialize(self, batch):
    """Initialises ActNorm (and the EMA weights) from the distributed global `batch`.

    The replicas all-reduce the statistics, which reaches every worker of a cluster, where
    the gather of `training.initialize_once` sees only the local replicas; the steps then
    find the model initialised.
    """
    def initialize(images, labels):
      x = training.dequantize(images, self.model.config.n_bits, self._seed, self.step)
      self.model.initialize(x, self._labels(labels))
    self.strategy.run(initialize, args=batch)
    if self.ema is not None:
      self.ema.reset()

  def __call__(self, iterator, num_steps):
    """Runs up to `num_steps` steps on batches of the distributed `iterator`; returns the
    `Records` of the steps it ran (fewer when the guard stopped the loop)."""
    return Records(*(t.numpy() for t in self._loop(iterator, tf.constant(num_steps))))

  @tf.function
  def _loop(self, iterator, num_steps):
    records = [tf.TensorArray(dtype, size=0, dynamic_size=True)
               for dtype in (tf.float32,) * 2 + (tf.bool,) * 2 + (tf.float32,) + (tf.int64,) * 2]
    for index in tf.range(num_steps):
      learning_rate = self.learning_rate.at(self.step)
      loss, norm, ok, overflow = self._one_step(next(iterator), learning_rate)
      stop = self.guard.count(ok, overflow)
      values = (loss, norm, ok, overflow, learning_rate, self.guard.in_a_row.read_value(),
                self.guard.skipped_steps.read_value())
      records = [r.write(index, v) for r, v in zip(records, values)]
      if stop:
        break
    return tuple(r.stack() for r in records)

  def _one_step(self, batch, learning_rate):
    images, labels = batch
    result = self.strategy.run(
        lambda x, y: self._replica_step(x, self._labels(y), self.step), args=(images, labels))
    loss, norm, ok, overflow = (self._first_replica(v) for v in
                                (result.loss, result.norm, result.ok, result.overflow))
    self.optimizer.apply(result.gradients, learning_rate, ok)
    if self.ema is not None:
      self.ema.update(self.optimizer.iterations, ok)
    if self.loss_scale is not None:
      self.loss_scale.update(~overflow)
    self.step.assign_add(1)
    return loss, norm, ok, overflow

  def _first_replica(self, value):
    return self.strategy.experimental_local_results(value)[0]
