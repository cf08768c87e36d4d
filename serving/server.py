"""A local server for one exported model that speaks TensorFlow Serving's REST API.

  python -m serving.server --model_name=glow --model_base_path=exports/glow --rest_api_port=8501

The flags, URLs and JSON are TF Serving's, so a client works unchanged against the
`tensorflow/serving` image serving the same directory:

  GET  /v1/models/<name>[/versions/<v>]             version status
  GET  /v1/models/<name>[/versions/<v>]/metadata    signatures
  POST /v1/models/<name>[/versions/<v>]:predict     row ("instances") or columnar ("inputs")

It serves the highest version under `--model_base_path` and polls the directory, so a newly
exported version replaces the old one without a restart. Requests run on threads (the
standard library's ThreadingHTTPServer); at most `--rest_api_num_threads` run the model at
once. A bad request gets a 4xx answer `{"error": "..."}` and changes nothing. Only the
configured model name is served and URL parts are never used as file paths, so no request
reaches a file outside the base path. TensorFlow alone runs the model: glow_tfp is not
imported.
"""

import http
import http.server
import json
import os
import re
import threading
import urllib.parse

from absl import app
from absl import flags
from absl import logging
from google.protobuf import json_format as proto_json
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from . import batching
from . import errors
from . import json_format
from . import model_name as model_name_lib
from . import signatures
from .errors import RequestError

_MODEL_NAME = flags.DEFINE_string("model_name", "default", "Name of the served model.")
_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Directory of the model's integer version subdirectories.")
_REST_API_PORT = flags.DEFINE_integer(
    "rest_api_port", 8501, "Port of the REST API; 0 picks a free one (printed on start).",
    lower_bound=0, upper_bound=65535)
_REST_API_HOST = flags.DEFINE_string(
    "rest_api_host", "127.0.0.1", "Address to listen on. TF Serving listens on every "
    "interface; this development server only on the loopback unless told otherwise.")
_REST_API_NUM_THREADS = flags.DEFINE_integer(
    "rest_api_num_threads", 8, "Requests that may run the model at once.", lower_bound=1)
_REST_API_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "rest_api_timeout_in_ms", 30000, "Time a connection may take to send its request.",
    lower_bound=1)
_FILE_SYSTEM_POLL_WAIT_SECONDS = flags.DEFINE_integer(
    "file_system_poll_wait_seconds", 1,
    "Seconds between looks for new versions; 0 looks once, at start.", lower_bound=0)
_MAX_REQUEST_BYTES = flags.DEFINE_integer(
    "max_request_bytes", 16 << 20, "Largest request body accepted (bytes).", lower_bound=1)
_MAX_BATCH_SIZE = flags.DEFINE_integer(
    "max_batch_size", 256, "Most examples (or samples) one request may ask for, and one "
    "merged run may hold with --enable_batching.", lower_bound=1)
_ENABLE_BATCHING = flags.DEFINE_bool(
    "enable_batching", False, "Merge concurrent log_prob/encode/decode requests into one "
    "model run of at most --max_batch_size examples.")
_BATCH_TIMEOUT_MICROS = flags.DEFINE_integer(
    "batch_timeout_micros", 2000, "With --enable_batching, the longest a request waits for "
    "others to join it (microseconds).", lower_bound=0)

flags.mark_flag_as_required("model_base_path")
flags.register_validator("model_name", model_name_lib.is_valid,
                         message=f"--model_name must use {model_name_lib.RULE}.")

_MODEL_URL = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
_GET_URL = re.compile(_MODEL_URL + r"(?P<metadata>/metadata)?")
_POST_URL = re.compile(_MODEL_URL + r":(?P<verb>[A-Za-z]+)")
# Scalar inputs that say how many examples a request produces, so count against the limit.
_COUNT_INPUTS = ("num_samples",)
_HTTP_STATUS = {errors.INVALID_ARGUMENT: 400, errors.NOT_FOUND: 404}


class Servable:
  """One loaded version of the model: its signatures, their inputs and their metadata."""

  def __init__(self, path, version):
    self.version = version
    self._model = tf.saved_model.load(path)
    self.signatures = dict(self._model.signatures)
    self.input_specs = {name: _input_specs(fn) for name, fn in self.signatures.items()}
    self.batchable = {name for name, fn in self.signatures.items() if _batch_first(fn)}
    self._warm_up()
    self.signature_defs = _signature_defs(path)

  def _warm_up(self):
    """Runs every signature once, so that no request pays for TensorFlow's first-call setup.

    The inputs: zeros with a batch of one, and 1 for scalars (one sample at temperature 1).
    A signature that refuses them is left cold, with a warning.
    """
    for name, specs in self.input_specs.items():
      arrays = {spec.name: np.ones([], spec.dtype) if not spec.shape
                else np.zeros([1 if d is None else d for d in spec.shape], spec.dtype)
                for spec in specs}
      try:
        self.predict(name, arrays)
      except tf.errors.OpError as e:
        logging.warning("Warm-up of signature %s failed: %s", name, e.message)

  def predict(self, signature_name, arrays):
    """Runs a signature on numpy inputs; returns {output name: numpy array}."""
    fn = self.signatures[signature_name]
    outputs = fn(**{name: tf.constant(value) for name, value in arrays.items()})
    return {name: value.numpy() for name, value in sorted(outputs.items())}


