"""Out-of-distribution scores of images under a Glow, from one forward pass (two with a
background model).

A flow's likelihood alone ranks the wrong inputs as typical: simple images (constant,
near-black) get higher likelihood than the training data (Nalisnick et al., 2019). The
scores here, higher = less like the training data (the first four and the ratio in bits per
dimension, the distance and ood_score without a unit):

  bits_per_dim          -log2 P(x) / D, the model's code length of the discrete image,
                        estimated with fixed dequantisation draws (`glow_tfp.likelihood`);
  png_bits_per_dim      L(x) / D, the length of the PNG (zlib level 9) of the uint8 image;
  complexity_corrected  bits_per_dim - png_bits_per_dim: S(x) of Serra et al. (2020) per
                        dimension (how many bits the model saves over a generic compressor,
                        negated);
  typicality            |bits_per_dim - mean held-out bits_per_dim|;
  level_distance        the Mahalanobis distance of the per-level features (each level's
                        latent and log-det terms of `Glow.level_log_probs` in bits/dim, and
                        png_bits_per_dim) to the held-out images' mean and covariance: the
                        first level scores local statistics, the last the global shape
                        (Schirrmeister et al., 2020; Kirichenko et al., 2020), so an image
                        of digit-like strokes that is not one digit is far on the last;
  likelihood_ratio      with a background model (`background`): bits_per_dim - its
                        bits_per_dim (Ren et al., 2019: a model of perturbed training images
                        scores local statistics alone, and the ratio cancels them);
  class_inconsistency   of a class-conditional model: how many bits/dim the image would
                        save if each position of the top latent could pick its own class,
                        sum_p max_y log p(z_p | y) - max_y sum_p log p(z_p | y) over the
                        positions p, divided by D log 2 (`class_inconsistency`). It is 0
                        when one class explains every position best; a digit's positions
                        agree on its class, while two half digits, two overlaid digits or
                        strokes that are no digit leave positions that another class
                        explains better;
  template_inconsistency with style templates of training images (`fit_templates`): the
                        same gain with templates for classes, each a k-means cluster of a
                        class's top latents (before the top prior) with its mean and
                        standard deviation. A class has several styles (a 7 with and
                        without a bar), so a digit's positions agree on one of its class's
                        templates more closely than on the top prior's one template per
                        class, while the positions of half digits or stray strokes still
                        disagree;
  ood_score             the sum over the tests (level_distance; likelihood_ratio with a
                        background model; class_inconsistency of a class-conditional model;
                        template_inconsistency with templates; typicality) of z = (test -
                        its held-out mean) / its held-out standard deviation, so that tests
                        that are each a little unusual add up. Typicality adds only
                        max(0, z - z_q), its part above z_q, the `TYPICALITY_QUANTILE`
                        quantile of its fit-half values: it sees images far too simple or
                        too complex (a shrunk digit), and within the held-out range its
                        noise would blur the tests that see near misses;
  ood_percentile        percentage of held-out (check) images whose ood_score is <= this
                        one's;
and the decision at a chosen false-positive rate F:
  is_ood                  ood_score > the threshold (a non-finite ood_score is OOD);
  ood_false_positive_rate the fraction of held-out (check) images above the threshold.

The held-out images are split in alternate halves (`split`): the fit half gives the mean,
covariance and the threshold, the k-th smallest of its n scores with
k = ceil((1 - F)(n + 1)) capped at n (`threshold_rank`); the check half, used for neither,
gives the percentiles and measures the threshold's false-positive rate.

`Reference` holds what the scores need from held-out images (`reference_statistics`); the
scoring itself (`scores`) is TensorFlow ops on tensors, so a SavedModel can serve it.
"""

import dataclasses
import statistics

import numpy as np
import sklearn.cluster
import tensorflow as tf

from glow_tfp import likelihood

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SCORES = ("bits_per_dim", "png_bits_per_dim", "complexity_corrected", "typicality",
          "level_distance", "ood_score", "ood_percentile")
