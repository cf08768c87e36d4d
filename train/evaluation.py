"""Held-out evaluation: the mean bits/dim of the held-out images, and their reconstruction."""

import tensorflow as tf

from glow_tfp import reconstruction as reconstruction_lib


class HeldOut:
  """Evaluates `model` on the held-out part of `data` (`train.data.load`) in batches."""

  def __init__(self, model, data, batch_size):
    self.model, self.data, self.batch_size = model, data, batch_size
    self._conditional = bool(model.config.num_classes)

  def bits_per_dim(self, noise_seed=None):
    """Mean bits/dim at bin centres, or with uniform dequantisation noise seeded by
    `noise_seed` (the usual upper bound on the discrete bits/dim)."""
    total = 0.0
    for x, y in self.data.heldout_dataset(self.batch_size, self.model.config.n_bits,
                                          noise_seed):
      total += float(self._sum(x, y))
    return total / self.data.num_heldout

  def reconstruction(self):
    """decode(encode(x)) of the held-out images (a `glow_tfp.reconstruction.Reconstruction`)."""
    images, labels = self.data.heldout_arrays()
    return reconstruction_lib.reconstruct(self.model, images, labels, self.batch_size)

  @tf.function
  def _sum(self, images, labels):
    return tf.reduce_sum(self.model.bits_per_dim(images, labels if self._conditional else None))
