"""The Frechet distance: zero for a set with itself, the closed forms of Gaussians, and the
brute-force formula with a general matrix square root on small covariances."""

import numpy as np
import pytest

from glow_tfp import frechet
from tests.checks import assert_close


def _random_covariance(rng, dim):
  a = rng.normal(size=(dim, dim))
  return a @ a.T + 0.1 * np.eye(dim)


def _brute_force(mean_a, cov_a, mean_b, cov_b):
  """tr((S_a S_b)^(1/2)) from the eigenvalues of the non-symmetric product itself."""
  eigenvalues = np.linalg.eigvals(cov_a @ cov_b)
  cross = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
  return np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b) - 2 * cross


def test_a_set_with_itself_is_at_distance_zero(rng):
  features = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16))
  assert frechet.distance(features, features) == pytest.approx(0.0, abs=1e-9 * np.trace(
      np.cov(features, rowvar=False)))


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_distance_of_moments_matches_the_brute_force_formula(rng, dim):
  mean_a, mean_b = rng.normal(size=dim), rng.normal(size=dim)
  cov_a, cov_b = _random_covariance(rng, dim), _random_covariance(rng, dim)
  expected = _brute_force(mean_a, cov_a, mean_b, cov_b)
  assert_close(frechet.distance_of_moments(mean_a, cov_a, mean_b, cov_b), expected, 1e-9,
               scale=np.trace(cov_a + cov_b))


def test_one_dimension_and_diagonal_covariances_have_their_closed_forms():
  # 1-D: (m_a - m_b)^2 + (s_a - s_b)^2 with s the standard deviations.
  assert_close(frechet.distance_of_moments(np.array([1.0]), np.array([[4.0]]),
                                           np.array([-2.0]), np.array([[9.0]])), 9.0 + 1.0,
               1e-12)
  # Diagonal: the sum over the axes.
  variances_a, variances_b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
  assert_close(frechet.distance_of_moments(np.zeros(3), np.diag(variances_a), np.ones(3),
                                           np.diag(variances_b)), 3.0 + 1.0 + 1.0, 1e-12)


def test_samples_of_two_gaussians_estimate_their_distance(rng):
  dim = 3
  cov_a, cov_b = _random_covariance(rng, dim), _random_covariance(rng, dim)
  mean_b = np.array([1.0, -1.0, 0.5])
  a = rng.multivariate_normal(np.zeros(dim), cov_a, size=20000)
  b = rng.multivariate_normal(mean_b, cov_b, size=20000)
  expected = _brute_force(np.zeros(dim), cov_a, mean_b, cov_b)
  assert_close(frechet.distance(a, b), expected, 0.05, scale=np.trace(cov_a + cov_b))


def test_a_covariance_of_rank_zero_is_a_valid_input():
  # Identical images (temperature 0) have zero covariance; the square root stays real.
  same = np.ones((10, 4))
  other = np.arange(40, dtype=np.float64).reshape(10, 4)
  assert np.isfinite(frechet.distance(same, other))
  assert frechet.distance(same, same) == 0.0


@pytest.mark.parametrize("shape", [(1, 4), (5,)], ids=["one_row", "one_axis"])
def test_features_need_two_rows_of_a_matrix(shape):
  with pytest.raises(ValueError, match="N >= 2"):
    frechet.moments(np.zeros(shape))
