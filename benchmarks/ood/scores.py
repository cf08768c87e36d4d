"""The candidate out-of-distribution scores of `python -m benchmarks.ood.candidates` and their
AUROC table (that module's docstring says what each candidate is)."""

import numpy as np
import tensorflow as tf

from benchmarks.common import report
from glow_tfp import likelihood
from glow_tfp import model_space
from glow_tfp import ood
from glow_tfp import sample_quality
from glow_tfp.bijectors import split
from train.ood_sources import group

_RIDGE = 1e-3


def latent_maps(model, images, draw):
  """The code length in nats of each level's factored-out latent at each position, summed
  over channels, as one row per image: float64 [N, features]. The first level is pooled
  2x2 (its map is the largest); a class-conditional top is weighted by the class posterior
  P(y | x), which only the top depends on."""
  x = model_space.to_model_space(tf.constant(images), model.config.n_bits, noise=draw)
  rows = []
  # The private walk over levels of `Glow`: its public terms are summed over positions.
  for tail, y, _ in model._levels(x, None):  # pylint: disable=protected-access
    if isinstance(tail, split.Split):
      h, z, _ = tail.factor_out(y)
      lengths = _code_length(z, tail._prior(h)[1])  # pylint: disable=protected-access
    elif model.config.num_classes:
      per_class = -tail.class_position_log_probs(y)
      posterior = tf.nn.softmax(-tf.reduce_sum(per_class, axis=[2, 3]), axis=1)
      lengths = tf.einsum("nk,nkhw->nhw", posterior, per_class)
    else:
      z, _ = tail.inverse_and_log_det(y)
      lengths = _code_length(z, tail._prior(None)[1])  # pylint: disable=protected-access
    if not rows:
      lengths = tf.nn.avg_pool2d(lengths[..., tf.newaxis], 2, 2, "VALID") * 4.0
    rows.append(tf.reshape(lengths, [len(images), -1]))
  return tf.concat(rows, axis=1).numpy().astype(np.float64)


def _code_length(z, log_std):
  """-log N(z; 0, 1) + log std (the standardisation's share), summed over channels."""
  return tf.reduce_sum(0.5 * tf.square(z) + 0.5 * np.log(2.0 * np.pi) + log_std, axis=-1)


def distance(reference_rows, rows):
  """The Mahalanobis distance [N] of `rows` to the mean and ridged covariance of
  `reference_rows`."""
  covariance = np.atleast_2d(np.cov(reference_rows, rowvar=False))
  covariance += _RIDGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
  return ood.mahalanobis(rows, reference_rows.mean(axis=0).astype(np.float32),
                         np.linalg.inv(covariance).astype(np.float32)).numpy()


def candidate_features(model, classifier, images, batch_size, draws):
  """({candidate: rows [N, F]} of the distance candidates of uint8 `images`, the
  classifier's class probabilities [N, K]); `draws` [K, H, W, C]: the fixed dequantisation
  draws (the latent maps are of the first)."""
  probabilities, classifier_features = classifier.predict(images, batch_size)
  features = {
      "latent_maps": np.concatenate([latent_maps(model, images[s:s + batch_size], draws[0])
                                     for s in range(0, len(images), batch_size)]),
      "classifier_features": classifier_features}
  if model.config.num_classes:
    features["class_log_likelihoods"] = ood.class_log_likelihoods(model, images, batch_size,
                                                                  draws)
  return features, probabilities


# A score of `ood.scores` that ood_score does not use, a candidate added to it.
_EXTRA_TESTS = ("complexity_corrected",)
# Other quantiles of the fit half above which typicality could count (the served one is
# `ood.TYPICALITY_QUANTILE`).
TAIL_QUANTILES = (0.9, 0.95)


def _columns(matrix, reference, names):
  """`ood.scores` of feature rows `matrix`: ood_score [N] and the tests `names`, then
  `_EXTRA_TESTS` [N, T]."""
  scored = ood.scores(matrix, reference, names)
  return (scored["ood_score"].numpy(),
          np.stack([scored[name].numpy() for name in names + _EXTRA_TESTS], axis=1))


