"""ActNorm: per-channel affine normalisation with data-dependent initialisation."""

import tensorflow as tf

from glow_tfp.bijectors import base

_EPSILON = 1e-6


class ActNorm(base.FusedBijector):
  """Per-channel scale and bias, initialised so its first batch comes out standardised.

  Normalising direction (`inverse`), per channel c:
    y = (x + bias[c]) * exp(log_scale[c]),   log|det J| = H * W * sum(log_scale).
  Generative direction (`forward`): x = y * exp(-log_scale) - bias, log-det negated.
  Invertible for every finite `log_scale`; cost O(H W C).

  `initialize_inverse(x)` sets `bias = -mean(x)` and `log_scale = -log(std(x) + eps)`, the
  statistics taken over batch and space. Inside a replica context of a `tf.distribute`
  strategy the sums are all-reduced first, so the statistics are those of the global batch
  and every replica holds the same values. The `initialized` variable records that this
  happened, so a restored model is not initialised again.

  Args:
    channels: number of channels C (> 0).
    dtype: float dtype of the parameters.
    name: name scope.

  #### References
  Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", 2018, sec. 3.1.
  """

  def __init__(self, channels, dtype=tf.float32, name=None):
    parameters = dict(locals())
    if channels < 1:
      raise ValueError(f"`channels` must be positive; instead, it is {channels}.")
    with tf.name_scope(name or "act_norm") as scope:
      self.bias = tf.Variable(tf.zeros([channels], dtype), name="bias")
      self.log_scale = tf.Variable(tf.zeros([channels], dtype), name="log_scale")
      self.initialized = tf.Variable(False, trainable=False, name="initialized")
    super().__init__(parameters=parameters, name=scope.rstrip("/") or "act_norm",
                     is_constant_jacobian=True, dtype=dtype)

  def normalize(self, x):
    """The normalising map alone, for use inside a network (no log-det), in x's dtype."""
    return (x + tf.cast(self.bias, x.dtype)) * tf.cast(tf.exp(self.log_scale), x.dtype)

  def initialize(self, x):
    """Sets bias and log-scale from the (global) statistics of `x` [..., C]."""
    mean, variance = _global_moments(tf.cast(x, self.dtype))
    self.bias.assign(-mean)
    self.log_scale.assign(-tf.math.log(tf.sqrt(variance) + _EPSILON))
    self.initialized.assign(True)

  def initialize_inverse(self, y, labels=None):
    self.initialize(y)
    return self.normalize(y)

  def _log_det(self, x):
    return base.per_pixel_log_det(x, tf.reduce_sum(self.log_scale))

  def _inverse_and_log_det(self, y, labels=None):
    return self.normalize(y), self._log_det(y)

  def _forward_and_log_det(self, x, labels=None):
    return x * tf.exp(-self.log_scale) - self.bias, -self._log_det(x)


def _global_moments(x):
  """Per-channel mean and variance of `x`, over the global batch under a strategy."""
  axes = list(range(x.shape.rank - 1))
  count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
  total = _sum_over_replicas(count)
  mean = _sum_over_replicas(tf.reduce_sum(x, axes)) / total
  # Two passes (mean, then squared deviations) keep float32 variance accurate.
  squares = tf.reduce_sum(tf.square(x - mean), axes)
  return mean, _sum_over_replicas(squares) / total


def _sum_over_replicas(value):
  context = tf.distribute.get_replica_context()
  if context is None:  # cross-replica context: this batch is the whole batch.
    return value
  return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
