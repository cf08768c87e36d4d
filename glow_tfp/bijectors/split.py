"""The multi-scale split: half the channels leave the flow under a learned conditional prior."""

import tensorflow as tf

from glow_tfp.bijectors import base
from glow_tfp.bijectors import nets


class Split(base.FusedBijector):
  """Factors out half the channels, standardised by a prior conditioned on the other half.

  Normalising direction (`inverse`): y = [h, z2] along channels (h the first C - C//2);
  (mean, log_std) = ZeroConv(h); z2' = (z2 - mean) * exp(-log_std); h continues through
  `inner` (the rest of the multi-scale flow); output [inner(h), z2'].
    log|det J| = log|det J_inner(h)| - sum(log_std).
  Generative direction (`forward`): h = inner.forward(z_h), z2 = z2' * exp(log_std) + mean.
  A standard-normal z2' thus means z2 ~ N(mean(h), exp(log_std(h))^2), the paper's learned
  conditional prior. Invertible whenever `inner` is; the prior starts standard normal.

  Args:
    inner: `FusedBijector` applied to the kept half (shape-preserving).
    channels: channels C of the input (>= 2).
    dtype: float dtype of the parameters.
    name: name scope.

  #### References
  Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", 2017, sec. 3.6.
  Kingma & Dhariwal, "Glow", 2018, sec. 3.
  """

  def __init__(self, inner, channels, dtype=tf.float32, name=None):
    parameters = dict(locals())
    if channels < 2:
      raise ValueError(f"`channels` must be at least 2; instead, it is {channels}.")
    self.inner = inner
    self._keep = kept_channels(channels)
    with tf.name_scope(name or "split") as scope:
      self.prior = nets.ZeroConv2d(self._keep, 2 * (channels - self._keep), dtype, name="prior")
    super().__init__(parameters=parameters, name=scope.rstrip("/") or "split", dtype=dtype)

  def _prior(self, h):
    mean, log_std = tf.split(self.prior(h), 2, axis=-1)
    return mean, log_std

  def _standardise(self, h, z2):
    mean, log_std = self._prior(h)
    return (z2 - mean) * tf.exp(-log_std), -base.sum_over_event(log_std)

  def factor_out(self, y):
    """(h, z2', log_det): the kept half h, before `inner`, and the standardised half z2'
    with the log-det of the standardisation alone."""
    h, z2 = y[..., :self._keep], y[..., self._keep:]
    return (h,) + self._standardise(h, z2)

  def _inverse_and_log_det(self, y, labels=None):
    h, z2, log_det = self.factor_out(y)
    z_h, inner_log_det = self.inner.inverse_and_log_det(h, labels=labels)
    return tf.concat([z_h, z2], axis=-1), inner_log_det + log_det

  def initialize_inverse(self, y, labels=None):
    h, z2 = y[..., :self._keep], y[..., self._keep:]
    z_h = self.inner.initialize_inverse(h, labels=labels)
    return tf.concat([z_h, self._standardise(h, z2)[0]], axis=-1)

  def _forward_and_log_det(self, x, labels=None):
    z_h, z2 = x[..., :self._keep], x[..., self._keep:]
    h, inner_log_det = self.inner.forward_and_log_det(z_h, labels=labels)
    mean, log_std = self._prior(h)
    z2 = z2 * tf.exp(log_std) + mean
    return tf.concat([h, z2], axis=-1), inner_log_det + base.sum_over_event(log_std)


def kept_channels(channels):
  """The channels of a split's input that stay in the flow: the first C - C//2 of C."""
  return channels - channels // 2
