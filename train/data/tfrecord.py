"""TFRecord files of image `tf.train.Example`s, read by index and written in shards.

An example holds an encoded PNG/JPEG `image` bytes feature and an optional int64 `label`.
TFRecord has no index, so opening a glob scans each file's record headers once (a seek per
record, no payload read) into an offset table of 8 bytes a record; training then reads a
record by seeking to its offset. That keeps the order of every batch a pure function of
(seed, step) as for image folders, where a shuffle buffer would make resuming read (and
discard) the epoch so far. `train.records` writes such files from any source.
"""

import io
import json
import os
import struct
import threading

import numpy as np
import tensorflow as tf

from . import images
from ..errors import InputError
from .streaming import Catalog

# Next to the shards: what is only known after reading every record (the number of classes).
INFO_FILE = "records.json"
_HEADER = struct.Struct("<QI")  # payload length, masked CRC of the length
_FOOTER_BYTES = 4  # masked CRC of the payload
_FEATURES = {"image": tf.io.FixedLenFeature([], tf.string),
             "label": tf.io.FixedLenFeature([], tf.int64, default_value=0)}


def catalog(spec, pattern):
  """The `Catalog` of the TFRecord files matching `pattern`, its sample checked."""
  paths = sorted(tf.io.gfile.glob(pattern))
  if not paths:
    raise InputError(f"{spec}: no file matches {pattern!r}.")
  offsets = [_record_offsets(path) for path in paths]
  files = np.repeat(np.arange(len(paths), dtype=np.int32), [len(o) for o in offsets])
  offsets = np.concatenate(offsets)
  if not len(offsets):
    raise InputError(f"{spec}: the files matching {pattern!r} hold no records.")
  names = [os.path.basename(path) for path in paths]
  keys = np.char.add(np.char.add(np.array(names, dtype=bytes)[files], b":"),
                     (np.arange(len(files)) - np.searchsorted(files, files)).astype(bytes))
  reader = _Reader(paths, files, offsets)

  def open_example(index):
    key = keys[index].decode()
    return key, io.BytesIO(_image_bytes(spec, key, reader(index)))

  shape = images.check_shapes(open_example(i) for i in images.sample(len(keys)))

  def read(index):
    record = tf.numpy_function(reader, [index], tf.string, stateful=False)
    example = tf.io.parse_single_example(tf.ensure_shape(record, []), _FEATURES)
    return images.decode(example["image"], shape), tf.cast(example["label"], tf.int32)

  return Catalog(spec, keys, shape, _num_classes(paths), lambda: read, open_example)


def write(catalog, output, num_shards, progress=None):
  """Writes every example of `catalog` as PNG in `num_shards` files (at most one per example)
  of contiguous examples, with the INFO_FILE; calls `progress(done, total)` after each
  example. Returns the paths."""
  tf.io.gfile.makedirs(output)
  num_shards = min(num_shards, len(catalog))
  paths = [os.path.join(output, f"images-{i:05d}-of-{num_shards:05d}.tfrecord")
           for i in range(num_shards)]
  read = catalog.make_read()
  encoded = tf.data.Dataset.range(len(catalog)).map(
      lambda index: _encode(*read(index)), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(tf.data.AUTOTUNE)
  writer, shard = None, -1
  for done, (png, label) in enumerate(encoded.as_numpy_iterator()):
    if done * num_shards // len(catalog) != shard:
      if writer:
        writer.close()
      shard = done * num_shards // len(catalog)
      writer = tf.io.TFRecordWriter(paths[shard])
    writer.write(_example(png, label))
    if progress:
      progress(done + 1, len(catalog))
  writer.close()
  with tf.io.gfile.GFile(os.path.join(output, INFO_FILE), "w") as f:
    json.dump({"num_classes": catalog.num_classes, "image_shape": list(catalog.image_shape),
               "examples": len(catalog)}, f)
  return paths


def _encode(image, label):
  return tf.io.encode_png(image), label


def _example(image_bytes, label):
  features = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
              "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _num_classes(paths):
  """From the INFO_FILE next to the first file; 0 (unlabelled) without one."""
  path = os.path.join(os.path.dirname(paths[0]), INFO_FILE)
  if not tf.io.gfile.exists(path):
    return 0
  with tf.io.gfile.GFile(path) as f:
    return int(json.load(f)["num_classes"])


def _image_bytes(spec, key, record):
  features = tf.train.Example.FromString(record).features.feature
  if "image" not in features or not features["image"].bytes_list.value:
    raise InputError(f"{spec}: record {key!r} has no 'image' bytes feature (features: "
                     f"{sorted(features)}).")
  return features["image"].bytes_list.value[0]


def _record_offsets(path):
  offsets = []
  with tf.io.gfile.GFile(path, "rb") as f:
    size, offset = f.size(), 0
    while offset < size:
      f.seek(offset)
      header = f.read(_HEADER.size)
      if len(header) < _HEADER.size:
        raise InputError(f"TFRecord file {path!r} is truncated at byte {offset}.")
      offsets.append(offset)
      offset += _HEADER.size + _HEADER.unpack(header)[0] + _FOOTER_BYTES
  if offset != size:
    raise InputError(f"TFRecord file {path!r} is truncated in its last record.")
  return np.array(offsets, np.int64)


class _Reader:
  """Reads record `index` by seeking in its file; one open file per file and thread."""

  def __init__(self, paths, files, offsets):
    self._paths, self._files, self._offsets = paths, files, offsets
    self._local = threading.local()

  def __call__(self, index):
    handles = self._local.__dict__.setdefault("handles", {})
    file = int(self._files[index])
    if file not in handles:
      handles[file] = tf.io.gfile.GFile(self._paths[file], "rb")
    handle = handles[file]
    handle.seek(int(self._offsets[index]))
    length, _ = _HEADER.unpack(handle.read(_HEADER.size))
    return handle.read(length)
