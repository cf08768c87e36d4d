import numpy as np
import pytest
import tensorflow as tf

from glow_tfp.bijectors import squeeze
from tests.checks import check_bijector, random_images


def test_properties():
  check_bijector(squeeze.Squeeze(), random_images([2, 4, 4, 2]))


def test_inverse_moves_each_2x2_block_into_channels():
  x = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
  y = squeeze.Squeeze().inverse(x)
  assert y.shape == (1, 2, 2, 4)
  np.testing.assert_array_equal(y[0, 0, 0].numpy(), [0, 1, 4, 5])


def test_event_shapes():
  bijector = squeeze.Squeeze()
  assert bijector.inverse_event_shape([8, 6, 3]) == [4, 3, 12]
  assert bijector.forward_event_shape([4, 3, 12]) == [8, 6, 3]


def test_factor_below_two_is_rejected():
  with pytest.raises(ValueError, match="`factor` must be at least 2; instead, it is 1"):
    squeeze.Squeeze(1)
