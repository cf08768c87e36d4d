"""How much a model's samples look like its data, in the eyes of a classifier of that data.

A `glow_tfp.classifier.Classifier` trained on the training images, and on junk in a reject
class, judges a set of N images (samples at one temperature, or real images for the
reference) by its probabilities of the real classes (the reject class left out, so that a
row sums to 1 - P(junk)); an image's predicted class is its most probable real class:
  legible_fraction   the fraction whose most probable real class has probability >= 0.9
                     (`LEGIBLE_PROBABILITY`): images the classifier is sure are of that
                     class, and so neither junk nor between classes;
  coverage_bits      the entropy -sum_c q_c log2 q_c of the predicted classes' histogram q
                     (log2(classes) when every class is predicted equally often, 0 when all
                     images get one class); `class_counts` is the histogram itself;
  agreement          for images asked for a class (samples of a class-conditional model, or
                     labelled real images), the fraction predicted as that class;
  frechet_distance   `glow_tfp.frechet.distance` between the classifier's features (its
                     last hidden layer) of the images and of the held-out images.
The Frechet distance of N images is biased upwards by the finite N (of the order tr(S)/N
for covariance S), so compare figures of equal N: the reference row of `Reference` takes
N training images against the held-out ones.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from glow_tfp import frechet
from glow_tfp import model_space

LEGIBLE_PROBABILITY = 0.9
# Draws of sample batch b are seeded by fold_in((seed, _STREAM), b), apart from the training
# noise (glow_tfp.training.NOISE_STREAM = 1) and the held-out likelihood's draws (2).
_STREAM = 3


@dataclasses.dataclass(frozen=True)
class Scores:
  """The figures of the module docstring for one set of images."""

  count: int
  legible_fraction: float
  coverage_bits: float
  class_counts: tuple
  agreement: float | None
  frechet_distance: float

  def as_dict(self):
    """The figures as a JSON-able dict (`agreement` left out when None)."""
    values = dataclasses.asdict(self)
    values["class_counts"] = list(self.class_counts)
    if self.agreement is None:
      del values["agreement"]
    return values

  def scalars(self):
    """The scalar figures, {name: float}, for summaries."""
    names = ["legible_fraction", "coverage_bits", "frechet_distance"]
    names += ["agreement"] if self.agreement is not None else []
    return {name: float(getattr(self, name)) for name in names}

  def line(self):
    """The figures in one line for logs and tables."""
    text = (f"legible {self.legible_fraction:.3f}  coverage {self.coverage_bits:.2f} bits  "
            f"Frechet {self.frechet_distance:.3g}")
    return text + (f"  agreement {self.agreement:.3f}" if self.agreement is not None else "")


def score(probabilities, features, reference_features, asked=None):
  """`Scores` of images with real-class `probabilities` [N, classes] (rows summing to at
  most 1) and `features` [N, D] against the `reference_features` [M, D] of the held-out
  images; `asked` [N]: the class each image was asked for, or None."""
  predicted = probabilities.argmax(axis=1)
  counts = np.bincount(predicted, minlength=probabilities.shape[1])
  q = counts[counts > 0] / len(predicted)
  agreement = None if asked is None else float(np.mean(predicted == np.asarray(asked)))
  return Scores(
      count=len(predicted),
      legible_fraction=float(np.mean(probabilities.max(axis=1) >= LEGIBLE_PROBABILITY)),
      coverage_bits=float(-np.sum(q * np.log2(q)) + 0.0),  # + 0.0: no -0.0 for one class
      class_counts=tuple(int(c) for c in counts), agreement=agreement,
      frechet_distance=frechet.distance(features, reference_features))


def quantise(images, n_bits):
  """uint8 images as a model of `n_bits` bits per channel sees and samples them: each value
  floored to its bin, floor(v / 2**(8 - n_bits)) * 2**(8 - n_bits)."""
  step = 2 ** (8 - n_bits)
  return (np.asarray(images, np.uint8) // step * step).astype(np.uint8)


class Reference:
  """The held-out images as the classifier sees them, and their own `Scores` (the reference
  row: what real images reach).

  Args:
    classifier: the `Classifier` of the training images.
    heldout_images, heldout_labels: the held-out images (uint8) and labels.
    train_images: training images, `num_images` of which (a choice seeded by `seed`; all if
      fewer) give the reference row's Frechet distance to the held-out features, at the N of
      the samples.
    n_bits: the model's bits per channel; every image is quantised to it (`quantise`).
  """

  def __init__(self, classifier, heldout_images, heldout_labels, train_images, num_images,
               n_bits=8, seed=0):
    self.classifier, self.n_bits = classifier, n_bits
    probabilities, self.features = classifier.predict(quantise(heldout_images, n_bits))
    picked = np.random.default_rng(seed).permutation(len(train_images))[:num_images]
    train_probabilities, train_features = classifier.predict(
        quantise(train_images[np.sort(picked)], n_bits))
    del train_probabilities  # only their features are compared
    heldout = score(probabilities, self.features, self.features, heldout_labels)
    self.scores = dataclasses.replace(
        heldout, frechet_distance=frechet.distance(train_features, self.features))

  def score(self, images, asked=None):
    """`Scores` of uint8 `images` (already at the model's bits) against the held-out ones."""
    return score(*self.classifier.predict(images), self.features, asked)


class SampleQuality:
  """Scores `num_samples` samples of `model` at each temperature against `reference`.

  Every temperature scales the same standard-normal draws (seeded by `seed` and the batch),
  so a temperature's figures do not depend on the others asked for. A class-conditional
  model is asked for the classes in turn (image i for class i mod classes).

  Args:
    model: a `glow_tfp.Glow` whose images are those the classifier was trained on.
    reference: a `Reference`.
    num_samples: N, samples per temperature.
    seed: seeds the draws.
    batch_size: samples per model call.
  """

  def __init__(self, model, reference, num_samples, seed=0, batch_size=500):
    self.model, self.reference = model, reference
    self.num_samples, self.batch_size = num_samples, batch_size
    self._seed = tf.constant([seed, _STREAM], tf.int64)
    classes = model.config.num_classes
    self.asked = np.arange(num_samples) % classes if classes else None

  def images(self, temperature):
    """The N samples at `temperature` as uint8 images."""
    batches = []
    for index, start in enumerate(range(0, self.num_samples, self.batch_size)):
      count = min(self.batch_size, self.num_samples - start)
      labels = None if self.asked is None else tf.constant(self.asked[start:start + count],
                                                           tf.int32)
      batches.append(self._sample(count, tf.constant(temperature, tf.float32), labels,
                                  tf.constant(index, tf.int64)).numpy())
    return np.concatenate(batches)

  def scores(self, temperatures):
    """{temperature: `Scores`} of the samples at each of `temperatures`."""
    return {float(t): self.reference.score(self.images(t), self.asked) for t in temperatures}

  @tf.function
  def _sample(self, count, temperature, labels, index):
    seed = tf.random.experimental.stateless_fold_in(self._seed, index)
    x = self.model.sample(count, temperature, labels=labels, seed=seed)
    return model_space.to_images(x, self.model.config.n_bits)

