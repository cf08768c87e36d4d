"""Refused requests, with TF Serving's canonical error codes.

The request path shared by the front ends raises `RequestError` with the code TF Serving's
gRPC API answers; each front end maps it to its protocol (the REST API to an HTTP status).
"""

INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"


class RequestError(Exception):
  """A request the server refuses: `code` is its canonical error code, the message says why."""

  def __init__(self, message, code=INVALID_ARGUMENT):
    super().__init__(message)
    self.code = code
