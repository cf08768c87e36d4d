import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import glow_tfp
from glow_tfp import likelihood
from glow_tfp import ood
from tests.checks import assert_close, perturb, random_images
from train.data import datasets as data_lib

SHAPE = (8, 8, 1)
TRAINING_STEPS = 60


@pytest.fixture(scope="module")
def model():
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=4)
  glow = glow_tfp.Glow(config)
  glow.initialize(random_images((4,) + SHAPE))
  perturb(glow, scale=0.05)
  return glow


def uint8_images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPE).astype(np.uint8)


def test_png_bits_per_dim_is_the_length_of_a_lossless_png_of_the_image():
  images = np.stack([np.zeros(SHAPE, np.uint8), uint8_images(1)[0]])
  bits = ood.png_bits_per_dim(images).numpy()
  for image, value in zip(images, bits):
    encoded = tf.io.encode_png(image, compression=9).numpy()
    assert value == pytest.approx(8 * len(encoded) / 64)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encoded)))[..., None], image)
    with io.BytesIO() as pil_png:
      Image.fromarray(image[..., 0]).save(pil_png, format="PNG", compress_level=9)
      assert abs(8 * len(pil_png.getvalue()) / 64 - value) < 0.25 * value
  assert bits[0] < bits[1]


def hand_reference(**changes):
  """A `Reference` of hand-picked statistics for one-level feature rows [bits/dim, PNG
  bits/dim, latent, log-det] (see test_scores_match_a_hand_computation)."""
  fields = dict(
      bits_per_dim_mean=np.float32(2.0), bits_per_dim_std=np.float32(1.0),
      bits_per_dim_quantiles=np.zeros(7, np.float32), png_mean=np.float32(3.0),
      png_std=np.float32(1.0), png_quantiles=np.zeros(7, np.float32),
      mean=np.array([3.0, 0.0, 0.0], np.float32),
      inverse_covariance=np.diag([1.0, 4.0, 0.0]).astype(np.float32),
      test_mean=np.array([1.0, 0.5], np.float32), test_std=np.array([2.0, 0.25], np.float32),
      test_floor=np.array([-np.inf, 1.0], np.float32),
      heldout_ood_scores=np.array([-0.5, 0.0, 0.5, 2.0], np.float32),
      ood_threshold=np.float32(0.25), target_false_positive_rate=np.float32(0.25),
      heldout_false_positive_rate=np.float32(0.5))
  return ood.Reference(**dict(fields, **changes))


def test_scores_match_a_hand_computation():
  matrix = np.array([[2.5, 3.0, 0.5, 7.0], [3.0, 5.0, 0.0, 1.0], [np.inf, 3.0, np.inf, 0.0]])
  got = ood.scores(matrix, hand_reference())
  assert set(got) == set(ood.OUTPUTS)
  assert_close(got["complexity_corrected"].numpy(), [-0.5, -2.0, np.inf], rtol=1e-7)
  assert_close(got["typicality"].numpy(), [0.5, 1.0, np.inf], rtol=1e-7)
  # The distance over (PNG, latent, log-det): sqrt(4 * 0.5**2) = 1; sqrt(1 * 2**2) = 2;
  # ood_score standardises it: (1 - 1) / 2 = 0, (2 - 1) / 2 = 0.5. Typicality standardises
  # to (0.5 - 0.5) / 0.25 = 0 and (1 - 0.5) / 0.25 = 2, and adds only its part above its
  # floor 1: 0 and 1.
  assert_close(got["level_distance"].numpy(), [1.0, 2.0, np.inf], rtol=1e-7)
  assert_close(got["ood_score"].numpy(), [0.0, 1.5, np.inf], rtol=1e-7)
  assert_close(got["ood_percentile"].numpy(), [50.0, 75.0, 100.0], rtol=1e-7)
  assert got["is_ood"].dtype == tf.bool
  np.testing.assert_array_equal(got["is_ood"], [False, True, True])
  assert got["ood_false_positive_rate"].dtype == tf.float32
  np.testing.assert_array_equal(got["ood_false_positive_rate"], [0.5, 0.5, 0.5])


