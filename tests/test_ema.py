"""glow_tfp.training.ema: the warm-up decay, the average of trainable weights, skipped updates."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp.training import ema
from tests.checks import assert_close

_CONFIG = glow_tfp.GlowConfig(image_shape=(4, 4, 1), levels=1, steps_per_level=1,
                              hidden_channels=4)


def test_decay_warms_up_to_its_ceiling():
  assert [float(ema.decay_at(0.999, n)) for n in (1, 10, 10 ** 6)] == pytest.approx(
      [2 / 11, 11 / 20, 0.999])


def test_shadow_averages_applied_updates_only():
  model, shadow = glow_tfp.Glow(_CONFIG, seed=0), glow_tfp.Glow(_CONFIG, seed=1)
  average = ema.ExponentialMovingAverage(model, shadow, decay=0.5)
  average.reset()
  start = [v.numpy() for v in model.trainable_variables]
  for variable in model.trainable_variables:
    variable.assign_add(tf.ones_like(variable))
  average.update(num_updates=1, apply=False)
  for ours, value in zip(shadow.trainable_variables, start):
    np.testing.assert_array_equal(ours.numpy(), value)
  average.update(num_updates=1, apply=True)  # decay min(0.5, 2/11)
  for ours, value in zip(shadow.trainable_variables, start):
    assert_close(ours.numpy(), value + 9 / 11, rtol=1e-5)


def test_decay_outside_the_unit_interval_is_refused():
  with pytest.raises(ValueError, match="decay"):
    ema.ExponentialMovingAverage(glow_tfp.Glow(_CONFIG), glow_tfp.Glow(_CONFIG), 1.0)
