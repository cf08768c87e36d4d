"""Adam and Adamax with an all-or-nothing update, for the non-finite-step guard.

Keras optimizers apply their update through `merge_call`, which cannot sit inside a
conditional under a distribution strategy, and a zero gradient would still move their
moments. This optimizer takes an `apply` flag instead: when it is False no variable, moment
or step counter changes. It updates in cross-replica context through
`strategy.extended.update`, so the same code serves every strategy.

With g the gradient, t the count of applied updates and lr the learning rate:
  m = b1 * m + (1 - b1) * g
  adam:   v = b2 * v + (1 - b2) * g**2,
          w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)
  adamax: v = max(b2 * v, |g|),
          w -= lr / (1 - b1**t) * m / (v + eps)
(Kingma & Ba, "Adam: A Method for Stochastic Optimization", 2015, Algorithms 1 and 2.)
"""

import tensorflow as tf

KINDS = ("adam", "adamax")


class Optimizer(tf.Module):
  """Adam or Adamax over a fixed list of variables; create it under `strategy.scope()`.

  Args:
    variables: the trainable variables, in the order the gradients will come.
    kind: "adam" or "adamax" (the Glow paper's choice).
    beta_1, beta_2, epsilon: the usual constants.
  """

  def __init__(self, variables, kind="adam", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
               name=None):
    super().__init__(name=name or kind)
    if kind not in KINDS:
      raise ValueError(f"`kind` must be one of {KINDS}; instead, it is {kind!r}.")
    self.kind = kind
    self._strategy = tf.distribute.get_strategy()  # The strategy of the enclosing scope.
    self._constants = (beta_1, beta_2, epsilon)
    self._variables = tuple(variables)
    with self.name_scope:
      self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
      # Unique names: a Keras 2 model checkpoints the weights it owns by name.
      self.first_moments = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"m{i}")
                            for i, v in enumerate(self._variables)]
      self.second_moments = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"v{i}")
                             for i, v in enumerate(self._variables)]

  def apply(self, gradients, learning_rate, apply=True):
    """Updates every variable from `gradients` (one per variable) if `apply` is True.

    Call in cross-replica context (or without a strategy); per-replica gradients must be
    identical on all replicas (already all-reduced).
    """
    strategy = self._strategy
    apply = tf.convert_to_tensor(apply)
    count = tf.cast(self.iterations.read_value() + 1, tf.float32)
    step_size = self._step_size(learning_rate, count)
    for variable, gradient, m, v in zip(self._variables, gradients, self.first_moments,
                                        self.second_moments):
      strategy.extended.update(variable, self._update, args=(gradient, m, v, step_size, apply))
    strategy.extended.update(self.iterations, _increment_if, args=(apply,))

  def _step_size(self, learning_rate, count):
    beta_1, beta_2, _ = self._constants
    correction = 1.0 - beta_1 ** count
    if self.kind == "adam":
      correction /= tf.sqrt(1.0 - beta_2 ** count)
    return tf.cast(learning_rate, tf.float32) / correction

  def _update(self, variable, gradient, m, v, step_size, apply):
    beta_1, beta_2, epsilon = self._constants
    gradient = tf.where(apply, gradient, tf.zeros_like(gradient))
    new_m = beta_1 * m + (1.0 - beta_1) * gradient
    if self.kind == "adam":
      new_v = beta_2 * v + (1.0 - beta_2) * tf.square(gradient)
      delta = step_size * new_m / (tf.sqrt(new_v) + epsilon)
    else:
      new_v = tf.maximum(beta_2 * v, tf.abs(gradient))
      delta = step_size * new_m / (new_v + epsilon)
    m.assign(tf.where(apply, new_m, m))
    v.assign(tf.where(apply, new_v, v))
    return variable.assign_sub(tf.where(apply, delta, tf.zeros_like(delta)))


def _increment_if(counter, apply):
  return counter.assign_add(tf.cast(apply, counter.dtype))
