"""The learning rate of each step: linear warmup to the peak, times a scale (which the
training CLI's non-finite guard lowers at each checkpoint restore)."""

import tensorflow as tf


class LearningRate:
  """`learning_rate(step)` = peak * min(1, (step + 1) / warmup_steps) * scale.

  Create it under the strategy's scope: `scale` is a variable, saved in every checkpoint so
  that a resumed run keeps the rate that the restores lowered.
  """

  def __init__(self, peak, warmup_steps):
    self.peak, self.warmup_steps = peak, warmup_steps
    self.scale = tf.Variable(1.0, trainable=False, name="lr_scale")

  def __call__(self, step):
    return float(self.at(step))

  def at(self, step):
    """The rate of `step` (a tensor, so it can run in a graph) as a float32 tensor.

    It is computed in float64 and rounded once, as a Python float would be.
    """
    step = tf.cast(step, tf.float64)
    warmup = (tf.minimum(tf.constant(1.0, tf.float64), (step + 1) / self.warmup_steps)
              if self.warmup_steps else 1.0)
    rate = self.peak * warmup * tf.cast(self.scale, tf.float64)
    return tf.cast(rate, tf.float32)

  def lower(self, factor):
    """Multiplies the rate of every later step by `factor`."""
    self.scale.assign(self.scale * factor)
