"""What the server knows of a signature's inputs, and the conventions the exporter follows.

Everything here comes from the SavedModel: the SignatureDefs give each input's dtype and
shape, and an exporter may name, per signature, the scalar input that says how many examples
a request produces (`EXAMPLE_COUNTS_FILE`), so that the server counts it against its limit.
"""

import numpy as np

from .errors import RequestError

DEFAULT_SIGNATURE = "serving_default"
# SavedModel's place for files that higher-level libraries keep beside the model; TF Serving
# and the SavedModel loaders ignore it. Content: {signature name: input name}.
EXAMPLE_COUNTS_FILE = "assets.extra/example_counts.json"


class InputSpec:
  """The dtype (numpy) and shape (None = any size) a signature expects for one input.

  `counts_examples`: the input is a scalar whose value is the number of examples the
  request produces (declared in `EXAMPLE_COUNTS_FILE`).
  """

  def __init__(self, name, dtype, shape, counts_examples=False):
    self.name = name
    self.dtype = np.dtype(dtype)
    self.shape = tuple(shape)
    self.counts_examples = counts_examples

  @property
  def batched(self):
    """Whether the first dimension is the batch: present and of any size."""
    return bool(self.shape) and self.shape[0] is None

  def describe(self):
    dims = ", ".join("N" if d is None else str(d) for d in self.shape)
    # TensorFlow's strings are numpy objects.
    return f"{'string' if self.dtype.kind == 'O' else self.dtype.name} [{dims}]"

  def check(self, array):
    """Raises RequestError unless `array` has this input's dtype and shape."""
    if array.dtype != self.dtype:
      raise RequestError(f"Input '{self.name}' holds {array.dtype.name} values, but the "
                         f"signature expects {self.describe()}.")
    self.check_shape(array.shape)
    if self.dtype.kind == "f" and not np.all(np.isfinite(array)):
      raise RequestError(f"Input '{self.name}' contains NaN or Infinity.")

  def check_shape(self, shape, hint=""):
    """Raises RequestError unless an array of `shape` fits this input."""
    fits = len(shape) == len(self.shape) and all(
        want is None or want == got for want, got in zip(self.shape, shape))
    if not fits:
      raise RequestError(f"Input '{self.name}' has shape {list(shape)}, but the signature "
                         f"expects {self.describe()}.{hint}")

  def range_error(self):
    """The error for integer values outside this input's dtype."""
    info = np.iinfo(self.dtype)
    return RequestError(f"Input '{self.name}' has values outside {info.min}..{info.max}, "
                        f"the range of {self.dtype.name}.")

  def example_count(self, array):
    """How many examples `array`, a valid value of this input, asks for (0: none)."""
    if self.batched:
      return array.shape[0]
    return int(array) if self.counts_examples else 0


def check_signature(name, signature_names):
  """Raises RequestError unless the model has a signature called `name`."""
  if name not in signature_names:
    raise RequestError(f"Serving signature name: \"{name}\" not found in signature def; "
                       f"this model has {sorted(signature_names)}.")


def check_names(given, expected, where):
  """Raises RequestError unless the input names `given` are those of the signature."""
  if expected - given:
    raise RequestError(f"{where} is missing the input(s) {sorted(expected - given)}; "
                       f"the signature takes {sorted(expected)}.")
  if given - expected:
    raise RequestError(f"{where} has unknown input(s) {sorted(given - expected)}; "
                       f"the signature takes {sorted(expected)}.")
