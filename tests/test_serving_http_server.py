"""Slow and idle clients hold no worker: a valid request waits only for its own service time.

The measurement runs a real server in a subprocess on 127.0.0.1, on a toy model.
"""

import collections
import concurrent.futures
import http.server
import json
import selectors
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import http_server
from tests.test_serving_server import running_server_with_flags

SLOW_CLIENTS = 500  # on each port
TIMEOUT_S = 3.0
# What a request may wait beyond its service time: the reading thread's turn, on a busy
# 2-core machine.
SLACK_S = 0.25


@pytest.mark.parametrize("request_bytes, after", [
    (b"GET / HTTP/1.1\r\n\r\n", b"GET"),
    (b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}", b"GET"),
    # Bodies the handler refuses unread: the request is its headers.
    (b"POST / HTTP/1.1\r\nContent-Length: 999\r\n\r\n", b"{"),
    (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"{}"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"2\r\n{}"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000, b""),  # over-long headers: refused.
])
def test_request_length_finds_where_a_whole_request_ends(request_bytes, after):
  length = http_server.request_length(bytearray(request_bytes + after), max_body_bytes=100)
  assert length == len(request_bytes)


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\r\n", b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}"])
def test_request_length_waits_for_the_rest(request_bytes):
  assert http_server.request_length(bytearray(request_bytes), max_body_bytes=100) is None


def rest_predict_seconds(url):
  body = json.dumps({"instances": [1.0, 2.0]}).encode()
  start = time.perf_counter()
  with urllib.request.urlopen(f"{url}/v1/models/toy:predict", body, timeout=30) as response:
    assert json.load(response) == {"predictions": [2.0, 4.0]}
  return time.perf_counter() - start


def grpc_predict_seconds(stub):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "toy"
  request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1, 2], np.float32)))
  start = time.perf_counter()
  response = stub.Predict(request, timeout=30)
  assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.0, 4.0]
  return time.perf_counter() - start


def http2_frame(kind, flags, stream, payload):
  header = len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
  return header + payload