def test_with_a_background_model_ood_score_sums_the_standardised_tests():
  # Rows [bits/dim, PNG, ratio, latent, log-det]; the ratio is standardised by (1, 0.5).
  matrix = np.array([[2.5, 3.0, 2.5, 0.5, 7.0], [3.0, 5.0, 0.0, 0.0, 1.0]])
  reference = hand_reference(test_mean=np.array([1.0, 1.0, 0.5], np.float32),
                             test_std=np.array([2.0, 0.5, 0.25], np.float32),
                             test_floor=np.array([-np.inf, -np.inf, 1.0], np.float32))
  got = ood.scores(matrix, reference, ood.test_names(background=True))
  assert set(got) == set(ood.OUTPUTS + ood.BACKGROUND_SCORES)
  assert_close(got["likelihood_ratio"].numpy(), [2.5, 0.0], rtol=1e-7)
  # (1 - 1) / 2 + (2.5 - 1) / 0.5 + 0 = 3; (2 - 1) / 2 + (0 - 1) / 0.5 + (2 - 1) = -0.5.
  assert_close(got["ood_score"].numpy(), [3.0, -0.5], rtol=1e-7)


def test_every_test_of_a_conditional_model_with_a_background_adds_to_ood_score():
  # Rows [bits/dim, PNG, ratio, class_inconsistency, latent, log-det].
  matrix = np.array([[2.5, 3.0, 2.5, 0.25, 0.5, 7.0], [3.0, 5.0, 0.0, 0.0, 0.0, 1.0]])
  reference = hand_reference(test_mean=np.array([1.0, 1.0, 0.05, 0.5], np.float32),
                             test_std=np.array([2.0, 0.5, 0.1, 0.25], np.float32),
                             test_floor=np.array([-np.inf, -np.inf, -np.inf, 1.0], np.float32))
  names = ood.test_names(background=True, conditional=True)
  got = ood.scores(matrix, reference, names)
  assert set(got) == set(ood.OUTPUTS + ood.BACKGROUND_SCORES + ood.CONDITIONAL_SCORES)
  assert_close(got["class_inconsistency"].numpy(), [0.25, 0.0], rtol=1e-7)
  # 0 + 3 + (0.25 - 0.05) / 0.1 + 0 = 5; 0.5 - 2 + (0 - 0.05) / 0.1 + 1 = -1.
  assert_close(got["ood_score"].numpy(), [5.0, -1.0], rtol=1e-6)


def test_scores_refuse_a_reference_with_other_tests():
  with pytest.raises(ValueError, match="2 tests; the scores were asked for 3"):
    ood.scores(np.zeros([1, 5]), hand_reference(), ood.test_names(background=True))


def test_class_inconsistency_is_what_positions_gain_by_picking_their_own_class():
  # Two classes, 1x2 positions. Image 0: class 0 best at both positions -> 0. Image 1:
  # class 0 best at the first (-1 vs -3), class 1 at the second (-2 vs -6): each its own
  # gives -3, one class for all at best -5 (class 1; class 0 gives -7) -> 2 nats.
  positions = np.array([[[[-1.0, -2.0]], [[-5.0, -4.0]]],
                        [[[-1.0, -6.0]], [[-3.0, -2.0]]]], np.float32)
  got = ood.class_inconsistency(positions, num_dims=4).numpy()
  assert_close(got, [0.0, 2.0 / (4 * np.log(2.0))], rtol=1e-6)


def test_a_non_finite_score_is_ood_even_above_an_infinite_threshold():
  matrix = np.array([[np.nan, 3.0, np.nan, 0.0], [2.0, 3.0, 0.0, 0.0]])
  got = ood.scores(matrix, hand_reference(ood_threshold=np.float32(np.inf)))
  np.testing.assert_array_equal(got["is_ood"], [True, False])


def summed_tests(tests, reference):
  """ood_score from the tests [N, T] by numpy: each standardised, a test with a finite
  floor counted only above it."""
  standardised = (tests - reference.test_mean) / reference.test_std
  floor = reference.test_floor
  above = np.maximum(standardised - np.where(np.isfinite(floor), floor, 0.0), 0.0)
  return np.where(np.isfinite(floor), above, standardised).sum(axis=1)


