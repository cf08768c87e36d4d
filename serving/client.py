"""A client of TF Serving's REST or gRPC API for Glow models: log-likelihoods of image files.

  python -m serving.client --server=http://127.0.0.1:8501 --model_name=glow a.png b.npy
  python -m serving.client --protocol=grpc --server=127.0.0.1:8500 --model_name=glow a.png

prints the discrete log-likelihood (nats) and bits/dim of every image: PNG/JPEG files, or
`.npy` files of uint8 arrays [H, W, C] or [N, H, W, C]. Pass `--labels` (one per image) for a
class-conditional model. It speaks only TF Serving's APIs, so it works the same against
`serving.server` and the `tensorflow/serving` image; in Python use `Client` (REST) or
`grpc_client.GrpcClient` (gRPC, with the `tensorflow-serving-api` stubs).
"""

import json
import urllib.error
import urllib.parse
import urllib.request

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from PIL import UnidentifiedImageError

from . import client_base
from . import common_flags
# The error both clients raise, importable from here too.
from .client_base import ServingError  # noqa: F401


class Client(client_base.GlowSignatures):
  """Talks to one served model.

  Args:
    server: base URL, e.g. "http://127.0.0.1:8501".
    model_name: the served model's name.
    version: a specific version to query; None for the one being served.
    timeout: seconds to wait for each answer.
  """

  def __init__(self, server="http://127.0.0.1:8501", model_name="glow", version=None,
               timeout=60.0):
    self._model_url = (f"{server.rstrip('/')}/v1/models/{urllib.parse.quote(model_name)}"
                       + (f"/versions/{int(version)}" if version is not None else ""))
    self._timeout = timeout

  def status(self):
    return self._call("")

  def metadata(self):
    return self._call("/metadata")

  def signature_inputs(self, signature_name="serving_default"):
    """{input name: shape} of a signature, -1 for the dynamic batch dimension."""
    signature = self.metadata()["metadata"]["signature_def"]["signature_def"][signature_name]
    return {name: [int(d["size"]) for d in spec["tensor_shape"]["dim"]]
            for name, spec in signature["inputs"].items()}

  def predict(self, inputs, signature_name="serving_default"):
    """Columnar predict: {input name: array-like} -> {output name: numpy array}.

    A signature with one output answers with its bare value, returned under "outputs".
    """
    body = {"signature_name": signature_name,
            "inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}}
    outputs = self._call(":predict", body)["outputs"]
    if not isinstance(outputs, dict):
      outputs = {"outputs": outputs}
    return {name: np.asarray(value) for name, value in outputs.items()}

  def _call(self, suffix, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(self._model_url + suffix, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self._timeout) as response:
        return json.load(response)
    except urllib.error.HTTPError as e:
      raise client_base.ServingError(e.code, _error_message(e)) from None


def _error_message(http_error):
  text = http_error.read().decode(errors="replace")
  try:
    return json.loads(text)["error"]
  except (ValueError, KeyError, TypeError):
    return text or http_error.reason


def read_images(paths, image_shape):
  """Image files (PNG, JPEG, ...) and .npy arrays -> (uint8 batch [N, H, W, C], names).

  Args:
    paths: file paths.
    image_shape: the model's (H, W, C); C must be 1 or 3 for image files.

  Returns:
    The images, and a name for each ("file.npy[3]" for the images of a batch file).
  """
  batches = [_read_one(path, tuple(image_shape)) for path in paths]
  return np.concatenate(batches, axis=0), [
      f"{path}[{i}]" if len(batch) > 1 else path
      for path, batch in zip(paths, batches) for i in range(len(batch))]


def _read_one(path, image_shape):
  if path.endswith(".npy"):
    array = np.load(path, allow_pickle=False)
    if array.dtype != np.uint8:
      raise ValueError(f"{path}: expected uint8 values, got {array.dtype}.")
  else:
    modes = {1: "L", 3: "RGB"}
    if image_shape[-1] not in modes:
      raise ValueError(f"{path}: image files need a model with 1 or 3 channels; this one "
                       f"has {image_shape[-1]}: send a .npy array.")
    try:
      with Image.open(path) as image:
        array = np.asarray(image.convert(modes[image_shape[-1]]), np.uint8)
    except UnidentifiedImageError:
      raise ValueError(f"{path}: not an image file (PNG, JPEG, ...) nor a .npy array.") from None
  if array.shape == image_shape[:2] and image_shape[-1] == 1:
    array = array[..., np.newaxis]
  if array.shape == image_shape:
    array = array[np.newaxis]
  if array.shape[1:] != image_shape:
    raise ValueError(f"{path}: shape {list(array.shape)} does not fit the model's images "
                     f"{list(image_shape)} (or a batch of them).")
  return array


_CONNECTION = common_flags.define_connection_flags()
_MODEL_VERSION = flags.DEFINE_integer(
    "model_version", None, "Model version; default: the served one.", lower_bound=0)
_LABELS = flags.DEFINE_list("labels", None, "Class labels, one per image, for a "
                            "class-conditional model; -1 where the class is unknown.")
_TIMEOUT = flags.DEFINE_float("timeout", 60.0, "Seconds to wait for an answer.",
                              lower_bound=0.001)

flags.register_validator(
    "labels", lambda v: v is None or all(s.isdigit() or s == "-1" for s in v),
    message="--labels must be class ids (integers >= 0) or -1 (class unknown), "
            "comma-separated.")


def main(argv):
  if len(argv) < 2:
    raise app.UsageError("Give at least one image file (.png, .jpg, .npy).")
  try:
    _print_log_likelihoods(argv[1:])
  except (ServingError, ValueError, OSError) as e:  # OSError: unreadable file, no server.
    raise SystemExit(f"Error: {e}") from None


def make_client(protocol, server=None, model_name="glow", version=None, timeout=60.0):
  """A `Client` (REST) or `grpc_client.GrpcClient`; `server` None: the protocol's default."""
  server = server or common_flags.DEFAULT_SERVERS[protocol]
  if protocol == "rest":
    return Client(server, model_name, version, timeout)
  from . import grpc_client  # pylint: disable=import-outside-toplevel (loads TensorFlow)
  return grpc_client.GrpcClient(server, model_name, version, timeout)


def _print_log_likelihoods(paths):
  client = make_client(_CONNECTION["protocol"].value, _CONNECTION["server"].value,
                       _CONNECTION["model_name"].value, _MODEL_VERSION.value, _TIMEOUT.value)
  image_shape = client.signature_inputs("log_prob")["images"][1:]
  images, names = read_images(paths, image_shape)
  labels = None if _LABELS.value is None else [int(s) for s in _LABELS.value]
  result = client.log_prob(images, labels)
  width = max(len(name) for name in names + ["image"])
  print(f"{'image':<{width}}  {'log_likelihood_nats':>20}  {'bits_per_dim':>12}")
  for name, nats, bpd in zip(names, result["log_likelihood"], result["bits_per_dim"]):
    print(f"{name:<{width}}  {nats:>20.4f}  {bpd:>12.4f}")


def run():
  """The console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