def _input_specs(fn):
  return [signatures.InputSpec(name, spec.dtype.as_numpy_dtype, spec.shape.as_list())
          for name, spec in sorted(fn.structured_input_signature[1].items())]


def _batch_first(fn):
  """Whether every input and output of a signature has the batch dimension first."""
  specs = list(fn.structured_input_signature[1].values()) + list(fn.structured_outputs.values())
  return all(spec.shape.rank and spec.shape[0] is None for spec in specs)


def _signature_defs(path):
  """The SignatureDefs as TF Serving's metadata JSON writes them (proto field names)."""
  proto = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  defs = proto.meta_graphs[0].signature_def
  return {name: proto_json.MessageToDict(defs[name], preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
          for name in defs}


class ModelManager:
  """Keeps the highest version under the base path loaded; `poll` looks for a new one.

  Version states follow TF Serving: the served version is AVAILABLE, a replaced or failed
  one END (a failed one with its error). A version that failed to load is not tried again.
  """

  def __init__(self, name, base_path):
    self.name = name
    self.base_path = base_path
    self._lock = threading.Lock()
    self._current = None
    self._states = {}

  @property
  def served_version(self):
    """The version being served, None before the first one has loaded."""
    current = self._current
    return None if current is None else current.version

  def get(self, version=None):
    """The servable for a request, or RequestError 404 as TF Serving answers."""
    current = self._current
    if current is None or (version is not None and version != current.version):
      wanted = f"Latest({self.name})" if version is None else f"Specific({self.name}, {version})"
      raise RequestError(f"Servable not found for request: {wanted}", errors.NOT_FOUND)
    return current

  def status(self, version=None):
    with self._lock:
      states = dict(self._states)
    if version is not None:
      if version not in states:
        raise RequestError(f"Could not find version {version} of model {self.name}",
                           errors.NOT_FOUND)
      states = {version: states[version]}
    if not states:
      raise RequestError(f"Could not find any versions of model {self.name}",
                         errors.NOT_FOUND)
    return {"model_version_status": [
        {"version": str(v), "state": state,
         "status": {"error_code": "UNKNOWN" if error else "OK", "error_message": error}}
        for v, (state, error) in sorted(states.items(), reverse=True)]}

  def poll(self):
    """Loads the highest loadable version on disk when it is not the one being served."""
    target = self._highest_version()
    current = self._current
    if target is None or (current is not None and current.version == target):
      return
    try:
      servable = Servable(os.path.join(self.base_path, str(target)), target)
    except Exception as e:  # any failure to load leaves the served version in place.
      logging.error("Loading version %d of %s failed: %s", target, self.name, e)
      with self._lock:
        self._states[target] = ("END", f"Loading failed: {e}")
      return
    with self._lock:
      self._current = servable
      self._states[target] = ("AVAILABLE", "")
      if current is not None:
        self._states[current.version] = ("END", "")
    logging.info("Serving version %d of %s.", target, self.name)

  def _highest_version(self):
    if not tf.io.gfile.isdir(self.base_path):
      return None
    with self._lock:
      failed = {v for v, (_, error) in self._states.items() if error}
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(self.base_path))
    found = [int(name) for name in names if name.isdigit() and int(name) not in failed
             and tf.io.gfile.exists(os.path.join(self.base_path, name, "saved_model.pb"))]
    return max(found, default=None)

  def poll_forever(self, interval, stop):
    while not stop.wait(interval):
      self.poll()


class _HttpError(Exception):
  """A refusal at the HTTP level (method, framing, body size), with its HTTP status."""

  def __init__(self, status, message):
    super().__init__(message)
    self.status = status


