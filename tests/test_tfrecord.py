"""train.data.tfrecord and `python -m train.records`: shards written from a source read back by
index as `tfrecord:GLOB`, and bad records stopped with one line."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from train.data import datasets as data_lib
from train.data import images
from train.data import tfrecord
from train.errors import InputError

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read_all(catalog):
  read = catalog.make_read()
  return [tuple(t.numpy() for t in read(tf.constant(i, tf.int64))) for i in range(len(catalog))]


def test_shards_written_from_a_folder_read_back_the_same_images_and_labels(class_folder,
                                                                           tmp_path):
  folder = data_lib.catalog(class_folder)
  paths = tfrecord.write(folder, str(tmp_path / "records"), num_shards=3)
  records = data_lib.catalog(f"tfrecord:{tmp_path / 'records'}/*.tfrecord")
  assert len(paths) == 3 and all(os.path.exists(p) for p in paths)
  assert (len(records), records.image_shape, records.num_classes) == (20, (8, 8, 1), 2)
  for (image, label), (expected_image, expected_label) in zip(_read_all(records),
                                                              _read_all(folder)):
    np.testing.assert_array_equal(image, expected_image)
    assert label == expected_label
  assert records.keys[0] == b"images-00000-of-00003.tfrecord:0"


def _write_records(path, examples):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for example in examples:
      writer.write(example)


def test_records_without_an_image_feature_are_rejected(tmp_path):
  label = tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))
  example = tf.train.Example(features=tf.train.Features(feature={"label": label}))
  _write_records(tmp_path / "a.tfrecord", [example.SerializeToString()])
  with pytest.raises(InputError, match="record 'a.tfrecord:0' has no 'image' bytes feature"):
    data_lib.catalog(f"tfrecord:{tmp_path}/*.tfrecord")


def _image_example(image_bytes):
  image = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes]))
  return tf.train.Example(features=tf.train.Features(feature={"image": image}))


@pytest.mark.parametrize("extension", ["png", "jpg"])
def test_a_truncated_image_in_a_record_is_rejected_naming_the_record(tmp_path, truncated_image,
                                                                    extension):
  good = tf.io.encode_png(tf.zeros([16, 16, 1], tf.uint8)).numpy()
  _write_records(tmp_path / "a.tfrecord", [_image_example(good).SerializeToString()] * 2)
  _write_records(tmp_path / "b.tfrecord", [
      _image_example(good).SerializeToString(),
      _image_example(truncated_image(extension)).SerializeToString()])
  with pytest.raises(InputError, match=r"Cannot read image 'b.tfrecord:1': (?i:.*truncated)"):
    data_lib.catalog(f"tfrecord:{tmp_path}/*.tfrecord")


def test_a_truncated_image_outside_the_checked_sample_is_named_when_read(tmp_path,
                                                                        truncated_image):
  count = 2 * images.CHECK_SAMPLE
  bad = min(set(range(count)) - set(images.sample(count)))
  good = _image_example(tf.io.encode_png(tf.zeros([16, 16, 1], tf.uint8)).numpy())
  examples = [good] * count
  examples[bad] = _image_example(truncated_image("jpg"))
  _write_records(tmp_path / "a.tfrecord", [e.SerializeToString() for e in examples])
  stream = data_lib.load(f"tfrecord:{tmp_path}/a.tfrecord", levels=2)
  assert re.fullmatch(rf"Cannot read image 'a.tfrecord:{bad}': (?i:.*truncated.*)",
                      stream.unreadable())


def test_a_glob_that_matches_nothing_is_rejected(tmp_path):
  with pytest.raises(InputError, match="no file matches"):
    data_lib.load(f"tfrecord:{tmp_path}/*.tfrecord", levels=2)


def test_a_truncated_record_file_is_rejected(tmp_path, class_folder):
  tfrecord.write(data_lib.catalog(class_folder), str(tmp_path), num_shards=1)
  path = tmp_path / "images-00000-of-00001.tfrecord"
  path.write_bytes(path.read_bytes()[:-10])
  with pytest.raises(InputError, match="truncated"):
    data_lib.catalog(f"tfrecord:{path}")


def test_records_command_writes_shards_with_a_progress_line(class_folder, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, "-m", "train.records", f"--dataset={class_folder}",
       f"--output={tmp_path / 'out'}", "--num_shards=2"],
      cwd=_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "records: 20/20 images (100%)" in result.stderr
  assert sorted(os.listdir(tmp_path / "out")) == [
      "images-00000-of-00002.tfrecord", "images-00001-of-00002.tfrecord", "records.json"]
