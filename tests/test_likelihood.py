"""The estimator of glow_tfp.likelihood, checked against probabilities summed by brute force.

A 2x2x1 model at n_bits=2 has 4**4 = 256 possible images, so every probability it assigns can
be computed: by the estimator, and by integrating the density over each image's bin.
"""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import likelihood
from tests.checks import assert_close, perturb

TINY = glow_tfp.GlowConfig(image_shape=(2, 2, 1), levels=1, steps_per_level=3,
                           hidden_channels=16, n_bits=2)
# Midpoints per dimension of the brute-force integral over a bin: 8**4 points per image.
QUADRATURE_POINTS = 8


def every_image():
  """The 256 images [256, 2, 2, 1] of 2-bit values, as uint8 (0, 64, 128, 192)."""
  levels = np.array(list(itertools.product(range(4), repeat=4)), np.uint8)
  return (levels * 64).reshape(-1, 2, 2, 1)


def training_images(count, seed):
  """Images of a peaked distribution over the 256: a dark-or-bright base plus small changes."""
  rng = np.random.default_rng(seed)
  base = rng.choice([0, 3], size=(count, 1))
  levels = np.clip(base + rng.choice([-1, 0, 0, 0, 1], size=(count, 4)), 0, 3)
  return (levels * 64).astype(np.uint8).reshape(-1, 2, 2, 1)


@pytest.fixture(scope="module")
def trained_tiny():
  """A float64 2x2x1 model trained for 300 steps on the dequantised 2-bit images."""
  model = glow_tfp.Glow(TINY, seed=0, dtype="float64")
  images = training_images(512, seed=0)
  model.initialize(tf.cast(glow_tfp.to_model_space(images, 2, noise_seed=0), tf.float64))
  optimizer = tf.keras.optimizers.Adam(1e-2)

  @tf.function
  def step(seed):
    x = tf.cast(glow_tfp.to_model_space(images, 2, noise_seed=seed), tf.float64)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.log_prob(x))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                  model.trainable_variables))

  for i in range(300):
    step(tf.constant([i, 1]))
  return model


def brute_force_probabilities(model, images):
  """P(img) [N] by the midpoint rule over each bin, QUADRATURE_POINTS per dimension."""
  width = 2.0 ** -model.config.n_bits
  offsets = (np.arange(QUADRATURE_POINTS) + 0.5) / QUADRATURE_POINTS
  grid = np.array(list(itertools.product(offsets, repeat=4))).reshape(-1, 2, 2, 1)
  corners = images.astype(np.float64) / 256.0 - 0.5
  log_prob = tf.function(model.log_prob)
  probabilities = []
  for chunk in np.array_split(corners, 16):
    x = (chunk[:, np.newaxis] + grid * width).reshape((-1,) + model.config.image_shape)
    density = np.exp(log_prob(tf.constant(x)).numpy()).reshape(len(chunk), -1)
    probabilities.append(density.mean(axis=1) * width ** 4)
  return np.concatenate(probabilities)


@pytest.fixture(scope="module")
def brute_force(trained_tiny):
  return brute_force_probabilities(trained_tiny, every_image())


def test_brute_force_probabilities_and_the_mass_outside_the_cube_sum_to_one(trained_tiny,
                                                                             brute_force):
  samples = trained_tiny.sample(40000, seed=3).numpy()
  outside = np.mean(np.any(np.abs(samples) > 0.5, axis=(1, 2, 3)))
  total = brute_force.sum()
  assert total <= 1.0
  # Monte Carlo error of `outside`: sqrt(p(1 - p) / n) < 0.0025; quadrature adds less.
  assert total + outside == pytest.approx(1.0, abs=0.01)


def test_estimated_probabilities_sum_to_the_brute_force_ones(trained_tiny, brute_force):
  estimated = np.exp(trained_tiny.log_likelihood(every_image(), num_draws=256, seed=1).numpy())
  assert estimated.sum() <= 1.0 + 0.01
  assert_close(estimated.sum(), brute_force.sum(), rtol=1e-2)
  # Per image, where nearly all the mass is: the density varies several-fold inside a bin,
  # so 256 draws still leave a few percent of Monte Carlo error per image.
  top = brute_force > 0.01
  assert_close(estimated[top], brute_force[top], rtol=0.2)


