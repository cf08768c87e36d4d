"""TF Serving's gRPC API: PredictionService.Predict and GetModelMetadata, ModelService.

Clients written with the `tensorflow-serving-api` package's stubs work unchanged against
this server and `tensorflow/serving`. The request path is the REST API's (`service.Service`):
the same models, hot reload, checks, limits and batching. Refusals answer TF Serving's
status codes: NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a bad request,
RESOURCE_EXHAUSTED for a message above `max_request_bytes` (refused by gRPC itself) or when
too many requests already wait for a worker, and UNIMPLEMENTED, naming what is served
instead, for the RPCs this server does not offer (Classify, Regress, MultiInference,
HandleReloadConfigRequest). With server credentials (`serving.ssl_config`) it speaks TLS only.

Slow clients hold no thread: the server is gRPC's asyncio server, whose event loop receives
every request message; only a whole request goes to the bounded pool of workers (`_Workers`),
as the REST API's selector does (`serving.http_server`). gRPC's own server options bound the
connections (`Limits`).
"""

import asyncio
import concurrent.futures
import dataclasses
import socket
import threading
import time

from google.protobuf import json_format as proto_json
import grpc
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from . import errors
from . import signatures
from . import tensors
from .errors import RequestError

ENTRYPOINT = "GRPC"
_SIGNATURE_DEF = "signature_def"


def _requested_version(model_spec):
  """The version a ModelSpec names, None for the latest."""
  if model_spec.WhichOneof("version_choice") == "version_label":
    raise RequestError("Version labels are not served; name a version number.")
  return model_spec.version.value if model_spec.HasField("version") else None


@dataclasses.dataclass(frozen=True)
class Limits:
  """What one client may hold of the gRPC server.

  max_workers: RPCs handled at once.
  max_queued: whole requests waiting for a worker; one more is refused (RESOURCE_EXHAUSTED).
  max_request_bytes: largest request message accepted.
  max_connections: open connections; gRPC refuses a new one above it.
  max_concurrent_streams: RPCs open at once on one connection.
  idle_timeout_ms: a connection that has not finished its HTTP/2 handshake, or has no RPC
    open, for this long is closed; RPCs still open when a connection reaches its age get
    this long to finish.
  max_connection_age_ms: a connection is asked to go away (GOAWAY) after this long (gRPC
    adds +-10% jitter), so even a connection that keeps an RPC open without finishing it
    is closed in the end.
  """

  max_workers: int
  max_queued: int
  max_request_bytes: int
  max_connections: int
  max_concurrent_streams: int
  idle_timeout_ms: int
  max_connection_age_ms: int

  def server_options(self):
    """gRPC's channel arguments for these limits."""
    return [("grpc.max_receive_message_length", self.max_request_bytes),
            ("grpc.max_allowed_incoming_connections", self.max_connections),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.server_handshake_timeout_ms", self.idle_timeout_ms),
            ("grpc.max_connection_idle_ms", self.idle_timeout_ms),
            ("grpc.max_connection_age_ms", self.max_connection_age_ms),
            ("grpc.max_connection_age_grace_ms", self.idle_timeout_ms),
            ("grpc.so_reuseport", 0)]


class _Workers:
  """A pool of `max_workers` threads with at most `max_queued` whole requests waiting."""

  def __init__(self, max_workers, max_queued):
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="grpc")
    self._max_admitted = max_workers + max_queued
    self._max_queued = max_queued
    self._admitted = 0  # only the event loop's thread changes it.

  async def run(self, function):
    """`function()`'s result, computed on a worker; refuses when the queue is full."""
    if self._admitted >= self._max_admitted:
      raise RequestError(f"The server is busy: its queue of {self._max_queued} requests "
                         f"waiting for a worker is full (--grpc_max_queued_rpcs).",
                         errors.RESOURCE_EXHAUSTED)
    self._admitted += 1
    try:
      return await asyncio.get_running_loop().run_in_executor(self._pool, function)
    finally:
      self._admitted -= 1

  def shutdown(self):
    self._pool.shutdown(wait=False, cancel_futures=True)


class _Api:
  """Runs each RPC through `service` on `workers`, recording it and mapping refusals to
  status codes."""

  def __init__(self, service, workers):
    self._service = service
    self._workers = workers

  async def _answer(self, api, model_spec, context, respond):
    start = time.perf_counter()
    code = errors.OK
    try:
      return await self._workers.run(
          lambda: respond(model_spec.name, _requested_version(model_spec)))
    except RequestError as e:
      code = e.code
      await context.abort(grpc.StatusCode[e.code], str(e))
    except Exception:
      code = errors.INTERNAL
      raise
    finally:
      self._service.record(model_spec.name, api, ENTRYPOINT, code,
                           time.perf_counter() - start)


_SERVED_INSTEAD = ("this server answers PredictionService.Predict (every signature of the "
                   "SavedModel, by model_spec.signature_name), GetModelMetadata and "
                   "ModelService.GetModelStatus")


