"""The layout of a training workdir, shared by training, export and the Keras wrapper.

  <workdir>/config.json      the GlowConfig (JSON)
  <workdir>/checkpoints/     tf.train.CheckpointManager directory; each checkpoint holds at
                             least `model` (a Glow) and, when training kept an exponential
                             moving average of the weights, `ema_model` (a Glow)
  <workdir>/heldout_reference.npz
                             up to `MAX_REFERENCE_IMAGES` held-out images (uint8 `images`
                             [N, H, W, C], int32 `labels` [N]) that training never saw: the
                             reference of the out-of-distribution scores (`glow_tfp.ood`)
  <workdir>/train_reference.npz
                             up to `MAX_TRAIN_REFERENCE_IMAGES` training images and labels,
                             what the out-of-distribution scores' style templates are fitted
                             on (`glow_tfp.ood.fit_templates`)
  <workdir>/sample_quality_classifier.npz
                             the classifier that judges the samples (`glow_tfp.classifier`),
                             kept for later evaluations of the same data
"""

import io
import os
import re
import typing

from absl import logging
import numpy as np
import tensorflow as tf

from glow_tfp import config as config_lib
from glow_tfp import flow

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
REFERENCE_FILE = "heldout_reference.npz"
MAX_REFERENCE_IMAGES = 1000
TRAIN_REFERENCE_FILE = "train_reference.npz"
MAX_TRAIN_REFERENCE_IMAGES = 5000
CLASSIFIER_FILE = "sample_quality_classifier.npz"

# What reading an incomplete or damaged checkpoint raises: TensorFlow's errors for a missing
# file, an index that is no table or a checksum that does not match, and IndexError for a
# data file cut short.
_UNREADABLE = (tf.errors.OpError, IndexError)


def config_path(workdir):
  return os.path.join(workdir, CONFIG_FILE)


def checkpoint_dir(workdir):
  return os.path.join(workdir, CHECKPOINT_DIR)


def save_config(workdir, config):
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(config_path(workdir), "w") as f:
    f.write(config.to_json())


def load_config(workdir):
  path = config_path(workdir)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"No model config at {path}: is {workdir!r} a training workdir?")
  with tf.io.gfile.GFile(path) as f:
    return config_lib.GlowConfig.from_json(f.read())


def classifier_path(workdir):
  return os.path.join(workdir, CLASSIFIER_FILE)


def reference_path(workdir):
  return os.path.join(workdir, REFERENCE_FILE)


def train_reference_path(workdir):
  return os.path.join(workdir, TRAIN_REFERENCE_FILE)


def save_reference_images(workdir, images, labels):
  """Writes the first `MAX_REFERENCE_IMAGES` held-out images and labels, unless present."""
  return _save_images(reference_path(workdir), images[:MAX_REFERENCE_IMAGES],
                      labels[:MAX_REFERENCE_IMAGES])


def save_training_images(workdir, images, labels):
  """Writes the first `MAX_TRAIN_REFERENCE_IMAGES` training images and labels, unless
  present."""
  return _save_images(train_reference_path(workdir), images[:MAX_TRAIN_REFERENCE_IMAGES],
                      labels[:MAX_TRAIN_REFERENCE_IMAGES])


def _save_images(path, images, labels):
  if tf.io.gfile.exists(path):
    return path
  tf.io.gfile.makedirs(os.path.dirname(path))
  # np.savez seeks in its file, which GFile (any filesystem TensorFlow knows) cannot.
  buffer = io.BytesIO()
  np.savez_compressed(buffer, images=np.asarray(images, np.uint8),
                      labels=np.asarray(labels, np.int32))
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())
  return path


def load_reference_images(path):
  """(images uint8 [N, H, W, C], labels int32 [N]) of a reference file (`REFERENCE_FILE`)."""
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"No held-out reference images at {path}: training writes {REFERENCE_FILE} into its "
        "workdir when it starts or resumes (run `python -m train` with the workdir's flags "
        "again; a finished run only evaluates and writes it), or pass an .npz with `images` "
        "(uint8 [N, H, W, C]) and `labels` (int32 [N]).")
  with tf.io.gfile.GFile(path, "rb") as f:
    arrays = np.load(io.BytesIO(f.read()))
  return arrays["images"], arrays["labels"]