def hpack_literal(name, value):
  """A header field as HPACK's literal without indexing, new name (RFC 7541 6.2.2)."""
  return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PARTIAL_PREDICT = (
    HTTP2_PREFACE + http2_frame(4, 0, 0, b"")  # SETTINGS
    + http2_frame(1, 4, 1, b"".join(hpack_literal(name, value) for name, value in [  # HEADERS
        (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
        (b":path", b"/tensorflow.serving.PredictionService/Predict"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")]))
    # DATA: a gRPC message that announces 1000 bytes and sends 2 of them.
    + http2_frame(0, 0, 1, b"\x00" + (1000).to_bytes(4, "big") + b"\x0a\x03"))
PARTIAL_REST_REQUEST = (b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 1000\r\n\r\n{\"instances\": [")


def open_slow_clients(address, count, partial_requests):
  """`count` connections: every other one says nothing; the others send, in turn, one of
  `partial_requests` and wait. Returns [(socket, what it sent)]."""
  clients = []
  for i in range(count):
    sock = socket.create_connection(address, timeout=10)
    sent = partial_requests[(i // 2) % len(partial_requests)] if i % 2 else b""
    sock.sendall(sent)
    clients.append((sock, sent))
  return clients


def closing_times(sockets, start, timeout):
  """Seconds from `start` until the server closed each socket; None: still open at `timeout`."""
  times = {}
  with selectors.DefaultSelector() as selector:
    for sock in sockets:
      sock.setblocking(False)
      selector.register(sock, selectors.EVENT_READ)
    while len(times) < len(sockets) and time.monotonic() < start + timeout:
      for key, _ in selector.select(0.1):
        try:
          closed = not key.fileobj.recv(65536)
        except BlockingIOError:
          continue
        except ConnectionResetError:
          closed = True
        if closed:
          times[key.fileobj] = time.monotonic() - start
          selector.unregister(key.fileobj)
  return [times.get(sock) for sock in sockets]


def alone_and_crowded(measure, crowd):
  """Seconds of 5 requests alone (after one to warm up), and of 5 while `crowd()` is open."""
  measure()
  alone = [measure() for _ in range(5)]
  crowd()
  return alone, [measure() for _ in range(5)]


class _NoDelayReporter(http.server.BaseHTTPRequestHandler):
  """Answers with the TCP_NODELAY option of the connection it was handed."""

  def do_GET(self):  # noqa: N802 (BaseHTTPRequestHandler's name)
    body = str(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)).encode()
    self.send_response(200)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    del args  # Quiet in tests.


def test_connections_send_without_waiting_for_acks():
  server = http_server.HttpServer(("127.0.0.1", 0), _NoDelayReporter, num_threads=1,
                                  timeout_s=5.0, max_body_bytes=1024, max_connections=8,
                                  max_queued=8)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    host, port = server.server_address[:2]
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as answer:
      assert int(answer.read()) != 0
  finally:
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


def test_slow_and_idle_clients_do_not_delay_valid_requests(export_toy_model, tmp_path):
  export_toy_model(tmp_path / "toy" / "1")
  timeout_ms = int(TIMEOUT_S * 1000)
  with running_server_with_flags(
      tmp_path / "server.log", "--model_name=toy", f"--model_base_path={tmp_path / 'toy'}",
      "--rest_api_num_threads=2", "--grpc_max_threads=2", f"--rest_api_timeout_in_ms={timeout_ms}",
      f"--grpc_idle_timeout_in_ms={timeout_ms}",
      f"--grpc_max_connection_age_in_ms={timeout_ms}") as addresses:
    url = addresses.rest
    host, port = url[len("http://"):].split(":")
    grpc_host, grpc_port = addresses.grpc.split(":")
    slow = []

    def open_crowd():
      slow.extend(open_slow_clients((host, int(port)), SLOW_CLIENTS, [PARTIAL_REST_REQUEST]))
      slow.extend(open_slow_clients((grpc_host, int(grpc_port)), SLOW_CLIENTS,
                                    [HTTP2_PREFACE[:12], PARTIAL_PREDICT]))
      return time.monotonic()

    with grpc.insecure_channel(addresses.grpc) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      grpc_alone, _ = alone_and_crowded(lambda: grpc_predict_seconds(stub), lambda: None)
      opened = []
      rest_alone, rest_crowded = alone_and_crowded(lambda: rest_predict_seconds(url),
                                                   lambda: opened.append(open_crowd()))
      grpc_crowded = [grpc_predict_seconds(stub) for _ in range(5)]
      crowded_s = time.monotonic() - opened[0]
      print(f"REST alone {statistics.median(rest_alone) * 1e3:.1f} ms (max "
            f"{max(rest_alone) * 1e3:.1f}), with {2 * SLOW_CLIENTS} slow clients "
            f"{statistics.median(rest_crowded) * 1e3:.1f} ms (max {max(rest_crowded) * 1e3:.1f});"
            f" gRPC alone {statistics.median(grpc_alone) * 1e3:.1f} ms (max "
            f"{max(grpc_alone) * 1e3:.1f}), crowded {statistics.median(grpc_crowded) * 1e3:.1f} "
            f"ms (max {max(grpc_crowded) * 1e3:.1f})")
      assert crowded_s < TIMEOUT_S  # the slow clients were all still open while measured.
      assert max(rest_crowded) < max(rest_alone) + SLACK_S
      assert max(grpc_crowded) < max(grpc_alone) + SLACK_S
      # A partial RPC keeps its connection busy, not idle: it goes with the connection's age
      # (+10% jitter) and the grace that follows.
      limits = {b"": TIMEOUT_S, HTTP2_PREFACE[:12]: TIMEOUT_S, PARTIAL_REST_REQUEST: TIMEOUT_S,
                PARTIAL_PREDICT: 2.1 * TIMEOUT_S}
      closed = closing_times([sock for sock, _ in slow], opened[0], 2.1 * TIMEOUT_S + 1.0)
      late = collections.Counter(
          sent[:12] for (_, sent), seconds in zip(slow, closed)
          if seconds is None or seconds > limits[sent] + 1.0)
      assert not late, f"connections not closed in time, by their first bytes: {late}"
      assert rest_predict_seconds(url) < max(rest_alone) + SLACK_S
      assert grpc_predict_seconds(stub) < max(grpc_alone) + SLACK_S
    for sock, _ in slow:
      sock.close()


def test_requests_beyond_the_queue_are_refused_at_once_and_counted(export_toy_model, tmp_path):
  from tests.test_serving_grpc_api import metric_samples
  export_toy_model(tmp_path / "toy" / "1")
  # One worker, one queued request; a lone request holds the worker for 1 s, waiting for
  # others to batch with.
  with running_server_with_flags(
      tmp_path / "server.log", "--model_name=toy", f"--model_base_path={tmp_path / 'toy'}",
      "--rest_api_num_threads=1", "--rest_api_max_queued_requests=1", "--enable_batching",
      "--batch_timeout_micros=1000000") as addresses:
    url = f"{addresses.rest}/v1/models/toy:predict"
    body = json.dumps({"instances": [1.5]}).encode()

    def post():
      request = urllib.request.Request(url, data=body)
      try:
        with urllib.request.urlopen(request, timeout=60) as answer:
          return answer.status, json.load(answer)
      except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
      answers = list(pool.map(lambda _: post(), range(3)))
    counted = metric_samples(addresses.rest)
    assert post() == (200, {"predictions": [3.0]})  # the server keeps serving.
  assert sorted(status for status, _ in answers) == [200, 200, 503]
  refused = next(body for status, body in answers if status == 503)
  assert "queue of 1 requests waiting for a worker is full (--rest_api_max_queued_requests)" in (
      refused["error"])
  assert counted[':tensorflow:serving:request_count{model_name="toy",API="Predict",'
                 'entrypoint="REST",status="RESOURCE_EXHAUSTED"}'] == 1
