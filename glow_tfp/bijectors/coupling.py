"""Coupling: half the channels transformed, conditioned on the other half."""

import math
import numbers

import tensorflow as tf

from glow_tfp.bijectors import base
from glow_tfp.bijectors import nets

COUPLING_KINDS = ("affine", "additive")
# How the affine coupling maps the network's output to its scale s (see `Coupling`).
SCALE_KINDS = ("sigmoid", "sigmoid_floor", "tanh_bounded")
# Mixed precision applies to the coupling networks alone, so their dtypes are listed here.
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
_SCALE_OFFSET = 2.0
# The floor of "sigmoid_floor": it caps what one coupling can amplify in the generative
# direction at 1/0.1 = 10.
SCALE_FLOOR = 0.1
# The default bound B of "tanh_bounded" (|log s| < B, so one coupling amplifies by at most
# e**B = 2.1 either way); `GlowConfig.coupling_log_scale_bound` chooses it per model. 0.75
# gave every noise image of the quick start's model back finite and exact as uint8 in three
# seeds with twice the margin of 0.8, the largest B that did, within 0.02 held-out bits/dim
# of B = 2 (docs/ood.md).
LOG_SCALE_BOUND = 0.75


def check_log_scale_bound(value, what):
  """Raises ValueError unless `value` is a finite real number > 0 (not a bool)."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real)
      or not math.isfinite(value) or value <= 0):
    raise ValueError(f"{what} must be a finite number > 0; got {value!r}.")


class Coupling(base.FusedBijector):
  """Glow's coupling layer over channels, affine or additive.

  Normalising direction (`inverse`): split x = [xa, xb] along channels (xa the first
  C - C//2), (raw, t) = NN(xa), ya = xa and
    kind "affine":   yb = (xb + t) * s,  log|det J| = sum(log s);
    kind "additive": yb = xb + t,        log|det J| = 0.
  Generative direction (`forward`): xb = yb / s - t (affine) or yb - t (additive).
  The affine scale s depends on `scale`:
    "sigmoid":        s = sigmoid(raw + 2)                  in (0, 1)   (the paper's);
    "sigmoid_floor":  s = sigmoid(raw + 2) + 0.1            in (0.1, 1.1);
    "tanh_bounded":   log s = B * tanh(raw / B)             in (-B, B),
  with B = `log_scale_bound`. Invertible for any network, since s > 0; cost one network
  evaluation per call. With "sigmoid", s can saturate towards 0 and the generative
  direction then divides by it, so decode(encode(x)) can lose all precision on unusual
  inputs; the other two bound s away from 0 and infinity, so the scale of one coupling
  amplifies by at most 1 / SCALE_FLOOR or exp(B). Near raw = 0, B * tanh(raw / B) = raw -
  raw**3 / (3 B**2) + ..., so a smaller B changes a fresh coupling's gradient not at all
  and caps large scales sooner.

  NN is `nets.CouplingNet`, whose last convolution starts at zero, so a fresh coupling is
  the identity for "additive" and for "tanh_bounded", and a fixed per-element scale
  sigmoid(2) (+ 0.1 with "sigmoid_floor") otherwise. The +2 is folded into that
  convolution's bias (the network outputs raw + 2 directly).

  Args:
    channels: channels C of the input (>= 2).
    hidden_channels: width of the network (> 0).
    kind: "affine" (default) or "additive", one of `COUPLING_KINDS`.
    scale: how "affine" maps the network's output to s, one of `SCALE_KINDS` (default
      "sigmoid"); ignored by "additive".
    log_scale_bound: B > 0 of "tanh_bounded" (default `LOG_SCALE_BOUND`); ignored by the
      other scales.
    seed: integer seed of the network's random kernels.
    dtype: float dtype of the parameters, the data and the log-det.
    compute_dtype: dtype the network computes in ("bfloat16" or "float16" for mixed
      precision); its output is cast back to `dtype` before the transform and log-det.
    name: name scope.

  #### References
  Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", 2017.
  Kingma & Dhariwal, "Glow", 2018, sec. 3.3.
  """

  def __init__(self, channels, hidden_channels, kind="affine", seed=0,
               dtype=tf.float32, compute_dtype=None, scale="sigmoid",
               log_scale_bound=LOG_SCALE_BOUND, name=None):
    parameters = dict(locals())
    if channels < 2:
      raise ValueError(f"`channels` must be at least 2; instead, it is {channels}.")
    if hidden_channels < 1:
      raise ValueError(f"`hidden_channels` must be positive; instead, it is {hidden_channels}.")
    if kind not in COUPLING_KINDS:
      raise ValueError(f"`kind` must be one of {COUPLING_KINDS}; instead, it is {kind!r}.")
    if scale not in SCALE_KINDS:
      raise ValueError(f"`scale` must be one of {SCALE_KINDS}; instead, it is {scale!r}.")
    check_log_scale_bound(log_scale_bound, "`log_scale_bound`")
    self.kind = kind
    self.scale = scale
    self.log_scale_bound = float(log_scale_bound)
    self.compute_dtype = tf.as_dtype(compute_dtype or dtype)
    self._split = channels - channels // 2
    transformed = channels // 2
    out_channels = 2 * transformed if kind == "affine" else transformed
    offset = None
    if kind == "affine" and scale != "tanh_bounded":
      offset = [_SCALE_OFFSET] * transformed + [0.0] * transformed
    with tf.name_scope(name or f"{kind}_coupling") as scope:
      self.net = nets.CouplingNet(self._split, hidden_channels, out_channels, seed, dtype,
                                  output_offset=offset, name="net")
    super().__init__(parameters=parameters, name=scope.rstrip("/") or "coupling",
                     dtype=dtype)

  @property
  def split_channels(self):
    """Channels of the conditioning half xa (the first C - C//2); the rest are transformed."""
    return self._split

  def normalise_halves(self, xa, xb):
    """The normalising map on the two halves: (yb, log_det); ya is xa unchanged."""
    return self._normalise(xb, self._run_net(xa, self.net))

  def generate_halves(self, ya, yb):
    """The generative map on the two halves: (xb, log_det); xa is ya unchanged."""
    net_out = self._run_net(ya, self.net)
    if self.kind == "additive":
      return yb - net_out, base.batch_zeros(yb)
    logits, shift = tf.split(net_out, 2, axis=-1)  # logits = raw + 2 for the sigmoids
    scale, log_scale = self._scale(logits)
    # Dividing by s takes fewer passes than multiplying by exp(-log s).
    return yb / scale - shift, -base.sum_over_event(log_scale)

  def _normalise(self, xb, net_out):
    if self.kind == "additive":
      return xb + net_out, base.batch_zeros(xb)
    logits, shift = tf.split(net_out, 2, axis=-1)
    scale, log_scale = self._scale(logits)
    return (xb + shift) * scale, base.sum_over_event(log_scale)

  def _scale(self, logits):
    """(s, log s) of the network's scale output, by `self.scale`."""
    if self.scale == "sigmoid":
      return tf.sigmoid(logits), tf.math.log_sigmoid(logits)
    if self.scale == "sigmoid_floor":
      scale = tf.sigmoid(logits) + SCALE_FLOOR
      return scale, tf.math.log(scale)
    bound = tf.constant(self.log_scale_bound, logits.dtype)
    log_scale = bound * tf.tanh(logits / bound)
    return tf.exp(log_scale), log_scale

  def _run_net(self, xa, net_fn):
    return tf.cast(net_fn(tf.cast(xa, self.compute_dtype)), xa.dtype)

  def halves(self, x):
    """(xa, xb): the conditioning and the transformed channels of `x`."""
    return tf.split(x, [self._split, x.shape[-1] - self._split], axis=-1)

  def _inverse_and_log_det(self, y, labels=None):
    ya, yb = self.halves(y)
    out, log_det = self.normalise_halves(ya, yb)
    return tf.concat([ya, out], axis=-1), log_det

  def initialize_inverse(self, y, labels=None):
    ya, yb = self.halves(y)
    out = self._normalise(yb, self._run_net(ya, self.net.initialize))[0]
    return tf.concat([ya, out], axis=-1)

  def _forward_and_log_det(self, x, labels=None):
    xa, xb = self.halves(x)
    out, log_det = self.generate_halves(xa, xb)
    return tf.concat([xa, out], axis=-1), log_det
