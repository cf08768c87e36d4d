import numpy as np
import pytest
import tensorflow as tf

from glow_tfp.bijectors import prior
from tests.checks import assert_close, check_bijector, perturb, random_images


def test_properties_after_parameters_move():
  bijector = prior.TopPrior(3)
  perturb(bijector, scale=0.3)
  check_bijector(bijector, random_images([2, 2, 2, 3]))


def test_class_conditional_properties_and_labels_matter():
  bijector = prior.TopPrior(3, num_classes=4)
  perturb(bijector, scale=0.3)
  x = random_images([2, 2, 2, 3])
  check_bijector(bijector, x, labels=tf.constant([1, 3]))
  z_a = bijector.inverse(x, labels=tf.constant([0, 0]))
  z_b = bijector.inverse(x, labels=tf.constant([2, 2]))
  assert np.abs((z_a - z_b).numpy()).max() > 1e-3


def test_without_learning_the_prior_is_standard_normal():
  bijector = prior.TopPrior(3, learn_top_prior=False)
  assert not bijector.trainable_variables
  x = random_images([2, 2, 2, 3])
  check_bijector(bijector, x, identity_allowed=True)
  np.testing.assert_array_equal(bijector.inverse(x).numpy(), x.numpy())


def test_missing_labels_for_a_conditional_prior_are_rejected():
  with pytest.raises(ValueError, match="`labels` are required"):
    prior.TopPrior(3, num_classes=2).inverse(random_images([1, 2, 2, 3]))


def test_a_per_position_class_prior_has_a_template_per_class_and_exact_log_det():
  bijector = prior.TopPrior(3, num_classes=4, class_shape=(2, 2))
  assert bijector.embedding.shape == (4, 2, 2, 6)
  perturb(bijector, scale=0.3)
  x = random_images([2, 2, 2, 3])
  check_bijector(bijector, x, labels=tf.constant([1, 3]))
  z = bijector.inverse(x, labels=tf.constant([2, 2])).numpy()
  mean, log_std = np.split(bijector.bias.numpy() + bijector.embedding.numpy()[2], 2, axis=-1)
  assert_close(z, (x.numpy() - mean) * np.exp(-log_std), 1e-5)


@pytest.mark.parametrize("class_shape", [(2,), (0, 2), (2.0, 2)])
def test_a_bad_class_shape_is_refused(class_shape):
  with pytest.raises(ValueError, match="`class_shape` must be two positive integers"):
    prior.TopPrior(3, num_classes=2, class_shape=class_shape)


def test_a_per_channel_log_det_sums_the_channels_once_times_the_positions():
  # The order of the sum trained every per-channel model so far; summing the H * W copies
  # instead rounds differently, and a seeded run then no longer repeats its figures.
  # The default run's top latent: 7 x 7 x 16.
  bijector = prior.TopPrior(16)
  perturb(bijector, scale=0.3)
  x = random_images([2, 7, 7, 16])
  _, ildj = tf.function(bijector.inverse_and_log_det)(x)
  log_std = tf.split(bijector.bias, 2)[1]
  expected = -49.0 * tf.reduce_sum(log_std)
  np.testing.assert_array_equal(ildj.numpy(), np.full([2], expected.numpy()))


@pytest.mark.parametrize("class_shape", [(1, 1), (2, 2)])
def test_standardising_under_each_class_equals_standardising_with_that_label(class_shape):
  bijector = prior.TopPrior(3, num_classes=4, class_shape=class_shape)
  perturb(bijector, scale=0.3)
  x = random_images([2, 2, 2, 3])
  z, log_dets = bijector.standardise_each_class(x)
  assert z.shape == (2, 4, 2, 2, 3) and log_dets.shape == (4,)
  for label in range(4):
    expected_z, expected_log_det = bijector.inverse_and_log_det(x, labels=tf.fill([2], label))
    assert_close(z[:, label].numpy(), expected_z.numpy(), 1e-6)
    assert_close(np.full([2], log_dets[label].numpy()), expected_log_det.numpy(), 1e-6)


def test_standardising_under_each_class_needs_a_conditional_prior():
  with pytest.raises(ValueError, match="needs a class-conditional prior"):
    prior.TopPrior(3).standardise_each_class(random_images([1, 2, 2, 3]))


@pytest.mark.parametrize("class_shape", [(1, 1), (2, 2)])
def test_class_position_log_probs_are_each_positions_gaussian_and_sum_to_the_whole(class_shape):
  bijector = prior.TopPrior(3, num_classes=4, class_shape=class_shape)
  perturb(bijector, scale=0.3)
  x = random_images([2, 2, 2, 3])
  positions = bijector.class_position_log_probs(x).numpy()
  assert positions.shape == (2, 4, 2, 2)
  mean, log_std = np.split((bijector.bias + bijector.embedding).numpy(), 2, axis=-1)
  standardised = (x.numpy()[:, None] - mean) / np.exp(log_std)
  expected = -0.5 * standardised ** 2 - 0.5 * np.log(2 * np.pi) - log_std
  assert_close(positions, expected.sum(axis=-1), 1e-5)
  z, log_dets = bijector.standardise_each_class(x)
  whole = (-0.5 * tf.reduce_sum(tf.square(z), axis=[2, 3, 4]) - 6 * np.log(2 * np.pi)
           + log_dets)
  assert_close(positions.sum(axis=(2, 3)), whole.numpy(), 1e-5)
