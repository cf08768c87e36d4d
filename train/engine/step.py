"""The training loop on the device: `steps_per_loop` steps in one `tf.function`.

Each step is the library's update (`glow_tfp.training.update.Update`, the one
`GlowModel.fit` runs too) under `strategy.run`: dequantisation, ActNorm initialisation
once, the loss and its all-reduced, clipped gradients, then the optimizer at the step's
learning rate only if the step is finite, the EMA weights, the loss scale and the count of
skipped steps. The guard counts failures in a row in the graph and ends the loop early
after too many, for the Python loop to restore a checkpoint.
"""

import functools
import math
import typing

from absl import logging
import tensorflow as tf

from glow_tfp.training import step

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


def gradients_fn(jit_compile, batch_parts):
  """The loss-and-gradients function of the steps, each replica's batch cut into
  `batch_parts` parts, compiled with XLA as `resolve_jit_compile(jit_compile)` says."""
  jit_compile = resolve_jit_compile(jit_compile)
  logging.info("XLA for the loss and gradients: %s", "on" if jit_compile else "off")
  return tf.function(functools.partial(step.loss_and_gradients, batch_parts=batch_parts),
                     jit_compile=jit_compile)


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
  """The training loop of `update` under `strategy`; create it after the state it updates.

  Args:
    update: the run's `glow_tfp.training.update.Update`, made under `strategy.scope()`.
    strategy: the `tf.distribute.Strategy`.
    guard: the run's `guard.NonFiniteGuard`.
  """

  def __init__(self, update, strategy, guard):
    self.update, self.strategy, self.guard = update, strategy, guard
    self._conditional = bool(update.model.config.num_classes)

  def _labels(self, labels):
    return labels if self._conditional else None

  @tf.function
  def initialize(self, batch):
    """Initialises ActNorm (and the EMA weights) from the distributed global `batch`; the
    steps then find the model initialised."""
    images, labels = batch
    self.strategy.run(lambda x, y: self.update.initialize(x, self._labels(y)),
                      args=(images, labels))

  def __call__(self, iterator, num_steps):
    """Runs up to `num_steps` steps on batches of the distributed `iterator`; returns the
    `Records` of the steps it ran (fewer when the guard stopped the loop)."""
    return Records(*(t.numpy() for t in self._loop(iterator, tf.constant(num_steps))))

  @tf.function
  def _loop(self, iterator, num_steps):
    records = [tf.TensorArray(dtype, size=0, dynamic_size=True)
               for dtype in (tf.float32,) * 2 + (tf.bool,) * 2 + (tf.float32,) + (tf.int64,) * 2]
    for index in tf.range(num_steps):
      learning_rate = self.update.learning_rate.at(self.update.step)
      loss, norm, ok, overflow = self._one_step(next(iterator))
      stop = self.guard.count(ok, overflow)
      values = (loss, norm, ok, overflow, learning_rate, self.guard.in_a_row.read_value(),
                self.update.skipped_steps.read_value())
      records = [r.write(index, v) for r, v in zip(records, values)]
      if stop:
        break
    return tuple(r.stack() for r in records)

  def _one_step(self, batch):
    images, labels = batch
    result = self.strategy.run(lambda x, y: self.update(x, self._labels(y)),
                               args=(images, labels))
    return tuple(self.strategy.experimental_local_results(v)[0] for v in
                 (result.loss, result.norm, result.ok, result.overflow))
