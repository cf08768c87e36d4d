"""Checkpoints in the glow_tfp.workdir layout, and the check that a workdir fits a config.

The chief writes `<workdir>/config.json` and `<workdir>/checkpoints/`; other workers of a
cluster write their (identical) checkpoints to a private temporary directory, as
MultiWorkerMirroredStrategy expects every worker to save, and all workers restore from the
chief's directory.
"""

import dataclasses
import os
import shutil
import tempfile

import tensorflow as tf

from glow_tfp import workdir as workdir_lib
from .errors import InputError


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
        checkpoint, self._private or self.shared_directory, max_to_keep=max_to_keep)

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
    return path

  def save(self, step):
    return self.manager.save(checkpoint_number=step)

  def close(self):
    if self._private:
      shutil.rmtree(self._private, ignore_errors=True)
