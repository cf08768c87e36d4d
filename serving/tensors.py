"""TensorProtos <-> numpy arrays, checked against a signature's input specs.

A client may fill a TensorProto's `tensor_content` (raw little-endian bytes) or its typed
`*_val` fields; TensorFlow reads both (`tf.make_ndarray`), with its rule that fewer typed
values than the shape holds repeat the last one. What TensorFlow would wrap or fail on
obscurely raises `RequestError` naming the input.
"""

import tensorflow as tf

from .errors import RequestError


def to_array(proto, spec):
  """One input's TensorProto -> a numpy array, refused unless it fits `spec`."""
  try:
    dtype = tf.dtypes.as_dtype(proto.dtype)
  except TypeError:
    raise RequestError(f"Input '{spec.name}' has no valid dtype (expected "
                       f"{spec.describe()}).") from None
  if dtype.as_numpy_dtype != spec.dtype:
    raise RequestError(f"Input '{spec.name}' holds {dtype.name} values, but the signature "
                       f"expects {spec.describe()}.")
  shape = [dim.size for dim in proto.tensor_shape.dim]
  if any(size < 0 for size in shape):
    raise RequestError(f"Input '{spec.name}' has shape {shape}: a request's tensor needs "
                       f"known sizes.")
  spec.check_shape(shape)
  try:
    return tf.make_ndarray(proto)
  except OverflowError:
    raise spec.range_error() from None
  except ValueError:
    raise RequestError(f"Input '{spec.name}' holds more values than its shape {shape} "
                       f"has room for (or tensor_content of the wrong size).") from None


def to_proto(array):
  """A numpy output -> TensorProto, as `tf.make_tensor_proto` writes it: numbers in
  `tensor_content`, booleans (DT_BOOL) in `bool_val`, strings in `string_val`."""
  return tf.make_tensor_proto(array)
