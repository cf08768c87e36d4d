"""A local server for exported models that speaks TensorFlow Serving's REST and gRPC APIs.

  python -m serving.server --model_name=glow --model_base_path=exports/glow \
      --port=8500 --rest_api_port=8501

The flags, URLs, JSON and RPCs are TF Serving's, so a client works unchanged against the
`tensorflow/serving` image serving the same directory (the routes: `serving.rest`; the RPCs:
`serving.grpc_api`). Both APIs share one request path (`serving.service`).

It serves the highest version under `--model_base_path`, or the models and versions of a
TF Serving `--model_config_file` (`serving.model_config`, with request logging,
`serving.request_log`), and polls the directories, so a newly exported version replaces the
old one without a restart, warmed up with its TF Serving warm-up requests
(`serving.servable`, `serving.warmup`). At most `--rest_api_num_threads` REST requests and
`--grpc_max_threads` RPCs are answered at once, and at most `--rest_api_max_queued_requests`
and `--grpc_max_queued_rpcs` wait; slow or idle connections hold no thread
(`serving.http_server`; gRPC's asyncio event loop for the gRPC API). `--ssl_config_file`
puts the gRPC API behind TLS (`serving.ssl_config`). Requests of both APIs are counted at
`/monitoring/prometheus/metrics` on the REST port (`serving.metrics`), or where
`--monitoring_config_file` says (`serving.monitoring_config`). Only the configured model names
are served and URL parts are never used as file paths, so no request reaches a file outside the
base paths. The server knows nothing of the model but its SavedModel, and TensorFlow alone
runs it: of glow_tfp, only `glow_tfp.execution` is imported, for the thread defaults.
"""

import os
import sys
import threading

from absl import app
from absl import flags
from absl import logging

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import tensorflow as tf  # noqa: E402

from . import grpc_api  # noqa: E402
from . import metrics  # noqa: E402
from . import model_config  # noqa: E402
from . import model_name as model_name_lib  # noqa: E402
from . import monitoring_config  # noqa: E402
from . import registry  # noqa: E402
from . import rest  # noqa: E402
from . import servable  # noqa: E402
from . import service as service_lib  # noqa: E402
from . import ssl_config  # noqa: E402

_MODEL_NAME = flags.DEFINE_string("model_name", "default", "Name of the served model.")
_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Directory of the model's integer version subdirectories; "
    "its latest version is served. Give this or --model_config_file.")
_MODEL_CONFIG_FILE = flags.DEFINE_string(
    "model_config_file", None, "TF Serving's model config file (text ModelServerConfig): "
    "several models, each with its base path and version policy (serving.model_config).")
_MONITORING_CONFIG_FILE = flags.DEFINE_string(
    "monitoring_config_file", None, "TF Serving's monitoring config file (text "
    "MonitoringConfig): prometheus_config { enable: true path: \"...\" } exports the metrics "
    f"on the REST port at that path. Without it they are exported at {metrics.PATH} (TF "
    "Serving exports none).")
_SSL_CONFIG_FILE = flags.DEFINE_string(
    "ssl_config_file", None, "TF Serving's SSL config file (text SSLConfig: server_key, "
    "server_cert, custom_ca as PEM text, client_verify): the gRPC API speaks TLS only "
    "(serving.ssl_config). The REST API stays plain HTTP, as in TF Serving.")
_PORT = flags.DEFINE_integer(
    "port", 8500, "Port of the gRPC API; 0 picks a free one (printed on start).",
    lower_bound=0, upper_bound=65535)
_GRPC_MAX_THREADS = flags.DEFINE_integer(
    "grpc_max_threads", 8, "RPCs of the gRPC API handled at once.", lower_bound=1)
_GRPC_MAX_QUEUED_RPCS = flags.DEFINE_integer(
    "grpc_max_queued_rpcs", 64, "Whole gRPC requests that may wait for one of the "
    "--grpc_max_threads workers; one more is refused with RESOURCE_EXHAUSTED. Not a TF "
    "Serving flag.", lower_bound=0)
_GRPC_MAX_CONNECTIONS = flags.DEFINE_integer(
    "grpc_max_connections", 4096, "Most open gRPC connections; gRPC refuses a new one above "
    "it. Not a TF Serving flag.", lower_bound=1)
