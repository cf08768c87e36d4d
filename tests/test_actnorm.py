import numpy as np
import pytest
import tensorflow as tf

from glow_tfp.bijectors import actnorm
from tests.checks import assert_close, check_bijector, perturb, random_images


def test_actnorm_properties_after_parameters_move():
  bijector = actnorm.ActNorm(3)
  perturb(bijector, scale=0.5)
  check_bijector(bijector, random_images([2, 4, 4, 3]))


def test_initialization_standardises_each_channel(rng):
  x = tf.constant(rng.normal([3.0, -2.0], [0.5, 4.0], size=(16, 4, 4, 2)), tf.float32)
  bijector = actnorm.ActNorm(2)
  assert not bijector.initialized.numpy()
  y = bijector.initialize_inverse(x)
  # Zero to the scale of the output, whose standard deviation is 1.
  assert_close(tf.reduce_mean(y, [0, 1, 2]).numpy(), 0.0, rtol=1e-5, scale=1.0)
  assert_close(tf.math.reduce_std(y, [0, 1, 2]).numpy(), 1.0, rtol=1e-4)
  assert bijector.initialized.numpy()
  assert_close(bijector.inverse(x).numpy(), y.numpy(), rtol=5e-7)


def test_log_det_is_pixels_times_sum_of_log_scales():
  bijector = actnorm.ActNorm(2)
  bijector.log_scale.assign([0.5, -0.25])
  ildj = bijector.inverse_log_det_jacobian(random_images([3, 5, 4, 2]))
  assert_close(ildj.numpy(), [20 * 0.25] * 3, rtol=1e-6)


def test_initialization_under_mirrored_strategy_uses_the_global_batch():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  halves = [tf.fill([4, 2, 2, 1], 5.0) + random_images([4, 2, 2, 1], 1),
            tf.fill([4, 2, 2, 1], -5.0) + random_images([4, 2, 2, 1], 2)]
  with strategy.scope():
    bijector = actnorm.ActNorm(1)
  per_replica = strategy.experimental_distribute_values_from_function(
      lambda context: halves[context.replica_id_in_sync_group])
  strategy.run(bijector.initialize_inverse, args=(per_replica,))
  everything = tf.concat(halves, axis=0)
  assert_close(bijector.bias.numpy(), [-tf.reduce_mean(everything).numpy()], rtol=5e-4)
  expected_log_scale = -np.log(tf.math.reduce_std(everything).numpy() + 1e-6)
  for value in strategy.experimental_local_results(bijector.log_scale):
    assert_close(value.numpy(), [expected_log_scale], rtol=1e-5)


def test_nonpositive_channels_are_rejected():
  with pytest.raises(ValueError, match="`channels` must be positive; instead, it is 0"):
    actnorm.ActNorm(0)
