"""A bounded load test of a local server's log_prob: requests/s and latency percentiles.

  python -m serving.load_test --protocol=rest --server=http://127.0.0.1:8501 \\
      --model_name=glow --concurrency=8 --requests=400 --images_per_request=1
  python -m serving.load_test --protocol=grpc --server=127.0.0.1:8500 --model_name=glow ...

Each of `--concurrency` clients keeps one connection open (an HTTP/1.1 connection, or a gRPC
channel of its own) and sends log_prob requests of random images (REST: row format; gRPC:
`tensor_content`) until `--requests` have been sent in all. With `--image_encoding=png` the
images travel as PNG files to `log_prob_encoded` (REST: `{"b64": ...}`; gRPC: `string_val`).
Any answer but success counts as an error. Only loopback servers are accepted: this is a
measuring tool for the machine it runs on, not a way to load someone else's server.
"""

import base64
import http.client
import io
import json
import threading
import time
import urllib.parse

from absl import app
from absl import flags
import grpc
import numpy as np
from PIL import Image
from tensorflow_serving.apis import prediction_service_pb2_grpc

from . import client as client_lib
from . import common_flags
from . import grpc_client

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def log_prob_inputs(image_shape, batch_size, conditional, num_classes=1, seed=0):
  """{"images": random uint8 [batch_size, *image_shape] (, "labels": int32 [batch_size])}."""
  rng = np.random.default_rng(seed)
  inputs = {"images": rng.integers(0, 256, (batch_size,) + tuple(image_shape), np.uint8)}
  if conditional:
    inputs["labels"] = rng.integers(0, num_classes, batch_size).astype(np.int32)
  return inputs


def png_inputs(inputs):
  """`log_prob_inputs` for log_prob_encoded: each image as the bytes of a PNG file."""
  files = []
  for image in inputs["images"]:
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, "PNG")
    files.append(buffer.getvalue())
  encoded = dict(inputs, image_bytes=np.array(files, object))
  del encoded["images"]
  return encoded


def log_prob_body(image_shape, batch_size, conditional, num_classes=1, seed=0):
  """A row-format log_prob request body of random uint8 images (and labels)."""
  return row_body(log_prob_inputs(image_shape, batch_size, conditional, num_classes, seed))


def row_body(inputs, signature_name="log_prob"):
  """A row-format request body of {input name: batched array}."""
  batch_size = len(next(iter(inputs.values())))
  instances = [{name: _json_value(value[i]) for name, value in inputs.items()}
               for i in range(batch_size)]
  return json.dumps({"signature_name": signature_name, "instances": instances}).encode()


def _json_value(value):
  """A value of one example in TF Serving's JSON: bytes as {"b64": ...}."""
  if isinstance(value, bytes):
    return {"b64": base64.b64encode(value).decode()}
  return value.tolist()


def run(url, body, concurrency, requests, timeout=60.0):
  """POSTs `body` to `url` (REST) `requests` times from `concurrency` threads.

  Returns:
    dict: requests, errors, seconds, requests_per_s, and p50_ms, p90_ms, p99_ms, max_ms.
  """
  parts = urllib.parse.urlsplit(url)
  _check_loopback(parts.hostname)

  def connect():
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    return lambda: _post(connection, parts.path, body) == 200, connection.close
  return _measure(connect, concurrency, requests)


def run_grpc(address, request, concurrency, requests, timeout=60.0):
  """Sends the PredictRequest `request` to `address` (gRPC) as `run` does; same summary."""
  _check_loopback(address.rpartition(":")[0].strip("[]"))

  def connect():
    # A subchannel pool of its own: each client gets its own connection, as REST's do.
    channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def send():
      try:
        stub.Predict(request, timeout=timeout)
        return True
      except grpc.RpcError:
        return False
    return send, channel.close
  return _measure(connect, concurrency, requests)


def _check_loopback(host):
  if host not in _LOOPBACK:
    raise ValueError(f"The load test only targets this machine ({', '.join(_LOOPBACK)}); "
                     f"got host {host!r}.")


def _measure(connect, concurrency, requests):
  """Sends `requests` in all from `concurrency` threads; returns the summary.

  Each thread calls `connect()` for its own (send, close); `send()` sends one request and
  says whether the answer was a success.
  """
  remaining = iter(range(requests))
  lock = threading.Lock()
  latencies, errors = [], []

  def worker():
    send, close = connect()
    while True:
      with lock:
        if next(remaining, None) is None:
          break
      start = time.perf_counter()
      ok = send()
      elapsed = time.perf_counter() - start
      with lock:
        latencies.append(elapsed)
        if not ok:
          errors.append(elapsed)
    close()

  start = time.perf_counter()
  threads = [threading.Thread(target=worker) for _ in range(concurrency)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  return _summary(latencies, len(errors), time.perf_counter() - start)


def _post(connection, path, body):
  try:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status
  except (OSError, http.client.HTTPException):
    connection.close()  # the next request reconnects.
    return None


def _summary(latencies, errors, seconds):
  millis = np.array(latencies) * 1000.0
  p50, p90, p99 = np.percentile(millis, [50, 90, 99])
  return {"requests": len(latencies), "errors": errors, "seconds": round(seconds, 3),
          "requests_per_s": round(len(latencies) / seconds, 1),
          "p50_ms": round(float(p50), 1), "p90_ms": round(float(p90), 1),
          "p99_ms": round(float(p99), 1),
          "max_ms": round(float(millis.max()), 1)}


_CONNECTION = common_flags.define_connection_flags()
_CONCURRENCY = flags.DEFINE_integer("concurrency", 8, "Concurrent clients.", lower_bound=1,
                                    upper_bound=64)
_REQUESTS = flags.DEFINE_integer("requests", 400, "Requests in all.", lower_bound=1,
                                 upper_bound=10000)
_IMAGES_PER_REQUEST = flags.DEFINE_integer("images_per_request", 1, "Images per request.",
                                           lower_bound=1)
_IMAGE_ENCODING = flags.DEFINE_enum(
    "image_encoding", "array", ["array", "png"], "How images travel: array: uint8 arrays "
    "to log_prob (REST: JSON integers; gRPC: tensor_content); png: PNG files to "
    "log_prob_encoded (REST: {\"b64\": ...}; gRPC: string_val).")
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", 1, "Labels are drawn from 0..num_classes-1 for a conditional model.",
    lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  protocol, model_name = _CONNECTION["protocol"].value, _CONNECTION["model_name"].value
  server = _CONNECTION["server"].value or common_flags.DEFAULT_SERVERS[protocol]
  client = client_lib.make_client(protocol, server, model_name)
  shapes = client.signature_inputs("log_prob")
  inputs = log_prob_inputs(shapes["images"][1:], _IMAGES_PER_REQUEST.value, "labels" in shapes,
                           _NUM_CLASSES.value)
  signature = "log_prob"
  if _IMAGE_ENCODING.value == "png":
    inputs, signature = png_inputs(inputs), "log_prob_encoded"
  if protocol == "grpc":
    request = grpc_client.predict_request(model_name, inputs, signature)
    result = run_grpc(server, request, _CONCURRENCY.value, _REQUESTS.value)
  else:
    result = run(f"{server.rstrip('/')}/v1/models/{model_name}:predict",
                 row_body(inputs, signature), _CONCURRENCY.value, _REQUESTS.value)
  print(json.dumps(dict(result, protocol=protocol, concurrency=_CONCURRENCY.value,
                        batch_size=_IMAGES_PER_REQUEST.value,
                        image_encoding=_IMAGE_ENCODING.value)))


if __name__ == "__main__":
  app.run(main)