# The score that only an export with a background model has.
BACKGROUND_SCORES = ("likelihood_ratio",)
# The score that only a class-conditional model has.
CONDITIONAL_SCORES = ("class_inconsistency",)
# The score that only an export with templates of training images has.
TEMPLATE_SCORES = ("template_inconsistency",)
# Style templates per class (`fit_templates`), and the least standard deviation of a
# template's value: a cluster of near-equal latents would otherwise make any other value at
# that place almost impossible.
TEMPLATES_PER_CLASS = 8
TEMPLATE_STD_FLOOR = 0.05
# The quantile of the fit half's typicality above which it adds to ood_score.
TYPICALITY_QUANTILE = 0.8
# The decision at the export's false-positive rate: is_ood bool [N], and the rate measured
# on held-out images, float32 [N] (one value, repeated per image).
DECISIONS = ("is_ood", "ood_false_positive_rate")
OUTPUTS = SCORES + DECISIONS
DEFAULT_FALSE_POSITIVE_RATE = 0.01
FALSE_POSITIVE_RATE_RULE = "a fraction in (0, 0.5]"
PNG_COMPRESSION = 9
# Added to the covariance's diagonal, so images that all share one PNG length still give an
# invertible covariance.
_COVARIANCE_RIDGE = 1e-6
# The least standard deviation a test is divided by: a test constant on the held-out images
# (a background model equal to the model) then standardises to 0 rather than NaN.
_STD_FLOOR = 1e-6


@dataclasses.dataclass(frozen=True)
class Reference:
  """Statistics of held-out images that the scores are measured against.

  The held-out images are split in two (`split`): the fit half gives every statistic and
  the threshold, the check half the percentiles and the measured false-positive rate.

  Attributes (float32 arrays):
    bits_per_dim_mean, bits_per_dim_std, bits_per_dim_quantiles: of the fit half's
      bits/dim, the quantiles at `QUANTILES`;
    png_mean, png_std, png_quantiles: the same of its PNG bits/dim;
    mean [F], inverse_covariance [F, F]: of the fit half's per-level features and PNG
      bits/dim (`distance_features`), for level_distance;
    test_mean [T], test_std [T]: of the fit half's tests (`tests`, named by `test_names`),
      which ood_score standardises;
    test_floor [T]: the standardised value above which each test adds to ood_score: -inf
      (all of it) for every test but typicality, whose floor is its fit half's
      `TYPICALITY_QUANTILE` quantile;
    heldout_ood_scores [M]: the check half's ood_score, ascending, for the percentile;
    ood_threshold []: is_ood is ood_score > ood_threshold (`threshold`);
    target_false_positive_rate []: the F the threshold was chosen for;
    heldout_false_positive_rate []: the fraction of the check half above the threshold.
  """

  bits_per_dim_mean: np.ndarray
  bits_per_dim_std: np.ndarray
  bits_per_dim_quantiles: np.ndarray
  png_mean: np.ndarray
  png_std: np.ndarray
  png_quantiles: np.ndarray
  mean: np.ndarray
  inverse_covariance: np.ndarray
  test_mean: np.ndarray
  test_std: np.ndarray
  test_floor: np.ndarray
  heldout_ood_scores: np.ndarray
  ood_threshold: np.ndarray
  target_false_positive_rate: np.ndarray
  heldout_false_positive_rate: np.ndarray

  def as_dict(self):
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Templates:
  """Style templates of a model's top latent (`fit_templates`): `means` and `stds`
  [T, h, w, c] (float32 arrays, or variables in an export), one template per row."""

  means: np.ndarray
  stds: np.ndarray


def png_bits_per_dim(images):
  """Bits per dimension [N] of each uint8 image [N, H, W, C] as a PNG (zlib level 9)."""
  images = tf.convert_to_tensor(images, tf.uint8)
  num_dims = tf.cast(tf.reduce_prod(tf.shape(images)[1:]), tf.float32)
  lengths = tf.map_fn(
      lambda image: tf.strings.length(tf.io.encode_png(image, compression=PNG_COMPRESSION)),
      images, fn_output_signature=tf.int32)
  return 8.0 * tf.cast(lengths, tf.float32) / num_dims