def test_typicality_adds_only_its_part_above_the_fit_halfs_quantile():
  rng = np.random.default_rng(0)
  fit_rows = rng.normal(size=(200, 4)) + [2.0, 3.0, 0.0, 0.0]
  reference = ood.fit(fit_rows, fit_rows[:10])
  assert ood.test_names() == ("level_distance", "typicality")
  typicality = np.abs(fit_rows[:, 0] - fit_rows[:, 0].mean())
  standardised = (typicality - typicality.mean()) / typicality.std(ddof=1)
  assert_close(reference.test_floor[1], np.quantile(standardised, ood.TYPICALITY_QUANTILE),
               rtol=1e-5)
  assert reference.test_floor[0] == -np.inf
  # Rows alike but for bits/dim: at the mean it adds nothing, 3 standard deviations of
  # typicality beyond the floor add 3.
  typical = fit_rows[:2].copy()
  typical[:, 0] = reference.bits_per_dim_mean
  unusual = typical.copy()
  unusual[:, 0] -= (reference.test_mean[1] + reference.test_std[1]
                    * (reference.test_floor[1] + 3.0))
  got = {name: ood.scores(rows, reference) for name, rows in (("typical", typical),
                                                             ("unusual", unusual))}
  distance = (got["typical"]["level_distance"].numpy() - reference.test_mean[0]) / (
      reference.test_std[0])
  assert_close(got["typical"]["ood_score"].numpy(), distance, rtol=1e-5)
  assert_close(got["unusual"]["ood_score"].numpy(), distance + 3.0, rtol=1e-4)


