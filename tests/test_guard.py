"""train.guard: skips counted, a restore with a lower rate after too many in a row, then
giving up. (With a real model and checkpoint: tests/test_train_loop.py.)"""

import pytest

from train import guard
from train import schedule


def _guard(restores, max_restores=1):
  learning_rate = schedule.LearningRate(peak=1e-3, warmup_steps=0)
  return guard.NonFiniteGuard(max_bad_steps=2, max_restores=max_restores,
                              restore_lr_factor=0.5, learning_rate=learning_rate,
                              restore=lambda: restores.append("ckpt") or "ckpt")


def test_restores_after_max_bad_steps_in_a_row_with_a_lower_rate():
  restores = []
  bad = _guard(restores)
  assert not bad.failed(1, float("nan"), 1.0)
  assert bad.failed(2, float("nan"), 1.0)
  assert restores == ["ckpt"] and bad.restores == 1 and bad.skipped == 2
  assert bad.learning_rate(0) == pytest.approx(5e-4)


def test_a_finite_step_resets_the_count_in_a_row():
  restores = []
  bad = _guard(restores)
  for step in range(1, 4):
    assert not bad.failed(step, float("inf"), 1.0)
    bad.passed()
  assert not restores and bad.skipped == 3


def test_gives_up_when_the_restores_are_spent():
  bad = _guard([], max_restores=0)
  bad.failed(1, float("nan"), 1.0)
  with pytest.raises(RuntimeError, match="Training diverged: 2 non-finite steps in a row "
                     "after 0 checkpoint restores"):
    bad.failed(2, float("nan"), 1.0)
