"""The TF-Serving-compatible REST server, its client and its load test, over real HTTP.

Each server runs in a subprocess on 127.0.0.1 with a port the OS picks.
"""

import base64
import collections
import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import pathlib
import re
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc

import glow_tfp
from glow_tfp import likelihood
from glow_tfp import ood
from serving import client as client_lib
from serving import load_test
from serving import saved_model
from tests.checks import assert_close, perturb, random_images, special_images

REPO = pathlib.Path(__file__).resolve().parents[1]
SHAPE = (8, 8, 1)
CLASSES = 3
MAX_BATCH = 16
MAX_BYTES = 100_000


def tiny_model(seed=0):
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=8, num_classes=CLASSES)
  model = glow_tfp.Glow(config, seed=seed)
  model.initialize(random_images((8,) + SHAPE, seed=seed), tf.range(8) % CLASSES)
  perturb(model, scale=0.05, seed=seed)
  return model


def uint8_images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPE).astype(np.uint8)


def live_log_likelihood(model, images, labels):
  return model.log_likelihood(images, tf.constant(labels, tf.int32),
                              noise=likelihood.default_draws(model.config)).numpy()


def server_env():
  return dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")


Addresses = collections.namedtuple("Addresses", ["rest", "grpc"])


@contextlib.contextmanager
def running_server(base_path, log_path, *extra_flags):
  """Starts `python -m serving.server` for the model "glow"; yields its `Addresses`."""
  with running_server_with_flags(log_path, "--model_name=glow",
                                 f"--model_base_path={base_path}", *extra_flags) as addresses:
    yield addresses


@contextlib.contextmanager
def running_server_with_flags(log_path, *flags):
  """Starts `python -m serving.server` with both APIs on free ports; yields its `Addresses`.

  rest: the REST API's base URL; grpc: the gRPC API's "host:port".
  """
  command = [sys.executable, "-m", "serving.server", "--rest_api_port=0", "--port=0",
             f"--max_batch_size={MAX_BATCH}", f"--max_request_bytes={MAX_BYTES}", *flags]
  with open(log_path, "wb") as log:
    # Unbuffered: select() cannot see lines a buffered reader has already pulled in.
    process = subprocess.Popen(command, cwd=REPO, env=server_env(), stdout=subprocess.PIPE,
                               stderr=log, bufsize=0)
  try:
    yield _wait_until_ready(process, log_path)
  finally:
    process.terminate()
    process.wait(timeout=30)


def _wait_until_ready(process, log_path, timeout=120):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    ready, _, _ = select.select([process.stdout], [], [], 1.0)
    if ready:
      line = process.stdout.readline().decode()
      match = re.search(r"http://127\.0\.0\.1:(\d+)/.* gRPC at (127\.0\.0\.1:\d+)", line)
      if match:
        return Addresses(f"http://127.0.0.1:{match[1]}", match[2])
    if process.poll() is not None:
      break
  process.kill()
  raise RuntimeError(f"The server did not start: {pathlib.Path(log_path).read_text()[-3000:]}")


def http_call(url, body=None, method=None):
  """(status, decoded JSON answer); `body` may be a dict (sent as JSON) or bytes."""
  data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
  request = urllib.request.Request(url, data=data, method=method)
  try:
    with urllib.request.urlopen(request, timeout=60) as response:
      return response.status, json.load(response)
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def tiny_reference(model):
  """The out-of-distribution reference `tiny_model_server` exports its model with."""
  return ood.reference_statistics(model, uint8_images(8, seed=1))


@contextlib.contextmanager
def tiny_model_server(base):
  """Yields (Addresses, the live model) of a batching server with version 1 of a tiny model,
  exported under `base`."""
  model = tiny_model()
  saved_model.export_version(model, str(base), "glow", reference=tiny_reference(model))
  with running_server(base / "glow", base / "server.log", "--enable_batching",
                      "--batch_timeout_micros=20000") as addresses:
    yield addresses, model


def saved_signature_defs(version_dir):
  """{key: SignatureDef} of the SavedModel in `version_dir`, read from its file."""
  saved = saved_model_pb2.SavedModel.FromString(
      (pathlib.Path(version_dir) / "saved_model.pb").read_bytes())
  return dict(saved.meta_graphs[0].signature_def)


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
  """Where the module's `served` fixture exports its model (version 1 in glow/1)."""
  return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def served(export_base):
  """(base URL, the live model) of a batching server with version 1 of a tiny model."""
  with tiny_model_server(export_base) as (addresses, model):
    yield addresses.rest, model


