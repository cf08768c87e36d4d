"""TF Serving's REST JSON layouts: requests to arrays, arrays to answers, refusals."""

import json
import re

import numpy as np
import pytest

from serving import client_base
from serving import json_format
from serving.errors import RequestError
from serving.signatures import InputSpec

IMAGES = InputSpec("images", np.uint8, [None, 2, 2, 1])
LABELS = InputSpec("labels", np.int32, [None])
LATENT = InputSpec("latent", np.float32, [None, 2])
COUNT = InputSpec("num_samples", np.int32, [])


def image(value=0):
  return [[[value], [value]], [[value], [value]]]


def arrays(payload, specs, row_format):
  values = (json_format.row_inputs if row_format else json_format.columnar_inputs)(
      payload, specs)
  return {s.name: json_format.to_array(values[s.name], s, row_format) for s in specs}


def test_parse_request_defaults_to_serving_default_and_tells_the_format():
  body = json.dumps({"instances": [image()]}).encode()
  assert json_format.parse_request(body, {"serving_default"}) == (
      "serving_default", [image()], True)
  body = json.dumps({"signature_name": "x", "inputs": {"a": 1}}).encode()
  assert json_format.parse_request(body, {"x"}) == ("x", {"a": 1}, False)


@pytest.mark.parametrize("payload, row_format", [
    ([image(1), image(2)], True),                                       # bare rows
    ([{"images": image(1)}, {"images": image(2)}], True),               # named rows
    ([image(1), image(2)], False),                                      # bare columns
    ({"images": [image(1), image(2)]}, False),                          # named columns
])
def test_a_single_input_may_be_bare_or_named(payload, row_format):
  result = arrays(payload, [IMAGES], row_format)
  assert result["images"].dtype == np.uint8 and result["images"].shape == (2, 2, 2, 1)
  np.testing.assert_array_equal(result["images"][:, 0, 0, 0], [1, 2])


def test_rows_are_batched_input_by_input():
  result = arrays([{"images": image(3), "labels": 1}, {"images": image(4), "labels": 2}],
                  [IMAGES, LABELS], row_format=True)
  assert result["labels"].tolist() == [1, 2] and result["labels"].dtype == np.int32
  assert result["images"].shape == (2, 2, 2, 1)


def test_integers_are_accepted_for_float_inputs():
  result = arrays({"latent": [[1, 2]]}, [LATENT], row_format=False)
  assert result["latent"].dtype == np.float32 and result["latent"].tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("payload, specs, message", [
    ({"images": [image(True)]}, [IMAGES], "must hold integers (uint8); got booleans"),
    ({"images": [image(2 ** 70)]}, [IMAGES], "must hold integers (uint8); got mixed"),
    ({"images": [image(None)]}, [IMAGES], "must hold integers"),
    ({"latent": [["a", "b"]]}, [LATENT], "must hold numbers (float32); got strings"),
    ({"labels": [2 ** 40]}, [LABELS], "outside -2147483648..2147483647"),
    ([{"images": image()}, image()], [IMAGES], "instances[1] must be an object"),
    ({"images": [image()]}, [IMAGES, LABELS], "missing the input(s) ['labels']"),
    ([1, 2], [IMAGES, LABELS], "'inputs' must be an object naming the inputs"),
])
def test_bad_values_are_refused_naming_the_input(payload, specs, message):
  with pytest.raises(RequestError, match=re.escape(message)):
    arrays(payload, specs, row_format=isinstance(payload, list) and len(specs) == 1)


@pytest.mark.parametrize("body, message", [
    (b"\xff\xfe", "JSON Parse error"),
    (b"{}", "exactly one of the keys"),
    (b'{"instances": [], "signature_name": 3}', "'signature_name' must be a string"),
])
def test_bad_requests_are_refused(body, message):
  with pytest.raises(RequestError, match=message):
    json_format.parse_request(body, {"serving_default"})


def test_empty_instances_are_refused():
  with pytest.raises(RequestError, match="non-empty list"):
    json_format.row_inputs([], [IMAGES])


def test_scalars_in_the_row_format_get_a_hint():
  with pytest.raises(RequestError, match="send scalars with the columnar format"):
    arrays([{"num_samples": 1, "labels": 0}], [COUNT, LABELS], row_format=True)


