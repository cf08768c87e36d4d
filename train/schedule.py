"""The learning rate of each step: linear warmup to the peak, times a scale that the
non-finite guard lowers at each checkpoint restore (train/guard.py)."""

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
    warmup = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
    return self.peak * warmup * float(self.scale.numpy())

  def lower(self, factor):
    """Multiplies the rate of every later step by `factor`."""
    self.scale.assign(self.scale * factor)
