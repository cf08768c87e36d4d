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


def test_cosine_decay_falls_from_the_peak_after_warmup_to_zero_at_decay_steps():
  learning_rate = schedule.LearningRate(peak=1e-3, warmup_steps=2, decay_steps=6)
  # Steps 2..6 are 0, 1/4, 1/2, 3/4 and all of the way along the half cosine.
  assert [learning_rate(s) for s in range(8)] == pytest.approx(
      [5e-4, 1e-3, 1e-3, 8.535534e-4, 5e-4, 1.464466e-4, 0.0, 0.0], rel=1e-6, abs=1e-12)


def test_cosine_decay_keeps_the_lowered_scale():
  learning_rate = schedule.LearningRate(peak=1e-3, warmup_steps=0, decay_steps=4)
  learning_rate.lower(0.5)
  assert learning_rate(2) == pytest.approx(2.5e-4)