def test_answers_follow_tf_serving_layouts():
  one = {"y": np.array([1.5, 2.5], np.float32)}
  two = dict(one, z=np.array([[1], [2]]))
  assert json_format.format_response(one, row_format=True) == {"predictions": [1.5, 2.5]}
  assert json_format.format_response(two, row_format=True) == {
      "predictions": [{"y": 1.5, "z": [1]}, {"y": 2.5, "z": [2]}]}
  assert json_format.format_response(one, row_format=False) == {"outputs": [1.5, 2.5]}
  assert json_format.format_response(two, row_format=False) == {
      "outputs": {"y": [1.5, 2.5], "z": [[1], [2]]}}


SCORE_OUTPUTS = {"ood_score": np.array([1.5, np.inf], np.float32),
                 "is_ood": np.array([False, True]),
                 "ood_false_positive_rate": np.array([0.01, 0.01], np.float32)}


def test_bool_outputs_are_json_booleans_as_in_tf_serving():
  rows = json.dumps(json_format.format_response(SCORE_OUTPUTS, row_format=True))
  assert '"is_ood": false' in rows and '"is_ood": true' in rows
  assert json.loads(rows)["predictions"][1] == {
      "ood_score": float("inf"), "is_ood": True, "ood_false_positive_rate": pytest.approx(0.01)}
  columns = json.dumps(json_format.format_response(SCORE_OUTPUTS, row_format=False))
  assert '"is_ood": [false, true]' in columns
  bare = json_format.format_response({"is_ood": SCORE_OUTPUTS["is_ood"]}, row_format=True)
  assert json.dumps(bare) == '{"predictions": [false, true]}'


class _JsonClient(client_base.GlowSignatures):
  """Answers `predict` as the REST client does: columns of a JSON answer as arrays."""

  def predict(self, inputs, signature_name="serving_default"):
    assert signature_name == "score" and set(inputs) == {"images"}
    answer = json.loads(json.dumps(json_format.format_response(SCORE_OUTPUTS, False)))
    return {name: np.asarray(value) for name, value in answer["outputs"].items()}


def test_the_clients_score_gives_is_ood_as_bool_and_the_rest_as_float32():
  got = _JsonClient().score(np.zeros((2, 2, 2, 1), np.uint8))
  assert got["is_ood"].dtype == bool and got["is_ood"].tolist() == [False, True]
  assert got["ood_false_positive_rate"].dtype == np.float32
  np.testing.assert_array_equal(got["ood_score"], SCORE_OUTPUTS["ood_score"])


def test_request_arrays_converts_every_input_in_either_format():
  rows = json_format.request_arrays([{"images": image(1), "labels": 2}], [IMAGES, LABELS],
                                    row_format=True)
  columns = json_format.request_arrays({"images": [image(1)], "labels": [2]},
                                       [IMAGES, LABELS], row_format=False)
  for converted in (rows, columns):
    assert converted["images"].dtype == np.uint8 and converted["images"].shape == (1, 2, 2, 1)
    assert converted["labels"].dtype == np.int32 and converted["labels"].tolist() == [2]


BYTES = InputSpec("image_bytes", object, [None])
B64 = [{"b64": "AAE="}, {"b64": "/w=="}]  # b"\x00\x01" (trailing NUL kept) and b"\xff".


@pytest.mark.parametrize("payload, specs, row_format", [
    (B64, [BYTES], True),                                                     # bare b64 rows
    ([{"image_bytes": value, "labels": 0} for value in B64], [BYTES, LABELS], True),
    (B64, [BYTES], False),                                                    # bare column
    ({"image_bytes": B64, "labels": [0, 0]}, [BYTES, LABELS], False),
])
def test_string_inputs_take_b64_objects_as_tf_serving_does(payload, specs, row_format):
  array = arrays(payload, specs, row_format)["image_bytes"]
  assert array.dtype == object and array.tolist() == [b"\x00\x01", b"\xff"]


def test_string_inputs_take_plain_strings_as_utf8():
  assert arrays(["é", "a"], [BYTES], True)["image_bytes"].tolist() == ["é".encode(), b"a"]


@pytest.mark.parametrize("payload, message", [
    ([{"b64": "not base64!"}], "'image_bytes' has a \"b64\" value that is not valid base64"),
    ([{"b64": 1}], "each value must be a {\"b64\": \"...\"} object or a string"),
    ([1, 2], "each value must be a {\"b64\": \"...\"} object or a string"),
    ([["a"], ["b", "c"]], "'image_bytes' is not a rectangular array of strings"),
    ([["a"], ["b"]], "'image_bytes' has shape [2, 1], but the signature expects string [N]"),
])
def test_bad_string_inputs_are_refused_naming_the_input(payload, message):
  with pytest.raises(RequestError) as raised:
    arrays(payload, [BYTES], False)
  assert message in str(raised.value)
