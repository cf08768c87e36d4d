"""A small seeded image classifier: the judge of sample quality (`glow_tfp.sample_quality`).

A multi-layer perceptron over the image's pixels scaled to [0, 1]:
  h = relu(W1 x + b1),  f = relu(W2 h + b2) (the features),  logits = W3 f + b3,
with one output per class of the data and one more, the reject class "not an image of the
data". It is trained with softmax cross-entropy by SGD with Nesterov momentum mu (velocity
v <- mu v - lr g, weights w <- w + mu v - lr g) on seeded shuffles of the training images
and of NEGATIVE_FRACTION as many negatives (`glow_tfp.negatives`: noise, constant images,
blobs, scrambled training images) labelled with the reject class. A classifier that has seen
only real images spreads no probability outside their classes and is sure of a third of
uniform-noise images; the reject class gives junk somewhere to go, so that a confident real
class means a legible image. Small enough to train in seconds on a CPU, and accurate enough
on digits for its confidence and its features to mean something (docs/training.md, "Sample
quality", holds both figures).
`load_or_fit` keeps one in a file and trains it again only when the training data or the
settings differ.
"""

import hashlib
import io

import numpy as np
import tensorflow as tf

from glow_tfp import negatives

HIDDEN_UNITS = (256, 64)
EPOCHS = 20
BATCH_SIZE = 128
LEARNING_RATE = 0.05
MOMENTUM = 0.9
# Negatives per training image. Drawn once, not every epoch: fresh draws reject junk no
# better and cost about a second more.
NEGATIVE_FRACTION = 0.4
# Bumped whenever training changes, so that classifiers cached before no longer match.
_VERSION = 2


class Classifier(tf.Module):
  """The perceptron of the module docstring for uint8 images of `image_shape`.

  Args:
    image_shape: (H, W, C).
    num_classes: classes of the data (>= 2); the reject class is output num_classes.
    seed: seeds the initial weights (He-normal, `tf.random.stateless_normal`).
    hidden_units: widths of the two hidden layers; the second gives the features.
  """

  def __init__(self, image_shape, num_classes, seed=0, hidden_units=HIDDEN_UNITS, name=None):
    super().__init__(name=name or "classifier")
    if num_classes < 2:
      raise ValueError(f"`num_classes` must be >= 2; instead, it is {num_classes}.")
    self.image_shape, self.num_classes = tuple(int(d) for d in image_shape), int(num_classes)
    widths = [int(np.prod(self.image_shape)), *hidden_units, self.num_classes + 1]
    with self.name_scope:
      self.kernels = [tf.Variable(tf.random.stateless_normal(
          [fan_in, fan_out], [seed, layer], stddev=np.sqrt(2.0 / fan_in)), name="kernel")
                      for layer, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]))]
      self.biases = [tf.Variable(tf.zeros([fan_out]), name="bias") for fan_out in widths[1:]]

  @tf.function
  def logits_and_features(self, images):
    """uint8 images [N, H, W, C] -> (logits [N, classes], features [N, hidden_units[-1]])."""
    h = tf.reshape(tf.cast(images, tf.float32) / 255.0, [tf.shape(images)[0], -1])
    for kernel, bias in zip(self.kernels[:-1], self.biases[:-1]):
      h = tf.nn.relu(h @ kernel + bias)
    return h @ self.kernels[-1] + self.biases[-1], h

  def predict(self, images, batch_size=1000):
    """(class probabilities [N, classes], features [N, D]) as float64 numpy arrays; the
    probabilities leave out the reject class, so a row sums to 1 - P(not of the data)."""
    probabilities, features = [], []
    for start in range(0, len(images), batch_size):
      logits, h = self.logits_and_features(tf.constant(images[start:start + batch_size]))
      probabilities.append(tf.nn.softmax(logits)[:, :-1].numpy())
      features.append(h.numpy())
    return (np.concatenate(probabilities).astype(np.float64),
            np.concatenate(features).astype(np.float64))

  def fit(self, images, labels, seed=0, epochs=EPOCHS):
    """Trains on uint8 `images` [N, H, W, C] and int `labels` [N] in [0, num_classes), and
    on negatives labelled num_classes, drawn from `seed` with the permutation in which each
    epoch visits them all."""
    velocities = [tf.Variable(tf.zeros_like(v)) for v in self.trainable_variables]
    step = self._step_function(velocities)
    rng = np.random.default_rng(seed)
    count = max(1, round(NEGATIVE_FRACTION * len(images)))
    labels = np.concatenate([np.asarray(labels, np.int32),
                             np.full(count, self.num_classes, np.int32)])
    images = np.concatenate([images, negatives.draw(images, count, rng)])
    for _ in range(epochs):
      order = rng.permutation(len(images))
      for start in range(0, len(images), BATCH_SIZE):
        batch = order[start:start + BATCH_SIZE]
        step(tf.constant(images[batch]), tf.constant(labels[batch]))

  def _step_function(self, velocities):
    variables = self.trainable_variables

    @tf.function
    def step(images, labels):
      with tf.GradientTape() as tape:
        logits, _ = self.logits_and_features(images)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
      for variable, velocity, gradient in zip(variables, velocities,
                                              tape.gradient(loss, variables)):
        velocity.assign(MOMENTUM * velocity - LEARNING_RATE * gradient)
        variable.assign_add(MOMENTUM * velocity - LEARNING_RATE * gradient)

    return step

  def accuracy(self, images, labels):
    """The fraction of `images` whose most probable real class is their label."""
    return float(np.mean(self.predict(images)[0].argmax(axis=1) == np.asarray(labels)))

  def weights(self):
    """{name: array} of every weight, in the order `set_weights` reads them."""
    return {f"w{i}": v.numpy() for i, v in enumerate(self.trainable_variables)}

  def set_weights(self, arrays):
    for i, variable in enumerate(self.trainable_variables):
      variable.assign(arrays[f"w{i}"])


def fingerprint(images, labels, num_classes, seed):
  """A hash of everything a trained classifier depends on: the training images and labels,
  the classes, the seed and the training settings of this module and of its negatives."""
  digest = hashlib.sha256()
  for array in (np.ascontiguousarray(images, np.uint8), np.ascontiguousarray(labels, np.int64)):
    digest.update(str(array.shape).encode())
    digest.update(array.tobytes())
  settings = (num_classes, seed, HIDDEN_UNITS, EPOCHS, BATCH_SIZE, LEARNING_RATE, MOMENTUM,
              NEGATIVE_FRACTION, negatives.KINDS, _VERSION)
  digest.update(repr(settings).encode())
  return digest.hexdigest()


def load_or_fit(path, images, labels, num_classes, seed=0, write=True):
  """The classifier of `images` and `labels` kept at `path` (an .npz file, any filesystem
  TensorFlow knows), trained (and written there if `write`) when the file is missing or
  holds one trained on other data or with other settings (`fingerprint`).

  Returns:
    (classifier, reused): `reused` is True when it came from the file.
  """
  expected = fingerprint(images, labels, num_classes, seed)
  classifier = Classifier(images.shape[1:], num_classes, seed)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path, "rb") as f:
      arrays = np.load(io.BytesIO(f.read()))
    if str(arrays["fingerprint"]) == expected:
      classifier.set_weights(arrays)
      return classifier, True
  classifier.fit(images, labels, seed)
  if write:
    _save(path, expected, classifier)
  return classifier, False


def _save(path, expected, classifier):
  # np.savez seeks in its file, which GFile cannot.
  buffer = io.BytesIO()
  np.savez(buffer, fingerprint=expected, **classifier.weights())
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())
