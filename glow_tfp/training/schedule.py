"""The learning rate of each step: linear warmup to the peak, optionally a cosine decay to
zero, times a scale (which the training CLI's non-finite guard lowers at each checkpoint
restore)."""

import math

import tensorflow as tf

# What follows the warmup: the peak, or a cosine decay to 0 (`LearningRate`).
DECAYS = ("none", "cosine")


class LearningRate:
  """`learning_rate(step)` = peak * warmup(step) * decay(step) * scale, where
  warmup(s) = min(1, (s + 1) / warmup_steps) and, with decay_steps = S > warmup_steps,
  decay(s) = (1 + cos(pi * min(1, (s - warmup_steps) / (S - warmup_steps)))) / 2 after the
  warmup (1 before it; the cosine schedule of SGDR, Loshchilov & Hutter 2017, without
  restarts), so the rate reaches 0 at step S. decay_steps = 0 keeps the peak.

  Create it under the strategy's scope: `scale` is a variable, saved in every checkpoint so
  that a resumed run keeps the rate that the restores lowered.
  """

  def __init__(self, peak, warmup_steps, decay_steps=0):
    self.peak, self.warmup_steps, self.decay_steps = peak, warmup_steps, decay_steps
    self.scale = tf.Variable(1.0, trainable=False, name="lr_scale")

  def __call__(self, step):
    return float(self.at(step))

  def at(self, step):
    """The rate of `step` (a tensor, so it can run in a graph) as a float32 tensor.

    It is computed in float64 and rounded once, as a Python float would be.
    """
    step = tf.cast(step, tf.float64)
    one = tf.constant(1.0, tf.float64)
    warmup = tf.minimum(one, (step + 1) / self.warmup_steps) if self.warmup_steps else one
    rate = self.peak * warmup * self._decay(step) * tf.cast(self.scale, tf.float64)
    return tf.cast(rate, tf.float32)

  def _decay(self, step):
    if self.decay_steps <= self.warmup_steps:
      return tf.constant(1.0, tf.float64)
    progress = (step - self.warmup_steps) / (self.decay_steps - self.warmup_steps)
    progress = tf.clip_by_value(progress, 0.0, 1.0)
    return 0.5 * (1.0 + tf.cos(math.pi * progress))

  def lower(self, factor):
    """Multiplies the rate of every later step by `factor`."""
    self.scale.assign(self.scale * factor)
