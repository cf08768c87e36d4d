"""TF Serving's monitoring config file: whether, and at which path, metrics are exported.

  prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }

The text format of `tensorflow.serving.MonitoringConfig`. The tensorflow-serving-api package
does not ship that proto, so it is declared here with TF Serving's package, field names and
numbers, and protobuf's own text format parser reads it: a file that works here works with
`tensorflow/serving --monitoring_config_file` and back.
"""

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
import tensorflow as tf

from . import metrics

_FIELD = descriptor_pb2.FieldDescriptorProto


def _monitoring_config_class():
  """The MonitoringConfig message of TF Serving's tensorflow_serving/config/
  monitoring_config.proto, in a descriptor pool of its own."""
  proto = descriptor_pb2.FileDescriptorProto(
      name="tensorflow_serving/config/monitoring_config.proto", package="tensorflow.serving",
      syntax="proto3")
  prometheus = proto.message_type.add(name="PrometheusConfig")
  prometheus.field.add(name="enable", number=1, type=_FIELD.TYPE_BOOL,
                       label=_FIELD.LABEL_OPTIONAL)
  prometheus.field.add(name="path", number=2, type=_FIELD.TYPE_STRING,
                       label=_FIELD.LABEL_OPTIONAL)
  proto.message_type.add(name="MonitoringConfig").field.add(
      name="prometheus_config", number=1, type=_FIELD.TYPE_MESSAGE,
      type_name=".tensorflow.serving.PrometheusConfig", label=_FIELD.LABEL_OPTIONAL)
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(proto.SerializeToString())
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


_MonitoringConfig = _monitoring_config_class()


def metrics_path(path):
  """The URL path the config file at `path` exports metrics at; None: not exported.

  As in TF Serving, metrics are exported only with `enable: true`, at `path` or, without
  one, at `metrics.PATH`.

  Raises:
    ValueError: naming the file and what is wrong with it.
  """
  try:
    with tf.io.gfile.GFile(path) as f:
      text = f.read()
  except tf.errors.OpError as e:
    raise ValueError(f"{path}: cannot read it: {e.message}") from None
  config = _MonitoringConfig()
  try:
    text_format.Parse(text, config)
  except text_format.ParseError as e:
    raise ValueError(f"{path}: {e}") from None
  prometheus = config.prometheus_config
  if not prometheus.enable:
    return None
  url_path = prometheus.path or metrics.PATH
  # /v1/ is the model API's; a path there would hide a model's URL or be hidden by it.
  if not url_path.startswith("/") or url_path.startswith("/v1/"):
    raise ValueError(f"{path}: prometheus_config path {url_path!r} must start with '/' and "
                     "lie outside /v1/.")
  return url_path