def test_the_mahalanobis_distance_takes_any_number_of_features():
  rng = np.random.default_rng(0)
  for num_features in (1, 2, 5):
    points = rng.normal(size=(40, num_features))
    reference_points = rng.normal(size=(30, num_features))
    mean = reference_points.mean(axis=0)
    inverse = np.linalg.inv(np.cov(reference_points, rowvar=False).reshape(
        num_features, num_features))
    expected = np.sqrt(np.einsum("ni,ij,nj->n", points - mean, inverse, points - mean))
    got = ood.mahalanobis(points, mean.astype(np.float32), inverse.astype(np.float32))
    assert_close(got.numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("count, rate, rank", [
    (199, 0.01, 198),  # ceil(0.99 * 200) = 198
    (250, 0.01, 249),  # ceil(248.49)
    (99, 0.01, 99),    # ceil(99.0): the smallest count that needs no cap
    (5, 0.01, 5),      # ceil(5.94) = 6, capped at 5
    (19, 0.1, 18),     # ceil(18.0)
    (4, 0.5, 3),       # ceil(2.5)
])
def test_threshold_is_the_order_statistic_of_hand_made_scores(count, rate, rank):
  scores = np.random.default_rng(count).permutation(np.arange(1.0, count + 1.0))
  assert ood.threshold_rank(count, rate) == rank
  assert ood.threshold(scores, rate) == rank
  # The exceedance rate of a new exchangeable score, (count + 1 - rank) / (count + 1), is at
  # most `rate` where the rank is uncapped, and rank is the smallest such.
  if count >= ood.min_fit_count(rate):
    assert (count + 1 - rank) / (count + 1) <= rate < (count + 2 - rank) / (count + 1)


def test_the_threshold_rank_is_the_smallest_with_exceedance_at_most_the_rate():
  for rate in (0.001, 0.01, 0.02, 0.05, 0.1, 0.3, 0.5):
    for count in range(1, 400):
      smallest = next(k for k in range(1, count + 2) if (count + 1 - k) / (count + 1) <= rate
                      + 1e-12)
      assert ood.threshold_rank(count, rate) == min(count, smallest), (rate, count)
      assert (count >= ood.min_fit_count(rate)) == (smallest <= count), (rate, count)


@pytest.mark.parametrize("rate", [0.0, -0.1, 0.51, 1.0, float("nan"), True])
def test_bad_false_positive_rates_are_refused(rate):
  assert not ood.is_valid_false_positive_rate(rate)
  with pytest.raises(ValueError, match=r"in \(0, 0.5\]"):
    ood.threshold_rank(10, rate)


def test_the_held_out_rate_is_measured_on_the_check_rows_alone():
  rng = np.random.default_rng(0)
  fit_rows = rng.normal(size=(199, 4))
  centre, far = fit_rows.mean(axis=0), fit_rows.mean(axis=0) + 100.0
  check_rows = np.stack([centre] * 6 + [far] * 2)  # 2 of 8 far: a rate of 0.25.
  reference = ood.fit(fit_rows, check_rows, false_positive_rate=0.01)
  own = np.sort(ood.scores(fit_rows, reference)["ood_score"].numpy())
  assert reference.ood_threshold == own[197]  # k = ceil(0.99 * 200) = 198.
  assert reference.heldout_false_positive_rate == 0.25
  assert reference.target_false_positive_rate == np.float32(0.01)
  assert len(reference.heldout_ood_scores) == 8
  # The check rows change the measured rate and the percentiles, nothing fitted.
  other = ood.fit(fit_rows, np.stack([centre] * 8), false_positive_rate=0.01)
  assert other.heldout_false_positive_rate == 0.0
  for name in ("mean", "inverse_covariance", "test_mean", "test_std", "test_floor",
               "ood_threshold", "bits_per_dim_mean", "png_quantiles"):
    np.testing.assert_array_equal(getattr(other, name), getattr(reference, name), name)
  got = ood.scores(np.stack([centre, far]), reference)
  np.testing.assert_array_equal(got["is_ood"], [False, True])
  assert_close(got["ood_percentile"].numpy(), [75.0, 100.0], rtol=1e-7)
  np.testing.assert_array_equal(got["ood_false_positive_rate"], [0.25, 0.25])


def test_reference_statistics_fit_the_even_images_and_check_the_odd_ones(model):
  images = uint8_images(21)
  reference = ood.reference_statistics(model, images, false_positive_rate=0.2)
  matrix = ood.measure(model, images)
  assert matrix.shape == (21, len(ood.feature_names(model.config.levels)))
  nats = model.log_likelihood(images, noise=likelihood.default_draws(model.config))
  assert_close(matrix[:, 0], glow_tfp.bits_per_dim(nats, model.config.num_dims), rtol=1e-6)
  assert_close(matrix[:, 1], ood.png_bits_per_dim(images), rtol=1e-6)
  # The level terms are the bits/dim of the density, the bin's n_bits per dim apart.
  assert_close(matrix[:, 2:].sum(axis=1) + model.config.n_bits, matrix[:, 0], rtol=1e-5)
  expected = ood.fit(matrix[0::2], matrix[1::2], false_positive_rate=0.2)
  for name, value in expected.as_dict().items():
    assert_close(getattr(reference, name), value, rtol=1e-6, err_msg=name)
  fit_bits = matrix[0::2, 0]
  assert_close(reference.bits_per_dim_mean, fit_bits.mean(), rtol=1e-6)
  assert_close(np.linalg.inv(reference.inverse_covariance), np.cov(matrix[0::2, 1:].T, ddof=1),
               rtol=1e-3)
  assert len(reference.heldout_ood_scores) == 10
  assert np.all(np.diff(reference.heldout_ood_scores) >= 0)
  own = ood.score_images(model, images[1::2], None, reference, batch_size=3)
  assert own["ood_percentile"].max() == 100.0
  assert_close(np.sort(own["ood_score"]), reference.heldout_ood_scores, rtol=1e-5)
  assert reference.heldout_false_positive_rate == pytest.approx(own["is_ood"].mean())


def test_a_background_model_adds_the_likelihood_ratio(model):
  background = glow_tfp.Glow(model.config, seed=7)
  background.initialize(random_images((4,) + SHAPE, seed=7))
  images = uint8_images(21)
  reference = ood.reference_statistics(model, images, background=background)
  assert reference.test_mean.shape == (3,)
  matrix = ood.measure(model, images, background=background)
  assert matrix.shape == (21, len(ood.feature_names(model.config.levels, background=True)))
  draws = likelihood.default_draws(model.config)
  expected = glow_tfp.bits_per_dim(model.log_likelihood(images, noise=draws)
                                   - background.log_likelihood(images, noise=draws),
                                   model.config.num_dims)
  got = ood.score_images(model, images, None, reference, background=background)
  assert_close(got["likelihood_ratio"], expected, rtol=1e-5)
  tests = np.stack([got["level_distance"], got["likelihood_ratio"], got["typicality"]], 1)
  assert_close(got["ood_score"], summed_tests(tests, reference), rtol=1e-5)


def test_an_image_far_from_the_held_out_cloud_scores_above_them_all(model):
  reference = ood.reference_statistics(model, uint8_images(20))
  black = np.zeros((1,) + SHAPE, np.uint8)
  got = ood.score_images(model, black, None, reference)
  assert got["ood_score"][0] > reference.heldout_ood_scores.max()
  assert got["ood_percentile"][0] == 100.0
  assert got["is_ood"][0]


def test_reference_needs_three_images(model):
  with pytest.raises(ValueError, match="at least 3 held-out images"):
    ood.reference_statistics(model, uint8_images(2))


@pytest.fixture(scope="module")
def digits():
  """Held-out bundled MNIST digits (28x28x1) and a small model trained on the others."""
  data = data_lib.load("mnist", levels=2, seed=0, heldout_fraction=0.2)
  config = glow_tfp.GlowConfig(image_shape=data.image_shape, levels=2, steps_per_level=1,
                               hidden_channels=8)
  glow = glow_tfp.Glow(config, seed=0)
  train = data.train_images[:512]
  glow.initialize(glow_tfp.to_model_space(train[:64], noise_seed=0))
  optimizer = tf.keras.optimizers.Adam(1e-3)

  @tf.function
  def step(batch, seed):
    x = glow_tfp.to_model_space(batch, noise_seed=seed)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(glow.log_prob(x))
    optimizer.apply_gradients(zip(tape.gradient(loss, glow.trainable_variables),
                                  glow.trainable_variables))

  for i in range(TRAINING_STEPS):
    step(tf.constant(train[(32 * i) % 512:][:32]), tf.constant([i, 0]))
  return glow, data.heldout_images


def test_is_ood_at_one_percent_keeps_unseen_digits_and_flags_noise(digits):
  model, heldout = digits
  reference_images, unseen = heldout[:600], heldout[600:]
  reference = ood.reference_statistics(model, reference_images, false_positive_rate=0.01)
  assert reference.heldout_false_positive_rate <= 0.02
  got = ood.score_images(model, unseen, None, reference)
  # Neither fit nor check: about 1% flagged, at most 2% here.
  assert len(unseen) >= 300 and got["is_ood"].mean() <= 0.02
  noise = np.random.default_rng(0).integers(0, 256, (100,) + heldout.shape[1:], np.uint8)
  assert ood.score_images(model, noise.astype(np.uint8), None, reference)["is_ood"].all()


def test_auroc_is_the_pairwise_rank_statistic():
  rng = np.random.default_rng(0)
  inlier, outlier = rng.integers(0, 5, 30).astype(float), rng.integers(2, 8, 20).astype(float)
  pairs = (outlier[:, None] > inlier[None]) + 0.5 * (outlier[:, None] == inlier[None])
  assert ood.auroc(inlier, outlier) == pytest.approx(pairs.mean())
  assert ood.auroc([0.0, 1.0], [2.0, np.nan]) == 1.0
  assert ood.auroc([2.0, 3.0], [0.0, 1.0]) == 0.0


def test_the_auroc_interval_matches_delong_by_hand_and_the_bootstrap_spread():
  inlier, outlier = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.5, 4.0])
  # Each outlier's share of inliers below it (ties half), each inlier's of outliers above.
  per_outlier, per_inlier = np.array([1.5, 3.0, 4.0]) / 4, np.array([3.0, 2.5, 2.0, 1.0]) / 3
  half = 1.959963984540054 * np.sqrt(per_outlier.var(ddof=1) / 3 + per_inlier.var(ddof=1) / 4)
  low, high = ood.auroc_interval(inlier, outlier)
  assert (low, high) == pytest.approx((per_outlier.mean() - half, min(1.0, per_outlier.mean()
                                                                      + half)))
  rng = np.random.default_rng(0)
  inlier, outlier = rng.normal(0.0, 1.0, 200), rng.normal(1.0, 1.0, 150)
  boot = [ood.auroc(rng.choice(inlier, 200), rng.choice(outlier, 150)) for _ in range(1000)]
  low, high = ood.auroc_interval(inlier, outlier)
  assert low < ood.auroc(inlier, outlier) < high
  # The normal interval's half-width is 1.96 standard errors; the bootstrap's spread is a
  # sampling estimate of that error (within 10% at 1,000 resamples).
  assert (high - low) / (2 * 1.959963984540054) == pytest.approx(np.std(boot), rel=0.1)


