"""The networks inside the bijectors: the coupling network and its zero-initialised output.

Building blocks of the coupling and split bijectors, not bijectors themselves; the coupling
network normalises its hidden layers with `ActNorm`'s map, so one ActNorm holds that math.
Plain `tf.Module`s holding `tf.Variable`s (no Keras layers), so the same code is tracked by
`tf.train.Checkpoint`, `tf.saved_model` and either Keras generation.
"""

import numpy as np
import tensorflow as tf

from glow_tfp.bijectors import actnorm

_INIT_STDDEV = 0.05
_LOG_SCALE_FACTOR = 3.0


class Conv2d(tf.Module):
  """A stride-1 "SAME" convolution with a seeded N(0, 0.05^2) kernel and no bias.

  Its outputs always feed an ActNorm, whose bias makes a convolution bias redundant.
  """

  def __init__(self, in_channels, out_channels, kernel_size, seed, dtype=tf.float32,
               name=None):
    super().__init__(name=name)
    shape = (kernel_size, kernel_size, in_channels, out_channels)
    kernel = np.random.default_rng(seed).normal(0.0, _INIT_STDDEV, shape)
    with self.name_scope:
      self.kernel = tf.Variable(tf.constant(kernel, dtype), name="kernel")

  def __call__(self, x):
    return tf.nn.conv2d(x, tf.cast(self.kernel, x.dtype), strides=1, padding="SAME")


class ZeroConv2d(tf.Module):
  """A 3x3 convolution starting at a constant: (conv(x) + b) * exp(3 * log_scale) + offset.

  Zero kernel, bias and log-scale make a fresh coupling the identity and a fresh prior
  standard normal; the learned log-scale lets the output grow faster than the kernel alone.
  `offset` (a constant per output channel, default 0) is folded into the bias, so a
  consumer that adds a constant to the output gets it without an extra pass.
  """

  def __init__(self, in_channels, out_channels, dtype=tf.float32, offset=None, name=None):
    super().__init__(name=name)
    self._offset = tf.constant(0.0 if offset is None else offset, dtype, [out_channels])
    with self.name_scope:
      self.kernel = tf.Variable(tf.zeros([3, 3, in_channels, out_channels], dtype),
                                name="kernel")
      self.bias = tf.Variable(tf.zeros([out_channels], dtype), name="bias")
      self.log_scale = tf.Variable(tf.zeros([out_channels], dtype), name="log_scale")

  def __call__(self, x):
    return _scaled_conv(x, self.kernel, self.bias, tf.exp(_LOG_SCALE_FACTOR * self.log_scale),
                        self._offset)


class CouplingNet(tf.Module):
  """conv3x3 -> ActNorm -> ReLU -> conv1x1 -> ActNorm -> ReLU -> ZeroConv2d.

  Variables are float32; the computation runs in the dtype of the input, so a caller can
  run the network in bfloat16 or float16 (mixed precision) by casting its input.

  Args:
    in_channels: channels of the conditioning half.
    hidden_channels: width of the two hidden layers.
    out_channels: channels of the output (2x the transformed half for affine coupling).
    seed: integer seed of the two random kernels.
    output_offset: constant per output channel added to the output (default 0).
  """

  def __init__(self, in_channels, hidden_channels, out_channels, seed=0, dtype=tf.float32,
               output_offset=None, name=None):
    super().__init__(name=name)
    seeds = np.random.SeedSequence(seed).generate_state(2)
    with self.name_scope:
      self.conv_in = Conv2d(in_channels, hidden_channels, 3, int(seeds[0]), dtype, "conv_in")
      self.norm_in = actnorm.ActNorm(hidden_channels, dtype, name="norm_in")
      self.conv_hidden = Conv2d(hidden_channels, hidden_channels, 1, int(seeds[1]), dtype,
                                "conv_hidden")
      self.norm_hidden = actnorm.ActNorm(hidden_channels, dtype, name="norm_hidden")
      self.conv_out = ZeroConv2d(hidden_channels, out_channels, dtype, output_offset,
                                 name="conv_out")

  def __call__(self, x):
    h = tf.nn.relu(_normalized_conv(x, self.conv_in, self.norm_in))
    scale = tf.exp(self.norm_hidden.log_scale)
    h = _relu_1x1(h, tf.cast(self.conv_hidden.kernel[0, 0] * scale, h.dtype),
                  tf.cast(self.norm_hidden.bias * scale, h.dtype))
    return self.conv_out(h)

  def initialize(self, x):
    """Data-dependent initialisation of both ActNorms from `x`; returns the output."""
    h = self.conv_in(x)
    self.norm_in.initialize(h)
    h = self.conv_hidden(tf.nn.relu(self.norm_in.normalize(h)))
    self.norm_hidden.initialize(h)
    return self.conv_out(tf.nn.relu(self.norm_hidden.normalize(h)))


def _normalized_conv(x, conv, norm):
  """norm.normalize(conv(x)), folded into one convolution with a bias."""
  return _scaled_conv(x, conv.kernel, norm.bias, tf.exp(norm.log_scale))


def _fused_relu_1x1(x, kernel, bias):
  """relu(x @ kernel + bias) at every pixel, as one 1x1 convolution with bias and ReLU."""
  return tf.nn.relu(tf.nn.bias_add(
      tf.nn.conv2d(x, kernel[tf.newaxis, tf.newaxis], strides=1, padding="VALID"), bias))


@tf.custom_gradient
def _relu_1x1(x, kernel, bias):
  """`_fused_relu_1x1` of `x` [N, H, W, a] and `kernel` [a, b], with its own gradients.

  The forward pass is the one fused convolution. The backward pass treats the pixels as
  the rows of one matrix, so the input and kernel gradients are two matrix products: on
  CPU, oneDNN's matrix product beats its 1x1 convolution gradients at the coupling
  network's shapes. Same values, up to rounding.
  """
  out = _fused_relu_1x1(x, kernel, bias)

  def grad(upstream):
    in_channels, out_channels = kernel.shape
    # d/dz of relu(z) is 1 where the output is positive.
    d_pre = tf.reshape(tf.raw_ops.ReluGrad(gradients=upstream, features=out),
                       [-1, out_channels])
    d_x = tf.reshape(tf.matmul(d_pre, kernel, transpose_b=True), tf.shape(x))
    d_kernel = tf.matmul(tf.reshape(x, [-1, in_channels]), d_pre, transpose_a=True)
    return d_x, d_kernel, tf.reduce_sum(d_pre, axis=0)

  return out, grad


def _scaled_conv(x, kernel, bias, scale, offset=0.0):
  """(conv(x, kernel) + bias) * scale + offset per output channel, as conv(x, kernel') + b'.

  Folding the per-channel affine map into the kernel keeps one activation per layer instead
  of three and lets the backend fuse convolution, bias and ReLU.
  """
  out = tf.nn.conv2d(x, tf.cast(kernel * scale, x.dtype), strides=1, padding="SAME")
  return tf.nn.bias_add(out, tf.cast(bias * scale + offset, x.dtype))
