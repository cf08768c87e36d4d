"""Preemption: SIGTERM stops a run at the next loop boundary with a checkpoint of that step.

Cloud schedulers send SIGTERM some seconds before they take a machine (spot VMs, Kubernetes
evictions). While the training loop runs, `PreemptionWatch` turns the signal into a request
that the loop reads after each `tf.function` call of `steps_per_loop` steps: it saves the
checkpoint of the step reached and raises `Preempted`, which `python -m train` turns into the
exit code `EXIT_CODE`. Running the same command again resumes from that step exactly.

The signal is read between loops rather than through
`tf.distribute.experimental.PreemptionCheckpointHandler`: the handler restores the state
file's latest checkpoint itself (passing over no damaged one), adds its own counter to every
checkpoint (so checkpoints written without it no longer match) and counts calls of a
one-step function, where the loop here runs `steps_per_loop` steps per call. The time from
the signal to the exit is the rest of the current loop and one checkpoint write.

In a cluster (MultiWorkerMirroredStrategy) the signal reaches one worker; at each loop
boundary the workers sum their requests, so all of them save the same step and exit.
"""

import signal
import threading

from absl import logging
import tensorflow as tf

from . import strategy as strategy_lib

# EX_TEMPFAIL of sysexits.h: a temporary failure; the same command run again continues.
EXIT_CODE = 75


class Preempted(Exception):
  """The run stopped on SIGTERM after saving the checkpoint of `step` at `path`."""

  def __init__(self, step, path):
    super().__init__(f"Preempted (SIGTERM): saved checkpoint {path} of step {step}; run the "
                     "same command again to resume from it.")
    self.step, self.path = step, path


class PreemptionWatch:
  """A context manager that, inside it, turns SIGTERM into `requested()` being True.

  Outside the main thread, where Python cannot handle signals, it watches nothing.

  Args:
    strategy: the run's `tf.distribute.Strategy`; with several workers, `requested()` is
      True on every worker once one of them has the signal.
  """

  def __init__(self, strategy):
    self._strategy = strategy
    self._signalled = False
    self._previous = None
    self._cluster = strategy_lib.num_workers(strategy) > 1
    if self._cluster:
      self._sum = tf.function(lambda vote: strategy.run(tf.identity, args=(vote,)))

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *unused_exc_info):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _handle(self, signum, frame):
    del signum, frame  # the one signal handled
    logging.warning("SIGTERM: saving a checkpoint at the end of the current loop, then "
                    "exiting with code %d.", EXIT_CODE)
    self._signalled = True

  def requested(self):
    """Whether this process, or in a cluster any worker, has received SIGTERM; in a
    cluster every worker must call it at the same loop boundaries."""
    if not self._cluster:
      return self._signalled
    votes = self._sum(tf.constant(int(self._signalled)))
    return bool(self._strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None) > 0)