def test_a_perfect_separation_has_a_point_interval_and_bad_levels_are_refused():
  assert ood.auroc_interval([0.0, 1.0], [2.0, np.nan]) == (1.0, 1.0)
  assert ood.auroc_interval([2.0, 3.0], [0.0, 1.0]) == (0.0, 0.0)
  with pytest.raises(ValueError, match="confidence level"):
    ood.auroc_interval([0.0, 1.0], [2.0, 3.0], level=1.0)
  with pytest.raises(ValueError, match="at least 2"):
    ood.auroc_interval([0.0], [2.0, 3.0])


def test_class_doubt_is_one_minus_the_largest_posterior_of_equal_priors():
  log_likelihoods = np.log([[0.7, 0.2, 0.1], [1.0, 1.0, 1.0], [1e-300, 1.0, 1e-300]]) - 900.0
  assert_close(ood.class_doubt(log_likelihoods), [0.3, 2.0 / 3.0, 0.0], rtol=1e-9, scale=1.0)


@pytest.fixture(scope="module")
def conditional_model():
  """A 3-class model initialised on data, its parameters moved off their initial values."""
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=4, num_classes=3)
  glow = glow_tfp.Glow(config)
  glow.initialize(random_images((4,) + SHAPE), labels=tf.constant([0, 1, 2, 0]))
  perturb(glow, scale=0.05)
  return glow


