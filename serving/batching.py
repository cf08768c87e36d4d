"""Server-side batching: concurrent requests to one signature run as one model call.

Like TF Serving's `--enable_batching`: a request waits up to `timeout_s` for others to the
same version and signature, and they run together, up to `max_batch_size` examples. Only
requests whose every input and output has the batch dimension first can be merged (Glow's
log_prob, encode, decode); and only when all of a request's inputs agree on their batch size,
so that concatenating them keeps every example's inputs together.
"""

import collections
import threading
import time

import numpy as np

from .errors import RequestError


class _Job:
  """One request waiting for its share of a merged run."""

  def __init__(self, servable, signature_name, arrays, size):
    self.key = (id(servable), signature_name)
    self.servable = servable
    self.signature_name = signature_name
    self.arrays = arrays
    self.size = size
    self.outputs = None
    self.error = None
    self.done = threading.Event()


class Batcher:
  """Runs requests through `run(servable, signature_name, arrays)`, merging where it can.

  A merged run that fails with a `RequestError` (one request's label out of range, say) is
  repeated request by request, so the error reaches only the request that caused it.

  Args:
    run: the function that runs one signature on numpy inputs; raises RequestError for bad
      input.
    max_batch_size: most examples in one merged run.
    timeout_s: longest a request waits for others.
  """

  def __init__(self, run, max_batch_size, timeout_s):
    self._run = run
    self._max_batch_size = max_batch_size
    self._timeout_s = timeout_s
    self._pending = collections.deque()
    self._ready = threading.Condition()
    threading.Thread(target=self._work, daemon=True, name="batcher").start()

  def __call__(self, servable, signature_name, arrays):
    size = _batch_size(arrays)
    if signature_name not in servable.batchable or size is None:
      return self._run(servable, signature_name, arrays)
    job = _Job(servable, signature_name, arrays, size)
    with self._ready:
      self._pending.append(job)
      self._ready.notify()
    job.done.wait()
    if job.error is not None:
      raise job.error
    return job.outputs

  def _work(self):
    while True:
      batch = self._next_batch()
      if len(batch) == 1:
        self._run_alone(batch[0])
      else:
        self._run_merged(batch)

  def _next_batch(self):
    """The oldest request and those that can join it, waiting at most the timeout."""
    with self._ready:
      while not self._pending:
        self._ready.wait()
      first = self._pending.popleft()
      batch, size = [first], first.size
      deadline = time.monotonic() + self._timeout_s
      while size < self._max_batch_size:
        job = next((j for j in self._pending if j.key == first.key
                    and size + j.size <= self._max_batch_size), None)
        if job is not None:
          self._pending.remove(job)
          batch.append(job)
          size += job.size
        else:
          remaining = deadline - time.monotonic()
          if remaining <= 0 or not self._ready.wait(remaining):
            break
      return batch

  def _run_alone(self, job):
    try:
      job.outputs = self._run(job.servable, job.signature_name, job.arrays)
    except Exception as e:  # handed to the request's own thread, which raises it.
      job.error = e
    job.done.set()

  def _run_merged(self, batch):
    first = batch[0]
    merged = {name: np.concatenate([job.arrays[name] for job in batch])
              for name in first.arrays}
    try:
      outputs = self._run(first.servable, first.signature_name, merged)
    except RequestError:
      for job in batch:
        self._run_alone(job)
      return
    except Exception as e:  # the same failure for everyone in the batch.
      for job in batch:
        job.error = e
        job.done.set()
      return
    start = 0
    for job in batch:
      job.outputs = {name: value[start:start + job.size] for name, value in outputs.items()}
      start += job.size
      job.done.set()


def _batch_size(arrays):
  """The common first dimension of all inputs, or None when they disagree."""
  sizes = {value.shape[0] if value.ndim else None for value in arrays.values()}
  return sizes.pop() if len(sizes) == 1 else None