class Handler(http.server.BaseHTTPRequestHandler):
  """TF Serving's REST routes; the server object carries their configuration (make_server)."""

  protocol_version = "HTTP/1.1"
  server_version = "glow-serving"

  def do_GET(self):
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
    try:
      status, body = 200, route()
    except RequestError as e:
      status, body = _HTTP_STATUS[e.code], {"error": str(e)}
    except _HttpError as e:
      status, body = e.status, {"error": str(e)}
    except Exception as e:  # an unexpected failure answers 500; the server keeps serving.
      logging.exception("Internal error on %s %s", self.command, self.path)
      status, body = 500, {"error": f"Internal error: {type(e).__name__}: {e}"}
    self._send_json(status, body)

  def _send_json(self, status, body):
    data = json.dumps(body).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    if self.close_connection:
      self.send_header("Connection", "close")
    self.end_headers()
    self.wfile.write(data)

  def _route(self, pattern):
    path = urllib.parse.urlsplit(self.path).path
    match = pattern.fullmatch(path)
    if match is None:
      raise RequestError(f"Malformed request: {self.command} {path}", errors.NOT_FOUND)
    if match["name"] != self.server.manager.name:
      raise RequestError(f"Servable not found for request: Latest({match['name']})",
                         errors.NOT_FOUND)
    return match, None if match["version"] is None else int(match["version"])

  def _close_if_body_unread(self):
    # An unread body would be taken for the next request on a kept-alive connection.
    if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
      self.close_connection = True

  def _get(self):
    self._close_if_body_unread()
    match, version = self._route(_GET_URL)
    manager = self.server.manager
    if not match["metadata"]:
      return manager.status(version)
    servable = manager.get(version)
    return {"model_spec": {"name": manager.name, "signature_name": "",
                           "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_defs}}}

  def _post(self):
    body = self._read_body()
    match, version = self._route(_POST_URL)
    if match["verb"] != "predict":
      raise RequestError(f"This server answers :predict only, not :{match['verb']}.")
    servable = self.server.manager.get(version)
    name, payload, row_format = json_format.parse_request(body, servable.signatures)
    arrays = _request_arrays(payload, servable.input_specs[name], row_format,
                             self.server.max_batch_size)
    with self.server.slots:
      outputs = self.server.run(servable, name, arrays)
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


def _request_arrays(payload, specs, row_format, max_batch_size):
  """The payload -> {input name: numpy array}, checked against the signature and limits."""
  if row_format and isinstance(payload, list) and len(payload) > max_batch_size:
    raise RequestError(f"The request has {len(payload)} instances, above the limit of "
                       f"{max_batch_size} (--max_batch_size).")
  values = (json_format.row_inputs if row_format else json_format.columnar_inputs)(
      payload, specs)
  arrays = {spec.name: json_format.to_array(values[spec.name], spec, row_format)
            for spec in specs}
  for spec in specs:
    array = arrays[spec.name]
    count = (array.shape[0] if spec.shape and spec.shape[0] is None
             else int(array) if spec.name in _COUNT_INPUTS else 0)
    if count > max_batch_size:
      raise RequestError(f"Input '{spec.name}' asks for {count} examples, above the limit "
                         f"of {max_batch_size} (--max_batch_size).")
  return arrays


def _run(servable, name, arrays):
  try:
    return servable.predict(name, arrays)
  except tf.errors.InvalidArgumentError as e:
    raise RequestError(_op_error_message(e)) from None


def _op_error_message(error):
  """The line of a TensorFlow error that names the problem (not the graph's node names)."""
  lines = [line.strip() for line in error.message.splitlines() if line.strip()]
  for line in lines:
    if "assertion failed:" in line:
      return line[line.index("assertion failed:"):]
  useful = [line for line in lines if not line.startswith(
      ("Graph execution error", "Detected at node", "<stack traces", "[["))]
  return (useful or lines or [type(error).__name__])[0]


def make_server(manager, host, port, num_threads, max_request_bytes, max_batch_size,
                timeout_s, batch_timeout_s=None):
  """A ThreadingHTTPServer answering TF Serving's REST API for `manager`'s model.

  `batch_timeout_s`: None runs every request on its own; a number merges concurrent
  requests (`serving.batching`), each waiting at most that long for company.
  """
  handler = type("ConfiguredHandler", (Handler,), {"timeout": timeout_s})
  server = http.server.ThreadingHTTPServer((host, port), handler)
  server.daemon_threads = True
  server.manager = manager
  server.run = (_run if batch_timeout_s is None
                else batching.Batcher(_run, max_batch_size, batch_timeout_s))
  server.slots = threading.BoundedSemaphore(num_threads)
  server.max_request_bytes = max_request_bytes
  server.max_batch_size = max_batch_size
  return server


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  manager = ModelManager(_MODEL_NAME.value, _MODEL_BASE_PATH.value)
  manager.poll()
  if manager.served_version is None:
    logging.warning("No version of %s under %s yet; waiting for one.", manager.name,
                    manager.base_path)
  server = make_server(manager, _REST_API_HOST.value, _REST_API_PORT.value,
                       _REST_API_NUM_THREADS.value, _MAX_REQUEST_BYTES.value,
                       _MAX_BATCH_SIZE.value, _REST_API_TIMEOUT_IN_MS.value / 1000.0,
                       _BATCH_TIMEOUT_MICROS.value / 1e6 if _ENABLE_BATCHING.value else None)
  stop = threading.Event()
  if _FILE_SYSTEM_POLL_WAIT_SECONDS.value > 0:
    threading.Thread(target=manager.poll_forever, daemon=True,
                     args=(_FILE_SYSTEM_POLL_WAIT_SECONDS.value, stop)).start()
  host, port = server.server_address[:2]
  print(f"Serving {manager.name} at http://{host}:{port}/v1/models/{manager.name}", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    stop.set()
    server.server_close()


if __name__ == "__main__":
  app.run(main)
