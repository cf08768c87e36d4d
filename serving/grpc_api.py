"""TF Serving's gRPC API: PredictionService.Predict and GetModelMetadata, ModelService.

Clients written with the `tensorflow-serving-api` package's stubs work unchanged against
this server and `tensorflow/serving`. The request path is the REST API's (`service.Service`):
the same models, hot reload, checks, limits and batching. Refusals answer TF Serving's
status codes: NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a bad request,
RESOURCE_EXHAUSTED for a message above `max_request_bytes` (refused by gRPC itself), and
UNIMPLEMENTED for the RPCs this server does not offer (Classify, Regress, ...).
"""

import concurrent.futures
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


class _Api:
  """Runs each RPC through `service`, recording it and mapping refusals to status codes."""

  def __init__(self, service):
    self._service = service

  def _answer(self, api, model_spec, context, respond):
    start = time.perf_counter()
    code = errors.OK
    try:
      return respond(model_spec.name, _requested_version(model_spec))
    except RequestError as e:
      code = e.code
      context.abort(grpc.StatusCode[e.code], str(e))
    except Exception:
      code = errors.INTERNAL
      raise
    finally:
      self._service.record(model_spec.name, api, ENTRYPOINT, code,
                           time.perf_counter() - start)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer, _Api):

  def Predict(self, request, context):  # noqa: N802 (the RPC's name)
    return self._answer("Predict", request.model_spec, context,
                        lambda name, version: self._predict(request, name, version))

  def GetModelMetadata(self, request, context):  # noqa: N802 (the RPC's name)
    return self._answer("GetModelMetadata", request.model_spec, context,
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

  def GetModelStatus(self, request, context):  # noqa: N802 (the RPC's name)
    return self._answer("GetModelStatus", request.model_spec, context, self._status)

  def _status(self, name, version):
    # One source for both APIs: the status answer is the response's JSON mapping.
    return proto_json.ParseDict(self._service.models.status(name, version),
                                get_model_status_pb2.GetModelStatusResponse())


def _fill_model_spec(model_spec, name, version, signature_name=None):
  model_spec.name = name
  model_spec.version.value = version
  if signature_name is not None:
    model_spec.signature_name = signature_name


def make_server(service, host, port, max_workers, max_request_bytes):
  """A started gRPC server answering TF Serving's gRPC API for `service`.

  Args:
    service: the `service.Service` answering the requests (shared with the REST API).
    host, port: the address to listen on; port 0 picks a free one.
    max_workers: RPCs handled at once.
    max_request_bytes: largest request message accepted.

  Returns:
    (the server, the port it listens on).
  """
  server = grpc.server(
      concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="grpc"),
      options=[("grpc.max_receive_message_length", max_request_bytes),
               ("grpc.so_reuseport", 0)])
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      _PredictionService(service), server)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(service), server)
  bound = server.add_insecure_port(f"{_bracketed(host)}:{port}")
  if not bound:
    raise OSError(f"Cannot listen on {host}:{port} for gRPC.")
  server.start()
  return server, bound


def _bracketed(host):
  return f"[{host}]" if ":" in host else host