_GRPC_MAX_CONCURRENT_STREAMS = flags.DEFINE_integer(
    "grpc_max_concurrent_streams", 100, "Most RPCs open at once on one gRPC connection. Not a "
    "TF Serving flag.", lower_bound=1)
_GRPC_IDLE_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "grpc_idle_timeout_in_ms", 30000, "A gRPC connection that has not finished its HTTP/2 "
    "handshake, or has no RPC open, for this long is closed; also the time RPCs still open get "
    "when their connection reaches --grpc_max_connection_age_in_ms. Not a TF Serving flag.",
    lower_bound=1)
_GRPC_MAX_CONNECTION_AGE_IN_MS = flags.DEFINE_integer(
    "grpc_max_connection_age_in_ms", 600000, "A gRPC connection is asked to go away after this "
    "long (+-10%); clients reconnect for their next RPC. Not a TF Serving flag.",
    lower_bound=1)
_REST_API_PORT = flags.DEFINE_integer(
    "rest_api_port", 8501, "Port of the REST API; 0 picks a free one (printed on start).",
    lower_bound=0, upper_bound=65535)
_REST_API_HOST = flags.DEFINE_string(
    "rest_api_host", "127.0.0.1", "Address both APIs listen on. TF Serving listens on "
    "every interface; this development server only on the loopback unless told otherwise.")
_REST_API_NUM_THREADS = flags.DEFINE_integer(
    "rest_api_num_threads", 8, "REST requests answered at once.", lower_bound=1)
_REST_API_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "rest_api_timeout_in_ms", 30000, "Time a REST connection has to send each whole request "
    "(from its opening or its previous answer) and to read each answer.", lower_bound=1)
_REST_API_MAX_QUEUED_REQUESTS = flags.DEFINE_integer(
    "rest_api_max_queued_requests", 64, "Whole REST requests that may wait for one of the "
    "--rest_api_num_threads workers; one more is answered 503 at once (and counted as "
    "RESOURCE_EXHAUSTED). Not a TF Serving flag.", lower_bound=0)
_REST_API_MAX_CONNECTIONS = flags.DEFINE_integer(
    "rest_api_max_connections", 4096, "Most REST connections waiting for their next request "
    "(those with a request queued or running do not count); one more closes the one that has "
    "waited longest. Not a TF Serving flag.", lower_bound=1)
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


def _define_threads_flag(name, meaning, unset):
  """A TensorFlow thread-pool size under TF Serving's name, `tensorflow_<name>_parallelism`
  (which also keeps it apart from the training CLI's `--<name>_threads`)."""
  return flags.DEFINE_integer(
      f"tensorflow_{name}_parallelism", None, f"{meaning} (TensorFlow's "
      f"{name}_parallelism_threads); 0 lets TensorFlow choose; unset: {unset}. Applied "
      "before any model loads.", lower_bound=0)


_INTRA_OP_THREADS = _define_threads_flag("intra_op", "Threads one TensorFlow op may use",
                                         "1 on a machine without a GPU, else 0")
_INTER_OP_THREADS = _define_threads_flag("inter_op", "TensorFlow ops run at once",
                                         "the CPU cores on a machine without a GPU, else 0")

flags.register_multi_flags_validator(
    ["model_base_path", "model_config_file"],
    lambda values: (values["model_base_path"] is None) != (values["model_config_file"] is None),
    message="Give exactly one of --model_base_path and --model_config_file.")
