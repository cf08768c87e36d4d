"""TF Serving's text-format config files whose protos tensorflow-serving-api does not ship.

Such a proto is declared here with TF Serving's package, field names and numbers, in a
descriptor pool of its own, and protobuf's own text format parser reads the file: a file that
works here works with `tensorflow/serving` and back.
"""

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
import tensorflow as tf

FIELD = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow.serving"


def message_class(file_name, messages, name):
  """The message class `name` of a proto3 file of TF Serving's package.

  Args:
    file_name: the .proto file's path in TF Serving's repository.
    messages: {message name: [(field name, number, FIELD.TYPE_*, message type name or None)]},
      each message after those its fields name.
    name: the message wanted.
  """
  proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=_PACKAGE,
                                             syntax="proto3")
  for message_name, fields in messages.items():
    message = proto.message_type.add(name=message_name)
    for field_name, number, kind, type_name in fields:
      message.field.add(name=field_name, number=number, type=kind,
                        type_name=f".{_PACKAGE}.{type_name}" if type_name else None,
                        label=FIELD.LABEL_OPTIONAL)
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(proto.SerializeToString())
  return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


def read(path, message_type):
  """The text-format file at `path` as a `message_type` message.

  Raises:
    ValueError: naming the file and what is wrong with it.
  """
  try:
    with tf.io.gfile.GFile(path) as f:
      text = f.read()
  except tf.errors.OpError as e:
    raise ValueError(f"{path}: cannot read it: {e.message}") from None
  message = message_type()
  try:
    text_format.Parse(text, message)
  except text_format.ParseError as e:
    raise ValueError(f"{path}: {e}") from None
  return message
