"""A bounded load test of a local server's log_prob: requests/s and latency percentiles.

  python -m serving.load_test --server=http://127.0.0.1:8501 --model_name=glow \
      --concurrency=8 --requests=400 --images_per_request=1

Each of `--concurrency` clients keeps one HTTP/1.1 connection open and sends row-format
log_prob requests of random images until `--requests` have been sent in all. Any answer other
than 200 counts as an error. Only loopback servers are accepted: this is a measuring tool for
the machine it runs on, not a way to load someone else's server.
"""

import http.client
import json
import threading
import time
import urllib.parse

from absl import app
from absl import flags
import numpy as np

from . import client as client_lib

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def log_prob_body(image_shape, batch_size, conditional, num_classes=1, seed=0):
  """A row-format log_prob request body of random uint8 images (and labels)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (batch_size,) + tuple(image_shape))
  instances = [{"images": image.tolist()} for image in images]
  if conditional:
    for instance, label in zip(instances, rng.integers(0, num_classes, batch_size)):
      instance["labels"] = int(label)
  return json.dumps({"signature_name": "log_prob", "instances": instances}).encode()


def run(url, body, concurrency, requests, timeout=60.0):
  """POSTs `body` to `url` `requests` times from `concurrency` threads.

  Returns:
    dict: requests, errors, seconds, requests_per_s, and p50_ms, p90_ms, p99_ms, max_ms.
  """
  parts = urllib.parse.urlsplit(url)
  if parts.hostname not in _LOOPBACK:
    raise ValueError(f"The load test only targets this machine ({', '.join(_LOOPBACK)}); "
                     f"got host {parts.hostname!r}.")
  remaining = iter(range(requests))
  lock = threading.Lock()
  latencies, errors = [], []

  def worker():
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    while True:
      with lock:
        if next(remaining, None) is None:
          break
      start = time.perf_counter()
      status = _post(connection, parts.path, body)
      elapsed = time.perf_counter() - start
      with lock:
        latencies.append(elapsed)
        if status != 200:
          errors.append(status)
    connection.close()

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


# allow_override: --server and --model_name mean the same in serving.client and
# serving.export, and tests import these modules together.
_SERVER = flags.DEFINE_string("server", "http://127.0.0.1:8501", "Base URL (loopback only).",
                              allow_override=True)
_MODEL_NAME = flags.DEFINE_string("model_name", "glow", "Name of the served model.",
                                  allow_override=True)
_CONCURRENCY = flags.DEFINE_integer("concurrency", 8, "Concurrent clients.", lower_bound=1,
                                    upper_bound=64)
_REQUESTS = flags.DEFINE_integer("requests", 400, "Requests in all.", lower_bound=1,
                                 upper_bound=10000)
_IMAGES_PER_REQUEST = flags.DEFINE_integer("images_per_request", 1, "Images per request.",
                                           lower_bound=1)
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", 1, "Labels are drawn from 0..num_classes-1 for a conditional model.",
    lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  client = client_lib.Client(_SERVER.value, _MODEL_NAME.value)
  inputs = client.signature_inputs("log_prob")
  body = log_prob_body(inputs["images"][1:], _IMAGES_PER_REQUEST.value, "labels" in inputs,
                       _NUM_CLASSES.value)
  url = f"{_SERVER.value.rstrip('/')}/v1/models/{_MODEL_NAME.value}:predict"
  result = run(url, body, _CONCURRENCY.value, _REQUESTS.value)
  print(json.dumps(dict(result, concurrency=_CONCURRENCY.value,
                        batch_size=_IMAGES_PER_REQUEST.value)))


if __name__ == "__main__":
  app.run(main)
