"""TF Serving's monitoring config file: whether, and at which path, metrics are exported.

  prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }

The text format of `tensorflow.serving.MonitoringConfig`, a proto the tensorflow-serving-api
package does not ship (`serving.config_text` declares it): a file that works here works with
`tensorflow/serving --monitoring_config_file` and back.
"""

from . import config_text
from . import metrics

_MonitoringConfig = config_text.message_class(
    "tensorflow_serving/config/monitoring_config.proto",
    {"PrometheusConfig": [("enable", 1, config_text.FIELD.TYPE_BOOL, None),
                          ("path", 2, config_text.FIELD.TYPE_STRING, None)],
     "MonitoringConfig": [("prometheus_config", 1, config_text.FIELD.TYPE_MESSAGE,
                           "PrometheusConfig")]},
    "MonitoringConfig")


def metrics_path(path):
  """The URL path the config file at `path` exports metrics at; None: not exported.

  As in TF Serving, metrics are exported only with `enable: true`, at `path` or, without
  one, at `metrics.PATH`.

  Raises:
    ValueError: naming the file and what is wrong with it.
  """
  config = config_text.read(path, _MonitoringConfig)
  prometheus = config.prometheus_config
  if not prometheus.enable:
    return None
  url_path = prometheus.path or metrics.PATH
  # /v1/ is the model API's; a path there would hide a model's URL or be hidden by it.
  if not url_path.startswith("/") or url_path.startswith("/v1/"):
    raise ValueError(f"{path}: prometheus_config path {url_path!r} must start with '/' and "
                     "lie outside /v1/.")
  return url_path
