"""train.data.datasets: the bundled MNIST digits, streamed folders and TensorFlow Datasets, bad input."""

import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from train.data import datasets as data_lib
from train.data import images
from train.data import streaming
from train.errors import InputError


def test_mnist_is_the_5000_bundled_digits_split_by_seed():
  data = data_lib.load("mnist", levels=2, seed=0)
  assert data.image_shape == (28, 28, 1)
  assert (len(data.train_images), len(data.heldout_images)) == (4500, 500)
  assert data.num_classes == 10 and set(np.unique(data.train_labels)) == set(range(10))
  assert data.train_images.dtype == np.uint8 and data.train_images.max() == 255
  again = data_lib.load("mnist", levels=2, seed=0)
  other = data_lib.load("mnist", levels=2, seed=1)
  np.testing.assert_array_equal(data.heldout_images, again.heldout_images)
  assert not np.array_equal(data.heldout_images, other.heldout_images)


def test_mnist_is_zero_padded_when_the_levels_need_it():
  plain = data_lib.load("mnist", levels=2, seed=0)
  padded = data_lib.load("mnist", levels=3, seed=0)
  assert padded.image_shape == (32, 32, 1)
  np.testing.assert_array_equal(padded.train_images[:, 2:30, 2:30], plain.train_images)
  assert padded.train_images[:, :2].max() == 0 and padded.train_images[:, 30:].max() == 0


def test_mnist_evaluation_reads_at_most_eval_examples():
  data = data_lib.load("mnist", levels=2, seed=0, eval_examples=100)
  full = data_lib.load("mnist", levels=2, seed=0)
  np.testing.assert_array_equal(data.heldout_images, full.heldout_images[:100])
  assert data.num_train == 4500


def test_folder_of_images_without_classes_streams_with_a_held_out_part(tmp_path, write_png):
  for i in range(5):
    write_png(str(tmp_path / f"img{i}.png"), (8, 8, 3), value=10 * i)
  (tmp_path / "notes.txt").write_text("not an image")
  stream = data_lib.load(f"folder:{tmp_path}", levels=2, heldout_fraction=0.2)
  data = data_lib.in_memory(stream)
  assert isinstance(stream, streaming.Stream)
  assert data.image_shape == (8, 8, 3) and data.num_classes == 0
  assert (stream.num_train, stream.num_heldout) == (4, 1)
  everything = np.concatenate([data.train_images, data.heldout_images])
  assert sorted(everything[:, 0, 0, 0]) == [0, 10, 20, 30, 40]


