"""The exception types that stop training with one line, caught by the CLI."""


class InputError(ValueError):
  """A problem with flags, data or workdir found before training starts.

  Its message names the problem; `python -m train` prints it alone and exits, without a
  traceback and without touching the workdir.
  """


class CheckpointSaveError(RuntimeError):
  """A checkpoint that could not be written completely (a full disk, a failing filesystem).

  Its message names the checkpoint and the last good one, which the failed save left in
  place; `python -m train` prints it alone and exits, and the same command resumes from that
  checkpoint once the cause is fixed.
  """
