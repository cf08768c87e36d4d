"""Out-of-distribution scores of images under a Glow, from one forward pass each.

A flow's likelihood alone ranks the wrong inputs as typical: simple images (constant,
near-black) get higher likelihood than the training data (Nalisnick et al., 2019). The
scores here, all in bits per dimension, higher = less like the training data:

  bits_per_dim          -log2 P(x) / D, the model's code length of the discrete image,
                        estimated with fixed dequantisation draws (`glow_tfp.likelihood`);
  png_bits_per_dim      L(x) / D, the length of the PNG (zlib level 9) of the uint8 image;
  complexity_corrected  bits_per_dim - png_bits_per_dim: S(x) of Serra et al. (2020) per
                        dimension (how many bits the model saves over a generic compressor,
                        negated);
  typicality            |bits_per_dim - mean held-out bits_per_dim|;
  ood_score             the Mahalanobis distance of (bits_per_dim, png_bits_per_dim) to the
                        held-out images' mean and covariance: inputs too simple and too
                        complex both land far from the held-out cloud;
  ood_percentile        percentage of held-out images whose ood_score is <= this one's.

`Reference` holds what the scores need from held-out images (`reference_statistics`); the
scoring itself (`scores`) is TensorFlow ops on tensors, so a SavedModel can serve it.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from glow_tfp import likelihood

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SCORES = ("bits_per_dim", "png_bits_per_dim", "complexity_corrected", "typicality",
          "ood_score", "ood_percentile")
PNG_COMPRESSION = 9
# Added to the covariance's diagonal, so images that all share one PNG length still give an
# invertible covariance.
_COVARIANCE_RIDGE = 1e-6


@dataclasses.dataclass(frozen=True)
class Reference:
  """Statistics of held-out images that the scores are measured against.

  Attributes (float32 arrays):
    bits_per_dim_mean, bits_per_dim_std, bits_per_dim_quantiles: of held-out bits/dim,
      the quantiles at `QUANTILES`;
    png_mean, png_std, png_quantiles: the same of held-out PNG bits/dim;
    mean [2], inverse_covariance [2, 2]: of (bits/dim, PNG bits/dim), for ood_score;
    heldout_ood_scores [M]: the held-out images' own ood_score, ascending, for the
      percentile.
  """

  bits_per_dim_mean: np.ndarray
  bits_per_dim_std: np.ndarray
  bits_per_dim_quantiles: np.ndarray
  png_mean: np.ndarray
  png_std: np.ndarray
  png_quantiles: np.ndarray
  mean: np.ndarray
  inverse_covariance: np.ndarray
  heldout_ood_scores: np.ndarray

  def as_dict(self):
    return dataclasses.asdict(self)


def png_bits_per_dim(images):
  """Bits per dimension [N] of each uint8 image [N, H, W, C] as a PNG (zlib level 9)."""
  images = tf.convert_to_tensor(images, tf.uint8)
  num_dims = tf.cast(tf.reduce_prod(tf.shape(images)[1:]), tf.float32)
  lengths = tf.map_fn(
      lambda image: tf.strings.length(tf.io.encode_png(image, compression=PNG_COMPRESSION)),
      images, fn_output_signature=tf.int32)
  return 8.0 * tf.cast(lengths, tf.float32) / num_dims


def scores(bits_per_dim, png, reference):
  """Every score of `SCORES` (float32 [N] tensors, by name) from bits/dim and PNG bits/dim.

  `reference`: a `Reference`, or any object with its attributes as tensors or variables.
  A non-finite bits/dim gives an infinite ood_score (percentile 100).
  """
  bits_per_dim = tf.cast(bits_per_dim, tf.float32)
  png = tf.cast(png, tf.float32)
  offset = tf.stack([bits_per_dim, png], axis=1) - reference.mean
  squared = tf.einsum("ni,ij,nj->n", offset, reference.inverse_covariance, offset)
  distance = tf.sqrt(tf.maximum(squared, 0.0))
  distance = tf.where(tf.math.is_finite(distance), distance, np.inf)
  heldout = tf.convert_to_tensor(reference.heldout_ood_scores)
  below = tf.searchsorted(heldout[tf.newaxis], distance[tf.newaxis], side="right")[0]
  return {
      "bits_per_dim": bits_per_dim,
      "png_bits_per_dim": png,
      "complexity_corrected": bits_per_dim - png,
      "typicality": tf.abs(bits_per_dim - reference.bits_per_dim_mean),
      "ood_score": distance,
      "ood_percentile": 100.0 * tf.cast(below, tf.float32) / tf.cast(tf.size(heldout),
                                                                    tf.float32),
  }


def measure(model, images, labels=None, batch_size=256, draws=None):
  """(bits/dim, PNG bits/dim) as float64 arrays [N] of uint8 `images` under `model`.

  `draws`: the fixed dequantisation draws [K, H, W, C] of the likelihood estimate; default
  `likelihood.default_draws`, those of an export that is given none.
  """
  if draws is None:
    draws = likelihood.default_draws(model.config)
  bits, png = [], []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    chunk_labels = None
    if model.config.num_classes:
      chunk_labels = tf.constant(labels[start:start + batch_size], tf.int32)
    nats = model.log_likelihood(chunk, chunk_labels, noise=draws)
    bits.append(likelihood.bits_per_dim(nats, model.config.num_dims).numpy())
    png.append(png_bits_per_dim(chunk).numpy())
  return np.concatenate(bits).astype(np.float64), np.concatenate(png).astype(np.float64)


def reference_statistics(model, images, labels=None, batch_size=256, draws=None):
  """The `Reference` of held-out uint8 `images` (at least 2) under `model` (`measure`)."""
  if len(images) < 2:
    raise ValueError(f"Reference statistics need at least 2 held-out images; got "
                     f"{len(images)}.")
  bits, png = measure(model, images, labels, batch_size, draws)
  pairs = np.stack([bits, png], axis=1)
  covariance = np.cov(pairs, rowvar=False) + _COVARIANCE_RIDGE * np.eye(2)
  partial = Reference(
      bits_per_dim_mean=bits.mean(), bits_per_dim_std=bits.std(ddof=1),
      bits_per_dim_quantiles=np.quantile(bits, QUANTILES), png_mean=png.mean(),
      png_std=png.std(ddof=1), png_quantiles=np.quantile(png, QUANTILES),
      mean=pairs.mean(axis=0), inverse_covariance=np.linalg.inv(covariance),
      heldout_ood_scores=np.zeros([1]))
  partial = Reference(**{k: np.asarray(v, np.float32) for k, v in partial.as_dict().items()})
  own = np.sort(scores(bits, png, partial)["ood_score"].numpy())
  return dataclasses.replace(partial, heldout_ood_scores=own)


def score_images(model, images, labels, reference, batch_size=256, draws=None):
  """Every score of `SCORES` as numpy arrays [N] of uint8 `images`, by name (`measure`)."""
  bits, png = measure(model, images, labels, batch_size, draws)
  return {name: value.numpy() for name, value in scores(bits, png, reference).items()}


def auroc(inlier, outlier):
  """Area under the ROC curve of telling `outlier` scores from `inlier` ones (higher = out).

  The rank statistic P(out > in) + P(out == in) / 2 over all pairs; NaN counts as +inf.
  """
  inlier = np.sort(np.nan_to_num(np.asarray(inlier, np.float64), nan=np.inf))
  outlier = np.nan_to_num(np.asarray(outlier, np.float64), nan=np.inf)
  below = np.searchsorted(inlier, outlier, side="left")
  tied = np.searchsorted(inlier, outlier, side="right") - below
  return float((below + 0.5 * tied).sum() / (len(inlier) * len(outlier)))
