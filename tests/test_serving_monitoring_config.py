"""TF Serving's monitoring config file, read as its MonitoringConfig proto."""

import pytest

from serving import metrics
from serving import monitoring_config


def write(tmp_path, text):
  path = tmp_path / "monitoring.config"
  path.write_text(text)
  return str(path)


@pytest.mark.parametrize("text, expected", [
    ('prometheus_config { enable: true path: "/metrics" }', "/metrics"),
    ("prometheus_config { enable: true }  # TF Serving's default path", metrics.PATH),
    ('prometheus_config { enable: false path: "/metrics" }', None),
    ("", None),
])
def test_metrics_are_exported_only_when_enabled_at_the_path_given(tmp_path, text, expected):
  assert monitoring_config.metrics_path(write(tmp_path, text)) == expected


@pytest.mark.parametrize("text, message", [
    ("prometheus_config { enable: yes }", 'Expected "true" or "false"'),
    ("prometheus_config { enabled: true }", 'has no field named "enabled"'),
    ('prometheus_config { enable: true path: "metrics" }', "path 'metrics' must start with '/'"),
    ('prometheus_config { enable: true path: "/v1/models/x" }', "lie outside /v1/"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_problem(tmp_path, text, message):
  path = write(tmp_path, text)
  with pytest.raises(ValueError) as raised:
    monitoring_config.metrics_path(path)
  assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)


def test_a_missing_file_is_refused_naming_it(tmp_path):
  with pytest.raises(ValueError, match="nothing.config: cannot read it"):
    monitoring_config.metrics_path(str(tmp_path / "nothing.config"))