def optional_tests(background=False, conditional=False, templates=False):
  """The tests that are columns of the feature matrix (`features`): likelihood_ratio with a
  background model, class_inconsistency of a class-conditional model scored without
  labels, template_inconsistency with templates."""
  return ((BACKGROUND_SCORES if background else ())
          + (CONDITIONAL_SCORES if conditional else ())
          + (TEMPLATE_SCORES if templates else ()))


def test_names(background=False, conditional=False, templates=False):
  """The tests whose standardised sum is ood_score, in the order of `tests`:
  level_distance, the `optional_tests`, typicality."""
  return (("level_distance",) + optional_tests(background, conditional, templates)
          + ("typicality",))


def feature_names(levels, background=False, conditional=False, templates=False):
  """The columns of the feature matrix (`features`) of an L-level model: bits/dim, PNG
  bits/dim, the `optional_tests`, then the per-level terms."""
  return (["bits_per_dim", "png_bits_per_dim"]
          + list(optional_tests(background, conditional, templates))
          + [f"level{level}_{term}_bits_per_dim" for level in range(levels)
             for term in ("latent", "log_det")])


def class_inconsistency(class_positions, num_dims):
  """(sum_p max_y l[p, y] - max_y sum_p l[p, y]) / (D log 2) [N] of `class_positions`
  l = log p(z_p | y) [N, K, h, w] (`Glow.level_log_probs`; or of templates y,
  `template_positions`), D = `num_dims`: >= 0, and 0 when one class y is the most likely
  at every position p."""
  class_positions = tf.cast(class_positions, tf.float32)
  each_own = tf.reduce_sum(tf.reduce_max(class_positions, axis=1), axis=[1, 2])
  one_for_all = tf.reduce_max(tf.reduce_sum(class_positions, axis=[2, 3]), axis=1)
  return (each_own - one_for_all) / (tf.cast(num_dims, tf.float32) * np.log(2.0))


def features(images, bits_per_dim, level_terms, background_bits_per_dim=None,
             class_positions=None, template_positions=None):
  """The feature matrix float32 [N, F] of uint8 `images`, columns as `feature_names` says.

  `bits_per_dim` [N]: their bits/dim under the model; `level_terms` [N, L, 2]: its
  `Glow.level_log_probs` in nats, which become bits/dim (sign flipped, so that higher is
  less likely, like bits_per_dim); `background_bits_per_dim` [N]: their bits/dim under a
  background model, or None; `class_positions` [N, K, h, w]: a class-conditional model's
  log p(top latent at each position | y) (`Glow.level_log_probs`), or None;
  `template_positions` [N, T, h, w]: the same under each template (`template_positions`,
  at the draw the templates were fitted at), or None.
  """
  bits_per_dim = tf.cast(bits_per_dim, tf.float32)
  num_dims = tf.cast(tf.reduce_prod(tf.shape(images)[1:]), tf.float32)
  level_bits = -tf.cast(level_terms, tf.float32) / (num_dims * np.log(2.0))
  columns = [bits_per_dim[:, tf.newaxis], png_bits_per_dim(images)[:, tf.newaxis]]
  if background_bits_per_dim is not None:
    ratio = bits_per_dim - tf.cast(background_bits_per_dim, tf.float32)
    columns.append(ratio[:, tf.newaxis])
  if class_positions is not None:
    columns.append(class_inconsistency(class_positions, num_dims)[:, tf.newaxis])
  if template_positions is not None:
    columns.append(class_inconsistency(template_positions, num_dims)[:, tf.newaxis])
  columns.append(tf.reshape(level_bits, [tf.shape(level_bits)[0], -1]))
  return tf.concat(columns, axis=1)


