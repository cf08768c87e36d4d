"""A step of flow: ActNorm, channel mixing and coupling, the two affine maps fused."""

import contextlib

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

  Each call computes the fused kernels from the parameters (for the 1x1 convolution in LU
  form: W = P L U); within `frozen()` they are computed once instead, for serving, where
  the weights never change.

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
    self._frozen = None  # {part name: variable} within `frozen()`.

  @contextlib.contextmanager
  def frozen(self):
    """Within it, the fused affine map is read from variables set once, on entry.

    For export: a function traced inside reads the kernel, bias, inverse kernel and
    log-det instead of recomputing them per call (W = P L U, exponentials, products).
    Changes to the parameters inside the context are not seen. Yields the variables (not
    tracked by this module; the caller saves them with what it traced).
    """
    self._frozen = {name: tf.Variable(compute(), trainable=False, name=f"frozen_{name}")
                    for name, compute in self._affine_parts().items()}
    try:
      yield list(self._frozen.values())
    finally:
      self._frozen = None

  def _affine_parts(self):
    """{name: function computing it} of the fused map's parts, as the docstring writes them."""
    return {"kernel": self._kernel, "bias": lambda: self._bias(self._kernel()),
            "inverse_kernel": self._inverse_kernel, "log_det": self._log_det_weight}

  def _part(self, name):
    """A part of the fused map: read while frozen, else computed from the parameters."""
    if self._frozen is not None:
      return self._frozen[name]
    return self._affine_parts()[name]()

  def _kernel(self):
    # kernel = A^T = diag(e^s) W^T.
    return tf.exp(self.actnorm.log_scale)[:, tf.newaxis] * self.mixing.kernel()

  def _bias(self, kernel):
    # A b = kernel^T b.
    return tf.reduce_sum(kernel * self.actnorm.bias[:, tf.newaxis], axis=0)

  def _inverse_kernel(self):
    # (diag(e^-s) W^-1)^T = W^-T diag(e^-s).
    return self.mixing.inverse_kernel() * tf.exp(-self.actnorm.log_scale)

  def _log_det_weight(self):
    """log|det| of the fused map per pixel: sum(s) + log|det W|."""
    return tf.reduce_sum(self.actnorm.log_scale) + self.mixing.log_abs_det_weight()

  def _inverse_and_log_det(self, x, labels=None):
    if self._frozen is not None:
      kernel, bias = self._frozen["kernel"], self._frozen["bias"]
    else:
      kernel = self._kernel()
      bias = self._bias(kernel)
    k = self.coupling.split_channels
    xa = invertible_conv.mix_channels(x, kernel[:, :k], bias[:k])
    xb = invertible_conv.mix_channels(x, kernel[:, k:], bias[k:])
    yb, coupling_log_det = self.coupling.normalise_halves(xa, xb)
    log_det = base.per_pixel_log_det(x, self._part("log_det"))
    return tf.concat([xa, yb], axis=-1), log_det + coupling_log_det

  def _forward_and_log_det(self, y, labels=None):
    ya, yb = self.coupling.halves(y)
    xb, coupling_log_det = self.coupling.generate_halves(ya, yb)
    x = invertible_conv.mix_channels(tf.concat([ya, xb], axis=-1),
                                     self._part("inverse_kernel"), -self.actnorm.bias)
    return x, coupling_log_det - base.per_pixel_log_det(y, self._part("log_det"))

  def initialize_inverse(self, x, labels=None):
    for layer in (self.actnorm, self.mixing, self.coupling):
      x = layer.initialize_inverse(x, labels=labels)
    return x