def predict_url(url, suffix=""):
  return f"{url}/v1/models/glow{suffix}:predict"


def row_log_prob_body(images, labels):
  return {"signature_name": "log_prob", "instances": [
      {"images": image.tolist(), "labels": int(label)} for image, label in zip(images, labels)]}


def test_status_reports_the_served_version_as_available(served):
  url, _ = served
  assert http_call(f"{url}/v1/models/glow") == (200, {"model_version_status": [
      {"version": "1", "state": "AVAILABLE",
       "status": {"error_code": "OK", "error_message": ""}}]})
  assert http_call(f"{url}/v1/models/glow/versions/1")[0] == 200


def test_metadata_describes_the_signatures_as_tf_serving_does(served, export_base):
  url, _ = served
  status, answer = http_call(f"{url}/v1/models/glow/metadata")
  assert status == 200
  assert answer["model_spec"] == {"name": "glow", "signature_name": "", "version": "1"}
  signatures = answer["metadata"]["signature_def"]["signature_def"]
  assert set(signatures) == set(saved_signature_defs(export_base / "glow" / "1"))
  assert set(saved_model.SIGNATURES) < set(signatures)
  default = signatures["serving_default"]
  assert default["method_name"] == "tensorflow/serving/predict"
  assert default["inputs"]["images"]["dtype"] == "DT_UINT8"
  assert [d["size"] for d in default["inputs"]["images"]["tensor_shape"]["dim"]] == [
      "-1", "8", "8", "1"]
  assert set(default["outputs"]) == {"log_likelihood", "bits_per_dim"}
  score = signatures["score"]["outputs"]
  assert {name: output["dtype"] for name, output in score.items()} == {
      name: "DT_BOOL" if name == "is_ood" else "DT_FLOAT"
      for name in ood.OUTPUTS + ood.CONDITIONAL_SCORES}


def test_row_format_log_prob_equals_the_library(served):
  url, model = served
  images, labels = uint8_images(5), [0, 1, 2, 0, 1]
  status, answer = http_call(predict_url(url), row_log_prob_body(images, labels))
  assert status == 200, answer
  served_ll = [p["log_likelihood"] for p in answer["predictions"]]
  assert_close(served_ll, live_log_likelihood(model, images, labels), rtol=1e-5)
  bpd = [p["bits_per_dim"] for p in answer["predictions"]]
  assert_close(bpd, -np.array(served_ll) / (np.prod(SHAPE) * np.log(2.0)), rtol=1e-5)


def test_served_log_likelihoods_of_unusual_images_are_probabilities(served):
  url, model = served
  images = special_images(SHAPE)
  labels = np.arange(len(images)) % CLASSES
  status, answer = http_call(predict_url(url), row_log_prob_body(images, labels))
  assert status == 200, answer
  served_ll = np.array([p["log_likelihood"] for p in answer["predictions"]])
  assert np.all(served_ll <= 0.0)
  assert_close(served_ll, live_log_likelihood(model, images, labels), rtol=1e-5)


def test_columnar_format_on_a_versioned_url(served):
  url, model = served
  images, labels = uint8_images(3, seed=1), [2, 2, 1]
  status, answer = http_call(predict_url(url, "/versions/1"), {
      "inputs": {"images": images.tolist(), "labels": labels}})
  assert status == 200, answer
  assert_close(answer["outputs"]["log_likelihood"], live_log_likelihood(model, images, labels),
               rtol=1e-5)


def test_rest_client_score_gives_is_ood_as_bool(served):
  url, model = served
  images = uint8_images(3, seed=4)
  images[1] = 0
  got = client_lib.Client(url, "glow").score(images)
  expected = ood.score_images(model, images, None, tiny_reference(model))
  assert set(got) == set(ood.OUTPUTS + ood.CONDITIONAL_SCORES) and got["is_ood"].dtype == bool
  np.testing.assert_array_equal(got["is_ood"], expected["is_ood"])
  assert_close(got["ood_score"], expected["ood_score"], rtol=1e-4)


