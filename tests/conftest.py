"""Shared fixtures; the property checks live in tests/checks.py."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests run what users run: the applications turn oneDNN's convolutions on (see
# train/__init__.py), and the subprocesses the tests start inherit the choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy tests run in-process. This must happen
# before TensorFlow initialises its devices, hence at import time of the conftest.
_CPUS = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _CPUS[0], [tf.config.LogicalDeviceConfiguration()] * 2)


# Each worker is a process with its own TensorFlow runtime (1-2 GB while training tiny
# models); more than four add memory faster than they save time.
_MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
  del config  # The cap depends on the machine only.
  return max(1, min(os.cpu_count() or 1, _MAX_WORKERS))


@pytest.fixture(autouse=True)
def distinct_collective_keys():
  """Gives each test's MirroredStrategy its own range of collective keys.

  Every MirroredStrategy in a process starts its collective group keys at the same value,
  so two strategies created by different tests reuse keys with different shapes and
  abort the process-wide collective executor. TensorFlow's own tests move the base the
  same way (tensorflow/python/distribute/strategy_combinations.py).
  """
  tf.distribute.MirroredStrategy._collective_key_base += 100000  # pylint: disable=protected-access


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_mnist():
  """48 training and 16 held-out bundled MNIST digits (28x28x1), for training tests."""
  from train.data import datasets as data_lib
  full = data_lib.load("mnist", levels=2, seed=0)
  return data_lib.Data("mnist[:64]", full.train_images[:48], full.train_labels[:48],
                       full.heldout_images[:16], full.heldout_labels[:16], full.num_classes)


class _ToyModel(tf.Module):
  """A model that is not Glow: batched and scalar inputs, and a scalar that counts examples."""

  @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x"),
                                tf.TensorSpec([], tf.float32, name="factor")])
  def scale(self, x, factor):
    return {"y": x * factor}

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="count"),
                                tf.TensorSpec([], tf.int64, name="seed")])
  def fill(self, count, seed):
    check = tf.debugging.assert_non_negative(count, message="count must be >= 0")
    with tf.control_dependencies([check]):
      return {"z": tf.fill([count], seed)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
  def double(self, x):
    return {"y": 2.0 * x}


@pytest.fixture
def export_toy_model():
  """Exports `_ToyModel` to a path, declaring `example_counts` (`serving.signatures`)."""
  from serving import signatures

  def export(path, example_counts=None):
    model = _ToyModel()
    tf.saved_model.save(model, str(path), signatures={
        "scale": model.scale, "fill": model.fill, "serving_default": model.double})
    if example_counts is not None:
      os.makedirs(os.path.dirname(os.path.join(path, signatures.EXAMPLE_COUNTS_FILE)))
      with open(os.path.join(path, signatures.EXAMPLE_COUNTS_FILE), "w") as f:
        json.dump(example_counts, f)
    return str(path)
  return export



def _write_png(path, shape, value=0):
  import PIL.Image
  os.makedirs(os.path.dirname(path), exist_ok=True)
  array = np.full(shape, value, np.uint8)
  PIL.Image.fromarray(array.squeeze(-1) if shape[-1] == 1 else array).save(path)


@pytest.fixture
def write_png():
  """write_png(path, shape, value=0): a uint8 PNG of `shape` (H, W, C) filled with `value`,
  its folder created."""
  return _write_png


@pytest.fixture
def class_folder(tmp_path):
  """folder:PATH of two classes of 10 8x8 grey PNGs; image i of class c has value 100c + i."""
  for c in range(2):
    for i in range(10):
      _write_png(str(tmp_path / "images" / f"class{c}" / f"{i}.png"), (8, 8, 1), 100 * c + i)
  return f"folder:{tmp_path / 'images'}"


@pytest.fixture
def truncated_image():
  """truncated_image(extension): the bytes of a random 16x16 grey PNG or JPEG cut off after
  three quarters: a valid header, then too little data."""
  import io
  import PIL.Image

  def encode(extension):
    image = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, {"png": "PNG", "jpg": "JPEG"}[extension])
    data = buffer.getvalue()
    return data[:len(data) * 3 // 4]
  return encode
