"""Squeeze: 2x2 space-to-depth, the multi-scale architecture's change of resolution."""

import tensorflow as tf

from glow_tfp.bijectors import base


class Squeeze(base.FusedBijector):
  """Trades space for channels: [H, W, C] <-> [H/f, W/f, f*f*C].

  Normalising direction (`inverse`): `tf.nn.space_to_depth` with block size f (the paper's
  squeeze); generative direction (`forward`): `tf.nn.depth_to_space`. A permutation of the
  elements, so log|det J| = 0. Defined when H and W are divisible by f.

  Args:
    factor: block size f (>= 2, default 2).
    name: name scope.
  """

  def __init__(self, factor=2, dtype=tf.float32, name=None):
    parameters = dict(locals())
    if factor < 2:
      raise ValueError(f"`factor` must be at least 2; instead, it is {factor}.")
    self.factor = factor
    super().__init__(parameters=parameters, name=name or "squeeze",
                     is_constant_jacobian=True, dtype=dtype)

  def _inverse_and_log_det(self, y, labels=None):
    return tf.nn.space_to_depth(y, self.factor), base.batch_zeros(y)

  def _forward_and_log_det(self, x, labels=None):
    return tf.nn.depth_to_space(x, self.factor), base.batch_zeros(x)

  def _inverse_event_shape(self, output_shape):
    height, width, channels = output_shape
    f = self.factor
    return tf.TensorShape([_div(height, f), _div(width, f), _mul(channels, f * f)])

  def _forward_event_shape(self, input_shape):
    height, width, channels = input_shape
    f = self.factor
    return tf.TensorShape([_mul(height, f), _mul(width, f), _div(channels, f * f)])

  def _inverse_event_shape_tensor(self, output_shape):
    f = self.factor
    return tf.stack([output_shape[0] // f, output_shape[1] // f, output_shape[2] * f * f])

  def _forward_event_shape_tensor(self, input_shape):
    f = self.factor
    return tf.stack([input_shape[0] * f, input_shape[1] * f, input_shape[2] // (f * f)])


def _div(dim, f):
  return None if dim is None else dim // f


def _mul(dim, f):
  return None if dim is None else dim * f
