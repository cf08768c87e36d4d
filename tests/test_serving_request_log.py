"""Request logging from a model config's logging_config, read back with the official protos.

The server runs in a subprocess on 127.0.0.1 with ports the OS picks, on a toy model.
"""

import glob
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import model_config
from tests.test_serving_grpc_api import predict_request
from tests.test_serving_server import running_server_with_flags

CONFIG = """
model_config_list {
  config {
    name: "logged" base_path: "%(toy)s"
    logging_config {
      sampling_config { sampling_rate: 1.0 }
      log_collector_config { filename_prefix: "%(logs)s/requests" }
    }
  }
  config {
    name: "unlogged" base_path: "%(toy)s"
    logging_config {
      sampling_config { sampling_rate: 0.0 }
      log_collector_config { filename_prefix: "%(logs)s/requests" }
    }
  }
}
"""


def read_logs(pattern):
  """The PredictionLogs of the one file matching `pattern`."""
  [path] = glob.glob(pattern)
  return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
          for record in tf.data.TFRecordDataset(path)]


def test_rate_one_logs_every_answered_request_and_rate_zero_none(tmp_path, export_toy_model):
  export_toy_model(tmp_path / "toy" / "1")
  config = tmp_path / "models.config"
  config.write_text(CONFIG % {"toy": tmp_path / "toy", "logs": tmp_path / "logs"})
  sent = [np.array([i, -0.5], np.float32) for i in range(3)]
  with running_server_with_flags(tmp_path / "server.log",
                                 f"--model_config_file={config}") as addresses:
    with grpc.insecure_channel(addresses.grpc) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      for name in ("logged", "unlogged"):
        for x in sent:
          stub.Predict(predict_request("serving_default", model=name, x=x), timeout=60)
          body = json.dumps({"instances": x.tolist()}).encode()
          with urllib.request.urlopen(urllib.request.Request(
              f"{addresses.rest}/v1/models/{name}:predict", data=body), timeout=60):
            pass
        with pytest.raises(urllib.error.HTTPError):  # refused requests are not logged.
          urllib.request.urlopen(urllib.request.Request(
              f"{addresses.rest}/v1/models/{name}:predict", data=b'{"instances": ["a"]}'),
              timeout=60)
  logged = read_logs(str(tmp_path / "logs" / "requests-logged-*.tfrecord"))
  assert read_logs(str(tmp_path / "logs" / "requests-unlogged-*.tfrecord")) == []
  assert len(logged) == 2 * len(sent)
  for log, x in zip(logged, [x for x in sent for _ in range(2)]):
    spec = log.log_metadata.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == (
        "logged", 1, "serving_default")
    assert log.log_metadata.sampling_config.sampling_rate == 1.0
    assert list(log.log_metadata.saved_model_tags) == ["serve"]
    assert log.predict_log.request.model_spec == spec
    np.testing.assert_array_equal(tf.make_ndarray(log.predict_log.request.inputs["x"]), x)
    np.testing.assert_array_equal(tf.make_ndarray(log.predict_log.response.outputs["y"]),
                                  2 * x)


@pytest.mark.parametrize("logging_config, message", [
    ('sampling_config { sampling_rate: 1.5 } log_collector_config { filename_prefix: "l" }',
     "sampling_rate 1.5 must lie in [0, 1]"),
    ("sampling_config { sampling_rate: 0.5 }", "log_collector_config needs a filename_prefix"),
])
def test_a_bad_logging_config_is_refused_naming_the_model(tmp_path, logging_config, message):
  path = tmp_path / "models.config"
  path.write_text('model_config_list { config { name: "toy" base_path: "/models/toy" '
                  f"logging_config {{ {logging_config} }} }} }}")
  with pytest.raises(ValueError) as raised:
    model_config.read(str(path))
  assert f"model 'toy': logging_config: {message}" in str(raised.value)