def distance_features(matrix, num_tests):
  """The columns of `matrix` whose Mahalanobis distance is level_distance: PNG bits/dim and
  the per-level terms (the total bits/dim is their sum; each other test stands alone)."""
  matrix = tf.convert_to_tensor(matrix, tf.float32)
  # Bits/dim, PNG bits/dim and the T - 2 optional tests come before the per-level terms.
  return tf.concat([matrix[:, 1:2], matrix[:, num_tests:]], axis=1)


def tests(matrix, num_tests, mean, inverse_covariance, bits_per_dim_mean):
  """The `num_tests` tests [N, T] of `matrix`, in the order of `test_names`:
  level_distance, the optional tests (columns 2 to T - 1 of the matrix), typicality
  |bits/dim - `bits_per_dim_mean`|."""
  matrix = tf.convert_to_tensor(matrix, tf.float32)
  distance = mahalanobis(distance_features(matrix, num_tests), mean, inverse_covariance)
  others = matrix[:, 2:num_tests]
  typicality = tf.abs(matrix[:, 0] - bits_per_dim_mean)
  return tf.concat([distance[:, tf.newaxis], others, typicality[:, tf.newaxis]], axis=1)


def mahalanobis(matrix, mean, inverse_covariance):
  """The Mahalanobis distance [N] of each row of `matrix` [N, F]; +inf where not finite."""
  offset = tf.cast(matrix, tf.float32) - mean
  squared = tf.einsum("ni,ij,nj->n", offset, inverse_covariance, offset)
  distance = tf.sqrt(tf.maximum(squared, 0.0))
  return tf.where(tf.math.is_finite(distance), distance, np.inf)


def scores(matrix, reference, names=test_names()):
  """Every output of `OUTPUTS` and the tests `names` ([N] tensors, by name) from the
  feature matrix [N, F].

  `matrix`: `features` of the images; `reference`: a `Reference`, or any object with its
  attributes as tensors or variables; `names`: its tests (`test_names`). A non-finite
  feature gives an infinite ood_score (percentile 100), and a non-finite ood_score is OOD.
  """
  matrix = tf.convert_to_tensor(matrix, tf.float32)
  num_tests = reference.test_mean.shape[0]
  if num_tests != len(names):
    raise ValueError(f"The reference statistics have {num_tests} tests; the scores were "
                     f"asked for {len(names)}: {', '.join(names)}.")
  bits_per_dim, png = matrix[:, 0], matrix[:, 1]
  measured = tests(matrix, num_tests, reference.mean, reference.inverse_covariance,
                   reference.bits_per_dim_mean)
  standardised = (measured - reference.test_mean) / reference.test_std
  finite = tf.reduce_all(tf.math.is_finite(standardised), axis=1)
  floor = tf.convert_to_tensor(reference.test_floor, tf.float32)
  added = tf.where(floor > -np.inf, tf.nn.relu(standardised - floor), standardised)
  ood_score = tf.where(finite, tf.reduce_sum(added, axis=1), np.inf)
  heldout = tf.convert_to_tensor(reference.heldout_ood_scores)
  below = tf.searchsorted(heldout[tf.newaxis], ood_score[tf.newaxis], side="right")[0]
  outputs = {
      "bits_per_dim": bits_per_dim,
      "png_bits_per_dim": png,
      "complexity_corrected": bits_per_dim - png,
      "ood_score": ood_score,
      "ood_percentile": 100.0 * tf.cast(below, tf.float32) / tf.cast(tf.size(heldout),
                                                                    tf.float32),
      "is_ood": (ood_score > reference.ood_threshold) | ~finite,
      "ood_false_positive_rate": tf.fill(
          tf.shape(ood_score), tf.cast(reference.heldout_false_positive_rate, tf.float32)),
  }
  outputs.update({name: measured[:, i] for i, name in enumerate(names)})
  return outputs


