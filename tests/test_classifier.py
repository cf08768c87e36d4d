"""The sample-quality classifier: seeded training, and its file kept until the data or the
settings change."""

import numpy as np
import pytest

from glow_tfp import classifier


def _fit(data, seed=0):
  model = classifier.Classifier(data.image_shape, data.num_classes, seed)
  model.fit(data.train_images, data.train_labels, seed, epochs=2)
  return model


def test_training_is_seeded(tiny_mnist):
  a, b, c = _fit(tiny_mnist), _fit(tiny_mnist), _fit(tiny_mnist, seed=1)
  for name, array in a.weights().items():
    np.testing.assert_array_equal(array, b.weights()[name])
  assert any(not np.array_equal(v, c.weights()[k]) for k, v in a.weights().items())


def test_predictions_are_real_class_probabilities_and_last_hidden_layer_features(tiny_mnist):
  probabilities, features = _fit(tiny_mnist).predict(tiny_mnist.heldout_images, batch_size=5)
  assert probabilities.shape == (16, 10) and features.shape == (16, classifier.HIDDEN_UNITS[-1])
  # The reject class is left out: what the real classes miss of 1 is its probability.
  assert np.all(probabilities >= 0.0) and np.all(probabilities.sum(axis=1) <= 1.0 + 1e-6)
  assert features.min() >= 0.0  # after a ReLU


def test_the_file_is_reused_until_data_or_seed_differ(tiny_mnist, tmp_path):
  path = str(tmp_path / "classifier.npz")
  images, labels = tiny_mnist.train_images, tiny_mnist.train_labels
  first, reused = classifier.load_or_fit(path, images, labels, 10, seed=0)
  assert not reused
  again, reused = classifier.load_or_fit(path, images, labels, 10, seed=0)
  assert reused
  np.testing.assert_array_equal(again.predict(images)[0], first.predict(images)[0])
  assert not classifier.load_or_fit(path, images, labels, 10, seed=1)[1]
  assert not classifier.load_or_fit(path, images, (labels + 1) % 10, 10, seed=1)[1]
  assert not classifier.load_or_fit(path, images[:-1], labels[:-1], 10, seed=1)[1]


def test_an_unwritten_classifier_leaves_no_file(tiny_mnist, tmp_path):
  path = tmp_path / "classifier.npz"
  classifier.load_or_fit(str(path), tiny_mnist.train_images, tiny_mnist.train_labels, 10,
                         write=False)
  assert not path.exists()


def test_one_class_is_refused():
  with pytest.raises(ValueError, match="`num_classes` must be >= 2; instead, it is 1"):
    classifier.Classifier((4, 4, 1), 1)
