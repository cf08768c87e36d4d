"""Slow and idle clients hold no worker: a valid request waits only for its own service time.

The measurement runs a real server in a subprocess on 127.0.0.1, on a toy model.
"""

import json
import socket
import statistics
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import http_server
from tests.test_serving_server import running_server_with_flags

SLOW_CLIENTS = 500
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


def open_slow_clients(address, count):
  """`count` connections: every other one sends half a request, the rest say nothing."""
  sockets = []
  for i in range(count):
    sock = socket.create_connection(address, timeout=10)
    if i % 2:
      sock.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 1000\r\n\r\n{\"instances\": [")
    sockets.append(sock)
  return sockets


def closed_by_server(sock):
  try:
    return sock.recv(1) == b""
  except ConnectionResetError:
    return True


def test_slow_and_idle_clients_do_not_delay_valid_requests(export_toy_model, tmp_path):
  export_toy_model(tmp_path / "toy" / "1")
  with running_server_with_flags(
      tmp_path / "server.log", "--model_name=toy", f"--model_base_path={tmp_path / 'toy'}",
      "--rest_api_num_threads=2", "--grpc_max_threads=2",
      f"--rest_api_timeout_in_ms={int(TIMEOUT_S * 1000)}") as addresses:
    url = addresses.rest
    host, port = url[len("http://"):].split(":")
    grpc_host, grpc_port = addresses.grpc.split(":")
    with grpc.insecure_channel(addresses.grpc) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      rest_alone = [rest_predict_seconds(url) for _ in range(5)]
      grpc_alone = [grpc_predict_seconds(stub) for _ in range(5)]
      opened = time.monotonic()
      slow = (open_slow_clients((host, int(port)), SLOW_CLIENTS)
              + open_slow_clients((grpc_host, int(grpc_port)), 100))
      rest_crowded = [rest_predict_seconds(url) for _ in range(5)]
      grpc_crowded = [grpc_predict_seconds(stub) for _ in range(5)]
      crowded_s = time.monotonic() - opened
    print(f"REST alone {statistics.median(rest_alone) * 1e3:.1f} ms, with {SLOW_CLIENTS} slow "
          f"clients {statistics.median(rest_crowded) * 1e3:.1f} ms (max "
          f"{max(rest_crowded) * 1e3:.1f}); gRPC alone {statistics.median(grpc_alone) * 1e3:.1f}"
          f" ms, crowded {statistics.median(grpc_crowded) * 1e3:.1f} ms")
    assert crowded_s < TIMEOUT_S  # the slow clients were all still open while measured.
    assert max(rest_crowded) < max(rest_alone) + SLACK_S
    assert max(grpc_crowded) < max(grpc_alone) + SLACK_S
    time.sleep(max(0.0, opened + TIMEOUT_S + 1.0 - time.monotonic()))
    rest_slow = slow[:SLOW_CLIENTS]
    for sock in rest_slow:
      sock.settimeout(5)
    assert all(closed_by_server(sock) for sock in rest_slow)
    assert rest_predict_seconds(url) < max(rest_alone) + SLACK_S
    for sock in slow:
      sock.close()
