import numpy as np
import pytest
import tensorflow as tf

from glow_tfp import model_space
from tests.checks import assert_close


@pytest.mark.parametrize("n_bits", [8, 5, 1])
def test_bin_centres_map_back_to_the_same_quantised_images(n_bits):
  images = tf.constant(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1))
  x = model_space.to_model_space(images, n_bits)
  assert -0.5 < x.numpy().min() and x.numpy().max() < 0.5
  step = 2 ** (8 - n_bits)
  np.testing.assert_array_equal(model_space.to_images(x, n_bits).numpy(),
                                (images.numpy() // step) * step)


def test_model_space_follows_the_design_formula_at_5_bits():
  x = model_space.to_model_space(tf.constant([[[[0, 8, 255]]]], tf.uint8), n_bits=5)
  assert_close(x.numpy().ravel(), [0.5 / 32 - 0.5, 1.5 / 32 - 0.5, 31.5 / 32 - 0.5], rtol=1e-6)


def test_dequantisation_noise_is_seeded_and_stays_in_the_bin():
  images = tf.constant(np.full((4, 8, 8, 1), 100, np.uint8))
  a = model_space.to_model_space(images, 8, noise_seed=3)
  np.testing.assert_array_equal(a.numpy(), model_space.to_model_space(images, 8, noise_seed=3))
  low = 100 / 256 - 0.5
  assert a.numpy().min() >= low and a.numpy().max() < low + 1 / 256
  assert a.numpy().std() > 1e-4
  np.testing.assert_array_equal(model_space.to_images(a).numpy(), images.numpy())


def test_non_uint8_images_and_bad_bit_depths_are_rejected():
  with pytest.raises(TypeError, match="must be uint8.*float32"):
    model_space.to_model_space(tf.zeros([1, 2, 2, 1]))
  with pytest.raises(ValueError, match="`n_bits` must be in 1..8; instead, it is 0"):
    model_space.to_images(tf.zeros([1, 2, 2, 1]), n_bits=0)
