"""An exponential moving average (Polyak average) of a Glow's weights.

After each applied update n (counted from 1), every trainable weight w moves its shadow s:
  s = d * s + (1 - d) * w,   d = min(decay, (1 + n) / (10 + n)),
the warm-up of `tf.train.ExponentialMovingAverage`, so that the shadow of a short run is not
dominated by the initial weights. Other variables (ActNorm's `initialized` flags) are copied.
"""

import tensorflow as tf


def decay_at(decay, num_updates):
  """The decay used at update `num_updates` (counted from 1)."""
  n = tf.cast(num_updates, tf.float32)
  return tf.minimum(tf.cast(decay, tf.float32), (1.0 + n) / (10.0 + n))


class ExponentialMovingAverage:
  """Keeps `shadow` (a `Glow` of the same config as `model`) at the average of `model`.

  Create it under the strategy's scope, and call `reset` and `update` in its cross-replica
  context (or without a strategy).

  Args:
    model: the trained `Glow`.
    shadow: a `Glow` of the same config, made under the same strategy scope.
    decay: the decay in (0, 1).
  """

  def __init__(self, model, shadow, decay):
    if not 0 < decay < 1:
      raise ValueError(f"`decay` must be in (0, 1); instead, it is {decay!r}.")
    self.model, self.shadow, self.decay = model, shadow, decay
    self._pairs = tuple(zip(shadow.variables, model.variables))
    self._strategy = tf.distribute.get_strategy()  # The strategy of the enclosing scope.

  def reset(self):
    """Sets the shadow to the model's current weights."""
    self._update(tf.constant(0.0), tf.constant(True))

  def update(self, num_updates, apply):
    """Moves the shadow towards the weights after update `num_updates`, if `apply`."""
    self._update(decay_at(self.decay, num_updates), tf.convert_to_tensor(apply))

  def _update(self, decay, apply):
    extended = self._strategy.extended
    for shadow, variable in self._pairs:
      extended.update(shadow, _average if variable.trainable else _copy,
                      args=(variable, decay, apply))


def _average(shadow, variable, decay, apply):
  value = decay * shadow + (1.0 - decay) * variable
  return shadow.assign(tf.where(apply, value, shadow))


def _copy(shadow, variable, unused_decay, apply):
  return shadow.assign(tf.where(apply, variable, shadow))