def test_sample_is_seeded_and_equals_the_library(served):
  url, model = served
  client = client_lib.Client(url, "glow")
  first = client.sample(4, temperature=0.8, seed=3, labels=[0, 1, 2, 0])
  again = client.sample(4, temperature=0.8, seed=3, labels=[0, 1, 2, 0])
  live = glow_tfp.to_images(model.sample(4, 0.8, labels=tf.constant([0, 1, 2, 0]), seed=3))
  assert first.shape == (4,) + SHAPE
  np.testing.assert_array_equal(first, again)
  np.testing.assert_array_equal(first, live)


def test_encode_then_decode_over_http_gives_the_images_back(served):
  url, _ = served
  images, labels = uint8_images(2, seed=2), [1, 0]
  status, answer = http_call(predict_url(url), {"signature_name": "encode", "instances": [
      {"images": image.tolist(), "labels": label} for image, label in zip(images, labels)]})
  assert status == 200, answer
  latents = {name: [p[name] for p in answer["predictions"]] for name in ("latent_0", "latent_1")}
  status, answer = http_call(predict_url(url), {
      "signature_name": "decode", "inputs": dict(latents, labels=labels)})
  assert status == 200, answer
  np.testing.assert_array_equal(answer["outputs"], images)


def image_body(value=7, shape=SHAPE, label=0, **changes):
  instance = {"images": np.full(shape, value).tolist(), "labels": label}
  instance.update(changes)
  return {"signature_name": "log_prob", "instances": [instance]}


def encoded(array, image_format="PNG"):
  """The bytes of a uint8 image [H, W, 1 or 3] as a PNG or JPEG file."""
  buffer = io.BytesIO()
  Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, image_format)
  return buffer.getvalue()


def b64(data):
  return {"b64": base64.b64encode(data).decode()}


def encoded_body(image_bytes, label=0):
  return {"signature_name": "log_prob_encoded",
          "instances": [{"image_bytes": image_bytes, "labels": label}]}


