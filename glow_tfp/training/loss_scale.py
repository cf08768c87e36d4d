"""Dynamic loss scaling for float16 training, as Keras's `LossScaleOptimizer` does it.

The loss is multiplied by `scale` before differentiation and the gradients divided by it
again, so small float16 gradients do not flush to zero. A step whose gradients overflow
applies nothing and halves the scale; after `growth_interval` good steps in a row the scale
doubles.
"""

import tensorflow as tf


class DynamicLossScale(tf.Module):
  """The scale and its count of good steps; create it under the strategy's scope.

  Args:
    initial_scale: the first scale (Keras's default, 2**15).
    growth_interval: good steps in a row after which the scale doubles.
  """

  def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000, name="loss_scale"):
    super().__init__(name=name)
    self.growth_interval = growth_interval
    self.scale = tf.Variable(initial_scale, trainable=False, name="scale")
    self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

  def update(self, finite):
    """After a step: halve on overflow (`finite` False), double after enough good steps.

    Call in a cross-replica context (or without a strategy).
    """
    good = tf.where(finite, self.good_steps + 1, tf.zeros_like(self.good_steps))
    grow = good >= self.growth_interval
    factor = tf.where(finite, tf.where(grow, 2.0, 1.0), 0.5)
    self.scale.assign(tf.maximum(self.scale * factor, 1.0))
    self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))
