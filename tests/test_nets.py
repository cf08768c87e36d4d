"""The coupling network: its hidden layer's hand-written gradients against autodiff."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tfp.bijectors import nets
from tests.checks import needs_compute_dtype


def _net_with_random_parameters(dtype):
  net = nets.CouplingNet(3, 5, 4, seed=0, dtype=dtype)
  rng = np.random.default_rng(1)
  for variable in net.trainable_variables:
    variable.assign(rng.normal(0.0, 0.5, variable.shape))
  return net


def _plain_net(net, x):
  """The same network with every layer a plain convolution, differentiated by TensorFlow."""
  h = tf.nn.relu(nets._normalized_conv(x, net.conv_in, net.norm_in))
  h = tf.nn.relu(nets._normalized_conv(h, net.conv_hidden, net.norm_hidden))
  return net.conv_out(h)


def _value_and_gradients(fn, net, x, upstream):
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = fn(x)
  return out, tape.gradient(out, [x] + list(net.trainable_variables),
                            output_gradients=upstream)


@pytest.mark.parametrize("dtype,tolerance", [(tf.float64, 1e-12), (tf.float32, 1e-5)])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_gradients_match_autodiff_of_plain_convolutions(dtype, tolerance, jit_compile):
  net = _net_with_random_parameters(dtype)
  x = tf.random.stateless_normal([2, 5, 6, 3], [0, 0], dtype=dtype)
  upstream = tf.random.stateless_normal([2, 5, 6, 4], [0, 1], dtype=dtype)
  run = tf.function(lambda x: _value_and_gradients(net, net, x, upstream),
                    jit_compile=jit_compile)
  out, grads = run(x)
  expected_out, expected_grads = _value_and_gradients(
      lambda x: _plain_net(net, x), net, x, upstream)
  np.testing.assert_allclose(out, expected_out, rtol=tolerance, atol=tolerance)
  assert len(grads) == len(expected_grads) == 1 + len(net.trainable_variables)
  for grad, expected in zip(grads, expected_grads):
    np.testing.assert_allclose(grad, expected, rtol=tolerance, atol=tolerance)


@needs_compute_dtype("bfloat16")
def test_gradients_keep_a_reduced_compute_dtype():
  net = _net_with_random_parameters(tf.float32)
  x = tf.random.stateless_normal([2, 4, 4, 3], [0, 0], dtype=tf.bfloat16)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.reduce_sum(tf.cast(net(x), tf.float32))
  grads = tape.gradient(loss, [x] + list(net.trainable_variables))
  assert grads[0].dtype == tf.bfloat16
  assert all(g.dtype == tf.float32 for g in grads[1:])
  assert all(np.all(np.isfinite(tf.cast(g, tf.float32))) for g in grads)
