"""benchmarks/ood/styles.py: each class's latents split into k-means style classes."""

import numpy as np
import pytest

from benchmarks.ood import styles


def _blobs(centres, per_blob, seed=0):
  """Latents [len(centres) * per_blob, 2, 2, 1] around each centre, blob by blob."""
  rng = np.random.default_rng(seed)
  return np.concatenate([c + 0.1 * rng.standard_normal((per_blob, 2, 2, 1)) for c in centres])


def test_each_style_class_is_one_cluster_of_its_own_class():
  latents = _blobs([-5.0, 5.0, -5.0, 5.0], 10)
  labels = np.repeat([0, 0, 1, 1], 10)
  classes = styles.StyleClasses(latents, labels, per_class=2)
  found = classes.labels(latents, labels).reshape(4, 10)
  assert classes.num_classes == 4
  assert all(len(set(blob)) == 1 for blob in found)
  assert set(found[:2, 0]) == {0, 1} and set(found[2:, 0]) == {2, 3}


def test_new_latents_get_the_nearest_centre_of_their_class():
  classes = styles.StyleClasses(_blobs([-5.0, 5.0], 10), np.zeros(20, int), per_class=2)
  train = classes.labels(_blobs([-5.0, 5.0], 10), np.zeros(20, int))
  new = classes.labels(_blobs([5.0, -5.0], 1, seed=1), np.zeros(2, int))
  np.testing.assert_array_equal(new, [train[10], train[0]])


def test_a_class_with_fewer_images_than_styles_has_one_per_image():
  latents = _blobs([-5.0, 5.0, 0.0], 1)
  classes = styles.StyleClasses(latents, [0, 0, 1], per_class=3)
  assert classes.num_classes == 6
  assert sorted(classes.labels(latents, [0, 0, 1]).tolist()) == [0, 1, 3]


@pytest.mark.parametrize("latents, labels, per_class, message", [
    (np.zeros((2, 1)), [0, 1], 0, "per_class must be >= 1"),
    (np.zeros((3, 1)), [0, 1], 2, "3 latents but 2 labels"),
])
def test_bad_arguments_are_refused(latents, labels, per_class, message):
  with pytest.raises(ValueError, match=message):
    styles.StyleClasses(latents, labels, per_class)


def test_a_class_without_training_latents_is_refused():
  classes = styles.StyleClasses(np.zeros((2, 1)), [0, 0], per_class=1)
  with pytest.raises(ValueError, match=r"No clusters for classes \[2\]"):
    classes.labels(np.zeros((1, 1)), [2])
