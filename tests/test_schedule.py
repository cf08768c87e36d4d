"""glow_tfp.training.schedule: linear warmup to the peak, then the peak times the lowered scale."""

import pytest

from glow_tfp.training import schedule


def test_rate_rises_linearly_during_warmup_then_stays_at_the_peak():
  learning_rate = schedule.LearningRate(peak=1e-3, warmup_steps=4)
  assert [learning_rate(s) for s in range(6)] == pytest.approx(
      [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_no_warmup_starts_at_the_peak():
  assert schedule.LearningRate(peak=1e-3, warmup_steps=0)(0) == pytest.approx(1e-3)


def test_lowering_scales_every_later_rate():
  learning_rate = schedule.LearningRate(peak=1e-3, warmup_steps=4)
  learning_rate.lower(0.5)
  learning_rate.lower(0.5)
  assert learning_rate(1) == pytest.approx(1.25e-4)
  assert learning_rate(10) == pytest.approx(2.5e-4)
