"""glow_tfp.training.step: the loss and gradients of the one training step of the CLI and
of Keras."""

import numpy as np
import tensorflow as tf

import glow_tfp
from glow_tfp import likelihood
from glow_tfp.training import step as training
from tests.checks import assert_close

_CONFIG = glow_tfp.GlowConfig(image_shape=(4, 4, 1), levels=1, steps_per_level=1,
                              hidden_channels=4)
_IMAGES = np.arange(8 * 16, dtype=np.uint8).reshape(8, 4, 4, 1) * 2


def test_noise_of_an_image_does_not_depend_on_the_number_of_replicas():
  whole = training.dequantize(_IMAGES, 8, seed=3, step=5)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  halves = strategy.run(lambda x: training.dequantize(x, 8, 3, 5), args=(
      strategy.experimental_distribute_values_from_function(
          lambda context: _IMAGES[4 * context.replica_id_in_sync_group:][:4]),))
  np.testing.assert_array_equal(np.concatenate(strategy.experimental_local_results(halves)),
                                whole)
  low = _IMAGES / 256.0 - 0.5
  assert np.all(whole >= low) and np.all(whole < low + 1 / 256) and len(np.unique(whole - low)) > 1
  assert not np.array_equal(whole, training.dequantize(_IMAGES, 8, seed=3, step=6))


def test_step_initialises_actnorm_once_and_gives_the_bits_per_dim_loss():
  model = glow_tfp.Glow(_CONFIG)
  step = tf.function(lambda images, s: training.replica_step(model, images, None, s, 0, 8.0))
  first = step(_IMAGES, 0)
  x = training.dequantize(_IMAGES, 8, 0, 0)
  assert bool(model.initialized) and bool(first.ok) and not bool(first.overflow)
  expected = likelihood.dequantized_bits_per_dim(model.log_prob(x), model.config)
  assert_close(first.loss, tf.reduce_mean(expected), rtol=1e-6)
  values = [v.numpy() for v in model.variables]
  step(255 - _IMAGES, 1)  # another batch initialises nothing
  for variable, value in zip(model.variables, values):
    np.testing.assert_array_equal(variable.numpy(), value)


def test_non_finite_weights_make_the_step_not_ok():
  model = glow_tfp.Glow(_CONFIG)
  model.initialize(glow_tfp.to_model_space(_IMAGES))
  kernel = next(v for v in model.trainable_variables if "kernel" in v.name)
  kernel.assign(tf.fill(kernel.shape, np.nan))
  assert not bool(training.replica_step(model, _IMAGES, None, 0, 0, 8.0).ok)
