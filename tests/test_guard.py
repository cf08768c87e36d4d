"""train.engine.guard: skips counted, a restore with a lower rate after too many in a row, then
giving up; overflowed float16 steps are skipped but are no failures. (With a real model and
checkpoint: tests/test_train_loop.py.)"""

import types

import pytest
import tensorflow as tf

from glow_tfp.training import schedule
from train.engine import guard

_GOOD, _BAD, _OVERFLOW = (True, False), (False, False), (False, True)


def _guard(restores, max_restores=1):
  # The update's counters, without a model.
  update = types.SimpleNamespace(
      learning_rate=schedule.LearningRate(peak=1e-3, warmup_steps=0),
      skipped_steps=tf.Variable(0, dtype=tf.int64))
  return guard.NonFiniteGuard(max_bad_steps=2, max_restores=max_restores,
                              restore_lr_factor=0.5, update=update,
                              restore=lambda: restores.append("ckpt") or "ckpt")


def _count(bad, kind):
  """One step of `kind`: the update counts it as skipped unless ok, the guard in a row."""
  ok, overflow = kind
  bad.skipped_steps.assign_add(0 if ok else 1)
  return bool(bad.count(tf.constant(ok), tf.constant(overflow)))


def test_restores_after_max_bad_steps_in_a_row_with_a_lower_rate():
  restores = []
  bad = _guard(restores)
  assert not _count(bad, _BAD) and not bad.check()
  assert _count(bad, _BAD) and bad.check()
  assert restores == ["ckpt"] and bad.restores == 1 and bad.skipped == 2
  assert bad.learning_rate(0) == pytest.approx(5e-4)


def test_a_finite_step_resets_the_count_in_a_row():
  restores = []
  bad = _guard(restores)
  for kind in (_BAD, _GOOD, _BAD, _GOOD, _BAD):
    assert not _count(bad, kind) and not bad.check()
  assert not restores and bad.skipped == 3


def test_overflowed_steps_are_skipped_but_never_restore():
  restores = []
  bad = _guard(restores)
  for kind in (_BAD, _OVERFLOW, _OVERFLOW, _OVERFLOW):
    assert not _count(bad, kind) and not bad.check()
  assert not restores and bad.skipped == 4 and int(bad.in_a_row.numpy()) == 1


def test_gives_up_when_the_restores_are_spent():
  bad = _guard([], max_restores=0)
  _count(bad, _BAD)
  _count(bad, _BAD)
  with pytest.raises(RuntimeError, match="Training diverged: 2 non-finite steps in a row "
                     "after 0 checkpoint restores"):
    bad.check()
