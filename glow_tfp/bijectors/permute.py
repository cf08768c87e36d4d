"""Fixed channel permutations: the RealNVP reverse and a random shuffle."""

import numpy as np
import tensorflow as tf

from glow_tfp.bijectors import base

PERMUTATION_KINDS = ("shuffle", "reverse")


class ChannelPermutation(base.FusedBijector):
  """Reorders channels by a fixed permutation p (the paper's baselines to the 1x1 conv).

  Normalising direction (`inverse`): y[..., i] = x[..., p[i]]; generative direction
  (`forward`): x[..., p[i]] = y[..., i]. Volume preserving: log|det J| = 0.

  Args:
    channels: number of channels C (> 0).
    kind: "reverse" (p = C-1, ..., 0, as RealNVP) or "shuffle" (a seeded random p).
    seed: integer seed of the shuffle.
    name: name scope.
  """

  def __init__(self, channels, kind="reverse", seed=0, dtype=tf.float32, name=None):
    parameters = dict(locals())
    if channels < 1:
      raise ValueError(f"`channels` must be positive; instead, it is {channels}.")
    if kind not in PERMUTATION_KINDS:
      raise ValueError(f"`kind` must be one of {PERMUTATION_KINDS}; instead, it is {kind!r}.")
    if kind == "reverse":
      order = np.arange(channels)[::-1]
    else:
      order = np.random.default_rng(seed).permutation(channels)
    self.kind = kind
    self._order = tf.constant(order, tf.int32)
    self._inverse_order = tf.constant(np.argsort(order), tf.int32)
    super().__init__(parameters=parameters, name=name or f"{kind}_permutation",
                     is_constant_jacobian=True, dtype=dtype)

  @property
  def order(self):
    return self._order

  def kernel(self):
    """W^T for the permutation matrix W (y = W x), to fuse it with a 1x1 convolution."""
    return tf.one_hot(self._inverse_order, self._order.shape[0], dtype=self.dtype)

  def inverse_kernel(self):
    """W^-T = W."""
    return tf.one_hot(self._order, self._order.shape[0], dtype=self.dtype)

  def log_abs_det_weight(self):
    return tf.zeros([], self.dtype)

  def _inverse_and_log_det(self, y, labels=None):
    return tf.gather(y, self._order, axis=-1), base.batch_zeros(y)

  def _forward_and_log_det(self, x, labels=None):
    return tf.gather(x, self._inverse_order, axis=-1), base.batch_zeros(x)
