"""Refused requests, with TF Serving's canonical error codes.

The request path shared by the front ends raises `RequestError` with the code TF Serving's
gRPC API answers; each front end maps it to its protocol (the REST API to an HTTP status).
"""

# OK and INTERNAL label requests in the metrics; refusals carry the others.
OK = "OK"
INTERNAL = "INTERNAL"
INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"


class RequestError(Exception):
  """A request the server refuses: `code` is its canonical error code, the message says why."""

  def __init__(self, message, code=INVALID_ARGUMENT):
    super().__init__(message)
    self.code = code


def not_found(model_name, version):
  """The error TF Serving answers for a model name or version it does not serve."""
  wanted = (f"Latest({model_name})" if version is None
            else f"Specific({model_name}, {version})")
  return RequestError(f"Servable not found for request: {wanted}", NOT_FOUND)


def op_error_message(error):
  """The line of a TensorFlow error that names the problem (not the graph's node names)."""
  lines = [line.strip() for line in error.message.splitlines() if line.strip()]
  for line in lines:
    if "assertion failed:" in line:
      return line[line.index("assertion failed:"):]
  useful = [line for line in lines if not line.startswith(
      ("Graph execution error", "Detected at node", "<stack traces", "[["))]
  return (useful or lines or [type(error).__name__])[0]