async def _unimplemented(method, context, served_instead=_SERVED_INSTEAD):
  """Answers UNIMPLEMENTED naming `method`: a refusal, so nothing is logged as an error (the
  generated servicer's default raises, which gRPC logs with a traceback)."""
  await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"{method} is not implemented; {served_instead}.")


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer, _Api):

  async def Classify(self, request, context):  # noqa: N802 (the RPC's name)
    await _unimplemented("PredictionService.Classify", context)

  async def Regress(self, request, context):  # noqa: N802 (the RPC's name)
    await _unimplemented("PredictionService.Regress", context)

  async def MultiInference(self, request, context):  # noqa: N802 (the RPC's name)
    await _unimplemented("PredictionService.MultiInference", context)

  async def Predict(self, request, context):  # noqa: N802 (the RPC's name)
    return await self._answer("Predict", request.model_spec, context,
                        lambda name, version: self._predict(request, name, version))

  async def GetModelMetadata(self, request, context):  # noqa: N802 (the RPC's name)
    return await self._answer("GetModelMetadata", request.model_spec, context,
                        lambda name, version: self._metadata(request, name, version))

  def _predict(self, request, name, version):
    servable = self._service.models.get(name, version)
    signature = request.model_spec.signature_name or signatures.DEFAULT_SIGNATURE
    signatures.check_signature(signature, servable.signatures)
    specs = {spec.name: spec for spec in servable.input_specs[signature]}
    signatures.check_names(set(request.inputs), set(specs), "The request")
    arrays = {name: tensors.to_array(proto, specs[name])
              for name, proto in request.inputs.items()}
    outputs = self._service.predict(servable, signature, arrays)
    wanted = list(request.output_filter) or list(outputs)
    unknown = sorted(set(wanted) - set(outputs))
    if unknown:
      raise RequestError(f"output_filter names unknown output(s) {unknown}; the signature "
                         f"has {sorted(outputs)}.")
    response = predict_pb2.PredictResponse()
    _fill_model_spec(response.model_spec, name, servable.version, signature)
    for key in wanted:
      response.outputs[key].CopyFrom(tensors.to_proto(outputs[key]))
    return response

  def _metadata(self, request, name, version):
    fields = set(request.metadata_field)
    if fields != {_SIGNATURE_DEF}:
      raise RequestError(f"metadata_field must be ['{_SIGNATURE_DEF}'], the only metadata "
                         f"this server has; got {sorted(fields)}.")
    servable = self._service.models.get(name, version)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
      signature_map.signature_def[key].CopyFrom(signature_def)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _fill_model_spec(response.model_spec, name, servable.version)
    response.metadata[_SIGNATURE_DEF].Pack(signature_map)
    return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer, _Api):

  async def HandleReloadConfigRequest(self, request, context):  # noqa: N802 (the RPC's name)
    await _unimplemented(
        "ModelService.HandleReloadConfigRequest", context,
        "the served models are those of --model_config_file or --model_base_path, whose "
        "directories are polled for new versions every --file_system_poll_wait_seconds")

  async def GetModelStatus(self, request, context):  # noqa: N802 (the RPC's name)
    return await self._answer("GetModelStatus", request.model_spec, context, self._status)

  def _status(self, name, version):
    # One source for both APIs: the status answer is the response's JSON mapping.
    return proto_json.ParseDict(self._service.models.status(name, version),
                                get_model_status_pb2.GetModelStatusResponse())


def _fill_model_spec(model_spec, name, version, signature_name=None):
  model_spec.name = name
  model_spec.version.value = version
  if signature_name is not None:
    model_spec.signature_name = signature_name


class Server:
  """A started gRPC server answering TF Serving's gRPC API, on an event loop of its own thread.

  Args:
    service: the `service.Service` answering the requests (shared with the REST API).
    host, port: the address to listen on; port 0 picks a free one.
    limits: the `Limits` of its clients.
    credentials: gRPC server credentials for TLS (`serving.ssl_config`); None: plain text.

  Attributes:
    port: the port it listens on.
  """

  def __init__(self, service, host, port, limits, credentials=None):
    self._workers = _Workers(limits.max_workers, limits.max_queued)
    self._loop = asyncio.new_event_loop()
    threading.Thread(target=self._loop.run_forever, name="grpc-loop", daemon=True).start()
    self._server, self.port = asyncio.run_coroutine_threadsafe(
        self._start(service, f"{_bracketed(host)}:{port}", limits, credentials),
        self._loop).result()

  async def _start(self, service, address, limits, credentials):
    # Created on the loop's thread: an asyncio server belongs to the loop running it.
    server = grpc.aio.server(options=limits.server_options())
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(service, self._workers), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        _ModelService(service, self._workers), server)
    try:
      bound = (server.add_insecure_port(address) if credentials is None
               else server.add_secure_port(address, credentials))
    except RuntimeError:  # gRPC's "Failed to bind to address ..." says no more than that.
      raise _bind_error(address) from None
    await server.start()
    return server, bound

  def stop(self):
    """Stops serving at once, cancelling the RPCs in flight."""
    asyncio.run_coroutine_threadsafe(self._server.stop(None), self._loop).result()
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._workers.shutdown()


def _bind_error(address):
  """The OSError saying why gRPC could not listen on `address`, found by binding it."""
  host, _, port = address.rpartition(":")
  try:
    socket.create_server((host.strip("[]"), int(port)),
                         family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
  except OSError as e:
    return e
  return OSError(f"gRPC cannot listen on {address}")


def _bracketed(host):
  return f"[{host}]" if ":" in host else host
