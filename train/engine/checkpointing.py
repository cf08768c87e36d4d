"""Checkpoints in the glow_tfp.workdir layout, and the check that a workdir fits a config.

The chief writes `<workdir>/config.json` and `<workdir>/checkpoints/`; other workers of a
cluster write their (identical) checkpoints to a private temporary directory, as
MultiWorkerMirroredStrategy expects every worker to save, and all workers restore from the
chief's directory.

A save is committed only once it reads back. `tf.train.CheckpointManager.save` writes each
data file under a temporary name and renames it, writes the index, then runs the write
callbacks, then rewrites the `checkpoint` state file (a temporary file renamed over it) and
deletes the checkpoints beyond `max_to_keep`. The first callback here reads the new
checkpoint back (`glow_tfp.workdir.verify_checkpoint`); when it fails, the state file still
names the previous checkpoint and nothing is deleted. On a local disk the renames are atomic
but nothing is synced, so a crash of the machine can still cut a committed file short; on
object stores (`gs://`) a rename is a copy and a delete, so a crash mid-save leaves some
files of the new checkpoint. Restoring passes over such checkpoints
(`glow_tfp.workdir.newest_good_checkpoint`).
"""

import dataclasses
import os
import shutil
import tempfile

import tensorflow as tf

from glow_tfp import workdir as workdir_lib
from ..errors import CheckpointSaveError
from ..errors import InputError

_CHECKPOINT_NAME = "ckpt"
# What a failed write raises: Python's file errors and TensorFlow's (a full disk surfaces as
# either), and a checkpoint that does not read back.
_SAVE_ERRORS = (OSError, tf.errors.OpError, workdir_lib.CheckpointError)


def check_workdir(workdir, config):
  """Raises `InputError` if `workdir` holds a run of a config other than `config`.

  Returns whether the workdir already holds a checkpoint to resume from.
  """
  latest = bool(workdir_lib.checkpoint_paths(workdir_lib.checkpoint_dir(workdir)))
  if not tf.io.gfile.exists(workdir_lib.config_path(workdir)):
    if latest:
      raise InputError(f"--workdir={workdir} holds checkpoints but no {workdir_lib.CONFIG_FILE}"
                       "; refusing to resume or overwrite them. Use another --workdir.")
    return False
  try:
    saved = workdir_lib.load_config(workdir)
  except ValueError as error:
    raise InputError(f"--workdir={workdir} has an unreadable {workdir_lib.CONFIG_FILE}: "
                     f"{error}") from error
  if saved != config:
    raise InputError(f"--workdir={workdir} holds a run of a different model config "
                     f"({_differences(saved, config)}); it is left untouched. Use another "
                     "--workdir, or the flags of that run to resume it.")
  return latest


def _differences(saved, requested):
  fields = [f.name for f in dataclasses.fields(saved)]
  return ", ".join(f"{name}: {getattr(saved, name)!r} there, {getattr(requested, name)!r} "
                   "requested" for name in fields
                   if getattr(saved, name) != getattr(requested, name))


class Checkpointer:
  """Saves and restores one `tf.train.Checkpoint` for one process of a (possibly) cluster.

  Args:
    checkpoint: the `tf.train.Checkpoint` (model, optimizer, step, ...).
    workdir: the training workdir.
    max_to_keep: checkpoints kept by the manager.
    chief: whether this process owns the workdir.
  """

  def __init__(self, checkpoint, workdir, max_to_keep, chief):
    self.checkpoint = checkpoint
    self.shared_directory = workdir_lib.checkpoint_dir(workdir)
    self._private = None if chief else tempfile.mkdtemp(prefix="glow_worker_checkpoints_")
    self.manager = tf.train.CheckpointManager(
        checkpoint, self._private or self.shared_directory, max_to_keep=max_to_keep,
        checkpoint_name=_CHECKPOINT_NAME)
    self.last_good = None

  def restore_latest(self):
    """Restores the chief's newest good checkpoint (`workdir.newest_good_checkpoint`, which
    warns about each newer one that does not read back); returns its path.

    Raises `InputError` when no checkpoint reads back or the one that does not fit the
    objects being restored.
    """
    try:
      path = workdir_lib.newest_good_checkpoint(self.shared_directory)
    except FileNotFoundError as error:
      raise InputError(str(error)) from error
    try:
      self.checkpoint.restore(path).assert_existing_objects_matched()
    except AssertionError as error:
      raise InputError(f"The checkpoint in {self.shared_directory} does not match this "
                       f"model: {error}") from error
    self.last_good = path
    return path

  def save(self, step):
    """Writes the checkpoint of `step` and commits it once it reads back; returns its path.

    Raises `CheckpointSaveError` naming the checkpoint and the last good one, which stays
    the one to resume from, when the write fails or the checkpoint does not read back.
    """
    prefix = os.path.join(self.manager.directory, f"{_CHECKPOINT_NAME}-{step}")
    # A fresh options object each time: the manager appends its own commit callback to the
    # list it is given.
    options = tf.train.CheckpointOptions(
        experimental_write_callbacks=[workdir_lib.verify_checkpoint])
    try:
      path = self.manager.save(checkpoint_number=step, options=options)
    except _SAVE_ERRORS as error:
      if prefix != self.last_good:
        _remove_checkpoint_files(prefix)
      reason = workdir_lib.error_reason(error)
      last = (f"the last good checkpoint, {self.last_good}, is left as it was"
              if self.last_good else "there is no earlier checkpoint")
      raise CheckpointSaveError(
          f"Could not save checkpoint {prefix}: {reason}. The run stops; {last}. Fix the "
          "cause (disk space, filesystem) and run the same command again to resume."
      ) from error
    self.last_good = path
    return path

  def close(self):
    if self._private:
      shutil.rmtree(self._private, ignore_errors=True)


def _remove_checkpoint_files(prefix):
  """Deletes what a failed save of `prefix` left, to give the space back."""
  for path in tf.io.gfile.glob(prefix + ".*") + tf.io.gfile.glob(prefix + "_temp*"):
    if tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
    else:
      tf.io.gfile.remove(path)
