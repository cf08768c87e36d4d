"""Composition of fused bijectors: a chain, and the inverse of a bijector."""


from glow_tfp.bijectors import base
from glow_tfp.bijectors import reversible as reversible_lib


class Sequential(base.FusedBijector):
  """A chain of fused bijectors, ordered as `tfb.Chain` orders its list.

  `forward(x) = b[0].forward(b[1].forward(... b[-1].forward(x)))`, so the normalising
  direction `inverse` applies `b[0].inverse` first: the list reads in data -> latent order.
  Log-dets add up; each member runs once per call (unlike `tfb.Chain`, whose log-det calls
  recompute every member's inverse).

  With `reversible=True`, the gradients of the normalising pass recompute each member's
  input from its output instead of storing activations (`glow_tfp.bijectors.reversible`);
  values are unchanged, peak training memory no longer grows with the chain's length.

  Args:
    bijectors: non-empty list of `FusedBijector`s.
    reversible: backpropagate through `inverse` reversibly (default False).
    name: name scope.
  """

  def __init__(self, bijectors, reversible=False, name=None):
    parameters = dict(locals())
    if not bijectors:
      raise ValueError("`bijectors` must be a non-empty list; instead, it is empty.")
    self._bijectors = list(bijectors)
    self.reversible = reversible
    super().__init__(parameters=parameters, name=name or "sequential",
                     dtype=self._bijectors[0].dtype)

  @property
  def bijectors(self):
    return self._bijectors

  def _forward_and_log_det(self, x, labels=None):
    log_det = base.batch_zeros(x)
    for bijector in reversed(self._bijectors):
      x, step_log_det = bijector.forward_and_log_det(x, labels=labels)
      log_det += step_log_det
    return x, log_det

  def _inverse_and_log_det(self, y, labels=None):
    if self.reversible:
      return reversible_lib.inverse_and_log_det(self._bijectors, y, labels=labels)
    log_det = base.batch_zeros(y)
    for bijector in self._bijectors:
      y, step_log_det = bijector.inverse_and_log_det(y, labels=labels)
      log_det += step_log_det
    return y, log_det

  def initialize_inverse(self, y, labels=None):
    for bijector in self._bijectors:
      y = bijector.initialize_inverse(y, labels=labels)
    return y

  def _forward_event_shape(self, input_shape):
    for bijector in reversed(self._bijectors):
      input_shape = bijector.forward_event_shape(input_shape)
    return input_shape

  def _inverse_event_shape(self, output_shape):
    for bijector in self._bijectors:
      output_shape = bijector.inverse_event_shape(output_shape)
    return output_shape

  def _forward_event_shape_tensor(self, input_shape):
    for bijector in reversed(self._bijectors):
      input_shape = bijector.forward_event_shape_tensor(input_shape)
    return input_shape

  def _inverse_event_shape_tensor(self, output_shape):
    for bijector in self._bijectors:
      output_shape = bijector.inverse_event_shape_tensor(output_shape)
    return output_shape


class Invert(base.FusedBijector):
  """Swaps the directions of a fused bijector: `forward = inner.inverse` and back.

  Args:
    bijector: the `FusedBijector` to invert; it must hold no data-dependent parameters.
    name: name scope.
  """

  def __init__(self, bijector, name=None):
    parameters = dict(locals())
    self._bijector = bijector
    super().__init__(parameters=parameters, name=name or "invert_" + bijector.name,
                     is_constant_jacobian=bijector.is_constant_jacobian,
                     dtype=bijector.dtype)

  def _forward_and_log_det(self, x, labels=None):
    return self._bijector.inverse_and_log_det(x, labels=labels)

  def _inverse_and_log_det(self, y, labels=None):
    return self._bijector.forward_and_log_det(y, labels=labels)

  def _forward_event_shape(self, input_shape):
    return self._bijector.inverse_event_shape(input_shape)

  def _inverse_event_shape(self, output_shape):
    return self._bijector.forward_event_shape(output_shape)

  def _forward_event_shape_tensor(self, input_shape):
    return self._bijector.inverse_event_shape_tensor(input_shape)

  def _inverse_event_shape_tensor(self, output_shape):
    return self._bijector.forward_event_shape_tensor(output_shape)