def test_bin_centre_densities_are_not_these_probabilities(trained_tiny, brute_force):
  centres = tf.cast(glow_tfp.to_model_space(every_image(), 2), tf.float64)
  at_centres = np.exp(trained_tiny.log_prob(centres).numpy() + likelihood.log_bin_volume(TINY))
  # Not a test of a bound: the size of the difference is reported in docs/likelihood.md.
  assert not np.allclose(at_centres, brute_force, rtol=1e-2)


def test_more_draws_give_a_higher_bound_that_converges(trained_tiny, brute_force):
  images = every_image()
  top = brute_force > 0.01
  truth = np.log(brute_force[top]).mean()
  means = {}
  for draws in (1, 16, 256):
    values = [trained_tiny.log_likelihood(images, num_draws=draws, seed=s).numpy()[top].mean()
              for s in range(4)]
    means[draws] = np.mean(values)
  # Jensen: the mean of log P_K rises with K towards log P.
  assert means[1] < means[16] < truth + 0.01
  assert abs(means[256] - truth) < abs(means[1] - truth) / 4


def test_the_estimate_is_repeatable_and_fixed_draws_ignore_the_batch(trained_tiny):
  images = every_image()[:40]
  first = trained_tiny.log_likelihood(images, num_draws=3, seed=7)
  np.testing.assert_array_equal(first, trained_tiny.log_likelihood(images, num_draws=3, seed=7))
  draws = likelihood.fixed_draws(3, TINY.image_shape, seed=0)
  whole = trained_tiny.log_likelihood(images, noise=draws).numpy()
  part = trained_tiny.log_likelihood(images[10:13], noise=draws).numpy()
  assert_close(part, whole[10:13], rtol=1e-12)


def test_level_terms_come_from_the_same_draws_as_the_estimate(trained_tiny):
  images = every_image()[:40]
  draws = likelihood.fixed_draws(3, TINY.image_shape, seed=2)
  nats, terms = likelihood.level_log_likelihood(trained_tiny, images, noise=draws)
  assert_close(nats.numpy(), trained_tiny.log_likelihood(images, noise=draws).numpy(),
               rtol=1e-12)
  at_draws = [trained_tiny.log_prob(tf.cast(glow_tfp.to_model_space(
      images, TINY.n_bits, noise=np.broadcast_to(d, images.shape)), tf.float64)) for d in draws]
  assert terms.shape == (40, TINY.levels, 2)
  assert_close(terms.numpy().sum(axis=(1, 2)), np.mean(at_draws, axis=0), rtol=1e-12)
  *same, tops = likelihood.level_log_likelihood(trained_tiny, images, noise=draws,
                                                top_latent=True)
  assert_close(same[1].numpy(), terms.numpy(), rtol=1e-12)
  for draw, top in zip(draws, tops.numpy()):
    x = tf.cast(glow_tfp.to_model_space(images, TINY.n_bits,
                                        noise=np.broadcast_to(draw, images.shape)), tf.float64)
    assert_close(top, trained_tiny.level_log_probs(x, top_latent=True)[1].numpy(), rtol=1e-9)


@pytest.mark.parametrize("in_graph", [False, True])
def test_the_estimate_does_not_depend_on_the_parts_a_batch_runs_in(trained_tiny, in_graph):
  images = every_image()[:40]
  estimate = lambda i, parts: likelihood.log_likelihood(trained_tiny, i, num_draws=3, seed=7,
                                                        batch_parts=parts)
  if in_graph:
    estimate = tf.function(estimate, reduce_retracing=True)
  whole = estimate(images, 1).numpy()
  assert_close(estimate(images, 3).numpy(), whole, rtol=1e-9)


