"""benchmarks/ood/scores.py: the candidate scores' features and their AUROC table."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from benchmarks.ood import scores
from glow_tfp import classifier as classifier_lib
from glow_tfp import likelihood
from glow_tfp import model_space
from glow_tfp import ood
from tests.checks import assert_close, perturb, random_images

SHAPE = (8, 8, 1)


def _model(num_classes=0):
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=4, num_classes=num_classes)
  glow = glow_tfp.Glow(config)
  labels = tf.constant([0, 1, 2, 0]) if num_classes else None
  glow.initialize(random_images((4,) + SHAPE), labels=labels)
  perturb(glow, scale=0.05)
  return glow


def _images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPE).astype(np.uint8)


def _level_code_lengths(glow, images, draw):
  """Per level, the latent's code length summed over positions, from the flow's own terms:
  -(log N(z) + the standardisation's log-det); a class-conditional top weighted by
  P(y | x)."""
  x = model_space.to_model_space(tf.constant(images), glow.config.n_bits, noise=draw)
  totals = []
  for normal, _, tail_log_det in glow._terms(x, None)[0]:
    per_class = normal + tail_log_det
    if len(per_class.shape) == 4:  # a class-conditional top: one map per class
      per_class = tf.reduce_sum(per_class, axis=[2, 3])
      per_class = tf.reduce_sum(tf.nn.softmax(per_class, axis=1) * per_class, axis=1)
    totals.append(-per_class.numpy())
  return totals


@pytest.mark.parametrize("num_classes", [0, 3])
def test_latent_maps_sum_to_each_levels_code_length(num_classes):
  glow, images = _model(num_classes), _images(5)
  draw = likelihood.default_draws(glow.config)[0]
  maps = scores.latent_maps(glow, images, draw)
  # 8x8x1 squeezes to 4x4x4; level 0 factors out a 4x4 map, pooled to 2x2; the top is 2x2.
  assert maps.shape == (5, 4 + 4)
  level0, top = _level_code_lengths(glow, images, draw)
  assert_close(maps[:, :4].sum(axis=1), level0, rtol=1e-5)
  assert_close(maps[:, 4:].sum(axis=1), top, rtol=1e-5)


def test_distance_is_zero_at_the_mean_and_grows_along_a_direction():
  rows = np.random.default_rng(0).normal(size=(200, 3))
  got = scores.distance(rows, np.stack([rows.mean(axis=0), rows.mean(axis=0) + 1.0,
                                            rows.mean(axis=0) + 3.0]))
  assert got[0] == pytest.approx(0.0, abs=1e-3)
  assert got[0] < got[1] < got[2]


def test_measure_gives_every_candidate_an_auroc_per_source():
  glow, background = _model(3), _model()
  classifier = classifier_lib.Classifier(SHAPE, 3, seed=0)
  sources = {"bright": np.full((6,) + SHAPE, 250, np.uint8), "noise": _images(6, seed=2)}
  results = scores.measure(glow, classifier, _images(8, seed=3), _images(6, seed=4),
                               sources, batch_size=4, background=background,
                               training=(_images(12, seed=6), np.arange(12) % 3))
  assert set(results) == {"bright", "noise", "in-distribution"}
  for name in ("bright", "noise"):
    aurocs = results[name]["auroc"]
    assert set(aurocs) == {"ood_score", "without_typicality", "typicality_above_q90",
                           "typicality_above_q95", "whole_typicality", "tests_max",
                           "tests_and_complexity", "likelihood_ratio", "class_inconsistency",
                           "template_inconsistency", "without_templates", "latent_maps",
                           "classifier_features", "class_log_likelihoods"}
    assert all(0.0 <= value <= 1.0 for value in aurocs.values())
  # An untrained classifier is sure of no class: every image is illegible, so the AUROC
  # on the illegible images is the whole source's.
  assert all(r["legible_fraction"] == 0.0 for r in results.values())
  for name in ("bright", "noise"):
    assert results[name]["illegible_ood_score_auroc"] == results[name]["auroc"]["ood_score"]
  lines = scores.markdown(results, {"date_utc": "d", "device": "CPU", "cpu_count": 2,
                                        "python": "3", "tensorflow": "2", "command": "c",
                                        "tensorflow_probability": "0"})
  assert lines[-5].startswith("| source | group | ood_score | without_typicality |")
  assert lines[-5].endswith("| legible | ood_score illegible |")
  assert lines[-2].startswith("| noise | dataset |")
  assert lines[-1] == "| in-distribution | - | " + "- | " * 14 + "0.000 | - |"


def test_the_candidates_take_the_draws_they_are_given():
  glow = _model(3)
  classifier = classifier_lib.Classifier(SHAPE, 3, seed=0)
  images = _images(4, seed=5)
  draws = likelihood.fixed_draws(2, SHAPE, seed=0)
  features = scores.candidate_features(glow, classifier, images, 4, draws)[0]
  expected = ood.class_log_likelihoods(glow, images, 4, draws)
  assert_close(features["class_log_likelihoods"], expected, rtol=1e-5)
  # The default is one draw: the second draw moves the estimate beyond rounding.
  with pytest.raises(AssertionError):
    assert_close(features["class_log_likelihoods"], ood.class_log_likelihoods(glow, images, 4),
                 rtol=1e-5)


class _BrightIsLegible:
  """A classifier stub sure of class 0 for bright images, of none for the rest."""

  def predict(self, images, batch_size):
    bright = images.reshape(len(images), -1).mean(axis=1) > 200
    probabilities = np.where(bright[:, None], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3])
    return probabilities, images.reshape(len(images), -1)[:, :4].astype(np.float64)


def test_the_illegible_auroc_leaves_out_the_images_read_as_a_digit():
  glow = _model(3)
  bright = np.full((6,) + SHAPE, 250, np.uint8)
  mixed = np.concatenate([bright[:3], _images(3, seed=2)])
  results = scores.measure(glow, _BrightIsLegible(), _images(8, seed=3), _images(6, seed=4),
                           {"bright": bright, "mixed": mixed}, batch_size=4, background=None)
  assert results["bright"]["legible_fraction"] == 1.0
  assert np.isnan(results["bright"]["illegible_ood_score_auroc"])
  assert results["mixed"]["legible_fraction"] == 0.5
  only_noise = scores.measure(glow, _BrightIsLegible(), _images(8, seed=3), _images(6, seed=4),
                              {"noise": mixed[3:]}, batch_size=4, background=None)
  assert results["mixed"]["illegible_ood_score_auroc"] == pytest.approx(
      only_noise["noise"]["auroc"]["ood_score"])
