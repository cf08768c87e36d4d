"""Sources read from disk by index, in an order that is a pure function of (seed, step).

A `Catalog` names N examples and reads one by its index. The training batch of step s
holds the examples at positions [p * B, (p + 1) * B) of epoch e = s // steps_per_epoch,
p = s % steps_per_epoch, of a stateless permutation of the training indices seeded by
(seed, e) (`tf.random.experimental.index_shuffle`: O(1) memory per lookup, nothing sorted).
Each input pipeline reads only the positions of the replicas it feeds, and batches stay
uint8: the training step dequantises them with noise seeded by (seed, step) and drawn for
the whole global batch. So the global batch does not depend on the strategy or the number
of workers, workers read disjoint examples that together cover an epoch once, and a
resumed run starts its pipeline at the restored step with nothing to skip. docs/data.md
gives the reasons.
"""

import dataclasses
import hashlib
import re
from typing import Callable

import numpy as np
import tensorflow as tf

from . import images
from . import pipeline
from ..errors import InputError

# Parallel decoding keeps up to this many batches of each replica ready; memory is
# O(batch x this), whatever the number of examples.
_PREFETCH_BATCHES = 2


@dataclasses.dataclass(frozen=True)
class Catalog:
  """N examples of one image shape, read by index.

  Attributes:
    name: the source spec.
    keys: [N] stable names (relative paths, record positions) that seed the held-out rule.
    image_shape: (H, W, C).
    num_classes: 0 when unlabelled.
    make_read: () -> read, an int64 index tensor -> (uint8 image [H, W, C], int32 label)
      function usable in tf.data. Opening a catalog must not start TensorFlow's runtime
      (MultiWorkerMirroredStrategy configures it at its creation, which comes later), so
      the tensors `read` needs are made when a pipeline is built.
    open_example: index -> (name, path or file object) of the encoded image, for
      `images.check_shapes`; None where the source holds decoded arrays (TFDS).
  """

  name: str
  keys: np.ndarray
  image_shape: tuple
  num_classes: int
  make_read: Callable
  open_example: Callable = None

  def __len__(self):
    return len(self.keys)

  def unreadable(self):
    """The message naming the first example that does not read, or None.

    O(N) time, constant memory: for after a decoding error in training, when the sample
    checked up front missed the bad example. The message is the up-front check's, for
    that example against the first one (a shape that differs names both shapes).
    """
    examples = iter(tf.data.Dataset.range(len(self)).map(self.make_read()))
    for index, key in enumerate(self.keys):
      try:
        next(examples)
      except tf.errors.InvalidArgumentError as error:
        return self._describe(index) or (f"Cannot read image {key.decode()!r} of "
                                         f"{self.name}: {_reason(error)}")
    return None

  def _describe(self, index):
    """The up-front check's message for example `index` against example 0, or None where
    that check passes it (TensorFlow's decoder can be stricter than PIL's)."""
    if self.open_example is None:
      return None
    try:
      images.check_shapes(self.open_example(i) for i in (0, index))
    except InputError as error:
      return str(error)
    return None