def test_the_estimate_agrees_in_a_function_and_under_xla(trained_tiny):
  images = every_image()[::9]
  draws = likelihood.fixed_draws(2, TINY.image_shape, seed=0)
  eager = trained_tiny.log_likelihood(images, noise=draws).numpy()
  for jit in (False, True):
    fn = tf.function(lambda i: trained_tiny.log_likelihood(i, noise=draws), jit_compile=jit)
    assert_close(fn(images), eager, rtol=1e-9)


@pytest.fixture(scope="module")
def conditional_tiny():
  """A float64 2x2x1 model of 3 classes, its parameters moved off their initial values."""
  model = glow_tfp.Glow(TINY.replace(num_classes=3, class_prior="per_position"), seed=1,
                        dtype="float64")
  model.initialize(tf.cast(glow_tfp.to_model_space(training_images(64, seed=1), 2,
                                                   noise_seed=1), tf.float64),
                   labels=tf.range(64) % 3)
  perturb(model, scale=0.05, seed=1)
  return model


def test_class_estimates_of_one_pass_equal_the_estimate_under_each_label(conditional_tiny):
  images, draws = every_image()[::5], likelihood.fixed_draws(3, TINY.image_shape, seed=4)
  per_class = likelihood.class_log_likelihood(conditional_tiny, images, noise=draws).numpy()
  assert per_class.shape == (len(images), 3)
  for label in range(3):
    expected = conditional_tiny.log_likelihood(images, tf.fill([len(images)], label),
                                               noise=draws)
    assert_close(per_class[:, label], expected.numpy(), rtol=1e-9)
  assert np.ptp(per_class, axis=1).min() > 1e-3


def test_without_labels_a_conditional_model_estimates_the_class_mixture(conditional_tiny):
  # With the same draws, log P_K(x) = logsumexp_y log P_K(x | y) - log 3 holds exactly:
  # the mean over draws and the mean over classes commute.
  images, draws = every_image(), likelihood.fixed_draws(3, TINY.image_shape, seed=5)
  per_class = likelihood.class_log_likelihood(conditional_tiny, images, noise=draws).numpy()
  peak = per_class.max(axis=1)
  mixture = peak + np.log(np.exp(per_class - peak[:, None]).mean(axis=1))
  assert_close(conditional_tiny.log_likelihood(images, noise=draws).numpy(), mixture,
               rtol=1e-9)
  assert np.exp(mixture).sum() <= 1.0


def test_estimates_above_zero_are_clipped_since_a_probability_is_at_most_one():
  # A density of spread 0.05 around the black image's bin centre, in bins 0.5 wide: it
  # exceeds 1/V over about 6% of the bin, so some single draws estimate P > 1.
  config = glow_tfp.GlowConfig(image_shape=(2, 2, 1), levels=1, steps_per_level=1,
                               hidden_channels=4, n_bits=1)
  model = glow_tfp.Glow(config, seed=0)
  black = np.zeros([1, 2, 2, 1], np.uint8)
  centre = glow_tfp.to_model_space(black, 1)
  model.initialize(centre + 0.05 * tf.random.stateless_normal([256, 2, 2, 1], [0, 0]))
  estimates = np.concatenate([model.log_likelihood(np.repeat(black, 64, 0), seed=s).numpy()
                              for s in range(4)])
  assert estimates.max() == 0.0 and np.mean(estimates == 0.0) > 0.01


def test_estimate_reports_the_mean_and_its_standard_error():
  nats = -np.array([1.0, 2.0, 3.0, 4.0]) * 4 * math.log(2.0)
  estimate = likelihood.Estimate.of(nats, num_dims=4, num_draws=2)
  assert estimate.bits_per_dim == pytest.approx(2.5)
  assert estimate.standard_error == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
  assert "K=2" in str(estimate) and "4 images" in str(estimate)


@pytest.mark.parametrize("draws", [0, -1, 1.5, True])
def test_bad_draw_counts_are_rejected(draws):
  with pytest.raises(ValueError, match="`num_draws` must be an integer >= 1"):
    likelihood.check_num_draws(draws)