def check_background(model, background):
  """Raises ValueError unless `background` can give `model`'s likelihood ratio: an
  unconditional model of the same image shape."""
  if background.config.image_shape != model.config.image_shape:
    raise ValueError(f"The background model takes images {background.config.image_shape}; "
                     f"the model takes {model.config.image_shape}.")
  if background.config.num_classes:
    raise ValueError("The background model must be unconditional (num_classes=0).")


def measure(model, images, labels=None, batch_size=256, draws=None, background=None,
            templates=None):
  """The feature matrix (`features`) of uint8 `images` under `model`: float64 [N, F].

  `draws`: the fixed dequantisation draws [K, H, W, C] of the likelihood estimate; default
  `likelihood.default_draws`, those of an export that is given none. `background`: a
  background `Glow` for the likelihood ratio, or None; it gets the same draws.
  `templates`: the `Templates` of template_inconsistency (`fit_templates`), or None.
  """
  if background is not None:
    check_background(model, background)
  if draws is None:
    draws = likelihood.default_draws(model.config)
  chunks = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    chunk_labels = None
    if model.config.num_classes and labels is not None:
      chunk_labels = tf.constant(labels[start:start + batch_size], tf.int32)
    chunks.append(image_features(model, chunk, chunk_labels, draws, background,
                                 templates=templates))
  return np.concatenate([c.numpy() for c in chunks]).astype(np.float64)


def image_features(model, images, labels, draws, background=None, in_parts=None,
                   templates=None):
  """`features` of uint8 `images` (a tensor) under `model`, `background` and `templates`,
  as `score` serves them: `in_parts(fn, inputs)` runs each model call (default: one
  call)."""
  in_parts = in_parts or (lambda fn, inputs: fn(*inputs))
  positions = "class_inconsistency" in model_test_names(model, labels)

  def level_values(batch_images, batch_labels):
    values = likelihood.level_log_likelihood(
        model, batch_images, batch_labels, noise=draws, class_positions=positions,
        top_latent=templates is not None)
    if templates is None:
      return values
    # The top latent moves with the dequantisation draw as much as between images, so the
    # templates, fitted at the first draw, score that draw alone.
    *values, top = values
    return (*values, template_positions(top[0], templates))

  values = in_parts(level_values, (images, labels))
  nats, terms, *maps = values
  background_bits = None
  if background is not None:
    background_nats = in_parts(
        lambda i: likelihood.log_likelihood(background, i, noise=draws), (images,))
    background_bits = likelihood.bits_per_dim(background_nats, model.config.num_dims)
  return features(images, likelihood.bits_per_dim(nats, model.config.num_dims), terms,
                  background_bits, maps.pop(0) if positions else None,
                  maps.pop(0) if templates is not None else None)


def model_test_names(model, labels=None, background=None, templates=None):
  """The `test_names` of images scored by `model` with `labels` (None: without),
  `background` (a `Glow`, or None) and `templates` (`Templates`, or None):
  class_inconsistency needs a class-conditional model scoring without labels."""
  return test_names(background is not None,
                    bool(model.config.num_classes) and labels is None,
                    templates is not None)


def fit_templates(model, images, labels=None, batch_size=256, draws=None,
                  per_class=TEMPLATES_PER_CLASS, seed=0):
  """The `Templates` of uint8 training `images`: their top latents before the top prior
  (at the first of `draws`, default `likelihood.default_draws`), each class's (all of
  them when `labels` is None) in `per_class` k-means clusters (fewer where a class has
  fewer images), each cluster's mean and standard deviation plus `TEMPLATE_STD_FLOOR`."""
  latents = top_latents(model, images, batch_size, draws)
  labels = np.zeros(len(latents), int) if labels is None else np.asarray(labels)
  means, stds = [], []
  for label, kmeans in class_clusters(latents, labels, per_class, seed).items():
    group = latents[labels == label]
    for cluster in np.unique(kmeans.labels_):
      members = group[kmeans.labels_ == cluster]
      means.append(members.mean(axis=0))
      stds.append(members.std(axis=0) + TEMPLATE_STD_FLOOR)
  return Templates(np.stack(means).astype(np.float32), np.stack(stds).astype(np.float32))


