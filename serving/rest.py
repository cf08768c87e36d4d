"""TF Serving's REST API over HTTP/1.1: routing, request bodies, JSON and status codes.

  GET  /v1/models/<name>[/versions/<v>]             version status
  GET  /v1/models/<name>[/versions/<v>]/metadata    signatures
  POST /v1/models/<name>[/versions/<v>]:predict     row ("instances") or columnar ("inputs")
  GET  /monitoring/prometheus/metrics               request counts and latencies (metrics;
                                                    the path is the monitoring config's)

Requests run on a bounded pool of `num_threads` workers, each request handed over only once
it has fully arrived (`serving.http_server`), so slow or idle clients hold no worker. A bad
request gets a 4xx answer `{"error": "..."}` and changes nothing. URL parts are never used
as file paths. The request path itself, shared with the gRPC API, is `service.Service`.
"""

import contextlib
import http
import http.server
import json
import re
import time
import urllib.parse

from absl import logging
from google.protobuf import json_format as proto_json

from . import errors
from . import http_server
from . import json_format
from . import metrics
from .errors import RequestError

_MODEL_URL = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
_GET_URL = re.compile(_MODEL_URL + r"(?P<metadata>/metadata)?")
_POST_URL = re.compile(_MODEL_URL + r":(?P<verb>[A-Za-z]+)")
ENTRYPOINT = "REST"
# The API each POST verb names in the metrics; a fixed set, so that URLs cannot add labels.
_POST_APIS = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
# TF Serving's mapping of the canonical error codes to HTTP; RESOURCE_EXHAUSTED is the
# full queue of whole requests (`http_server`), which a client may retry later.
_HTTP_STATUS = {errors.INVALID_ARGUMENT: 400, errors.NOT_FOUND: 404,
                errors.RESOURCE_EXHAUSTED: 503}


class _HttpError(Exception):
  """A refusal at the HTTP level (method, framing, body size), with its HTTP status."""

  def __init__(self, status, message):
    super().__init__(message)
    self.status = status