def load_training_images(workdir):
  """(images uint8 [N, H, W, C], labels int32 [N]) of the workdir's `TRAIN_REFERENCE_FILE`,
  or None where training has not written it."""
  path = train_reference_path(workdir)
  return load_reference_images(path) if tf.io.gfile.exists(path) else None


class Restored(typing.NamedTuple):
  """A model restored from a workdir; unpacks as the pair `model, checkpoint_path`.

  Attributes:
    model: the `Glow`, holding the checkpoint's weights.
    checkpoint_path: the checkpoint it was restored from.
  """

  model: flow.Glow
  checkpoint_path: str


def restore_model(workdir, use_ema=True):
  """The Glow of the newest good checkpoint in `workdir` (`newest_good_checkpoint`; its EMA
  weights when it kept them).

  Returns:
    `Restored(model, checkpoint_path)`, a named pair:
    `model, checkpoint_path = restore_model(workdir)` works as well.
  """
  config = load_config(workdir)
  path = newest_good_checkpoint(checkpoint_dir(workdir))
  model = flow.Glow(config)
  key = "ema_model" if use_ema and _has_ema(path) else "model"
  tf.train.Checkpoint(**{key: model}).restore(path).expect_partial().assert_existing_objects_matched()
  return Restored(model, path)


def _has_ema(path):
  return any(name.startswith("ema_model/") for name, _ in tf.train.list_variables(path))


class CheckpointError(ValueError):
  """A checkpoint that does not read back completely; the message names it and the reason."""


def verify_checkpoint(path):
  """Reads every tensor of the checkpoint at `path` back; the reader checks each one against
  the CRC32C checksum its index holds.

  Raises:
    CheckpointError: the checkpoint's index or a data file is missing, cut short or damaged.
  """
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except _UNREADABLE as error:
    raise CheckpointError(f"checkpoint {path} does not read back: {error_reason(error)}"
                          ) from error


def error_reason(error):
  """One line saying why reading or writing a checkpoint failed with `error`."""
  if isinstance(error, tf.errors.OpError):
    return error.message.strip().splitlines()[0]
  if isinstance(error, IndexError):
    return f"{error} (a data file is shorter than its index says)"
  return str(error)


def checkpoint_paths(directory):
  """The checkpoints of a `tf.train.CheckpointManager` directory, newest (highest number)
  first: those its `checkpoint` state file lists and any other `<prefix>.index` there."""
  listed = set()
  try:
    # None, after a warning, for a state file that is missing or does not parse.
    state = tf.train.get_checkpoint_state(directory)
  except ValueError as error:  # one that parses but names no checkpoint
    logging.warning("Ignoring the checkpoint state file of %s (%s); looking for checkpoint "
                    "indexes instead.", directory, error)
    state = None
  if state is not None:
    listed.update(os.path.join(directory, os.path.basename(p))
                  for p in state.all_model_checkpoint_paths)
  indexes = tf.io.gfile.glob(os.path.join(directory, "*.index"))
  listed.update(index[:-len(".index")] for index in indexes)
  return sorted(listed, key=_checkpoint_number, reverse=True)


def _checkpoint_number(path):
  match = re.search(r"-(\d+)$", path)
  return int(match.group(1)) if match else -1


def newest_good_checkpoint(directory):
  """The newest checkpoint of `directory` that reads back completely (`verify_checkpoint`).

  Each newer one that does not is named in a warning with the reason, and passed over.

  Raises:
    FileNotFoundError: `directory` holds no checkpoint, or none that reads back; the message
      names the directory and each checkpoint tried.
  """
  problems = []
  for path in checkpoint_paths(directory):
    try:
      verify_checkpoint(path)
    except CheckpointError as error:
      logging.warning("Skipping %s; trying the next older checkpoint.", error)
      problems.append(str(error))
      continue
    return path
  if not problems:
    raise FileNotFoundError(f"No checkpoint in {directory}.")
  raise FileNotFoundError(f"No checkpoint in {directory} reads back; tried {len(problems)}: "
                          + "; ".join(problems) + ".")
