"""Warm-up requests, TF Serving's way: `assets.extra/tf_serving_warmup_requests`.

The file is a TFRecord of `tensorflow.serving.PredictionLog`s, each with a `predict_log`
request. The exporter writes one per signature and batch size in `BATCH_SIZES`
(`write_requests`); when a version loads, the server replays them (`read_requests`) before
the version is AVAILABLE, as TF Serving does with the same file, so that no client pays for
TensorFlow's first-call work (tracing, and oneDNN's set-up for each new input shape). A record
that fails fails the version's load, as in TF Serving.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from . import signatures
from . import tensors
from .errors import RequestError

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
# One image, a small batch and the batch size the served speed is measured at.
BATCH_SIZES = (1, 8, 64)
# TF Serving's limit on the records of a warm-up file.
MAX_RECORDS = 1000


def example_inputs(specs, batch_size, example_bytes=b""):
  """Inputs that the signature of `specs` (`signatures.InputSpec`s) accepts.

  Zeros with `batch_size` for a dimension of any size, `example_bytes` for each value of a
  string input; for scalars, `batch_size` for one that counts examples and 1 for others (one
  sample, a scale of 1).
  """
  return {spec.name: _example(spec, batch_size, example_bytes) for spec in specs}


def _example(spec, batch_size, example_bytes):
  shape = [batch_size if d is None else d for d in spec.shape]
  if spec.dtype.kind == "O":
    return np.full(shape, example_bytes, object)
  if not spec.shape:
    return np.array(batch_size if spec.counts_examples else 1, spec.dtype)
  return np.zeros(shape, spec.dtype)


def write_requests(export_dir, requests):
  """Writes `export_dir`'s warm-up file: one record per (signature name, {input: array})."""
  path = os.path.join(export_dir, WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for signature_name, arrays in requests:
      log = prediction_log_pb2.PredictionLog()
      request = log.predict_log.request
      request.model_spec.signature_name = signature_name
      for name, array in arrays.items():
        request.inputs[name].CopyFrom(tensors.to_proto(array))
      writer.write(log.SerializeToString())


def read_requests(version_dir, input_specs):
  """[(signature name, {input: array})] of the version's warm-up file; [] without one.

  Args:
    version_dir: the SavedModel's directory.
    input_specs: {signature name: [`signatures.InputSpec`]} of the SavedModel.

  Raises:
    ValueError: naming the record and what is wrong with it.
  """
  path = os.path.join(version_dir, WARMUP_FILE)
  if not tf.io.gfile.exists(path):
    return []
  requests = []
  for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
    if index == MAX_RECORDS:
      raise ValueError(f"{WARMUP_FILE} has more than {MAX_RECORDS} records.")
    try:
      requests.append(_request(prediction_log_pb2.PredictionLog.FromString(record),
                               input_specs))
    except (ValueError, RequestError) as e:
      raise ValueError(f"{WARMUP_FILE} record {index}: {e}") from None
  return requests


def _request(log, input_specs):
  if log.WhichOneof("log_type") != "predict_log":
    raise ValueError(f"a {log.WhichOneof('log_type')}; only predict_log requests are "
                     "replayed.")
  request = log.predict_log.request
  name = request.model_spec.signature_name or signatures.DEFAULT_SIGNATURE
  signatures.check_signature(name, input_specs)
  specs = {spec.name: spec for spec in input_specs[name]}
  signatures.check_names(set(request.inputs), set(specs), "The request")
  return name, {key: tensors.to_array(proto, specs[key]) for key, proto in request.inputs.items()}