flags.register_validator("model_name", model_name_lib.is_valid,
                         message=f"--model_name must use {model_name_lib.RULE}.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  _configure_threads()
  metrics_path = _metrics_path()
  credentials = _grpc_credentials()
  models = registry.Registry(_managers())
  models.poll()
  for manager in models.managers.values():
    if not manager.served_versions:
      logging.warning("No version of %s under %s yet; waiting for one.", manager.name,
                      manager.base_path)
  service = service_lib.Service(
      models, _MAX_BATCH_SIZE.value,
      _BATCH_TIMEOUT_MICROS.value / 1e6 if _ENABLE_BATCHING.value else None)
  server = _listening(_REST_API_PORT, lambda: rest.make_server(
      service, _REST_API_HOST.value, _REST_API_PORT.value, _REST_API_NUM_THREADS.value,
      _MAX_REQUEST_BYTES.value, _REST_API_TIMEOUT_IN_MS.value / 1000.0,
      _REST_API_MAX_CONNECTIONS.value, _REST_API_MAX_QUEUED_REQUESTS.value, metrics_path))
  grpc_server = _listening(_PORT, lambda: grpc_api.Server(
      service, _REST_API_HOST.value, _PORT.value, _grpc_limits(), credentials))
  stop = threading.Event()
  if _FILE_SYSTEM_POLL_WAIT_SECONDS.value > 0:
    threading.Thread(target=models.poll_forever, daemon=True,
                     args=(_FILE_SYSTEM_POLL_WAIT_SECONDS.value, stop)).start()
  host, port = server.server_address[:2]
  # One line, so that a reader waiting for it finds both addresses at once.
  print(f"Serving {', '.join(models.managers)} at http://{host}:{port}/v1/models/ and over "
        f"gRPC at {host}:{grpc_server.port}", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    stop.set()
    grpc_server.stop()
    server.server_close()


def _listening(port_flag, start):
  """`start()`'s server; a port it cannot listen on ends the program with one line."""
  try:
    return start()
  except OSError as e:
    reason = os.strerror(e.errno) if e.errno else str(e)
    sys.exit(f"serving.server: error: cannot listen on {_REST_API_HOST.value}:"
             f"{port_flag.value} (--{port_flag.name}): {reason}")


def _grpc_limits():
  return grpc_api.Limits(
      max_workers=_GRPC_MAX_THREADS.value, max_queued=_GRPC_MAX_QUEUED_RPCS.value,
      max_request_bytes=_MAX_REQUEST_BYTES.value, max_connections=_GRPC_MAX_CONNECTIONS.value,
      max_concurrent_streams=_GRPC_MAX_CONCURRENT_STREAMS.value,
      idle_timeout_ms=_GRPC_IDLE_TIMEOUT_IN_MS.value,
      max_connection_age_ms=_GRPC_MAX_CONNECTION_AGE_IN_MS.value)


def _configure_threads():
  """Applies the thread flags; TensorFlow accepts them only before its runtime starts.

  Unset, they are the training CLI's and the export's defaults (`glow_tfp.execution`): on a
  CPU, one thread per op and one op per core, which served a model exported in one part per
  core fastest, and single images faster than TensorFlow's choice whatever the parts
  (docs/serving.md, "Speed"); with a GPU, TensorFlow's choice.
  """
  execution.configure_threads(_INTRA_OP_THREADS.value, _INTER_OP_THREADS.value)
  # A line of its own, so that a benchmark's log shows what each measurement ran with.
  print(f"TensorFlow threads: intra_op={tf.config.threading.get_intra_op_parallelism_threads()}"
        f" inter_op={tf.config.threading.get_inter_op_parallelism_threads()} "
        f"(0: TensorFlow's choice); TF_ENABLE_ONEDNN_OPTS="
        f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', '')}", flush=True)


def _metrics_path():
  """Where the metrics are exported (None: nowhere), as --monitoring_config_file says."""
  if _MONITORING_CONFIG_FILE.value is None:
    return metrics.PATH
  try:
    return monitoring_config.metrics_path(_MONITORING_CONFIG_FILE.value)
  except ValueError as e:
    raise app.UsageError(f"--monitoring_config_file: {e}") from None


def _grpc_credentials():
  """The gRPC API's TLS credentials from --ssl_config_file; None: plain text."""
  if _SSL_CONFIG_FILE.value is None:
    return None
  try:
    return ssl_config.server_credentials(_SSL_CONFIG_FILE.value)
  except ValueError as e:
    raise app.UsageError(f"--ssl_config_file: {e}") from None


def _managers():
  """The model managers the flags ask for: one model, or those of the config file."""
  if _MODEL_CONFIG_FILE.value is None:
    return [servable.ModelManager(_MODEL_NAME.value, _MODEL_BASE_PATH.value)]
  try:
    return model_config.read(_MODEL_CONFIG_FILE.value)
  except (ValueError, OSError) as e:  # OSError: a missing or unreadable file.
    raise app.UsageError(f"--model_config_file: {e}") from None


def run():
  """The console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