def class_clusters(latents, labels, per_class, seed=0):
  """{class: its k-means, fitted to the class's `latents` flattened}: `per_class` clusters
  per class of `labels` (fewer where a class has fewer latents)."""
  clusters = {}
  for label in np.unique(labels):
    group = latents[labels == label]
    clusters[int(label)] = sklearn.cluster.KMeans(
        min(per_class, len(group)), n_init=4, random_state=seed).fit(
            group.reshape(len(group), -1))
  return clusters


def top_latents(model, images, batch_size=256, draws=None):
  """The top latents before the top prior, float64 [N, h, w, c], of uint8 `images` at the
  first of `draws` (default `likelihood.default_draws`)."""
  if draws is None:
    draws = likelihood.default_draws(model.config)
  return np.concatenate([
      likelihood.level_log_likelihood(model, tf.constant(images[start:start + batch_size]),
                                      noise=draws[:1], top_latent=True)[-1][0].numpy()
      for start in range(0, len(images), batch_size)]).astype(np.float64)


def template_positions(top_latents, templates):
  """log N(top latent at each position; template t) [N, T, h, w] of `top_latents`
  [N, h, w, c] under each of the `Templates`, summed over channels."""
  means = tf.convert_to_tensor(templates.means, tf.float32)
  stds = tf.convert_to_tensor(templates.stds, tf.float32)
  standardised = (tf.cast(top_latents, tf.float32)[:, tf.newaxis] - means) / stds
  return tf.reduce_sum(-0.5 * tf.square(standardised) - tf.math.log(stds)
                       - 0.5 * np.log(2.0 * np.pi), axis=-1)


def class_log_likelihoods(model, images, batch_size=256, draws=None):
  """log P(x | y) float64 [N, K] of uint8 `images` under a class-conditional `model`, for
  each of its K classes y, estimated with the fixed `draws` (default
  `likelihood.default_draws`), as `measure` estimates log P(x)."""
  if not model.config.num_classes:
    raise ValueError("The class posterior needs a class-conditional model (num_classes > 0).")
  if draws is None:
    draws = likelihood.default_draws(model.config)
  chunks = [likelihood.class_log_likelihood(model, tf.constant(images[start:start + batch_size]),
                                            noise=draws).numpy()
            for start in range(0, len(images), batch_size)]
  return np.concatenate(chunks).astype(np.float64)


def class_doubt(class_log_likelihoods):
  """1 - max_y P(y | x) [N] of `class_log_likelihoods` [N, K]: the posterior under equal
  class priors, P(y | x) = softmax over y of log P(x | y). 0 when one class explains the
  image far better than the rest; (K - 1) / K when all explain it equally."""
  values = np.asarray(class_log_likelihoods, np.float64)
  shifted = np.exp(values - values.max(axis=1, keepdims=True))
  return 1.0 - 1.0 / shifted.sum(axis=1)


def is_valid_false_positive_rate(rate):
  """Whether `rate` is a false-positive rate a threshold may be chosen for: 0 < rate <= 0.5."""
  return isinstance(rate, (int, float, np.floating)) and 0.0 < rate <= 0.5


def check_false_positive_rate(rate):
  """Raises ValueError unless `is_valid_false_positive_rate(rate)`."""
  if not is_valid_false_positive_rate(rate):
    raise ValueError(f"The OOD false-positive rate must be {FALSE_POSITIVE_RATE_RULE}; got "
                     f"{rate!r}.")


def split(count):
  """(fit, check) index arrays of `count` held-out images: even and odd positions.

  Alternating is deterministic and keeps both halves alike when the images come in some
  order (by class, by source); the fit half has the extra image of an odd count.
  """
  indices = np.arange(count)
  return indices[0::2], indices[1::2]


