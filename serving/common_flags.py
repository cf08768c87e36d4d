"""The flags that several serving programs take, each defined and validated here once.

`serving.export` names the model it writes (`define_model_name_flag`); `serving.client` and
`serving.load_test` also choose the API and the server (`define_connection_flags`). The load
test drives the client in one process and tests import all three programs together, so each
function defines its flags on the first call and returns the same holders on every later one.
"""

import functools

from absl import flags

from . import model_name as model_name_lib

# TF Serving's ports: 8501 for REST, 8500 for gRPC.
DEFAULT_SERVERS = {"rest": "http://127.0.0.1:8501", "grpc": "127.0.0.1:8500"}


@functools.cache
def define_model_name_flag():
  """--model_name: the served model's name, one safe directory name."""
  holder = flags.DEFINE_string("model_name", "glow", "Name of the served model.")
  flags.register_validator(
      "model_name", model_name_lib.is_valid,
      message="--model_name names the model's directory (under --export_base for "
      f"serving.export): use {model_name_lib.RULE}.")
  return holder


@functools.cache
def define_connection_flags():
  """--protocol, --server and --model_name: which API, server and model a client talks to.

  Returns:
    {name: FlagHolder}.
  """
  return {
      "protocol": flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "TF Serving API to "
                                    "speak: REST or gRPC."),
      "server": flags.DEFINE_string(
          "server", None, "The server: a base URL for REST (default "
          f"{DEFAULT_SERVERS['rest']}), host:port for gRPC (default {DEFAULT_SERVERS['grpc']})."),
      "model_name": define_model_name_flag(),
  }