def test_class_log_likelihoods_are_the_estimate_under_each_label(conditional_model):
  glow, images = conditional_model, uint8_images(5)
  got = ood.class_log_likelihoods(glow, images, batch_size=2)
  assert got.shape == (5, 3)
  draws = likelihood.default_draws(glow.config)
  for label in range(3):
    expected = glow.log_likelihood(images, tf.fill([5], label), noise=draws)
    assert_close(got[:, label], expected, rtol=1e-6)
  assert np.ptp(got, axis=1).max() > 0  # the classes see the images differently


def test_a_conditional_model_measures_unlabelled_images_under_its_class_mixture(
    conditional_model):
  glow, images = conditional_model, uint8_images(5)
  matrix = ood.measure(glow, images, batch_size=2)
  nats = glow.log_likelihood(images, noise=likelihood.default_draws(glow.config))
  assert_close(matrix[:, 0],  # bits_per_dim, the first column
               likelihood.bits_per_dim(nats, glow.config.num_dims).numpy(), rtol=1e-6)


def test_the_class_posterior_needs_a_conditional_model(model):
  with pytest.raises(ValueError, match="needs a class-conditional model"):
    ood.class_log_likelihoods(model, uint8_images(2))


def test_a_conditional_model_adds_class_inconsistency_at_the_draws(conditional_model):
  glow, images = conditional_model, uint8_images(5)
  matrix = ood.measure(glow, images, batch_size=2)
  names = ood.feature_names(glow.config.levels, conditional=True)
  assert matrix.shape == (5, len(names)) and names[2] == "class_inconsistency"
  draws = likelihood.default_draws(glow.config)
  positions = np.mean([glow.level_log_probs(
      glow_tfp.model_space.to_model_space(images, glow.config.n_bits, noise=draw),
      class_positions=True)[1].numpy() for draw in draws], axis=0)
  each_own = positions.max(axis=1).sum(axis=(1, 2))
  one_for_all = positions.sum(axis=(2, 3)).max(axis=1)
  expected = (each_own - one_for_all) / (glow.config.num_dims * np.log(2.0))
  assert_close(matrix[:, 2], expected, rtol=1e-5)
  assert (matrix[:, 2] >= 0).all() and matrix[:, 2].max() > 0
  # Given labels, the images are scored under their classes: no class to compare.
  labelled = ood.measure(glow, images, np.zeros(5, np.int32), batch_size=2)
  assert labelled.shape == (5, len(ood.feature_names(glow.config.levels)))


