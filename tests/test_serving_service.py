"""The request path shared by the front ends, on a model that is not Glow."""

import numpy as np
import pytest

from serving import errors
from serving import servable as servable_lib
from serving import service as service_lib

MAX_BATCH = 4


@pytest.fixture(params=[None, 0.01], ids=["direct", "batching"])
def service(export_toy_model, tmp_path, request):
  export_toy_model(tmp_path / "1", example_counts={"fill": "count"})
  manager = servable_lib.ModelManager("toy", str(tmp_path))
  manager.poll()
  return service_lib.Service(manager, MAX_BATCH, batch_timeout_s=request.param)


def predict(service, signature_name, **arrays):
  return service.predict(service.models.get("toy"), signature_name, arrays)


def test_predict_runs_batched_and_scalar_signatures(service):
  np.testing.assert_array_equal(
      predict(service, "serving_default", x=np.array([1, 2], np.float32))["y"], [2, 4])
  np.testing.assert_array_equal(
      predict(service, "fill", count=np.int32(2), seed=np.int64(10**9))["z"], [10**9] * 2)


@pytest.mark.parametrize("signature_name, arrays, message", [
    ("nope", {}, 'signature name: "nope" not found'),
    ("fill", {"count": np.int32(1)}, "missing the input(s) ['seed']"),
    ("serving_default", {"x": np.zeros(2, np.float64)}, "holds float64 values"),
    ("serving_default", {"x": np.array([1, np.inf], np.float32)}, "'x' contains NaN or Infinity"),
    ("scale", {"x": np.zeros((1, 3), np.float32), "factor": np.float32(1)},
     "'x' has shape [1, 3], but the signature expects float32 [N, 2]"),
    ("serving_default", {"x": np.zeros(MAX_BATCH + 1, np.float32)},
     "'x' asks for 5 examples, above the limit of 4"),
    ("fill", {"count": np.int32(MAX_BATCH + 1), "seed": np.int64(0)},
     "'count' asks for 5 examples, above the limit of 4"),
    ("fill", {"count": np.int32(-1), "seed": np.int64(0)}, "assertion failed: [count must be"),
])
def test_bad_inputs_are_invalid_arguments(service, signature_name, arrays, message):
  with pytest.raises(errors.RequestError) as raised:
    predict(service, signature_name, **arrays)
  assert raised.value.code == errors.INVALID_ARGUMENT
  assert message in str(raised.value)
