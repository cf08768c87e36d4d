"""TF Serving's model config file: several models, each with its base path and version policy.

  model_config_list {
    config { name: "glow" base_path: "/models/glow" model_platform: "tensorflow" }
    config {
      name: "other" base_path: "/models/other"
      model_version_policy { specific { versions: 1 versions: 3 } }
    }
  }

A model's `logging_config` (TF Serving's `LoggingConfig`) logs a sampled share of its requests
(`serving.request_log`).

The text format of `tensorflow.serving.ModelServerConfig`, parsed with its own proto, so a
file that works here works with `tensorflow/serving --model_config_file` and back.
"""

from google.protobuf import text_format
import tensorflow as tf
from tensorflow_serving.config import model_server_config_pb2

from . import model_name as model_name_lib
from . import request_log
from . import servable
from . import version_policy


def read(path):
  """The `servable.ModelManager` of each model in the config file at `path`.

  Raises:
    ValueError: naming the file and what is wrong with it.
  """
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  config = model_server_config_pb2.ModelServerConfig()
  try:
    text_format.Parse(text, config)
    return _managers(config)
  except (text_format.ParseError, ValueError) as e:
    raise ValueError(f"{path}: {e}") from None


def _managers(config):
  if config.WhichOneof("config") != "model_config_list":
    raise ValueError("expected a model_config_list (custom_model_config is not served).")
  models = config.model_config_list.config
  if not models:
    raise ValueError("the model_config_list names no model.")
  names = [model.name for model in models]
  repeated = sorted({name for name in names if names.count(name) > 1})
  if repeated:
    raise ValueError(f"models named more than once: {repeated}.")
  for model in models:
    if not model_name_lib.is_valid(model.name):
      raise ValueError(f"model name {model.name!r}: use {model_name_lib.RULE}.")
    if not model.base_path:
      raise ValueError(f"model {model.name!r} has no base_path.")
    if model.version_labels:
      raise ValueError(f"model {model.name!r}: version_labels are not served; requests name "
                       f"version numbers.")
    if model.model_platform not in ("", "tensorflow"):
      raise ValueError(f"model {model.name!r}: model_platform {model.model_platform!r} is "
                       f"not served; only 'tensorflow'.")
    if model.HasField("logging_config"):
      try:
        request_log.RequestLog.check(model.logging_config)
      except ValueError as e:
        raise ValueError(f"model {model.name!r}: logging_config: {e}") from None
  return [servable.ModelManager(model.name, model.base_path,
                                version_policy.from_proto(model.model_version_policy),
                                _request_log(model))
          for model in models]


def _request_log(model):
  if not model.HasField("logging_config"):
    return None
  return request_log.RequestLog(model.name, model.logging_config)
