"""TF Serving's model config file, read with its own proto."""

import pytest

from serving import model_config

CONFIG = """
model_config_list {
  config { name: "glow" base_path: "/models/glow" model_platform: "tensorflow" }
  config {
    name: "toy" base_path: "/models/toy"
    model_version_policy { specific { versions: 1 versions: 3 } }
  }
}
"""


def write(tmp_path, text):
  path = tmp_path / "models.config"
  path.write_text(text)
  return str(path)


def test_each_model_gets_its_name_base_path_and_policy(tmp_path):
  glow, toy = model_config.read(write(tmp_path, CONFIG))
  assert (glow.name, glow.base_path, toy.name, toy.base_path) == (
      "glow", "/models/glow", "toy", "/models/toy")
  assert glow.policy({1, 2, 3}) == {3}
  assert toy.policy({1, 2, 3}) == {1, 3}


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: ", "models.config: "),
    ("custom_model_config { }", "expected a model_config_list"),
    ("model_config_list { }", "names no model"),
    ('model_config_list { config { name: "a" base_path: "/a" } '
     'config { name: "a" base_path: "/b" } }', "models named more than once: ['a']"),
    ('model_config_list { config { name: "../etc" base_path: "/a" } }',
     "model name '../etc': use letters"),
    ('model_config_list { config { name: "a" } }', "model 'a' has no base_path"),
    ('model_config_list { config { name: "a" base_path: "/a" version_labels { key: "x" '
     'value: 1 } } }', "version_labels are not served"),
    ('model_config_list { config { name: "a" base_path: "/a" model_platform: "onnx" } }',
     "model_platform 'onnx' is not served"),
])
def test_a_bad_file_is_refused_naming_the_problem(tmp_path, text, message):
  with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
    model_config.read(write(tmp_path, text))
