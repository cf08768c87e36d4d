"""TensorFlow Serving's REST predict formats: JSON request -> arrays, arrays -> JSON answer.

Row format: `{"signature_name": s, "instances": [...]}`, one entry per example: an object
naming every input, or the bare value when the signature has one input. Every input is
batched along a new first dimension. Answer: `{"predictions": [...]}`, one entry per example
(an object naming every output, or the bare value when there is one output).

Columnar format: `{"signature_name": s, "inputs": {name: tensor, ...}}` (or the bare tensor
when the signature has one input); each tensor is given whole, so scalar inputs (such as
`sample`'s `num_samples`) need this format. Answer: `{"outputs": {name: tensor, ...}}` (or
the bare tensor when there is one output).

A string input (such as `log_prob_encoded`'s `image_bytes`) takes TF Serving's convention for
bytes: each value is an object `{"b64": "<base64>"}`, or a plain JSON string (its UTF-8
bytes).

Outputs are answered as TF Serving's JSON mapping has them: a DT_BOOL output (such as
`score`'s `is_ood`) as JSON `true`/`false`, numbers as numbers (NaN and infinities as the
tokens `NaN`, `Infinity` and `-Infinity`, which Python's `json` module reads).

Every problem with a request raises `RequestError` with a message naming the input and what
is wrong, as TF Serving's `{"error": ...}` body does.
"""

import base64
import binascii
import json

import numpy as np

from . import signatures
from .errors import RequestError


def parse_request(body, signature_names):
  """The JSON body -> (signature name, the request's payload, row format?).

  Args:
    body: request bytes.
    signature_names: the served model's signature names.
  """
  try:
    request = json.loads(body)
  except (ValueError, RecursionError) as e:  # JSONDecodeError and bad UTF-8 are ValueErrors.
    raise RequestError(f"JSON Parse error: {e}") from None
  if not isinstance(request, dict):
    raise RequestError("JSON Parse error: the request body must be a JSON object.")
  name = request.get("signature_name", signatures.DEFAULT_SIGNATURE)
  if not isinstance(name, str):
    raise RequestError("'signature_name' must be a string.")
  signatures.check_signature(name, signature_names)
  if ("instances" in request) == ("inputs" in request):
    raise RequestError("The request must have exactly one of the keys 'instances' (row "
                       "format) and 'inputs' (columnar format).")
  row_format = "instances" in request
  return name, request["instances" if row_format else "inputs"], row_format


def request_arrays(payload, specs, row_format):
  """The request's payload -> {input name: numpy array}, checked against the specs."""
  values = (row_inputs if row_format else columnar_inputs)(payload, specs)
  return {spec.name: to_array(values[spec.name], spec, row_format) for spec in specs}


def row_inputs(instances, specs):
  """The row format's `instances` list -> {input name: value batched over examples}."""
  if not isinstance(instances, list) or not instances:
    raise RequestError("'instances' must be a non-empty list, one entry per example.")
  if len(specs) == 1 and not any(isinstance(i, dict) and not _is_b64(i) for i in instances):
    return {specs[0].name: instances}
  names = {spec.name for spec in specs}
  for index, instance in enumerate(instances):
    if not isinstance(instance, dict):
      raise RequestError(f"instances[{index}] must be an object naming the inputs "
                         f"{sorted(names)}.")
    signatures.check_names(set(instance), names, f"instances[{index}]")
  return {name: [instance[name] for instance in instances] for name in names}


def columnar_inputs(inputs, specs):
  """The columnar format's `inputs` -> {input name: value}."""
  if not isinstance(inputs, dict) or _is_b64(inputs):
    if len(specs) == 1:
      return {specs[0].name: inputs}
    raise RequestError(f"'inputs' must be an object naming the inputs "
                       f"{sorted(s.name for s in specs)}.")
  signatures.check_names(set(inputs), {spec.name for spec in specs}, "'inputs'")
  return dict(inputs)


def _is_b64(value):
  return isinstance(value, dict) and set(value) == {"b64"}


def to_array(value, spec, row_format):
  """One input's JSON value -> a numpy array of the spec's dtype, shape and value range."""
  strings = spec.dtype.kind == "O"
  try:
    array = (np.array(_bytes_values(value, spec), object) if strings else np.array(value))
  except (ValueError, OverflowError, TypeError, RecursionError):
    raise RequestError(f"Input '{spec.name}' is not a rectangular array of "
                       f"{'strings' if strings else 'numbers'} (expected "
                       f"{spec.describe()}).") from None
  hint = (" The row format batches every input; send scalars with the columnar format "
          "('inputs')." if row_format and array.ndim > len(spec.shape) else "")
  spec.check_shape(array.shape, hint)
  if strings:
    # Ragged lists become arrays of lists, which `check_shape` may not see.
    if not all(isinstance(item, bytes) for item in array.ravel()):
      raise RequestError(f"Input '{spec.name}' is not a rectangular array of strings "
                         f"(expected {spec.describe()}).")
    return array
  return _convert(array, spec)


def _bytes_values(value, spec):
  """A string input's JSON value with each {"b64": ...} and string as bytes."""
  if isinstance(value, list):
    return [_bytes_values(item, spec) for item in value]
  if isinstance(value, str):
    return value.encode()
  if _is_b64(value) and isinstance(value["b64"], str):
    try:
      return base64.b64decode(value["b64"], validate=True)
    except binascii.Error:
      raise RequestError(f"Input '{spec.name}' has a \"b64\" value that is not valid "
                         "base64.") from None
  raise RequestError(f"Input '{spec.name}' holds strings: each value must be a "
                     "{\"b64\": \"...\"} object or a string.")


def _convert(array, spec):
  kind = array.dtype.kind
  if spec.dtype.kind in "iu":
    if kind not in "iu":
      raise RequestError(f"Input '{spec.name}' must hold integers ({spec.dtype.name}); "
                         f"got {_kind_name(kind)}.")
    info = np.iinfo(spec.dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
      raise spec.range_error()
  elif spec.dtype.kind == "f":
    if kind not in "iuf":
      raise RequestError(f"Input '{spec.name}' must hold numbers ({spec.dtype.name}); "
                         f"got {_kind_name(kind)}.")
  elif spec.dtype.kind != kind:
    raise RequestError(f"Input '{spec.name}' must hold {spec.dtype.name} values; got "
                       f"{_kind_name(kind)}.")
  return array.astype(spec.dtype)


def _kind_name(kind):
  return {"b": "booleans", "f": "non-integer numbers", "U": "strings",
          "O": "mixed or out-of-range values"}.get(kind, f"values of kind {kind!r}")


def format_response(outputs, row_format):
  """{output name: numpy array} -> TF Serving's answer object."""
  if not row_format:
    if len(outputs) == 1:
      return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
  sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
  if len(sizes) != 1 or None in sizes:
    raise RequestError("The row format needs every output to have the same batch size; "
                       "use the columnar format ('inputs') for this signature.")
  if len(outputs) == 1:
    return {"predictions": next(iter(outputs.values())).tolist()}
  columns = {name: value.tolist() for name, value in outputs.items()}
  return {"predictions": [{name: column[i] for name, column in columns.items()}
                          for i in range(sizes.pop())]}
