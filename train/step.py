"""One training step under any `tf.distribute` strategy.

Each replica computes the bits/dim of its slice of the global batch, summed and divided by
the global batch size, and its gradients; both are all-reduced (summed), so every replica
holds the global-batch mean loss and gradients; the gradients are clipped by global norm;
then, in cross-replica context, the optimizer applies them only if the loss and the gradient
norm are finite (what follows a non-finite step is train/guard.py's).
"""

from absl import logging
import tensorflow as tf


def resolve_jit_compile(jit_compile):
  """`jit_compile`, or for None: XLA on a GPU or TPU, not on CPUs.

  On CPU, XLA made the default model's training steps about 10% slower (README,
  Performance), since TensorFlow's oneDNN convolutions beat XLA's; on GPUs XLA's fused
  elementwise kernels are the usual win, as Keras's `jit_compile="auto"` assumes.
  """
  if jit_compile is not None:
    return jit_compile
  return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def loss_and_gradients(model, images, labels, global_batch_size):
  """This replica's share of the global-batch mean bits/dim of `model`, and its gradients
  (zeros for variables the loss does not reach); `labels` is None for an unconditional
  model."""
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model.bits_per_dim(images, labels)) / global_batch_size
  gradients = tape.gradient(loss, variables)
  return loss, [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]


class DistributedStep:
  """The ActNorm initialisation and the training step of `model` under `strategy`.

  Args:
    model: the `Glow`, made under `strategy.scope()`.
    optimizer: its `optim.Optimizer`.
    strategy: the `tf.distribute.Strategy`.
    global_batch_size: images per step over all replicas.
    grad_clip_norm: clip the gradients to this global norm; 0 disables clipping.
    jit_compile: True, False or None (`resolve_jit_compile`) for the loss and gradients.
  """

  def __init__(self, model, optimizer, strategy, global_batch_size, grad_clip_norm,
               jit_compile):
    self.model, self.optimizer, self.strategy = model, optimizer, strategy
    self.grad_clip_norm = grad_clip_norm
    self._conditional = bool(model.config.num_classes)
    jit_compile = resolve_jit_compile(jit_compile)
    logging.info("XLA for the loss and gradients: %s", "on" if jit_compile else "off")
    self._gradients = tf.function(
        lambda images, labels: loss_and_gradients(model, images, labels, global_batch_size),
        jit_compile=jit_compile)

  def _labels(self, labels):
    return labels if self._conditional else None

  @tf.function
  def initialize(self, batch):
    """Initialises ActNorm from the distributed global `batch` (images, labels)."""
    self.strategy.run(lambda x, y: self.model.initialize(x, self._labels(y)), args=batch)

  @tf.function
  def __call__(self, batch, learning_rate):
    """Trains on the distributed global `batch`; returns (loss, gradient norm, applied)."""
    loss, gradients, norm = self.strategy.run(self._replica_step, args=(batch,))
    loss, norm = self._first_replica(loss), self._first_replica(norm)
    ok = tf.math.is_finite(loss) & tf.math.is_finite(norm)
    self.optimizer.apply(gradients, learning_rate, ok)
    return loss, norm, ok

  def _first_replica(self, value):
    return self.strategy.experimental_local_results(value)[0]

  def _replica_step(self, batch):
    images, labels = batch
    loss, gradients = self._gradients(images, self._labels(labels))
    context = tf.distribute.get_replica_context()
    loss, gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, (loss, gradients))
    norm = tf.linalg.global_norm(gradients)
    if self.grad_clip_norm:
      gradients, _ = tf.clip_by_global_norm(gradients, self.grad_clip_norm, use_norm=norm)
    return loss, gradients, norm
