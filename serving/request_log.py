"""Request logging, TF Serving's way: a sampled share of a model's Predict requests, with their
answers, as `PredictionLog`s in a TFRecord file.

A model's config (`serving.model_config`) turns it on with TF Serving's `LoggingConfig`:

  logging_config {
    sampling_config { sampling_rate: 0.01 }
    log_collector_config { filename_prefix: "/var/log/glow/requests" }
  }

Each Predict request (REST or gRPC) that succeeds is written with probability
`sampling_rate` to `<filename_prefix>-<model name>-<start time>-<process id>.tfrecord`, one
file per model and server run, each record a `tensorflow.serving.PredictionLog` whose
`predict_log` holds the request and the response (every output) and whose `log_metadata`
the model spec, the sampling config, the SavedModel's tags and the time;
`prediction_log_pb2.PredictionLog.FromString` reads it back. `log_collector_config.type`
names a log collector plug-in in TF Serving; here the file is always a TFRecord file and the
type is not read.
"""

import os
import random
import threading
import time

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from . import tensors


def file_name(filename_prefix, model_name):
  """The log file of this server run for a model and its `filename_prefix`."""
  return (f"{filename_prefix}-{model_name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
          ".tfrecord")


class RequestLog:
  """Writes a sampled share of one model's Predict requests to a TFRecord file.

  Args:
    model_name: the model's name, written in each record's model spec.
    logging_config: the model's `LoggingConfig`, checked by `check`.
  """

  def __init__(self, model_name, logging_config):
    self._model_name = model_name
    self._sampling_config = logging_config.sampling_config
    self._rate = logging_config.sampling_config.sampling_rate
    self._lock = threading.Lock()
    self.path = file_name(logging_config.log_collector_config.filename_prefix, model_name)
    tf.io.gfile.makedirs(os.path.dirname(self.path) or ".")
    self._writer = tf.io.TFRecordWriter(self.path)

  @staticmethod
  def check(logging_config):
    """Raises ValueError unless `logging_config` has a rate in [0, 1] and a file prefix."""
    rate = logging_config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
      raise ValueError(f"sampling_rate {rate} must lie in [0, 1].")
    if not logging_config.log_collector_config.filename_prefix:
      raise ValueError("log_collector_config needs a filename_prefix.")

  def record(self, version, signature_name, inputs, outputs):
    """Writes one answered request ({name: numpy array} each way), if it is sampled."""
    if random.random() >= self._rate:
      return
    log = prediction_log_pb2.PredictionLog()
    for spec in (log.log_metadata.model_spec, log.predict_log.request.model_spec,
                 log.predict_log.response.model_spec):
      _fill_model_spec(spec, self._model_name, version, signature_name)
    log.log_metadata.sampling_config.CopyFrom(self._sampling_config)
    log.log_metadata.saved_model_tags.append(tf.saved_model.SERVING)
    log.log_metadata.timestamp_secs = int(time.time())
    _fill_tensors(log.predict_log.request.inputs, inputs)
    _fill_tensors(log.predict_log.response.outputs, outputs)
    data = log.SerializeToString()
    with self._lock:
      self._writer.write(data)
      # A record reaches the file at once, so the log survives the server being killed.
      self._writer.flush()


def _fill_model_spec(model_spec, name, version, signature_name):
  model_spec.name = name
  model_spec.version.value = version
  model_spec.signature_name = signature_name


def _fill_tensors(protos, arrays):
  for name, array in arrays.items():
    protos[name].CopyFrom(tensors.to_proto(array))
