"""The streaming sources' catalogs: image folders, TensorFlow Datasets, TFRecord files.

`open_catalog(spec)` lists a source without reading its images: a folder's file paths, a
TFDS split's random-access data source, a TFRecord glob's record offsets. It decodes a
bounded sample (`images.CHECK_SAMPLE` examples: the first ones and a spread of the others)
to fix the image shape and to stop on bad input before training; an image outside the
sample that cannot be decoded stops training when it is read, and `Catalog.unreadable`
names it.
"""

import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from . import images
from . import tfrecord
from ..errors import InputError
from .streaming import Catalog

KINDS = ("tfds", "folder", "tfrecord")


def open_catalog(spec, data_dir=None):
  """The `Catalog` of a streaming source spec (train/data.py), its sample checked."""
  kind, _, argument = spec.partition(":")
  if kind == "folder" and argument:
    return _folder(spec, argument)
  if kind == "tfds" and argument:
    return _tfds(spec, argument, data_dir)
  if kind == "tfrecord" and argument:
    return tfrecord.catalog(spec, argument)
  raise InputError(f"Unknown dataset {spec!r}: use 'mnist', 'tfds:NAME[:SPLIT]', "
                   "'folder:PATH' or 'tfrecord:GLOB'.")


def _folder(spec, path):
  if not os.path.isdir(path):
    raise InputError(f"Image folder {path!r} does not exist or is not a directory.")
  classes = sorted(e.name for e in os.scandir(path) if e.is_dir())
  top_files = _image_files(path, "")
  if classes and top_files:
    raise InputError(f"Image folder {path!r} mixes images ({top_files[0]!r}, ...) with class "
                     f"subdirectories ({classes[0]!r}, ...); use one or the other.")
  if classes:
    files = [_image_files(path, name) for name in classes]
    labels = np.repeat(np.arange(len(classes), dtype=np.int32), [len(f) for f in files])
    files = [f for names in files for f in names]
  else:
    files, labels = top_files, np.zeros(len(top_files), np.int32)
  if not files:
    raise InputError(f"Image folder {path!r} holds no {'/'.join(images.EXTENSIONS)} files.")
  keys = np.array(files, dtype=bytes)

  def open_example(index):
    return (os.path.join(path, files[index]),) * 2

  shape = images.check_shapes(open_example(i) for i in images.sample(len(files)))

  def make_read():
    paths = tf.strings.join([os.path.join(path, ""), tf.constant(keys)])
    label_tensor = tf.constant(labels)
    return lambda index: (images.decode(tf.io.read_file(tf.gather(paths, index)), shape),
                          tf.gather(label_tensor, index))

  return Catalog(spec, keys, shape, len(classes), make_read, open_example)


def _image_files(root, directory):
  """The image files of `root/directory`, as sorted paths relative to `root`."""
  return sorted(os.path.join(directory, e.name) for e in os.scandir(os.path.join(root, directory))
                if e.name.lower().endswith(images.EXTENSIONS) and e.is_file())


def _tfds(spec, argument, data_dir):
  name, _, split = argument.partition(":")
  try:
    info = tfds.builder(name, data_dir=data_dir).info
  except (tfds.core.registered.DatasetNotFoundError, ValueError) as error:
    raise InputError(f"Cannot load {spec}: {_first_line(error)}") from error
  try:
    source = tfds.data_source(name, split=split or "train", data_dir=data_dir, download=False)
  except (ValueError, KeyError, OSError, NotImplementedError) as error:
    raise InputError(f"Cannot read {spec} by index: {_first_line(error)} (prepare it in the "
                     "ArrayRecord file format: `tfds build NAME --file_format=array_record`)"
                     ) from error
  features = info.features
  if "image" not in features:
    raise InputError(f"{spec} has no 'image' feature (features: {sorted(features)}).")
  shape, dtype = features["image"].shape, features["image"].np_dtype
  if dtype != np.uint8 or len(shape) != 3 or None in shape:
    raise InputError(f"{spec} 'image' must be uint8 of one fixed shape (H, W, C); it is "
                     f"{np.dtype(dtype).name} of shape {shape}.")
  if not len(source):
    raise InputError(f"{spec} is empty.")
  labelled = "label" in features

  def example(index):
    features = source[int(index)]
    return features["image"], np.int32(features["label"] if labelled else 0)

  def read(index):
    image, label = tf.numpy_function(example, [index], [tf.uint8, tf.int32], stateful=False)
    return tf.ensure_shape(image, shape), tf.ensure_shape(label, [])

  keys = np.arange(len(source)).astype(bytes)
  return Catalog(spec, keys, tuple(shape), features["label"].num_classes if labelled else 0,
                 lambda: read)


def _first_line(error):
  return str(error).strip().splitlines()[0]