class Handler(http.server.BaseHTTPRequestHandler):
  """TF Serving's REST routes; the server object carries their configuration (make_server)."""

  protocol_version = "HTTP/1.1"
  server_version = "glow-serving"
  # True for a request the queue has no room for (`http_server`): it is refused at once.
  server_busy = False

  def do_GET(self):
    metrics_path = self.server.metrics_path
    if (metrics_path is not None and not self.server_busy
        and urllib.parse.urlsplit(self.path).path == metrics_path):
      self._close_if_body_unread()
      self._send(200, self.server.service.metrics.text().encode(), metrics.CONTENT_TYPE)
    else:
      self._answer(self._get)

  def do_POST(self):
    self._answer(self._post)

  def do_PUT(self):
    self._answer(self._not_allowed)

  do_DELETE = do_PATCH = do_PUT

  def _not_allowed(self):
    self._close_if_body_unread()
    raise _HttpError(405, f"Method {self.command} is not allowed; use GET or POST.")

  def send_error(self, code, message=None, explain=None):
    """http.server's own refusals (bad request line, oversized headers) as JSON too."""
    self.close_connection = True
    self._send_json(code, {"error": message or explain or http.HTTPStatus(code).phrase})

  def _answer(self, route):
    start = time.perf_counter()
    self._model_and_api = None
    code = errors.OK
    try:
      status, body = 200, self._refuse_busy() if self.server_busy else route()
    except RequestError as e:
      code = e.code
      status, body = _HTTP_STATUS[e.code], {"error": str(e)}
    except _HttpError as e:
      status, body = e.status, {"error": str(e)}
    except Exception as e:  # an unexpected failure answers 500; the server keeps serving.
      logging.exception("Internal error on %s %s", self.command, self.path)
      code = errors.INTERNAL
      status, body = 500, {"error": f"Internal error: {type(e).__name__}: {e}"}
    # Counted before the answer goes out, so a client that reads the metrics after its
    # answer arrives sees its own request. Only requests that name a model and an API count.
    if self._model_and_api is not None:
      self.server.service.record(*self._model_and_api, ENTRYPOINT, code,
                                 time.perf_counter() - start)
    self._send_json(status, body)

  def _send_json(self, status, body):
    self._send(status, json.dumps(body).encode(), "application/json")

  def _send(self, status, data, content_type):
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(data)))
    if self.close_connection:
      self.send_header("Connection", "close")
    self.end_headers()
    self.wfile.write(data)

  def _route(self, pattern, api):
    """The URL's match, model name and version (None: the latest); names the request's API.

    `api` is a function of the match: the RPC the URL stands for.
    """
    path = urllib.parse.urlsplit(self.path).path
    match = pattern.fullmatch(path)
    if match is None:
      raise RequestError(f"Malformed request: {self.command} {path}", errors.NOT_FOUND)
    self._model_and_api = (match["name"], api(match))
    return match, match["name"], None if match["version"] is None else int(match["version"])

  def _refuse_busy(self):
    """Refuses a request the queue has no room for, counted under the model and API its URL
    names (if any), as an answered request would be."""
    self.close_connection = True
    pattern, api = ((_POST_URL, _post_api) if self.command == "POST"
                    else (_GET_URL, _get_api))
    with contextlib.suppress(RequestError):
      self._route(pattern, api)
    raise RequestError(
        f"The server is busy: its queue of {self.server.max_queued} requests waiting for a "
        "worker is full (--rest_api_max_queued_requests); retry later.",
        errors.RESOURCE_EXHAUSTED)

  def _close_if_body_unread(self):
    # An unread body would be taken for the next request on a kept-alive connection.
    if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
      self.close_connection = True

  def _get(self):
    self._close_if_body_unread()
    match, name, version = self._route(_GET_URL, _get_api)
    models = self.server.service.models
    if not match["metadata"]:
      return models.status(name, version)
    return _metadata(models.get(name, version), name)

  def _post(self):
    body = self._read_body()
    match, name, version = self._route(_POST_URL, _post_api)
    service = self.server.service
    servable = service.models.get(name, version)
    if match["verb"] != "predict":
      raise RequestError(f"This server answers :predict only, not :{match['verb']}.")
    signature, payload, row_format = json_format.parse_request(body, servable.signatures)
    arrays = _request_arrays(payload, servable.input_specs[signature], row_format,
                             service.max_batch_size)
    outputs = service.predict(servable, signature, arrays)
    return json_format.format_response(outputs, row_format)

  def _read_body(self):
    if "Transfer-Encoding" in self.headers or "Content-Length" not in self.headers:
      self.close_connection = True
      raise _HttpError(411, "The request needs a Content-Length header (chunked bodies are "
                       "not accepted).")
    length = self.headers["Content-Length"]
    if not length.isdigit():
      self.close_connection = True
      raise RequestError(f"Invalid Content-Length {length!r}.")
    if int(length) > self.server.max_request_bytes:
      self.close_connection = True
      raise _HttpError(413, f"The request body has {int(length)} bytes, above the limit of "
                       f"{self.server.max_request_bytes} (--max_request_bytes).")
    return self.rfile.read(int(length))

  def log_request(self, code="-", size="-"):
    if isinstance(code, int) and code >= 400:
      logging.warning('"%s" %s', self.requestline, code)

  def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
    logging.info(format, *args)


def _get_api(match):
  return "GetModelMetadata" if match["metadata"] else "GetModelStatus"


def _post_api(match):
  return _POST_APIS.get(match["verb"], "Unknown")


def _metadata(servable, name):
  """TF Serving's metadata answer: the SignatureDefs with the proto's field names."""
  defs = {key: proto_json.MessageToDict(value, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
          for key, value in servable.signature_defs.items()}
  return {"model_spec": {"name": name, "signature_name": "",
                         "version": str(servable.version)},
          "metadata": {"signature_def": {"signature_def": defs}}}


def _request_arrays(payload, specs, row_format, max_batch_size):
  """The JSON payload -> {input name: numpy array}, refusing too many instances early."""
  if row_format and isinstance(payload, list) and len(payload) > max_batch_size:
    raise RequestError(f"The request has {len(payload)} instances, above the limit of "
                       f"{max_batch_size} (--max_batch_size).")
  return json_format.request_arrays(payload, specs, row_format)


def make_server(service, host, port, num_threads, max_request_bytes, timeout_s,
                max_connections, max_queued, metrics_path=metrics.PATH):
  """An `http_server.HttpServer` answering TF Serving's REST API for `service`'s models.

  Args:
    service: the `service.Service` answering the requests.
    host, port: the address to listen on; port 0 picks a free one.
    num_threads: requests answered at once.
    max_request_bytes: largest request body accepted.
    timeout_s: time a connection has to send each request.
    max_connections: most connections waiting for their next request.
    max_queued: most whole requests waiting for a worker; one more is answered 503.
    metrics_path: where the metrics are exported; None: not exported.
  """
  server = http_server.HttpServer((host, port), Handler, num_threads, timeout_s,
                                  max_request_bytes, max_connections, max_queued)
  server.service = service
  server.max_queued = max_queued
  server.max_request_bytes = max_request_bytes
  server.metrics_path = metrics_path
  return server