BAD_REQUESTS = {
    "invalid_base64": ("", encoded_body({"b64": "not base64!"}), 400,
                       "'image_bytes' has a \"b64\" value that is not valid base64"),
    "not_an_image": ("", encoded_body(b64(b"not an image")), 400,
                     "Unknown image file format"),
    "image_of_the_wrong_size": ("", encoded_body(b64(encoded(np.zeros((4, 4, 1), np.uint8)))),
                                400, "each encoded image must be 8x8 pixels"),
    "malformed_json": ("", b'{"instances": [', 400, "JSON Parse error"),
    "deep_nesting": ("", b"[" * 20_000 + b"]" * 20_000, 400, "JSON Parse error"),
    "not_an_object": ("", b"[1, 2]", 400, "must be a JSON object"),
    "unknown_model": ("other", image_body(), 404, "Servable not found for request"),
    "unknown_version": ("glow/versions/9", image_body(), 404, "Specific(glow, 9)"),
    "unknown_signature": ("", dict(image_body(), signature_name="nope"), 400,
                          'signature name: "nope" not found'),
    "both_formats": ("", dict(image_body(), inputs={}), 400, "exactly one of the keys"),
    "wrong_shape": ("", image_body(shape=(8, 8, 3)), 400,
                    "'images' has shape [1, 8, 8, 3], but the signature expects uint8 "
                    "[N, 8, 8, 1]"),
    "float_pixels": ("", image_body(value=0.5), 400, "'images' must hold integers"),
    "string_pixels": ("", image_body(value="a"), 400, "'images' must hold integers"),
    "pixel_above_255": ("", image_body(value=256), 400, "'images' has values outside 0..255"),
    "negative_pixel": ("", image_body(value=-1), 400, "'images' has values outside 0..255"),
    "ragged_images": ("", {"signature_name": "log_prob", "inputs": {
        "images": [[[[1]] * 8] * 8, [[[1]] * 7] * 8], "labels": [0, 0]}}, 400,
        "'images' is not a rectangular array"),
    "missing_label": ("", {"instances": [{"images": np.zeros(SHAPE, int).tolist()}]}, 400,
                      "missing the input(s) ['labels']"),
    "label_out_of_range": ("", image_body(label=3), 400, "labels must be < num_classes = 3"),
    "unknown_input": ("", image_body(extra=1), 400, "unknown input(s) ['extra']"),
    "nan_latent": ("", b'{"signature_name": "decode", "inputs": {"latent_0": '
                   + json.dumps(np.zeros((1, 4, 4, 2)).tolist()).replace("0.0", "NaN", 1).encode()
                   + b', "latent_1": ' + json.dumps(np.zeros((1, 2, 2, 8)).tolist()).encode()
                   + b', "labels": [0]}}', 400, "'latent_0' contains NaN or Infinity"),
    "negative_temperature": ("", {"signature_name": "sample", "inputs": {
        "num_samples": 1, "temperature": -1.0, "seed": 0, "labels": [0]}}, 400,
        "temperature must be a finite number >= 0"),
    "scalar_in_row_format": ("", {"signature_name": "sample", "instances": [
        {"num_samples": 1, "temperature": 1.0, "seed": 0, "labels": 0}]}, 400,
        "send scalars with the columnar format"),
    "batch_above_limit": ("", {"signature_name": "log_prob", "inputs": {
        "images": np.zeros((MAX_BATCH + 1,) + SHAPE, int).tolist(),
        "labels": [0] * (MAX_BATCH + 1)}}, 400, "above the limit of 16 (--max_batch_size)"),
    "samples_above_limit": ("", {"signature_name": "sample", "inputs": {
        "num_samples": 1000, "temperature": 1.0, "seed": 0, "labels": [0]}}, 400,
        "'num_samples' asks for 1000 examples"),
    "body_above_limit": ("", b" " * (MAX_BYTES + 1), 413, "above the limit of 100000"),
    "classify_verb": ("glow:classify", image_body(), 400, "answers :predict only"),
    "encoded_traversal": ("..%2F..%2Fetc", image_body(), 404, "Servable not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_gets_a_4xx_error_and_the_server_keeps_serving(served, case):
  url, _ = served
  target, body, expected_status, message = BAD_REQUESTS[case]
  path = f"{url}/v1/models/{target or 'glow'}"
  path = path if ":" in target else path + ":predict"
  status, answer = http_call(path, body)
  assert status == expected_status, answer
  assert message in answer["error"]
  assert http_call(predict_url(url), row_log_prob_body(uint8_images(1), [0]))[0] == 200


@pytest.mark.parametrize("path", [
    "/v1/models/..%2F..%2Fetc/metadata", "/v1/models/glow/versions/..%2F1/metadata",
    "/v1/models/glow/../../etc/passwd", "/v1/models/glow/versions/x", "/etc/passwd"])
def test_paths_outside_the_model_are_not_found(served, path):
  url, _ = served
  status, answer = http_call(url + path)
  assert status == 404 and "error" in answer


def raw_exchange(url, request_bytes):
  """Sends raw bytes to the server; returns (status, decoded JSON answer, Connection)."""
  host, port = url[len("http://"):].split(":")
  with socket.create_connection((host, int(port)), timeout=30) as sock:
    sock.sendall(request_bytes)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read()), response.getheader("Connection")


@pytest.mark.parametrize("request_bytes, expected_status, message", [
    (b"POST /v1/models/glow:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411, "needs a Content-Length header"),
    (b"POST /v1/models/glow:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
     400, "Invalid Content-Length '-5'"),
    (b"PUT /v1/models/glow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 405,
     "Method PUT is not allowed"),
    (b"GET /v1/models/glow HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431,
     "Line too long"),
])
def test_malformed_http_gets_a_json_4xx(served, request_bytes, expected_status, message):
  url, _ = served
  status, answer, connection = raw_exchange(url, request_bytes)
  assert status == expected_status
  assert message in answer["error"]
  assert connection == "close"  # the unread rest must not be taken for a next request.
  assert http_call(f"{url}/v1/models/glow")[0] == 200


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_encoded_images_in_b64_equal_their_pixels(served, image_format):
  url, _ = served
  images, labels = uint8_images(4, seed=5), [0, 1, 2, 0]
  files = [encoded(image, image_format) for image in images]
  # JPEG is lossy: its pixels are what TensorFlow decodes.
  pixels = np.stack([tf.io.decode_image(data, channels=1).numpy() for data in files])
  status, answer = http_call(predict_url(url), {
      "signature_name": "log_prob_encoded",
      "instances": [{"image_bytes": b64(data), "labels": label}
                    for data, label in zip(files, labels)]})
  assert status == 200, answer
  status, expected = http_call(predict_url(url), row_log_prob_body(pixels, labels))
  assert status == 200, expected
  for name in ("log_likelihood", "bits_per_dim"):
    got = np.array([row[name] for row in answer["predictions"]])
    want = np.array([row[name] for row in expected["predictions"]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_concurrent_requests_each_get_their_own_answer(served):
  url, model = served
  requests = [(uint8_images(i + 1, seed=10 + i), [i % CLASSES] * (i + 1)) for i in range(8)]
  requests[3] = (requests[3][0], [0, 0, 0, 7])
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    answers = list(pool.map(lambda r: http_call(predict_url(url), row_log_prob_body(*r)),
                            requests))
  for i, ((images, labels), (status, answer)) in enumerate(zip(requests, answers)):
    if i == 3:
      assert status == 400 and "labels must be < num_classes" in answer["error"]
      continue
    assert status == 200, answer
    assert_close([p["log_likelihood"] for p in answer["predictions"]],
                 live_log_likelihood(model, images, labels), rtol=2e-6)


def test_load_test_finds_no_error_with_8_concurrent_clients(served):
  url, _ = served
  body = load_test.log_prob_body(SHAPE, batch_size=1, conditional=True,
                                 num_classes=CLASSES)
  result = load_test.run(predict_url(url), body, concurrency=8, requests=200)
  print("load test:", result)
  assert result["requests"] == 200 and result["errors"] == 0
  assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_load_test_refuses_other_hosts():
  with pytest.raises(ValueError, match="only targets this machine"):
    load_test.run("http://example.com:8501/v1/models/glow:predict", b"{}", 1, 1)


def test_client_cli_prints_log_likelihoods_of_png_and_npy_files(served, tmp_path):
  url, model = served
  images = uint8_images(3, seed=4)
  Image.fromarray(images[0, ..., 0]).save(tmp_path / "one.png")
  np.save(tmp_path / "two.npy", images[1:])
  result = subprocess.run(
      [sys.executable, "-m", "serving.client", f"--server={url}", "--model_name=glow",
       "--labels=2,-1,1", str(tmp_path / "one.png"), str(tmp_path / "two.npy")],
      cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [line.split() for line in result.stdout.splitlines()[1:]]
  assert [row[0] for row in rows] == [str(tmp_path / "one.png"), f"{tmp_path}/two.npy[0]",
                                      f"{tmp_path}/two.npy[1]"]
  unknown_class = model.log_likelihood(images[1:2], noise=likelihood.default_draws(
      model.config)).numpy()  # label -1: the class mixture
  expected = live_log_likelihood(model, images, [2, 0, 1])
  expected[1] = unknown_class[0]
  assert_close([float(row[1]) for row in rows], expected, rtol=5e-6)


def test_client_raises_the_servers_error(served):
  url, _ = served
  with pytest.raises(client_lib.ServingError, match="HTTP 400: .*labels must be < num_classes"):
    client_lib.Client(url, "glow").log_prob(uint8_images(1), labels=[5])


def test_client_names_files_it_cannot_use(tmp_path):
  np.save(tmp_path / "wrong.npy", np.zeros((2, 8, 8, 3), np.uint8))
  np.save(tmp_path / "floats.npy", np.zeros((8, 8, 1), np.float32))
  (tmp_path / "text.png").write_text("not an image")
  for name, message in [("wrong.npy", "shape \\[2, 8, 8, 3\\] does not fit"),
                        ("floats.npy", "expected uint8 values"),
                        ("text.png", "not an image file")]:
    with pytest.raises(ValueError, match=f"{name}: {message}"):
      client_lib.read_images([str(tmp_path / name)], SHAPE)


def wait_for(predicate, timeout=90):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return
    time.sleep(0.5)
  raise AssertionError("timed out waiting for the server")


def grpc_model_status(address, name="glow", version=None):
  """{version: (state, error code)} from GetModelStatus through the official stubs."""
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = name
  if version is not None:
    request.model_spec.version.value = version
  with grpc.insecure_channel(address) as channel:
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        request, timeout=60)
  state = get_model_status_pb2.ModelVersionStatus.State.Name
  return {s.version: (state(s.state), s.status.error_code) for s in
          response.model_version_status}


def served_versions(addresses):
  """({version: state} by the REST status URL, the same by GetModelStatus over gRPC)."""
  status, answer = http_call(f"{addresses.rest}/v1/models/glow")
  rest = ({} if status != 200 else
          {int(s["version"]): s["state"] for s in answer["model_version_status"]})
  try:
    by_grpc = {v: state for v, (state, _) in grpc_model_status(addresses.grpc).items()}
  except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e
    by_grpc = {}
  return rest, by_grpc


def test_new_versions_are_picked_up_without_restart(tmp_path):
  base = tmp_path / "exports"
  (base / "glow").mkdir(parents=True)
  with running_server(base / "glow", tmp_path / "server.log") as addresses:
    url = addresses.rest
    assert http_call(predict_url(url), image_body())[0] == 404
    first, second = tiny_model(seed=0), tiny_model(seed=1)
    saved_model.export_version(first, str(base), "glow")
    wait_for(lambda: served_versions(addresses) == ({1: "AVAILABLE"},) * 2)
    saved_model.export_version(second, str(base), "glow")
    wait_for(lambda: served_versions(addresses) == ({2: "AVAILABLE", 1: "END"},) * 2)
    assert http_call(predict_url(url, "/versions/1"), image_body())[0] == 404
    images = uint8_images(2, seed=5)
    status, answer = http_call(predict_url(url), row_log_prob_body(images, [0, 1]))
    assert status == 200
    assert_close([p["log_likelihood"] for p in answer["predictions"]],
                 live_log_likelihood(second, images, [0, 1]), rtol=5e-6)
    broken = base / "glow" / "3"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    wait_for(lambda: [api.get(3) for api in served_versions(addresses)] == ["END"] * 2)
    assert [api[2] for api in served_versions(addresses)] == ["AVAILABLE"] * 2
    unknown = grpc.StatusCode.UNKNOWN.value[0]
    assert grpc_model_status(addresses.grpc, version=3) == {3: ("END", unknown)}
    assert http_call(predict_url(url), row_log_prob_body(images, [0, 1]))[0] == 200


def test_server_refuses_a_model_name_that_is_a_path(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "serving.server", "--model_name=../etc",
       f"--model_base_path={tmp_path}"],
      cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert "--model_name must use letters" in result.stderr



@pytest.mark.parametrize("case", ["wrong_shape", "float_pixels", "pixel_above_255",
                                  "unknown_input", "labels"])
def test_score_rejects_bad_inputs_as_log_prob_does(served, case):
  # `score` takes no labels: a conditional model scores images under its class mixture.
  url, _ = served
  where, body, expected_status, message = BAD_REQUESTS.get(
      case, ("", image_body(), 400, "unknown input(s) ['labels']"))
  instances = [{k: v for k, v in row.items() if k != "labels" or case == "labels"}
               for row in body["instances"]]
  status, answer = http_call(predict_url(url, where),
                             dict(body, signature_name="score", instances=instances))
  assert status == expected_status and message in answer["error"]


def test_score_over_http_equals_the_signature(served):
  url, model = served
  images = uint8_images(3)
  images[0] = 0
  status, answer = http_call(predict_url(url), {"signature_name": "score", "instances": [
      {"images": image.tolist()} for image in images]})
  assert status == 200
  assert set(answer["predictions"][0]) == set(ood.OUTPUTS + ood.CONDITIONAL_SCORES)
  assert all(0.0 <= row["ood_percentile"] <= 100.0 for row in answer["predictions"])
  # TF Serving's JSON mapping: a DT_BOOL output as true/false. The rate is in every row.
  expected = ood.score_images(model, images, None, tiny_reference(model))
  assert [row["is_ood"] for row in answer["predictions"]] == expected["is_ood"].tolist()
  assert all(type(row["is_ood"]) is bool for row in answer["predictions"])
  assert [row["ood_false_positive_rate"] for row in answer["predictions"]] == pytest.approx(
      expected["ood_false_positive_rate"].tolist())


def http_status(url):
  try:
    with urllib.request.urlopen(url, timeout=60) as response:
      return response.status
  except urllib.error.HTTPError as e:
    return e.code


@pytest.mark.parametrize("config, exported_at", [
    ('prometheus_config { enable: true path: "/metrics" }', "/metrics"),
    ('prometheus_config { enable: false path: "/metrics" }', None),
])
def test_the_monitoring_config_file_moves_or_turns_off_the_metrics(
    tmp_path, export_toy_model, config, exported_at):
  export_toy_model(tmp_path / "toy" / "1")
  (tmp_path / "monitoring.config").write_text(config)
  with running_server_with_flags(
      tmp_path / "server.log", "--model_name=toy", f"--model_base_path={tmp_path / 'toy'}",
      f"--monitoring_config_file={tmp_path / 'monitoring.config'}") as (url, _):
    statuses = {path: http_status(url + path)
                for path in ("/metrics", "/monitoring/prometheus/metrics")}
  assert statuses == {path: 200 if path == exported_at else 404 for path in statuses}


def test_server_refuses_a_bad_monitoring_config_file_at_start(tmp_path):
  config = tmp_path / "monitoring.config"
  config.write_text("prometheus_config { enabled: true }")
  result = subprocess.run(
      [sys.executable, "-m", "serving.server", f"--model_base_path={tmp_path}",
       f"--monitoring_config_file={config}"],
      cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert (f"--monitoring_config_file: {config}: " in result.stderr
          and 'no field named "enabled"' in result.stderr), result.stderr[-2000:]


@pytest.mark.parametrize("user_value, expected", [(None, "1"), ("0", "0"), ("1", "1")])
def test_serving_turns_onednn_on_unless_the_user_turned_it_off(user_value, expected):
  env = {k: v for k, v in server_env().items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if user_value is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = user_value
  result = subprocess.run(
      [sys.executable, "-c", "import os, serving.server; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
  assert result.stdout.strip() == expected


def _default_threads():
  if tf.config.list_physical_devices("GPU"):
    return "intra_op=0 inter_op=0"
  return f"intra_op=1 inter_op={len(os.sched_getaffinity(0))}"


@pytest.mark.parametrize("thread_flags, expected", [
    (["--tensorflow_intra_op_parallelism=2", "--tensorflow_inter_op_parallelism=1"],
     "intra_op=2 inter_op=1"),
    ([], _default_threads())])
def test_thread_flags_are_applied_before_the_model_loads(tmp_path, thread_flags, expected):
  command = [sys.executable, "-m", "serving.server", f"--model_base_path={tmp_path}",
             "--rest_api_port=0", "--port=0"] + thread_flags
  with open(tmp_path / "server.log", "wb") as log:
    # Unbuffered: select() cannot see lines a buffered reader has already pulled in.
    process = subprocess.Popen(command, cwd=REPO, env=server_env(), stdout=subprocess.PIPE,
                               stderr=log, bufsize=0)
  try:
    first_line = process.stdout.readline().decode()
  finally:
    process.terminate()
    process.wait(timeout=30)
  assert f"TensorFlow threads: {expected} " in first_line
  assert "TF_ENABLE_ONEDNN_OPTS=1" in first_line


@pytest.mark.parametrize("flag", ["--tensorflow_intra_op_parallelism=-1", "--tensorflow_inter_op_parallelism=-2",
                                  "--tensorflow_intra_op_parallelism=two"])
def test_bad_thread_flags_are_refused(tmp_path, flag):
  result = subprocess.run(
      [sys.executable, "-m", "serving.server", f"--model_base_path={tmp_path}", flag],
      cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert f"flag {flag.split('=')[0]}=" in result.stderr


@pytest.mark.parametrize("flag", ["--rest_api_port", "--port"])
def test_a_port_in_use_is_a_one_line_error_naming_it_and_its_flag(tmp_path, flag):
  with socket.create_server(("127.0.0.1", 0)) as taken:
    port = taken.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "serving.server", f"--model_base_path={tmp_path}",
         "--rest_api_port=0", "--port=0", f"{flag}={port}"],
        cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.splitlines()[-1] == (
      f"serving.server: error: cannot listen on 127.0.0.1:{port} ({flag}): Address already in "
      "use"), result.stderr[-2000:]
  assert "Traceback" not in result.stderr