def threshold_rank(count, rate):
  """k = ceil((1 - rate)(count + 1)), capped at `count`: the rank (1-based, ascending) of
  the fit score that is the threshold.

  For a new image whose score is exchangeable with the `count` fit scores, P(score > the
  k-th smallest) = (count + 1 - k) / (count + 1) <= rate when `count` is at least
  `min_fit_count(rate)`; with fewer the cap makes the threshold the largest fit score, whose
  rate is 1 / (count + 1).
  """
  check_false_positive_rate(rate)
  return min(count, _ceil((1.0 - rate) * (count + 1)))


def min_fit_count(rate):
  """The fewest fit scores whose `threshold_rank` needs no cap: ceil((1 - rate) / rate)."""
  check_false_positive_rate(rate)
  return _ceil((1.0 - rate) / rate)


def _ceil(value):
  # Rounding first keeps float error (1 - 0.01) * 100 = 98.99999999999999 from moving ceil.
  return int(np.ceil(np.round(value, 9)))


def threshold(fit_scores, rate):
  """The `threshold_rank`-th smallest of `fit_scores`: about `rate` of new in-distribution
  images score above it."""
  fit_scores = np.sort(np.asarray(fit_scores, np.float64))
  return fit_scores[threshold_rank(len(fit_scores), rate) - 1]


def fit(fit_matrix, check_matrix, false_positive_rate=DEFAULT_FALSE_POSITIVE_RATE,
        names=test_names()):
  """The `Reference` of a fit and a check feature matrix ([N, F] and [M, F]; `features`,
  with the columns of the tests `names`, as `test_names` gives them).

  The mean, covariance, test and bits/dim and PNG statistics and the threshold come from
  the fit rows alone; the percentiles and the measured false-positive rate from the check
  rows.
  """
  fit_matrix = np.asarray(fit_matrix, np.float64)
  check_matrix = np.asarray(check_matrix, np.float64)
  check_false_positive_rate(false_positive_rate)
  if len(fit_matrix) < 2 or len(check_matrix) < 1:
    raise ValueError(f"Reference statistics need at least 2 images to fit and 1 to check; "
                     f"got {len(fit_matrix)} and {len(check_matrix)}.")
  num_tests = len(names)
  bits, png = fit_matrix[:, 0], fit_matrix[:, 1]
  distance_matrix = distance_features(fit_matrix, num_tests).numpy()
  num_features = distance_matrix.shape[1]
  covariance = (np.cov(distance_matrix, rowvar=False).reshape(num_features, num_features)
                + _COVARIANCE_RIDGE * np.eye(num_features))
  # The statistics as `scores` serves them: float32.
  mean = distance_matrix.mean(axis=0).astype(np.float32)
  inverse = np.linalg.inv(covariance).astype(np.float32)
  fit_tests = tests(fit_matrix, num_tests, mean, inverse,
                    np.float32(bits.mean())).numpy().astype(np.float64)
  test_mean = fit_tests.mean(axis=0)
  test_std = np.maximum(fit_tests.std(axis=0, ddof=1), _STD_FLOOR)
  test_floor = np.full(num_tests, -np.inf)
  test_floor[-1] = np.quantile((fit_tests[:, -1] - test_mean[-1]) / test_std[-1],
                               TYPICALITY_QUANTILE)
  partial = Reference(
      bits_per_dim_mean=bits.mean(), bits_per_dim_std=bits.std(ddof=1),
      bits_per_dim_quantiles=np.quantile(bits, QUANTILES), png_mean=png.mean(),
      png_std=png.std(ddof=1), png_quantiles=np.quantile(png, QUANTILES), mean=mean,
      inverse_covariance=inverse, test_mean=test_mean, test_std=test_std,
      test_floor=test_floor, heldout_ood_scores=np.zeros([1]),
      ood_threshold=np.inf, target_false_positive_rate=false_positive_rate,
      heldout_false_positive_rate=0.0)
  partial = Reference(**{k: np.asarray(v, np.float32) for k, v in partial.as_dict().items()})
  cut = threshold(scores(fit_matrix, partial, names)["ood_score"].numpy(), false_positive_rate)
  check = np.sort(scores(check_matrix, partial, names)["ood_score"].numpy())
  return dataclasses.replace(
      partial, heldout_ood_scores=check, ood_threshold=np.float32(cut),
      heldout_false_positive_rate=np.float32(np.mean((check > cut) | ~np.isfinite(check))))


