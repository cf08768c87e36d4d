"""The loss and gradients of one training step of a Glow, in a replica context.

In a replica context of any `tf.distribute` strategy (the default one included),
`replica_step` dequantises this replica's slice of the global batch with noise seeded by
(seed, step), initialises every ActNorm from the first global batch exactly once, and
computes the loss and its gradients, all-reduced over the replicas and clipped by global
norm, with the verdict of the non-finite guard (`StepResult.ok`). `update.Update` then
applies the update only when `ok` holds (all or nothing).

The loss is the mean negative log-likelihood of the global batch in bits per dimension
(`likelihood.dequantized_bits_per_dim`: one uniform draw per image, so its expectation is
the K = 1 bound on the discrete bits/dim), in both the CLI and Keras.
"""

import typing

import tensorflow as tf

from glow_tfp import execution
from glow_tfp import likelihood
from glow_tfp import model_space

# The dequantisation noise of training step s is seeded by fold_in((seed, NOISE_STREAM), s).
NOISE_STREAM = 1


class StepResult(typing.NamedTuple):
  """One replica's view of a training step; every field but `gradients` is the same on
  all replicas.

  Attributes:
    loss: global-batch mean bits/dim.
    gradients: its gradients (all-reduced, clipped), one per trainable variable.
    norm: their global norm before clipping.
    ok: whether the loss and the norm are finite: the update may be applied.
    overflow: whether the gradients overflowed under loss scaling (the loss is finite).
  """

  loss: tf.Tensor
  gradients: list
  norm: tf.Tensor
  ok: tf.Tensor
  overflow: tf.Tensor


def noise_seed(seed, step):
  """The stateless seed of the dequantisation noise of training `step`."""
  base = tf.constant([seed, NOISE_STREAM], tf.int64)
  return tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))


def dequantize(images, n_bits, seed, step):
  """This replica's uint8 `images` in model space, with uniform noise seeded by (seed, step).

  The noise is drawn for the whole global batch and sliced, so an image gets the same noise
  whatever the number of replicas (replica r holds the r-th contiguous slice of the batch).
  """
  context = tf.distribute.get_replica_context()
  replicas = context.num_replicas_in_sync
  replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
  shape = tf.shape(images)
  noise = tf.random.stateless_uniform(tf.concat([[shape[0] * replicas], shape[1:]], 0),
                                      noise_seed(seed, step))
  return model_space.to_model_space(images, n_bits,
                                noise=noise[replica * shape[0]:(replica + 1) * shape[0]])


def initialize_once(model, x, labels, ema=None):
  """Initialises every ActNorm of `model` from the global batch of `x`, if not done yet.

  Call in a replica context; `ema` (an `ema.ExponentialMovingAverage`), if given, starts
  from the initialised weights. This is the only place that initialises a trained model.
  """
  # A strategy forbids all-reduces inside a tf.cond of the replica context, so the replicas
  # meet first (merge_call) and the cross-replica context decides, then re-enters the
  # replicas, whose all-reduces of the statistics reach every worker (as Keras's
  # LossScaleOptimizer applies its update).
  tf.distribute.get_replica_context().merge_call(_initialize_if_needed,
                                                 args=(model, x, labels, ema))


def _initialize_if_needed(strategy, model, x, labels, ema):
  def initialize():
    strategy.extended.call_for_each_replica(model.initialize, args=(x, labels))
    if ema is not None:
      ema.reset()
    return tf.constant(True)
  tf.cond(model.initialized, lambda: tf.constant(False), initialize)


def loss_and_gradients(model, x, labels, global_batch_size, loss_scale=None, batch_parts=1):
  """This replica's share of the global-batch mean bits/dim, and its gradients (zeros for
  variables the loss does not reach), the log-densities computed in `batch_parts` parts
  side by side (`glow_tfp.execution.map_parts`).

  With a `loss_scale` (a scalar), the gradients are those of `loss * loss_scale`, divided by
  `loss_scale` again: a large scale keeps small float16 gradients from flushing to zero.
  """
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    log_prob = execution.map_parts(model.log_prob, (x, labels), batch_parts)
    bits = likelihood.dequantized_bits_per_dim(log_prob, model.config)
    loss = tf.reduce_sum(bits) / global_batch_size
    scaled = loss if loss_scale is None else loss * loss_scale
  gradients = tape.gradient(scaled, variables)
  if loss_scale is not None:
    gradients = [None if g is None else tf.convert_to_tensor(g) / loss_scale
                 for g in gradients]
  return loss, [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]


def replica_step(model, images, labels, step, seed, global_batch_size, grad_clip_norm=0.0,
                 gradients_fn=loss_and_gradients, loss_scale=None, ema=None):
  """One training step's loss and gradients in a replica context; returns a `StepResult`.

  Args:
    model: the `Glow`.
    images: this replica's uint8 images [b, H, W, C]; labels: its labels or None.
    step: the step counter, which seeds the dequantisation noise.
    seed: the run's integer seed.
    global_batch_size: images per step over all replicas.
    grad_clip_norm: clip the gradients to this global norm; 0 disables clipping.
    gradients_fn: `loss_and_gradients` or a compiled version of it.
    loss_scale: a `loss_scale.DynamicLossScale`, or None.
    ema: the `ema.ExponentialMovingAverage` to start at initialisation, or None.
  """
  x = dequantize(images, model.config.n_bits, seed, step)
  initialize_once(model, x, labels, ema)
  scale = None if loss_scale is None else loss_scale.scale.read_value()
  loss, gradients = gradients_fn(model, x, labels, global_batch_size, scale)
  context = tf.distribute.get_replica_context()
  loss, gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, (loss, gradients))
  norm = tf.linalg.global_norm(gradients)
  if grad_clip_norm:
    gradients, _ = tf.clip_by_global_norm(gradients, grad_clip_norm, use_norm=norm)
  finite_loss, finite_norm = tf.math.is_finite(loss), tf.math.is_finite(norm)
  overflow = finite_loss & ~finite_norm if loss_scale is not None else tf.constant(False)
  return StepResult(loss, gradients, norm, finite_loss & finite_norm, overflow)
