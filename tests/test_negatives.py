"""The classifier's negatives: seeded, of the training images' shape and values, each kind
in its share, the permuted ones with their source's intensities."""

import numpy as np

from glow_tfp import negatives
from glow_tfp import sample_quality


def test_negatives_are_seeded_images_of_the_training_values(tiny_mnist):
  images = sample_quality.quantise(tiny_mnist.train_images, 5)
  a = negatives.draw(images, 25, np.random.default_rng(0))
  assert a.shape == (25, 28, 28, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, negatives.draw(images, 25, np.random.default_rng(0)))
  assert not np.array_equal(a, negatives.draw(images, 25, np.random.default_rng(1)))
  assert set(np.unique(a)) <= set(np.unique(images))


def test_each_kind_gets_its_share_and_permuted_digits_keep_their_histogram(tiny_mnist):
  images = tiny_mnist.train_images[:1]  # one source image for the scrambled kinds
  drawn = negatives.draw(images, 2 * len(negatives.KINDS), np.random.default_rng(0))
  by_kind = dict(zip(negatives.KINDS, drawn.reshape(len(negatives.KINDS), 2, -1)))
  assert np.all(by_kind["constant"] == by_kind["constant"][:, :1])
  for kind in ("permuted", "tiled"):
    for image in by_kind[kind]:
      np.testing.assert_array_equal(np.sort(image), np.sort(images.ravel()))
      assert not np.array_equal(image, images.ravel())


def test_colour_images_and_fewer_negatives_than_kinds(rng):
  images = rng.integers(0, 256, (4, 12, 8, 3)).astype(np.uint8)
  assert negatives.draw(images, 3, rng).shape == (3, 12, 8, 3)
  assert negatives.draw(images, 0, rng).shape == (0, 12, 8, 3)
