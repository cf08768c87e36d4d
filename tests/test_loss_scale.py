"""glow_tfp.training.loss_scale: halve on overflow, double after the growth interval."""

import tensorflow as tf

from glow_tfp.training import loss_scale


def test_scale_halves_on_overflow_and_doubles_after_the_good_steps():
  scale = loss_scale.DynamicLossScale(initial_scale=8.0, growth_interval=2)
  scale.update(tf.constant(False))
  assert float(scale.scale.numpy()) == 4.0
  scale.update(tf.constant(True))
  assert float(scale.scale.numpy()) == 4.0
  scale.update(tf.constant(True))
  assert float(scale.scale.numpy()) == 8.0 and int(scale.good_steps.numpy()) == 0