def reference_statistics(model, images, labels=None, batch_size=256, draws=None,
                         false_positive_rate=DEFAULT_FALSE_POSITIVE_RATE, background=None,
                         templates=None):
  """The `Reference` of held-out uint8 `images` (at least 3) under `model` (`measure`),
  split into a fit and a check half by `split`, its threshold at `false_positive_rate`.
  `background`: the background `Glow` of the likelihood ratio, or None; `templates`: the
  `Templates` of template_inconsistency, or None."""
  check_false_positive_rate(false_positive_rate)
  if len(images) < 3:
    raise ValueError(f"Reference statistics need at least 3 held-out images (2 to fit, 1 "
                     f"to check); got {len(images)}.")
  matrix = measure(model, images, labels, batch_size, draws, background, templates)
  fit_rows, check_rows = split(len(images))
  return fit(matrix[fit_rows], matrix[check_rows], false_positive_rate,
             model_test_names(model, labels, background, templates))


def score_images(model, images, labels, reference, batch_size=256, draws=None,
                 background=None, templates=None):
  """Every output of `scores` as numpy arrays [N] of uint8 `images`, by name (`measure`)."""
  matrix = measure(model, images, labels, batch_size, draws, background, templates)
  names = model_test_names(model, labels, background, templates)
  return {name: value.numpy() for name, value in scores(matrix, reference, names).items()}


def auroc(inlier, outlier):
  """Area under the ROC curve of telling `outlier` scores from `inlier` ones (higher = out).

  The rank statistic P(out > in) + P(out == in) / 2 over all pairs; NaN counts as +inf.
  """
  return float(_placements(outlier, inlier).mean())


def auroc_interval(inlier, outlier, level=0.95):
  """(low, high): the `level` confidence interval of `auroc(inlier, outlier)` for new
  draws of both sets, from DeLong et al.'s (Biometrics, 1988) variance of the rank
  statistic, S_out / m + S_in / n, and a normal approximation, clipped to [0, 1].

  S_out is the sample variance over the m outliers of each one's share of inliers below it
  (ties count half), S_in the same over the n inliers of the share of outliers above each.
  A perfect separation gives the point (1, 1) (and none, (0, 0)): the variance of these
  draws is 0, which says nothing about images beyond them.
  """
  if not 0.0 < level < 1.0:
    raise ValueError(f"The confidence level must be in (0, 1); got {level!r}.")
  per_outlier = _placements(outlier, inlier)
  per_inlier = 1.0 - _placements(inlier, outlier)
  if min(len(per_outlier), len(per_inlier)) < 2:
    raise ValueError("An AUROC interval needs at least 2 inlier and 2 outlier scores.")
  variance = (per_outlier.var(ddof=1) / len(per_outlier)
              + per_inlier.var(ddof=1) / len(per_inlier))
  half_width = statistics.NormalDist().inv_cdf(0.5 + level / 2.0) * float(np.sqrt(variance))
  centre = float(per_outlier.mean())
  return max(0.0, centre - half_width), min(1.0, centre + half_width)


def _placements(values, others):
  """For each of `values`, the share of `others` below it, ties counting half (NaN counts
  as +inf in both): float64 [len(values)]."""
  others = np.sort(np.nan_to_num(np.asarray(others, np.float64), nan=np.inf))
  values = np.nan_to_num(np.asarray(values, np.float64), nan=np.inf)
  below = np.searchsorted(others, values, side="left")
  tied = np.searchsorted(others, values, side="right") - below
  return (below + 0.5 * tied) / len(others)
