"""Sample quality: real held-out digits score as the reference row does, junk (noise,
constant images, scrambled digits) is illegible, an untrained model scores low; the
figures' definitions on small hand-made inputs; seeded samples, the same at a temperature
whatever the others asked for."""

import numpy as np
import pytest

import glow_tfp
from glow_tfp import classifier as classifier_lib
from glow_tfp import model_space
from glow_tfp import sample_quality
from tests.checks import assert_close


@pytest.fixture(scope="module")
def digits():
  from train.data import datasets as data_lib
  return data_lib.load("mnist", levels=2, seed=0)


@pytest.fixture(scope="module")
def reference(digits):
  """The reference of the first 250 held-out digits, for a classifier of all training ones."""
  model = classifier_lib.Classifier(digits.image_shape, digits.num_classes, seed=0)
  model.fit(digits.train_images, digits.train_labels, seed=0)
  return sample_quality.Reference(model, digits.heldout_images[:250],
                                  digits.heldout_labels[:250], digits.train_images, 250)


def test_the_reference_row_is_that_of_real_digits(reference):
  scores = reference.scores
  assert scores.count == 250 and sum(scores.class_counts) == 250
  assert scores.legible_fraction > 0.8 and scores.agreement > 0.9  # the accuracy
  assert scores.coverage_bits > 0.95 * np.log2(10)


def test_other_held_out_digits_score_near_the_reference(reference, digits):
  scores = reference.score(digits.heldout_images[250:], digits.heldout_labels[250:])
  ref = reference.scores
  assert abs(scores.legible_fraction - ref.legible_fraction) < 0.1
  assert abs(scores.coverage_bits - ref.coverage_bits) < 0.1
  assert scores.agreement > 0.9
  assert scores.frechet_distance < 2 * ref.frechet_distance


def test_uniform_noise_scores_low(reference, rng):
  noise = rng.integers(0, 256, (250, 28, 28, 1)).astype(np.uint8)
  scores = reference.score(noise)
  assert scores.legible_fraction < 0.5 * reference.scores.legible_fraction
  assert scores.frechet_distance > 20 * reference.scores.frechet_distance
  assert scores.agreement is None


def _junk(digits, rng, count=250):
  """Images that are no digit: noise, constant images and pixel-permuted held-out digits."""
  shape = (count, *digits.image_shape)
  permuted = rng.permuted(digits.heldout_images[:count].reshape(count, -1), axis=1)
  return {
      "uniform noise": rng.integers(0, 256, shape).astype(np.uint8),
      "Gaussian noise": np.clip(rng.normal(128, 64, shape), 0, 255).astype(np.uint8),
      "constant": np.broadcast_to(rng.integers(0, 256, (count, 1, 1, 1)), shape).astype(np.uint8),
      "pixel-permuted digits": permuted.reshape(shape),
  }


def test_junk_is_illegible_and_digits_legible(reference, digits, rng):
  assert reference.score(digits.heldout_images[250:]).legible_fraction >= 0.85
  for name, images in _junk(digits, rng).items():
    assert reference.score(images).legible_fraction <= 0.05, name


def test_an_untrained_model_scores_low(reference, digits):
  config = glow_tfp.GlowConfig.preset("mnist", levels=2, steps_per_level=1,
                                      hidden_channels=4, image_shape=digits.image_shape)
  model = glow_tfp.Glow(config, seed=0)
  model.initialize(model_space.to_model_space(digits.train_images[:64]))
  scores = sample_quality.SampleQuality(model, reference, 250, seed=0).scores([1.0])[1.0]
  assert scores.count == 250
  assert scores.legible_fraction < reference.scores.legible_fraction - 0.3
  assert scores.frechet_distance > 10 * reference.scores.frechet_distance


def test_samples_are_seeded_and_a_temperature_ignores_the_others(reference, digits):
  config = glow_tfp.GlowConfig.preset("mnist", levels=2, steps_per_level=1,
                                      hidden_channels=4, image_shape=digits.image_shape,
                                      num_classes=10)
  model = glow_tfp.Glow(config, seed=0)
  model.initialize(model_space.to_model_space(digits.train_images[:64]),
                   digits.train_labels[:64])
  quality = sample_quality.SampleQuality(model, reference, 12, seed=3, batch_size=5)
  alone = quality.scores([0.7])[0.7]
  both = quality.scores([1.0, 0.7])
  assert both[0.7] == alone and both[1.0] != alone
  np.testing.assert_array_equal(quality.asked, np.arange(12) % 10)
  assert alone.agreement is not None
  other = sample_quality.SampleQuality(model, reference, 12, seed=4, batch_size=5)
  assert not np.array_equal(other.images(0.7), quality.images(0.7))


def test_the_figures_follow_their_definitions():
  # Images 0-3 each of their own class, sure of it; images 4-7 unsure, all of class 0.
  sure = np.eye(4)[[0, 1, 2, 3]] * 0.95 + 0.0125
  unsure = np.tile([0.4, 0.2, 0.2, 0.2], (4, 1))
  probabilities = np.concatenate([sure, unsure])
  features = np.arange(16.0).reshape(8, 2)
  scores = sample_quality.score(probabilities, features, features, asked=[0, 1, 2, 3] * 2)
  assert scores.legible_fraction == 0.5
  assert scores.class_counts == (5, 1, 1, 1)
  q = np.array([5, 1, 1, 1]) / 8
  assert_close(scores.coverage_bits, -np.sum(q * np.log2(q)), 1e-12)
  assert scores.agreement == 5 / 8
  assert scores.frechet_distance == pytest.approx(0.0, abs=1e-9)
  assert sample_quality.score(np.eye(3)[[1, 1]], features[:2], features).coverage_bits == 0.0


@pytest.mark.parametrize("n_bits, expected", [(8, [0, 7, 200, 255]), (5, [0, 0, 200, 248]),
                                              (1, [0, 0, 128, 128])])
def test_real_images_are_quantised_as_the_model_samples_them(n_bits, expected):
  images = np.array([0, 7, 200, 255], np.uint8)
  np.testing.assert_array_equal(sample_quality.quantise(images, n_bits), expected)
  x = model_space.to_model_space(images, n_bits)
  np.testing.assert_array_equal(model_space.to_images(x, n_bits).numpy(), expected)
