"""The non-finite guard: what a run does after steps whose loss or gradient norm is not
finite.

Such a step applies no update and counts as skipped (glow_tfp/training/update.py, the same
for `GlowModel.fit`); the guard counts the failures in a row, on the device, inside the
training loop (`count`). After `max_bad_steps` of them in a row the loop stops early, and at that boundary (`check`) the guard restores the last checkpoint and
lowers the learning rate by `restore_lr_factor`; once `max_restores` restores are spent it
gives up. A float16 step whose gradients overflowed under loss scaling is skipped too, but
it is no failure: it leaves the count in a row alone (the loss scale deals with it).
"""

from absl import logging
import tensorflow as tf


class NonFiniteGuard:
  """Counts non-finite steps and restores; create it under the strategy's scope.

  Args:
    max_bad_steps: non-finite steps in a row that trigger a restore.
    max_restores: restores after which the run gives up.
    restore_lr_factor: learning-rate factor at each restore.
    update: the run's `glow_tfp.training.update.Update`, whose `learning_rate` the
      restores lower and whose `skipped_steps` count the skipped steps.
    restore: restores the last checkpoint; returns its path.

  Attributes:
    in_a_row: a variable, the failed steps since the last good one; restores: restores so
    far.
  """

  def __init__(self, max_bad_steps, max_restores, restore_lr_factor, update, restore):
    self.max_bad_steps, self.max_restores = max_bad_steps, max_restores
    self.restore_lr_factor = restore_lr_factor
    self.learning_rate, self.skipped_steps = update.learning_rate, update.skipped_steps
    self._restore = restore
    self.in_a_row = tf.Variable(0, dtype=tf.int64, trainable=False, name="in_a_row")
    self.restores = 0

  @property
  def skipped(self):
    return int(self.skipped_steps.numpy())

  def count(self, ok, overflow):
    """Counts one step in the graph; returns whether the loop must stop for `check`."""
    failed = ~ok & ~overflow
    self.in_a_row.assign(tf.where(failed, self.in_a_row + 1,
                                  tf.where(ok, tf.zeros_like(self.in_a_row), self.in_a_row)))
    return self.in_a_row >= self.max_bad_steps

  def log_skipped(self, step, loss, norm, in_a_row, skipped, overflow):
    """Logs the skipped `step` with the counts after it."""
    if overflow:
      logging.info("step %d: float16 gradients overflowed; update skipped, loss scale "
                   "halved.", step)
      return
    logging.warning("step %d: non-finite loss (%s) or gradient norm (%s); update skipped "
                    "(%d in a row, %d in all).", step, loss, norm, in_a_row, skipped)

  def check(self):
    """At a loop boundary: restores the last checkpoint after too many failures in a row.

    Returns whether it restored. Raises `RuntimeError` when the restores are spent.
    """
    in_a_row = int(self.in_a_row.numpy())
    if in_a_row < self.max_bad_steps:
      return False
    if self.restores >= self.max_restores:
      raise RuntimeError(f"Training diverged: {in_a_row} non-finite steps in a row "
                         f"after {self.restores} checkpoint restores.")
    skipped = self.skipped_steps.numpy()
    path = self._restore()
    # The checkpoint holds the count of its own time; the skipped steps since still count.
    self.skipped_steps.assign(skipped)
    self.in_a_row.assign(0)
    self.learning_rate.lower(self.restore_lr_factor)
    self.restores += 1
    logging.warning("Restored %s; learning rate scale now %g.", path,
                    float(self.learning_rate.scale.numpy()))
    return True
