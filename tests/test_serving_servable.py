"""Servables of a model that is not Glow: everything the server knows comes from the SavedModel."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import errors
from serving import servable as servable_lib
from serving import signatures
from serving import warmup


@pytest.fixture
def toy(export_toy_model, tmp_path):
  path = export_toy_model(tmp_path / "1", example_counts={"fill": "count"})
  return servable_lib.Servable(path, version=1)


def test_input_specs_come_from_the_signature_defs(toy):
  factor, x = toy.input_specs["scale"]
  assert (x.name, x.dtype, x.shape, x.batched) == ("x", np.float32, (None, 2), True)
  assert (factor.name, factor.dtype, factor.shape, factor.batched) == (
      "factor", np.float32, (), False)
  assert [(s.name, s.dtype, s.counts_examples) for s in toy.input_specs["fill"]] == [
      ("count", np.int32, True), ("seed", np.int64, False)]


def test_only_signatures_batched_throughout_are_batchable(toy):
  assert toy.batchable == {signatures.DEFAULT_SIGNATURE}


def test_example_counts_come_from_batched_inputs_and_the_declared_scalar(toy):
  factor, x = toy.input_specs["scale"]
  assert x.example_count(np.zeros((5, 2), np.float32)) == 5
  assert factor.example_count(np.float32(40.0)) == 0
  count, seed = toy.input_specs["fill"]
  assert count.example_count(np.int32(7)) == 7
  assert seed.example_count(np.int64(1000)) == 0


def test_without_a_declaration_no_scalar_counts_examples(export_toy_model, tmp_path):
  toy = servable_lib.Servable(export_toy_model(tmp_path / "1"), version=1)
  assert not any(spec.counts_examples for spec in toy.input_specs["fill"])


@pytest.mark.parametrize("counts", [{"fill": "seconds"}, {"scale": "factor"}])
def test_a_declaration_naming_no_scalar_integer_input_fails_the_load(
    export_toy_model, tmp_path, counts):
  path = export_toy_model(tmp_path / "1", example_counts=counts)
  with pytest.raises(ValueError, match="example count"):
    servable_lib.Servable(path, version=1)


def test_predict_runs_a_signature_on_numpy_inputs(toy):
  outputs = toy.predict("fill", {"count": np.int32(3), "seed": np.int64(9)})
  assert outputs["z"].tolist() == [9, 9, 9]


def test_manager_serves_the_highest_loadable_version(export_toy_model, tmp_path):
  export_toy_model(tmp_path / "1")
  os.makedirs(tmp_path / "2")
  (tmp_path / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
  manager = servable_lib.ModelManager("toy", str(tmp_path))
  manager.poll()
  manager.poll()  # version 2 failed and is not tried again.
  assert manager.get("toy").version == 1
  failed, served = manager.status("toy")["model_version_status"]
  assert (failed["version"], failed["state"], failed["status"]["error_code"]) == (
      "2", "END", "UNKNOWN")
  assert served == {"version": "1", "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""}}
  with pytest.raises(errors.RequestError, match="Could not find version 3") as raised:
    manager.status("toy", 3)
  assert raised.value.code == errors.NOT_FOUND


@pytest.mark.parametrize("name, version, wanted", [
    ("other", None, "Latest(other)"), ("other", 1, "Specific(other, 1)"),
    ("toy", 3, "Specific(toy, 3)")])
def test_manager_refuses_other_models_and_versions_as_not_found(
    export_toy_model, tmp_path, name, version, wanted):
  export_toy_model(tmp_path / "1")
  manager = servable_lib.ModelManager("toy", str(tmp_path))
  manager.poll()
  with pytest.raises(errors.RequestError, match=re.escape(wanted)) as raised:
    manager.get(name, version)
  assert raised.value.code == errors.NOT_FOUND


def write_warmup(path, *requests):
  warmup.write_requests(path, requests)
  return path


def test_a_valid_warm_up_file_is_replayed_and_the_version_loads(export_toy_model, tmp_path):
  path = write_warmup(export_toy_model(tmp_path / "1"),
                      ("fill", {"count": np.int32(2), "seed": np.int64(1)}),
                      ("", {"x": np.zeros([8], np.float32)}))
  assert servable_lib.Servable(path, version=1).version == 1


@pytest.mark.parametrize("requests, message", [
    ([("fill", {"count": np.int32(2), "seed": np.int64(1)}),
      ("fill", {"count": np.int32(-1), "seed": np.int64(1)})],
     "record 1 (signature fill) failed: assertion failed: [count must be >= 0"),
    ([("nope", {"x": np.zeros([1], np.float32)})], 'record 0: Serving signature name: "nope"'),
    ([("scale", {"x": np.zeros([1, 2], np.float32)})], "record 0: The request is missing"),
])
def test_a_warm_up_record_that_fails_fails_the_load_naming_it(
    export_toy_model, tmp_path, requests, message):
  path = write_warmup(export_toy_model(tmp_path / "1"), *requests)
  with pytest.raises(ValueError) as raised:
    servable_lib.Servable(path, version=1)
  assert f"{warmup.WARMUP_FILE} {message}" in str(raised.value)


def test_warm_up_records_other_than_predict_are_refused(export_toy_model, tmp_path):
  path = export_toy_model(tmp_path / "1")
  os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
  log = prediction_log_pb2.PredictionLog()
  log.classify_log.request.model_spec.name = "toy"
  with tf.io.TFRecordWriter(os.path.join(path, warmup.WARMUP_FILE)) as writer:
    writer.write(log.SerializeToString())
  with pytest.raises(ValueError, match="record 0: a classify_log; only predict_log"):
    servable_lib.Servable(path, version=1)
