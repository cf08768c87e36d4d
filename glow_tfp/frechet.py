"""The Frechet distance between two sets of feature vectors, as in FID.

Each set is summarised by its mean mu and covariance S (a Gaussian fitted to it); the
distance between the two Gaussians is
  d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
S_a S_b is not symmetric, but it is similar to the symmetric positive semi-definite
M = S_a^(1/2) S_b S_a^(1/2) (conjugate by S_a^(1/2)), so tr((S_a S_b)^(1/2)) = tr(M^(1/2)) =
sum of sqrt(eigenvalues of M): two symmetric eigen decompositions (`numpy.linalg.eigh`),
no general matrix square root whose rounding can make the result complex. Eigenvalues that
rounding pushes below zero are clipped to zero.

References: Dowson & Landau, "The Frechet distance between multivariate normal
distributions", 1982; Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium", 2017 (FID).
"""

import numpy as np


def moments(features):
  """(mean [D], covariance [D, D]) of `features` [N, D] in float64; N >= 2."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError("`features` must be [N, D] with N >= 2; instead, its shape is "
                     f"{features.shape}.")
  return features.mean(axis=0), np.cov(features, rowvar=False).reshape(
      features.shape[1], features.shape[1])


def psd_sqrt(matrix):
  """The symmetric square root of a symmetric positive semi-definite `matrix`."""
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def distance_of_moments(mean_a, covariance_a, mean_b, covariance_b):
  """d^2 of the module docstring between N(mean_a, covariance_a) and N(mean_b, covariance_b)."""
  root_a = psd_sqrt(covariance_a)
  product = root_a @ covariance_b @ root_a
  product = (product + product.T) / 2  # symmetric up to rounding; eigh reads one triangle
  cross = np.sqrt(np.clip(np.linalg.eigvalsh(product), 0.0, None)).sum()
  mean_term = np.sum((mean_a - mean_b) ** 2)
  # Clipped: rounding can leave -1e-12 for two identical sets.
  return float(max(mean_term + np.trace(covariance_a) + np.trace(covariance_b) - 2 * cross,
                   0.0))


def distance(features_a, features_b):
  """The Frechet distance d^2 between the Gaussians fitted to two sets of features
  ([N_a, D] and [N_b, D])."""
  return distance_of_moments(*moments(features_a), *moments(features_b))
