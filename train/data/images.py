"""Encoded images: which files count, the up-front check of a sample, decoding in tf.data."""

import numpy as np
import PIL.Image
import tensorflow as tf

from ..errors import InputError

EXTENSIONS = (".png", ".jpg", ".jpeg")
CHECK_SAMPLE = 64


def sample(size):
  """The indices checked up front: the first CHECK_SAMPLE / 2 and an even spread."""
  head = np.arange(min(size, CHECK_SAMPLE // 2))
  spread = np.linspace(0, size - 1, min(size, CHECK_SAMPLE // 2)).astype(np.int64)
  return np.unique(np.concatenate([head, spread]))


def check_shapes(named_files):
  """Reads the (name, path or file object) pairs with `read`; raises `InputError` unless
  they all read and share one shape, which it returns."""
  first_name, shape = None, None
  for name, file in named_files:
    image = read(name, file)
    if shape is None:
      first_name, shape = name, image.shape
    elif image.shape != shape:
      raise InputError(f"Images have different shapes: {first_name!r} is {shape} (H, W, C) "
                       f"but {name!r} is {image.shape}; resize them to one shape.")
  return tuple(int(d) for d in shape)


def read(name, file):
  """Decodes the PNG/JPEG `file` (a path or a seekable file object) to uint8 [H, W, C],
  C = 1 for grayscale and 3 otherwise, the channels `decode` reads; raises `InputError`
  naming `name` if it does not decode."""
  try:
    # Decoding alone accepts a PNG cut off after its pixel data, which TensorFlow's decoder
    # refuses; verifying reads the chunks to the end marker.
    with PIL.Image.open(file) as image:
      image.verify()
    if hasattr(file, "seek"):
      file.seek(0)
    with PIL.Image.open(file) as image:
      image = image.convert("L" if image.mode in ("1", "L", "I;16") else "RGB")
      array = np.asarray(image, np.uint8)
  except (OSError, ValueError, SyntaxError) as error:
    reason = (str(error).strip() or type(error).__name__).splitlines()[0]
    raise InputError(f"Cannot read image {name!r}: {reason}") from error
  return array[..., np.newaxis] if array.ndim == 2 else array


def decode(contents, image_shape):
  """Encoded PNG/JPEG bytes -> uint8 [H, W, C] of `image_shape`, in tf.data."""
  image = tf.io.decode_image(contents, channels=image_shape[-1], dtype=tf.uint8,
                             expand_animations=False)
  return tf.ensure_shape(image, image_shape)
