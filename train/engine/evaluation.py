"""Held-out evaluation: the likelihood bound of the held-out images, and their reconstruction."""

import numpy as np
import tensorflow as tf

from glow_tfp import likelihood
from glow_tfp import reconstruction as reconstruction_lib

# The dequantisation draws of held-out batch b are seeded by fold_in((seed, EVAL_STREAM), b),
# apart from the training noise (glow_tfp.training.step.NOISE_STREAM).
EVAL_STREAM = 2


class HeldOut:
  """Evaluates `model` on the held-out part of `data` (`train.data.load`) in batches.

  `num_draws` is K of the likelihood estimate (`glow_tfp.likelihood`); each image gets its
  own draws, seeded by `seed` and its batch, so an evaluation is repeatable; `batch_parts`
  cuts each batch's densities into parts that run side by side (`glow_tfp.execution`).
  """

  def __init__(self, model, data, batch_size, num_draws=1, seed=0, batch_parts=1):
    self.model, self.data, self.batch_size = model, data, batch_size
    self.batch_parts = batch_parts
    self.num_draws = likelihood.check_num_draws(num_draws)
    self._seed = tf.constant([seed, EVAL_STREAM], tf.int64)
    self._conditional = bool(model.config.num_classes)

  def likelihood(self, labelled=True):
    """The `glow_tfp.likelihood.Estimate` of the held-out images: of a class-conditional
    model, of P(x | y) with their labels, or with `labelled=False` of P(x), the mixture over
    equally likely classes."""
    labelled = labelled and self._conditional
    nats = [self._log_likelihood(images, labels if labelled else None, index).numpy()
            for index, (images, labels) in self.data.heldout_dataset(self.batch_size)]
    return likelihood.Estimate.of(np.concatenate(nats), self.model.config.num_dims,
                                  self.num_draws)

  def reconstruction(self):
    """decode(encode(x)) of the held-out images (a `glow_tfp.reconstruction.Reconstruction`)."""
    images, labels = self.data.heldout_arrays()
    return reconstruction_lib.reconstruct(self.model, images, labels, self.batch_size)

  @tf.function
  def _log_likelihood(self, images, labels, index):
    seed = tf.random.experimental.stateless_fold_in(self._seed, index)
    return likelihood.log_likelihood(self.model, images, labels, self.num_draws, seed,
                                     batch_parts=self.batch_parts)
