"""A client of TF Serving's gRPC API, with the same methods as the REST `client.Client`.

It uses the `tensorflow-serving-api` stubs, so what works here works against
`tensorflow/serving` on its gRPC port (8500). The stubs' protos load TensorFlow, which is
why the REST client lives apart.
"""

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from . import client_base


def predict_request(model_name, inputs, signature_name="serving_default", version=None):
  """A PredictRequest of {input name: array-like}, each sent in `tensor_content`."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version is not None:
    request.model_spec.version.value = int(version)
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


class GrpcClient(client_base.GlowSignatures):
  """Talks to one served model over gRPC.

  Args:
    server: "host:port" of the gRPC API, e.g. "127.0.0.1:8500".
    model_name: the served model's name.
    version: a specific version to query; None for the latest.
    timeout: seconds to wait for each answer.
  """

  def __init__(self, server="127.0.0.1:8500", model_name="glow", version=None, timeout=60.0):
    self._channel = grpc.insecure_channel(server)
    self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
    self._model_name = model_name
    self._version = version
    self._timeout = timeout

  def close(self):
    self._channel.close()

  def signature_inputs(self, signature_name="serving_default"):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = self._model_name
    if self._version is not None:
      request.model_spec.version.value = int(self._version)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    self._call(self._stub.GetModelMetadata, request).metadata["signature_def"].Unpack(
        signature_map)
    inputs = signature_map.signature_def[signature_name].inputs
    return {name: [dim.size for dim in info.tensor_shape.dim] for name, info in inputs.items()}

  def predict(self, inputs, signature_name="serving_default"):
    request = predict_request(self._model_name, {
        name: np.asarray(value) for name, value in inputs.items()}, signature_name,
        self._version)
    response = self._call(self._stub.Predict, request)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

  def _call(self, rpc, request):
    try:
      return rpc(request, timeout=self._timeout)
    except grpc.RpcError as e:
      raise client_base.ServingError(e.code().name, e.details()) from None
