"""Between images and model space: dequantisation and back to uint8.

Images with `n_bits` bits per channel map to [-0.5, 0.5):
  x = floor(img / 2**(8 - n_bits)) / 2**n_bits - 0.5 + u,
u ~ Uniform[0, 2**-n_bits) when training and estimating a likelihood (dequantisation,
`glow_tfp.likelihood`), and u = 2**-n_bits / 2 (the bin centre) where one deterministic point
of each image is needed (encoding, reconstruction).
"""

import tensorflow as tf


def _check_n_bits(n_bits):
  if not 1 <= n_bits <= 8:
    raise ValueError(f"`n_bits` must be in 1..8; instead, it is {n_bits}.")


def to_model_space(images, n_bits=8, noise_seed=None, noise=None):
  """uint8 images [..., H, W, C] -> float32 model-space values in [-0.5, 0.5).

  Args:
    images: uint8 tensor.
    n_bits: bits per channel the model sees (1..8).
    noise_seed: None for bin centres; an int or a shape-[2] int tensor for seeded uniform
      dequantisation noise (`tf.random.stateless_uniform`).
    noise: instead of `noise_seed`, the uniform [0, 1) noise itself, of the images' shape.
  """
  _check_n_bits(n_bits)
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise TypeError(f"`images` must be uint8 (0..255); instead, their dtype is {images.dtype.name}.")
  bins = 2.0 ** n_bits
  levels = tf.cast(images // (2 ** (8 - n_bits)), tf.float32)
  if noise is not None:
    noise = tf.convert_to_tensor(noise, tf.float32)
  elif noise_seed is None:
    noise = 0.5
  else:
    noise = tf.random.stateless_uniform(tf.shape(images), as_seed(noise_seed))
  return (levels + noise) / bins - 0.5


def to_images(x, n_bits=8):
  """Model-space values -> uint8 images, clipped to the n_bits range."""
  _check_n_bits(n_bits)
  bins = 2 ** n_bits
  levels = tf.clip_by_value(tf.floor((x + 0.5) * bins), 0.0, bins - 1.0)
  return tf.cast(levels * 2 ** (8 - n_bits), tf.uint8)


def as_seed(seed):
  """An int or a shape-[2] int tensor -> the shape-[2] seed of TF's stateless random ops."""
  seed = tf.convert_to_tensor(seed)
  if seed.shape.rank == 0:
    return tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
  return seed
