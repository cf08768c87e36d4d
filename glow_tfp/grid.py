"""Sample grids: a batch of uint8 images tiled into one image, written as PNG."""

import math

import tensorflow as tf


def image_grid(images, columns=None, padding=1):
  """Tiles uint8 images [N, H, W, C] into one uint8 image, row by row.

  Args:
    images: uint8 tensor [N, H, W, C], C in (1, 3).
    columns: images per row; default ceil(sqrt(N)).
    padding: pixels of black between tiles.
  """
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8 or images.shape.rank != 4:
    raise ValueError("image_grid expects uint8 images [N, H, W, C]; got "
                     f"{images.dtype.name} of shape {images.shape.as_list()}.")
  count = images.shape[0]
  columns = columns or math.ceil(math.sqrt(count))
  rows = math.ceil(count / columns)
  blank = tf.zeros([rows * columns - count] + images.shape[1:].as_list(), tf.uint8)
  tiles = tf.pad(tf.concat([images, blank], axis=0),
                 [[0, 0], [padding, 0], [padding, 0], [0, 0]])
  height, width, channels = tiles.shape[1:]
  grid = tf.reshape(tiles, [rows, columns, height, width, channels])
  grid = tf.reshape(tf.transpose(grid, [0, 2, 1, 3, 4]),
                    [rows * height, columns * width, channels])
  return tf.pad(grid, [[0, padding], [0, padding], [0, 0]])


def save_png(path, image):
  """Writes a uint8 image [H, W, C] as PNG, creating parent directories."""
  parent = path.rsplit("/", 1)[0] if "/" in path else ""
  if parent:
    tf.io.gfile.makedirs(parent)
  tf.io.write_file(path, tf.io.encode_png(image))
