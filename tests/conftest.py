"""Shared fixtures; the property checks live in tests/checks.py."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy tests run in-process. This must happen
# before TensorFlow initialises its devices, hence at import time of the conftest.
_CPUS = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _CPUS[0], [tf.config.LogicalDeviceConfiguration()] * 2)


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
  from train import data as data_lib
  full = data_lib.load("mnist", levels=2, seed=0)
  return data_lib.Data("mnist[:64]", full.train_images[:48], full.train_labels[:48],
                       full.heldout_images[:16], full.heldout_labels[:16], full.num_classes)
