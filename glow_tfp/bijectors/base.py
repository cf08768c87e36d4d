"""The fused-log-det protocol shared by every Glow bijector.

TFP computes `inverse(y)` and `inverse_log_det_jacobian(y)` in two separate calls, so a
coupling layer would run its network twice per `log_prob`. Every bijector here implements
one method per direction that returns the output and the log-det together; TFP's four
private methods are derived from it, and the model's own `log_prob` walks the chain through
the fused methods so that each network runs once.
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

IMAGE_EVENT_NDIMS = 3


class FusedBijector(tfb.Bijector):
  """A bijector over [H, W, C] images whose output and log-det come from one call.

  Subclasses implement `_forward_and_log_det(x, labels=None)` and
  `_inverse_and_log_det(y, labels=None)`, each returning `(output, log_det)` with the
  log-det of shape [N] (summed over the event). `labels` carries the class label of a
  class-conditional model to the layers that use it; the others ignore it.

  `initialize_inverse(y, labels=None)` is the data-dependent initialisation pass: it sets
  whatever parameters depend on data from `y` and returns the inverse. The default has no
  such parameters.
  """

  def __init__(self, parameters, name, is_constant_jacobian=False, dtype=tf.float32):
    super().__init__(
        forward_min_event_ndims=IMAGE_EVENT_NDIMS,
        is_constant_jacobian=is_constant_jacobian,
        validate_args=False,
        parameters=parameters,
        dtype=dtype,
        name=name)

  def forward_and_log_det(self, x, labels=None):
    return self._forward_and_log_det(x, labels=labels)

  def inverse_and_log_det(self, y, labels=None):
    return self._inverse_and_log_det(y, labels=labels)

  def initialize_inverse(self, y, labels=None):
    return self._inverse_and_log_det(y, labels=labels)[0]

  def _forward(self, x, labels=None):
    return self._forward_and_log_det(x, labels=labels)[0]

  def _inverse(self, y, labels=None):
    return self._inverse_and_log_det(y, labels=labels)[0]

  def _forward_log_det_jacobian(self, x, labels=None):
    return self._forward_and_log_det(x, labels=labels)[1]

  def _inverse_log_det_jacobian(self, y, labels=None):
    return self._inverse_and_log_det(y, labels=labels)[1]


def batch_zeros(x):
  """A zero log-det of shape [N] for the batch of `x`."""
  return tf.zeros(tf.shape(x)[:1], dtype=x.dtype)


def per_pixel_log_det(x, value):
  """The log-det [N] of a map that contributes the scalar `value` at every pixel of `x`."""
  pixels = tf.cast(tf.reduce_prod(tf.shape(x)[-3:-1]), x.dtype)
  return tf.fill(tf.shape(x)[:1], pixels * value)


def sum_over_event(values):
  """Sums a per-element quantity over the image event dimensions [H, W, C]."""
  return tf.reduce_sum(values, axis=[-3, -2, -1])