def measure(model, classifier, reference_images, inliers, sources, batch_size, background,
            draws=None, training=None):
  """{source: {"auroc": {candidate: AUROC against `inliers`}, "legible_fraction": f,
  "illegible_ood_score_auroc": ood_score's AUROC on the source's images the classifier does
  not read as a digit (NaN if none)}} over `sources` ({name: images}), and
  "in-distribution": {"legible_fraction": f}. `draws`: the fixed dequantisation draws
  [K, H, W, C] (default `likelihood.default_draws`). `training`: (uint8 images, labels)
  that ood_score's style templates are fitted on (`ood.fit_templates`), or None for a
  score without them."""
  if draws is None:
    draws = likelihood.default_draws(model.config)
  templates = (None if training is None
               else ood.fit_templates(model, *training, batch_size, draws))
  names = ood.model_test_names(model, None, background, templates)
  # `ood.reference_statistics`, keeping the fit half's rows to standardise the extra tests
  # on, as ood_score's own tests are.
  matrix = ood.measure(model, reference_images, None, batch_size, draws, background,
                       templates)
  fit_rows, check_rows = ood.split(len(reference_images))
  reference = ood.fit(matrix[fit_rows], matrix[check_rows], names=names)
  fit_columns = _columns(matrix[fit_rows], reference, names)[1]
  mean = np.concatenate([reference.test_mean, fit_columns[:, len(names):].mean(axis=0)])
  std = np.concatenate([reference.test_std, fit_columns[:, len(names):].std(axis=0, ddof=1)])
  fit_typicality = (fit_columns[:, len(names) - 1] - mean[len(names) - 1]) / std[len(names) - 1]
  floors = {q: np.quantile(fit_typicality, q) for q in TAIL_QUANTILES}
  fit = candidate_features(model, classifier, reference_images, batch_size, draws)[0]

  def scores(images):
    matrix = ood.measure(model, images, None, batch_size, draws, background, templates)
    ood_score, columns = _columns(matrix, reference, names)
    standardised = (columns - mean) / std
    # The tests in `ood.test_names` order: level_distance first, typicality last.
    tests, extra = standardised[:, :len(names)], standardised[:, len(names):]
    without = tests[:, :-1].sum(axis=1)
    out = {"ood_score": ood_score, "without_typicality": without,
           **{f"typicality_above_q{round(100 * q)}": without
              + np.maximum(tests[:, -1] - floor, 0.0) for q, floor in floors.items()},
           "whole_typicality": tests.sum(axis=1), "tests_max": tests.max(axis=1),
           "tests_and_complexity": ood_score + extra[:, 0]}
    out.update({name: tests[:, i] for i, name in enumerate(names[1:-1], start=1)})
    if templates is not None:
      out["without_templates"] = ood_score - tests[:, names.index("template_inconsistency")]
    rows, probabilities = candidate_features(model, classifier, images, batch_size, draws)
    legible = probabilities.max(axis=1) >= sample_quality.LEGIBLE_PROBABILITY
    return {**out, **{name: distance(fit[name], rows[name]) for name in rows}}, legible

  inlier_scores, inlier_legible = scores(inliers)
  results = {}
  for name, images in sources.items():
    values, legible = scores(images)
    illegible = values["ood_score"][~legible]
    results[name] = {
        "auroc": {c: ood.auroc(inlier_scores[c], v) for c, v in values.items()},
        "legible_fraction": float(legible.mean()),
        "illegible_ood_score_auroc": (ood.auroc(inlier_scores["ood_score"], illegible)
                                      if len(illegible) else float("nan"))}
  return {**results, "in-distribution": {"legible_fraction": float(inlier_legible.mean())}}


def markdown(results, env):
  sources = [name for name in results if "auroc" in results[name]]
  candidates = list(results[sources[0]]["auroc"])
  rows = [[name, group(name)]
          + [f"{results[name]['auroc'][c]:.3f}" for c in candidates]
          + [f"{results[name]['legible_fraction']:.3f}",
             f"{results[name]['illegible_ood_score_auroc']:.3f}"] for name in sources]
  rows.append(["in-distribution", "-"] + ["-"] * len(candidates)
              + [f"{results['in-distribution']['legible_fraction']:.3f}", "-"])
  return (report.environment_lines(env) + ["", "AUROC of each candidate against the "
                                           "in-distribution side; legible: the fraction the "
                                           "classifier reads as one digit; ood_score "
                                           "illegible: ood_score's AUROC on the rest.", ""]
          + report.table(["source", "group"] + candidates + ["legible",
                                                             "ood_score illegible"], rows))
