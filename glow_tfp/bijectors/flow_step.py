"""A step of flow: ActNorm, channel mixing and coupling, the two affine maps fused."""

import tensorflow as tf

from glow_tfp.bijectors import base
from glow_tfp.bijectors import invertible_conv


class FlowStep(base.FusedBijector):
  """Glow's step of flow (paper Fig. 2a): ActNorm, then channel mixing, then coupling.

  Normalising direction (`inverse`), with ActNorm bias b and log-scale s, mixing matrix W,
  and the coupling's conditioning half the first k = C - C//2 channels:
    m = W diag(e^s) (x + b) = A x + A b,
    y = [m[:k], coupling(m[:k], m[k:])],
    log|det J| = H W (sum(s) + log|det W|) + the coupling's log-det.
  Generative direction (`forward`): m = coupling^-1(y), x = diag(e^-s) W^-1 m - b.

  The map is `Sequential([actnorm, mixing, coupling])`'s, up to float rounding. ActNorm and
  the mixing are both affine per pixel, so they run as 1x1 convolutions with bias that
  write the coupling's two halves directly: no elementwise ActNorm passes over the
  activations and no channel slices. Parameters stay in the three layers.

  Args:
    actnorm: `ActNorm` over C channels.
    mixing: `Invertible1x1Conv` or `ChannelPermutation` over C channels (anything with
      `kernel()` = W^T, `inverse_kernel()` = W^-T and `log_abs_det_weight()`).
    coupling: `Coupling` over C channels.
    name: name scope.
  """

  def __init__(self, actnorm, mixing, coupling, name=None):
    parameters = dict(locals())
    channels = [layer.parameters["channels"] for layer in (actnorm, mixing, coupling)]
    if len(set(channels)) != 1:
      raise ValueError("ActNorm, mixing and coupling must have the same number of channels; "
                       f"instead, they have {channels}.")
    self.actnorm = actnorm
    self.mixing = mixing
    self.coupling = coupling
    super().__init__(parameters=parameters, name=name or "flow_step", dtype=actnorm.dtype)

  def _affine_log_det(self, x):
    return base.per_pixel_log_det(
        x, tf.reduce_sum(self.actnorm.log_scale) + self.mixing.log_abs_det_weight())

  def _inverse_and_log_det(self, x, labels=None):
    # kernel = A^T = diag(e^s) W^T, and A b = kernel^T b.
    kernel = tf.exp(self.actnorm.log_scale)[:, tf.newaxis] * self.mixing.kernel()
    bias = tf.reduce_sum(kernel * self.actnorm.bias[:, tf.newaxis], axis=0)
    k = self.coupling.split_channels
    xa = invertible_conv.mix_channels(x, kernel[:, :k], bias[:k])
    xb = invertible_conv.mix_channels(x, kernel[:, k:], bias[k:])
    yb, coupling_log_det = self.coupling.normalise_halves(xa, xb)
    return tf.concat([xa, yb], axis=-1), self._affine_log_det(x) + coupling_log_det

  def _forward_and_log_det(self, y, labels=None):
    ya, yb = self.coupling.halves(y)
    xb, coupling_log_det = self.coupling.generate_halves(ya, yb)
    # (diag(e^-s) W^-1)^T = W^-T diag(e^-s).
    kernel = self.mixing.inverse_kernel() * tf.exp(-self.actnorm.log_scale)
    x = invertible_conv.mix_channels(tf.concat([ya, xb], axis=-1), kernel, -self.actnorm.bias)
    return x, coupling_log_det - self._affine_log_det(y)

  def initialize_inverse(self, x, labels=None):
    for layer in (self.actnorm, self.mixing, self.coupling):
      x = layer.initialize_inverse(x, labels=labels)
    return x
