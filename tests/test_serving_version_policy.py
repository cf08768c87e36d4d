"""TF Serving's version policies: which loadable versions are served."""

from google.protobuf import text_format
import pytest
from tensorflow_serving.config import model_server_config_pb2

from serving import version_policy

VERSIONS = {1, 2, 5, 7}


def policy_proto(text):
  config = text_format.Parse(f"model_version_policy {{ {text} }}",
                             model_server_config_pb2.ModelConfig())
  return config.model_version_policy


@pytest.mark.parametrize("text, served", [
    ("", {7}),
    ("latest { }", {7}),
    ("latest { num_versions: 2 }", {5, 7}),
    ("all { }", VERSIONS),
    ("specific { versions: 2 versions: 3 }", {2}),
])
def test_policies_from_the_config_file_proto(text, served):
  assert version_policy.from_proto(policy_proto(text))(VERSIONS) == served


def test_no_versions_serves_nothing():
  for policy in (version_policy.latest(3), version_policy.all_versions(),
                 version_policy.specific([1])):
    assert policy(set()) == set()


def test_a_specific_policy_needs_a_version():
  with pytest.raises(ValueError, match="at least one version"):
    version_policy.from_proto(policy_proto("specific { }"))
