"""The request path every front end shares: look up, check, limit, batch and run.

A front end (the REST API, the gRPC API) turns its request into a model name,
a version, a signature name and numpy inputs, and its answer from numpy outputs. Everything
between is here: the served models and their hot reload (`registry.Registry`), the check of
the inputs against the signature, the batch limit, server-side batching, clean TensorFlow
error messages and request logging (`serving.request_log`). Refusals raise
`errors.RequestError` with a canonical code. Front ends count each request in `metrics`
(`record`).
"""

import tensorflow as tf

from . import batching
from . import errors
from . import metrics as metrics_lib
from . import signatures
from .errors import RequestError


class Service:
  """Serves `models` to every front end.

  Args:
    models: the served models: a `registry.Registry`, or one `servable.ModelManager`.
    max_batch_size: most examples one request may ask for, and one merged run may hold.
    batch_timeout_s: None runs every request on its own; a number merges concurrent
      requests (`serving.batching`), each waiting at most that long for company.
  """

  def __init__(self, models, max_batch_size, batch_timeout_s=None):
    self.models = models
    self.max_batch_size = max_batch_size
    self.metrics = metrics_lib.Metrics()
    self._run = (_run if batch_timeout_s is None
                 else batching.Batcher(_run, max_batch_size, batch_timeout_s))

  def predict(self, servable, signature_name, arrays):
    """Runs a signature on {input name: numpy array}; returns {output name: numpy array}.

    The servable comes from `models.get`, which refuses unknown names and versions.
    """
    signatures.check_signature(signature_name, servable.signatures)
    specs = servable.input_specs[signature_name]
    signatures.check_names(set(arrays), {spec.name for spec in specs}, "The request")
    for spec in specs:
      spec.check(arrays[spec.name])
      count = spec.example_count(arrays[spec.name])
      if count > self.max_batch_size:
        raise RequestError(f"Input '{spec.name}' asks for {count} examples, above the limit "
                           f"of {self.max_batch_size} (--max_batch_size).")
    outputs = self._run(servable, signature_name, arrays)
    if servable.request_log is not None:
      servable.request_log.record(servable.version, signature_name, arrays, outputs)
    return outputs

  def record(self, model_name, api, entrypoint, code, seconds):
    """Counts a finished request in `metrics`.

    Requests naming a model that is not served count under the model name "", so that
    clients cannot grow the metrics without bound.
    """
    self.metrics.record(model_name if model_name in self.models else "", api, entrypoint,
                        code, seconds)


def _run(servable, name, arrays):
  try:
    return servable.predict(name, arrays)
  except tf.errors.InvalidArgumentError as e:
    raise RequestError(errors.op_error_message(e)) from None
