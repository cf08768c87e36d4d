"""The one exception type for bad user input to training, caught by the CLI."""


class InputError(ValueError):
  """A problem with flags, data or workdir found before training starts.

  Its message names the problem; `python -m train` prints it alone and exits, without a
  traceback and without touching the workdir.
  """
