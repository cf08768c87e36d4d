import numpy as np
import pytest
import tensorflow as tf

from glow_tfp import grid


def test_grid_tiles_images_row_by_row_with_padding():
  images = tf.constant(np.arange(1, 6, dtype=np.uint8)[:, None, None, None] * np.ones(
      (5, 2, 3, 1), np.uint8))
  out = grid.image_grid(images, columns=3, padding=1).numpy()
  assert out.shape == (2 * 3 + 1, 3 * 4 + 1, 1)
  assert out[1, 1, 0] == 1 and out[1, 5, 0] == 2 and out[4, 1, 0] == 4
  assert out[4, 9, 0] == 0  # the sixth tile is blank
  assert out[0].max() == 0


def test_save_png_writes_a_decodable_file(tmp_path):
  image = tf.constant(np.random.default_rng(0).integers(0, 256, (5, 7, 3)), tf.uint8)
  path = str(tmp_path / "nested" / "grid.png")
  grid.save_png(path, image)
  np.testing.assert_array_equal(tf.io.decode_png(tf.io.read_file(path)).numpy(), image.numpy())


def test_non_uint8_input_is_rejected():
  with pytest.raises(ValueError, match="expects uint8 images"):
    grid.image_grid(tf.zeros([2, 2, 2, 1]))
