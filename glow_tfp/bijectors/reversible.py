"""Reversible backpropagation: gradients of a chain without stored activations.

Every layer of Glow is invertible, so the input of each layer can be recomputed from its
output during the backward pass instead of being kept from the forward pass. Peak memory
then holds one layer's activations at a time rather than all of them, at the cost of
running each layer's generative direction and its normalising direction once more.

Reference: Gomez et al., "The Reversible Residual Network", 2017.
"""

import tensorflow as tf

from glow_tfp.bijectors import base


def inverse_and_log_det(bijectors, y, labels=None):
  """`Sequential`'s normalising pass (members applied in order) with reversible gradients.

  Gradients flow to `y` and to every trainable variable of `bijectors`; `labels` are
  integer conditioning inputs and get none.
  """

  @tf.custom_gradient
  def run(y):
    z, log_det = y, base.batch_zeros(y)
    for bijector in bijectors:
      z, step_log_det = bijector.inverse_and_log_det(z, labels=labels)
      log_det += step_log_det

    def grad(dz, dlog_det, variables=None):
      dy, variable_grads = _backward(bijectors, z, dz, dlog_det, labels)
      return dy, [variable_grads.get(v.ref()) for v in variables or []]

    return (z, log_det), grad

  return run(y)


def _backward(bijectors, z, dz, dlog_det, labels):
  """Walks the chain backwards, recomputing each member's input from its output."""
  dlog_det = base.batch_zeros(z) if dlog_det is None else dlog_det
  dz = tf.zeros_like(z) if dz is None else dz
  variable_grads = {}
  for bijector in reversed(bijectors):
    # Without this ordering a graph executor may run all reconstructions ahead of the
    # gradients and hold every activation at once, which is what this module avoids.
    with tf.control_dependencies([dz]):
      y = tf.stop_gradient(bijector.forward_and_log_det(z, labels=labels)[0])
    variables = bijector.trainable_variables
    with tf.GradientTape() as tape:
      tape.watch(y)
      z_again, log_det = bijector.inverse_and_log_det(y, labels=labels)
    grads = tape.gradient([z_again, log_det], [y] + list(variables),
                          output_gradients=[dz, dlog_det])
    for variable, g in zip(variables, grads[1:]):
      if g is not None:
        key = variable.ref()
        variable_grads[key] = g if key not in variable_grads else variable_grads[key] + g
    dz, z = grads[0], y
  return dz, variable_grads