def test_folder_with_one_subdirectory_per_class(class_folder):
  data = data_lib.in_memory(data_lib.load(class_folder, levels=3, heldout_fraction=0.3))
  assert data.num_classes == 2 and data.image_shape == (8, 8, 1)
  images = np.concatenate([data.train_images, data.heldout_images])
  labels = np.concatenate([data.train_labels, data.heldout_labels])
  np.testing.assert_array_equal(images[:, 0, 0, 0] // 100, labels)


def test_heldout_dataset_replaces_the_split(class_folder, tmp_path, write_png):
  for i in range(3):
    write_png(str(tmp_path / "test" / f"{i}.png"), (8, 8, 1), 7)
  stream = data_lib.load(class_folder, levels=2, heldout_spec=f"folder:{tmp_path / 'test'}",
                         eval_examples=2)
  assert (stream.num_train, stream.num_heldout) == (20, 2)
  assert set(data_lib.in_memory(stream).heldout_images.ravel()) == {7}


def test_tfds_source_reads_image_and_label_features():
  with tfds.testing.mock_data(num_examples=20):
    data = data_lib.in_memory(data_lib.load("tfds:mnist:train", levels=2, seed=0))
  assert data.image_shape == (28, 28, 1) and data.num_classes == 10
  assert (len(data.train_images), len(data.heldout_images)) == (18, 2)
  assert data.train_images.dtype == np.uint8


def _bad_folder(kind, root, write_png, truncated_image):
  if kind == "missing":
    return str(root / "nowhere")
  if kind == "empty":
    return str(root)
  if kind == "unreadable":
    write_png(str(root / "good.png"), (8, 8, 1))
    (root / "broken.png").write_bytes(b"this is not a png")
  if kind.startswith("truncated_"):
    extension = kind.split("_")[1]
    write_png(str(root / f"good.{extension}"), (16, 16, 1))
    (root / f"cut.{extension}").write_bytes(truncated_image(extension))
  if kind == "mixed_sizes":
    write_png(str(root / "a.png"), (8, 8, 1))
    write_png(str(root / "b.png"), (16, 8, 1))
  if kind == "indivisible":
    write_png(str(root / "a.png"), (6, 6, 1))
    write_png(str(root / "b.png"), (6, 6, 1))
  if kind == "images_and_classes":
    write_png(str(root / "a.png"), (8, 8, 1))
    write_png(str(root / "cls" / "b.png"), (8, 8, 1))
  return str(root)


@pytest.mark.parametrize("kind, message", [
    ("missing", "does not exist"),
    ("empty", "holds no"),
    ("unreadable", "Cannot read image .*broken.png"),
    ("truncated_png", "Cannot read image .*cut.png.*(?i:truncated)"),
    ("truncated_jpg", "Cannot read image .*cut.jpg.*(?i:truncated)"),
    ("mixed_sizes", r"different shapes: .*a.png.* is \(8, 8, 1\).*b.png.* is \(16, 8, 1\)"),
    ("indivisible", r"\(6, 6, 1\).*divisible by 2\*\*levels = 4"),
    ("images_and_classes", "mixes images"),
])
def test_bad_folder_is_rejected_with_a_message_naming_the_problem(tmp_path, write_png,
                                                                  truncated_image, kind,
                                                                  message):
  folder = _bad_folder(kind, tmp_path, write_png, truncated_image)
  with pytest.raises(InputError, match=message):
    data_lib.load(f"folder:{folder}", levels=2)


def _folder_with_one_bad_image_outside_the_sample(root, write_png, write_bad):
  """A folder of 4x4 PNGs, one of them outside the checked sample written by `write_bad`;
  returns that image's path."""
  count = 2 * images.CHECK_SAMPLE
  bad = min(set(range(count)) - set(images.sample(count)))
  for i in range(count):
    write_png(str(root / f"{i:03d}.png"), (4, 4, 1))
  write_bad(root / f"{bad:03d}.png")
  return str(root / f"{bad:03d}.png")


def test_a_truncated_image_outside_the_checked_sample_is_named_when_read(tmp_path, write_png,
                                                                        truncated_image):
  bad = _folder_with_one_bad_image_outside_the_sample(
      tmp_path, write_png, lambda path: path.write_bytes(truncated_image("png")))
  stream = data_lib.load(f"folder:{tmp_path}", levels=2)
  assert re.fullmatch(rf"Cannot read image {re.escape(repr(bad))}: (?i:.*truncated.*)",
                      stream.unreadable())


def test_an_image_of_another_shape_outside_the_checked_sample_names_both_shapes(tmp_path,
                                                                               write_png):
  bad = _folder_with_one_bad_image_outside_the_sample(
      tmp_path, write_png, lambda path: write_png(str(path), (8, 4, 1)))
  stream = data_lib.load(f"folder:{tmp_path}", levels=2)
  assert stream.unreadable() == (
      f"Images have different shapes: {str(tmp_path / '000.png')!r} is (4, 4, 1) (H, W, C) "
      f"but {bad!r} is (8, 4, 1); resize them to one shape.")


@pytest.mark.parametrize("spec", ["cifar", "folder:", "tfds:", "mnist:train"])
def test_unknown_dataset_spec_is_rejected(spec):
  with pytest.raises(InputError, match="Unknown dataset"):
    data_lib.load(spec, levels=2)


def test_unknown_tfds_name_is_rejected():
  with pytest.raises(InputError, match="Cannot load tfds:no_such_dataset_xyz"):
    data_lib.load("tfds:no_such_dataset_xyz", levels=2)