def test_a_conditional_models_scores_sum_its_tests(conditional_model):
  glow = conditional_model
  reference = ood.reference_statistics(glow, uint8_images(21), false_positive_rate=0.2)
  assert reference.test_mean.shape == (3,)
  got = ood.score_images(glow, uint8_images(6, seed=5), None, reference)
  tests = np.stack([got["level_distance"], got["class_inconsistency"], got["typicality"]], 1)
  assert_close(got["ood_score"], summed_tests(tests, reference), rtol=1e-5)


def top_latents(glow, images, draw):
  """The top level's latent before its prior [N, h, w, c] at one dequantisation draw."""
  x = glow_tfp.model_space.to_model_space(images, glow.config.n_bits, noise=draw)
  return glow.level_log_probs(x, top_latent=True)[-1].numpy()


def test_templates_are_the_clusters_of_each_classes_top_latents(model):
  # Dark and bright images in class 0, two greys in class 1: two clusters in each.
  rng = np.random.default_rng(0)
  levels = np.array([10, 240, 80, 170] * 6)
  images = np.clip(levels[:, None, None, None] + rng.integers(-3, 4, (24,) + SHAPE), 0,
                   255).astype(np.uint8)
  labels = np.array([0, 0, 1, 1] * 6)
  draws = likelihood.default_draws(model.config)
  templates = ood.fit_templates(model, images, labels, batch_size=7, draws=draws,
                                per_class=2)
  latents = top_latents(model, images, draws[0])
  expected = [latents[levels == level] for level in (10, 240, 80, 170)]
  assert templates.means.shape == (4,) + latents.shape[1:]
  got = sorted(templates.means, key=lambda m: m.mean())
  for means, group in zip(got, sorted(expected, key=lambda g: g.mean())):
    assert_close(means, group.mean(axis=0), rtol=1e-5)
  assert (templates.stds >= ood.TEMPLATE_STD_FLOOR).all()
  assert templates.means.dtype == templates.stds.dtype == np.float32


def test_template_positions_are_gaussian_log_densities_summed_over_channels():
  means = np.zeros((2, 1, 2, 2), np.float32)
  means[1] = 1.0
  stds = np.full((2, 1, 2, 2), 2.0, np.float32)
  latents = np.array([[[[1.0, 3.0], [0.0, 1.0]]]], np.float32)
  got = ood.template_positions(latents, ood.Templates(means, stds)).numpy()
  normal = lambda v, m: -0.5 * ((v - m) / 2.0) ** 2 - np.log(2.0) - 0.5 * np.log(2 * np.pi)
  expected = [[[normal(1, 0) + normal(3, 0), normal(0, 0) + normal(1, 0)]],
              [[normal(1, 1) + normal(3, 1), normal(0, 1) + normal(1, 1)]]]
  assert got.shape == (1, 2, 1, 2)
  assert_close(got[0], np.array(expected), rtol=1e-6)


def test_template_inconsistency_is_a_column_and_a_test_of_ood_score(conditional_model):
  glow, images = conditional_model, uint8_images(21)
  draws = likelihood.fixed_draws(2, SHAPE, seed=0)
  templates = ood.fit_templates(glow, uint8_images(30, seed=9), np.arange(30) % 3, draws=draws,
                                per_class=2)
  matrix = ood.measure(glow, images, batch_size=8, draws=draws, templates=templates)
  names = ood.feature_names(glow.config.levels, conditional=True, templates=True)
  assert matrix.shape == (21, len(names)) and names[3] == "template_inconsistency"
  # At the first draw, which the templates were fitted at.
  maps = ood.template_positions(top_latents(glow, images, draws[0]), templates)
  expected = ood.class_inconsistency(maps, glow.config.num_dims).numpy()
  assert_close(matrix[:, 3], expected, rtol=1e-5)
  reference = ood.reference_statistics(glow, images, draws=draws, templates=templates,
                                       false_positive_rate=0.2)
  assert reference.test_mean.shape == (4,)
  got = ood.score_images(glow, uint8_images(6, seed=5), None, reference, draws=draws,
                         templates=templates)
  tests = np.stack([got[name] for name in ood.test_names(conditional=True, templates=True)], 1)
  assert_close(got["ood_score"], summed_tests(tests, reference), rtol=1e-5)