@dataclasses.dataclass(frozen=True)
class Stream:
  """A source whose training and held-out examples are indices into catalogs."""

  name: str
  train: Catalog
  train_indices: np.ndarray
  heldout: Catalog
  heldout_indices: np.ndarray

  @classmethod
  def split(cls, name, catalog, seed, heldout_fraction, eval_examples=None):
    """Holds out the round(N * fraction) examples of `catalog` that rank first by
    `rank_by_key`: a rule per example, so adding files moves few others across."""
    if len(catalog) < 2:
      raise InputError(f"{name} has {len(catalog)} image(s); training needs at least 2 (one "
                       "for training, one held out).")
    heldout = max(1, int(round(len(catalog) * heldout_fraction)))
    ranked = rank_by_key(catalog.keys, seed)
    return cls(name, catalog, np.sort(ranked[heldout:]), catalog,
               ranked[:heldout][:eval_examples])

  @classmethod
  def with_heldout(cls, name, catalog, heldout, seed, eval_examples=None):
    """Trains on all of `catalog`; evaluates on a seeded choice of `heldout` examples."""
    return cls(name, catalog, np.arange(len(catalog)), heldout,
               rank_by_key(heldout.keys, seed)[:eval_examples])

  @property
  def image_shape(self):
    return self.train.image_shape

  @property
  def num_classes(self):
    return self.train.num_classes

  @property
  def num_train(self):
    return len(self.train_indices)

  @property
  def num_heldout(self):
    return len(self.heldout_indices)

  def training_dataset_fn(self, global_batch_size, seed, start_step, end_step,
                          perturb_fraction=0.0):
    """A `dataset_fn` for `strategy.distribute_datasets_from_function`.

    Input pipeline p yields, for each step in [start_step, end_step), the per-replica
    batches of the replicas it feeds, in replica order, as `pipeline.training_dataset_fn`,
    each image `pipeline.perturb`ed with `perturb_fraction`.
    """
    pipeline.check_perturb_fraction(perturb_fraction)
    indices = tf.constant(self.train_indices, tf.int64)
    read = self.train.make_read()

    def dataset_fn(context):
      positions = local_positions(context, global_batch_size)
      per_replica = global_batch_size // context.num_replicas_in_sync

      def example(step, position):
        index = tf.gather(indices, permuted(step, position, len(self.train_indices),
                                            global_batch_size, seed))
        image, label = read(index)
        return pipeline.perturb(image, perturb_fraction, seed, step, position), label

      steps = tf.data.Dataset.range(start_step, end_step)
      pairs = steps.flat_map(lambda step: tf.data.Dataset.from_tensor_slices(
          (tf.fill(tf.shape(positions), step), positions)))
      batches = pairs.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      return batches.batch(per_replica).prefetch(_PREFETCH_BATCHES).with_options(
          _options())

    return dataset_fn

  def heldout_dataset(self, batch_size):
    """`pipeline.heldout_batches` of the held-out examples, read in parallel."""
    return pipeline.heldout_batches(self._examples(self.heldout, self.heldout_indices),
                                    batch_size)

  def unreadable(self):
    """The message naming the first example of the source that does not read, or None."""
    return self.train.unreadable() or self.heldout.unreadable()

  def train_arrays(self, limit=None):
    """The training images and labels in memory, the first `limit` of them (None: all), for
    tools that need them at once."""
    return _gather(self._examples(self.train, self.train_indices[:limit]))

  def heldout_arrays(self):
    """The held-out images and labels that evaluation reads, in memory."""
    return _gather(self._examples(self.heldout, self.heldout_indices))

  @staticmethod
  def _examples(catalog, indices):
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(indices, tf.int64))
    return dataset.map(catalog.make_read(), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def rank_by_key(keys, seed):
  """The indices of `keys` (bytes) ordered by a hash of each key keyed with `seed`."""
  secret = seed.to_bytes(8, "little")
  hashes = np.fromiter((int.from_bytes(hashlib.blake2b(key, digest_size=8, key=secret).digest(),
                                       "little") for key in keys), np.uint64, len(keys))
  return np.argsort(hashes, kind="stable")


def local_positions(context, global_batch_size):
  """The positions in every global batch that input pipeline `context` reads: those of the
  replicas it feeds, a contiguous block since replicas are numbered pipeline by pipeline."""
  per_pipeline = global_batch_size // context.num_input_pipelines
  first = context.input_pipeline_id * per_pipeline
  return tf.range(first, first + per_pipeline, dtype=tf.int64)


def permuted(step, position, num_examples, global_batch_size, seed):
  """The training index (into [0, num_examples)) at `position` of the batch of `step`."""
  per_epoch = num_examples // global_batch_size
  epoch = step // per_epoch
  epoch_seed = pipeline.stream_seed(seed, pipeline.PERMUTATION_STREAM, epoch)
  return tf.random.experimental.index_shuffle(
      (step % per_epoch) * global_batch_size + position, epoch_seed,
      tf.constant(num_examples - 1, tf.int64))


def _reason(error):
  """A TensorFlow error's first line without the function and iterator it was raised in."""
  line = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message.splitlines()[0])
  return re.sub(r"^.*Iterator::\S+: ", "", line)


def _options():
  # As in `pipeline.training_dataset_fn`: tf.data's autotuning thread stalls dropping a
  # partly read iterator. AUTOTUNE parallelism then means one call per core.
  options = tf.data.Options()
  options.autotune.enabled = False
  return options


def _gather(examples):
  images, labels = [], []
  for image, label in examples.batch(1024):
    images.append(image.numpy())
    labels.append(label.numpy())
  return np.concatenate(images), np.concatenate(labels)
