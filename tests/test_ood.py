import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import glow_tfp
from glow_tfp import likelihood
from glow_tfp import ood
from tests.checks import assert_close, perturb, random_images

SHAPE = (8, 8, 1)


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


def test_scores_match_a_hand_computation():
  reference = ood.Reference(
      bits_per_dim_mean=np.float32(2.0), bits_per_dim_std=np.float32(1.0),
      bits_per_dim_quantiles=np.zeros(7, np.float32), png_mean=np.float32(3.0),
      png_std=np.float32(1.0), png_quantiles=np.zeros(7, np.float32),
      mean=np.array([2.0, 3.0], np.float32),
      inverse_covariance=np.array([[4.0, 0.0], [0.0, 1.0]], np.float32),
      heldout_ood_scores=np.array([0.5, 1.0, 2.0, 4.0], np.float32))
  got = ood.scores([2.5, 2.0, np.inf], [3.0, 5.0, 3.0], reference)
  assert_close(got["complexity_corrected"].numpy(), [-0.5, -3.0, np.inf], rtol=1e-7)
  assert_close(got["typicality"].numpy(), [0.5, 0.0, np.inf], rtol=1e-7)
  # sqrt(4 * 0.5**2) = 1; sqrt(1 * 2**2) = 2.
  assert_close(got["ood_score"].numpy(), [1.0, 2.0, np.inf], rtol=1e-7)
  assert_close(got["ood_percentile"].numpy(), [50.0, 75.0, 100.0], rtol=1e-7)


def test_reference_statistics_describe_the_held_out_images(model):
  images = uint8_images(20)
  reference = ood.reference_statistics(model, images)
  bits, png = ood.measure(model, images)
  nats = model.log_likelihood(images, noise=likelihood.default_draws(model.config))
  assert_close(bits, glow_tfp.bits_per_dim(nats, model.config.num_dims), rtol=1e-6)
  assert_close(reference.bits_per_dim_mean, bits.mean(), rtol=1e-6)
  assert_close(reference.png_quantiles, np.quantile(png, ood.QUANTILES), rtol=1e-6)
  assert_close(np.linalg.inv(reference.inverse_covariance), np.cov(np.stack([bits, png]), ddof=1),
               rtol=1e-3)
  assert len(reference.heldout_ood_scores) == 20
  assert np.all(np.diff(reference.heldout_ood_scores) >= 0)
  own = ood.score_images(model, images, None, reference, batch_size=7)
  assert own["ood_percentile"].max() == 100.0
  assert_close(np.sort(own["ood_score"]), reference.heldout_ood_scores, rtol=1e-5)


def test_an_image_far_from_the_held_out_cloud_scores_above_them_all(model):
  reference = ood.reference_statistics(model, uint8_images(20))
  black = np.zeros((1,) + SHAPE, np.uint8)
  got = ood.score_images(model, black, None, reference)
  assert got["ood_score"][0] > reference.heldout_ood_scores.max()
  assert got["ood_percentile"][0] == 100.0


def test_reference_needs_two_images(model):
  with pytest.raises(ValueError, match="at least 2 held-out images"):
    ood.reference_statistics(model, uint8_images(1))


def test_auroc_is_the_pairwise_rank_statistic():
  rng = np.random.default_rng(0)
  inlier, outlier = rng.integers(0, 5, 30).astype(float), rng.integers(2, 8, 20).astype(float)
  pairs = (outlier[:, None] > inlier[None]) + 0.5 * (outlier[:, None] == inlier[None])
  assert ood.auroc(inlier, outlier) == pytest.approx(pairs.mean())
  assert ood.auroc([0.0, 1.0], [2.0, np.nan]) == 1.0
  assert ood.auroc([2.0, 3.0], [0.0, 1.0]) == 0.0
