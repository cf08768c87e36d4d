"""The learned invertible 1x1 convolution, in LU form or as a plain matrix."""

import numpy as np
import tensorflow as tf

from glow_tfp.bijectors import base


class Invertible1x1Conv(base.FusedBijector):
  """A learned C x C channel-mixing matrix applied at every pixel.

  Normalising direction (`inverse`): y[n, h, w, :] = W x[n, h, w, :],
    log|det J| = H * W_img * log|det W|.
  Generative direction (`forward`): x = W^-1 y, log-det negated.

  `lu=True` (the paper's speed-up) parameterises
    W = P L (U + diag(sign(s) * exp(log|s|)))
  with P a fixed permutation, L unit lower-triangular, U strictly upper-triangular and
  sign(s) fixed, so log|det W| = sum(log|s|) costs O(C), W^-1 comes from two triangular
  solves, and W is invertible by construction. `lu=False` stores W itself: log|det W| costs
  O(C^3) (through a QR decomposition, which XLA compiles, unlike `slogdet`), and W can in
  principle become singular.

  W is initialised as a random rotation (seeded), so log|det W| starts at 0.

  Args:
    channels: number of channels C (> 0).
    lu: use the LU parameterisation (default True).
    seed: integer seed of the random rotation.
    dtype: float dtype of the parameters.
    name: name scope.

  #### References
  Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", 2018, sec. 3.2.
  """

  def __init__(self, channels, lu=True, seed=0, dtype=tf.float32, name=None):
    parameters = dict(locals())
    if channels < 1:
      raise ValueError(f"`channels` must be positive; instead, it is {channels}.")
    self._lu = lu
    rotation = _random_rotation(channels, seed)
    with tf.name_scope(name or "invertible_1x1_conv") as scope:
      if lu:
        self._init_lu(rotation, dtype)
      else:
        self.weight = tf.Variable(tf.cast(rotation, dtype), name="weight")
    super().__init__(parameters=parameters,
                     name=scope.rstrip("/") or "invertible_1x1_conv", dtype=dtype)

  def _init_lu(self, rotation, dtype):
    channels = rotation.shape[0]
    packed, pivots = tf.linalg.lu(tf.constant(rotation))
    diagonal = tf.linalg.diag_part(packed)
    self.permutation = tf.Variable(
        tf.cast(tf.transpose(tf.gather(tf.eye(channels, dtype=tf.float64), pivots)), dtype),
        trainable=False, name="permutation")
    self.lower = tf.Variable(tf.cast(tf.linalg.band_part(packed, -1, 0), dtype), name="lower")
    self.upper = tf.Variable(tf.cast(tf.linalg.band_part(packed, 0, -1), dtype), name="upper")
    self.sign_s = tf.Variable(tf.cast(tf.sign(diagonal), dtype), trainable=False,
                              name="sign_s")
    self.log_s = tf.Variable(tf.cast(tf.math.log(tf.abs(diagonal)), dtype), name="log_s")

  @property
  def lu(self):
    return self._lu

  def _lu_factors(self):
    """(L, U') with the masks applied, so only the free entries are learned."""
    channels = self.log_s.shape[0]
    eye = tf.eye(channels, dtype=self.dtype)
    lower = tf.linalg.band_part(self.lower, -1, 0) * (1.0 - eye) + eye
    upper = (tf.linalg.band_part(self.upper, 0, -1) * (1.0 - eye)
             + tf.linalg.diag(self.sign_s * tf.exp(self.log_s)))
    return lower, upper

  def weight_matrix(self):
    """W as a dense C x C matrix."""
    return tf.transpose(self.kernel())

  def inverse_weight_matrix(self):
    return tf.transpose(self.inverse_kernel())

  def kernel(self):
    """W^T: the [C_in, C_out] matrix of the 1x1 convolution y = W x."""
    if not self._lu:
      return tf.transpose(self.weight)
    lower, upper = self._lu_factors()
    # W^T = U^T L^T P^T, with the transposes left to matmul.
    lower_p = tf.linalg.matmul(lower, self.permutation, transpose_a=True, transpose_b=True)
    return tf.linalg.matmul(upper, lower_p, transpose_a=True)

  def inverse_kernel(self):
    """W^-T: the matrix of the 1x1 convolution x = W^-1 y (triangular solves in LU form)."""
    if not self._lu:
      return tf.linalg.inv(self.weight, adjoint=True)
    lower, upper = self._lu_factors()
    eye = tf.eye(self.log_s.shape[0], dtype=self.dtype)
    # W^-T = P L^-T U^-T.
    lower_inv_t = tf.linalg.triangular_solve(lower, eye, lower=True, adjoint=True)
    upper_inv_t = tf.linalg.triangular_solve(upper, eye, lower=False, adjoint=True)
    return self.permutation @ lower_inv_t @ upper_inv_t

  def log_abs_det_weight(self):
    """log|det W|: O(C) in LU form, through QR otherwise."""
    if self._lu:
      return tf.reduce_sum(self.log_s)
    _, r = tf.linalg.qr(self.weight)
    return tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))

  def _log_det(self, x):
    return base.per_pixel_log_det(x, self.log_abs_det_weight())

  def _inverse_and_log_det(self, y, labels=None):
    return mix_channels(y, self.kernel()), self._log_det(y)

  def _forward_and_log_det(self, x, labels=None):
    return mix_channels(x, self.inverse_kernel()), -self._log_det(x)


def mix_channels(x, kernel, bias=None):
  """out[..., o] = sum_i x[..., i] * kernel[i, o] (+ bias[o]), as a 1x1 convolution."""
  out = tf.nn.conv2d(x, kernel[tf.newaxis, tf.newaxis], strides=1, padding="VALID")
  return out if bias is None else tf.nn.bias_add(out, bias)


def _random_rotation(channels, seed):
  """A seeded random orthogonal matrix (float64, numpy)."""
  gaussian = np.random.default_rng(seed).standard_normal((channels, channels))
  q, r = np.linalg.qr(gaussian)
  return q * np.sign(np.diag(r))
