"""The non-finite guard: what a run does after steps whose loss or gradient norm is not
finite.

Such a step applies no update (train/step.py); the guard counts it as skipped. After
`max_bad_steps` of them in a row it restores the last checkpoint and lowers the learning
rate by `restore_lr_factor`; once `max_restores` restores are spent it gives up.
"""

from absl import logging
import tensorflow as tf


class NonFiniteGuard:
  """Counts non-finite steps and restores; create it under the strategy's scope.

  Args:
    max_bad_steps: non-finite steps in a row that trigger a restore.
    max_restores: restores after which the run gives up.
    restore_lr_factor: learning-rate factor at each restore.
    learning_rate: the run's `schedule.LearningRate`.
    restore: restores the last checkpoint; returns its path.

  Attributes:
    skipped_steps: a variable, saved in every checkpoint; restores: restores so far.
  """

  def __init__(self, max_bad_steps, max_restores, restore_lr_factor, learning_rate, restore):
    self.max_bad_steps, self.max_restores = max_bad_steps, max_restores
    self.restore_lr_factor = restore_lr_factor
    self.learning_rate, self._restore = learning_rate, restore
    self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
    self.restores = 0
    self._in_a_row = 0

  @property
  def skipped(self):
    return int(self.skipped_steps.numpy())

  def passed(self):
    """Notes a finite step, which ends a run of non-finite ones."""
    self._in_a_row = 0

  def failed(self, step, loss, norm):
    """Counts the non-finite `step`; restores the last checkpoint after too many in a row.

    Returns whether it restored. Raises `RuntimeError` when the restores are spent.
    """
    self._in_a_row += 1
    self.skipped_steps.assign_add(1)
    logging.warning("step %d: non-finite loss (%s) or gradient norm (%s); update skipped "
                    "(%d in a row, %d in all).", step, loss, norm, self._in_a_row,
                    self.skipped)
    if self._in_a_row < self.max_bad_steps:
      return False
    if self.restores >= self.max_restores:
      raise RuntimeError(f"Training diverged: {self._in_a_row} non-finite steps in a row "
                         f"after {self.restores} checkpoint restores.")
    skipped = self.skipped_steps.numpy()
    path = self._restore()
    # The checkpoint holds the count of its own time; the skipped steps since still count.
    self.skipped_steps.assign(skipped)
    self.learning_rate.lower(self.restore_lr_factor)
    self.restores += 1
    self._in_a_row = 0
    logging.warning("Restored %s; learning rate scale now %g.", path,
                    float(self.learning_rate.scale.numpy()))
    return True
