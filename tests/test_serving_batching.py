"""Server-side batching: merged runs, each request gets its own rows, errors stay private."""

import threading

import numpy as np
import pytest

from serving import batching
from serving.errors import RequestError


class FakeServable:
  batchable = {"double"}


class RecordingRun:
  """Doubles `x`; refuses negative values as the model refuses bad labels."""

  def __init__(self):
    self.batch_sizes = []
    self.lock = threading.Lock()

  def __call__(self, servable, signature_name, arrays):
    with self.lock:
      self.batch_sizes.append(len(arrays["x"]))
    if np.any(arrays["x"] < 0):
      raise RequestError("x must be >= 0")
    return {"y": arrays["x"] * 2, "n": np.full(len(arrays["x"]), len(arrays["x"]))}


def submit_together(batcher, requests, servables=None):
  """Sends every request from its own thread at once; returns answers (or errors) in order."""
  servables = servables or [FakeServable()] * len(requests)
  answers = [None] * len(requests)
  barrier = threading.Barrier(len(requests))

  def send(i):
    barrier.wait()
    try:
      answers[i] = batcher(servables[i], requests[i][0], requests[i][1])
    except RequestError as e:
      answers[i] = e

  threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout=30)
  return answers


def double_request(*values):
  return "double", {"x": np.array(values, np.int64), "z": np.zeros((len(values), 2))}


def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows():
  run = RecordingRun()
  batcher = batching.Batcher(run, max_batch_size=64, timeout_s=1.0)
  requests = [double_request(*range(10 * i, 10 * i + i + 1)) for i in range(6)]
  answers = submit_together(batcher, requests)
  assert sum(run.batch_sizes) == 21 and len(run.batch_sizes) < 6
  for (_, arrays), answer in zip(requests, answers):
    np.testing.assert_array_equal(answer["y"], arrays["x"] * 2)


def test_merged_runs_never_exceed_the_batch_limit():
  run = RecordingRun()
  batcher = batching.Batcher(run, max_batch_size=5, timeout_s=0.2)
  answers = submit_together(batcher, [double_request(1, 2, 3) for _ in range(6)])
  assert max(run.batch_sizes) <= 5 and sum(run.batch_sizes) == 18
  assert all(a["y"].tolist() == [2, 4, 6] for a in answers)


def test_a_bad_request_fails_alone():
  run = RecordingRun()
  batcher = batching.Batcher(run, max_batch_size=64, timeout_s=1.0)
  requests = [double_request(1), double_request(-1), double_request(2, 3)]
  answers = submit_together(batcher, requests)
  assert isinstance(answers[1], RequestError) and "x must be >= 0" in str(answers[1])
  assert answers[0]["y"].tolist() == [2] and answers[2]["y"].tolist() == [4, 6]


@pytest.mark.parametrize("signature, arrays", [
    ("other", {"x": np.array([1, 2])}),                                   # not batchable
    ("double", {"x": np.array([1, 2]), "z": np.zeros((3, 2))}),          # sizes disagree
    ("double", {"x": np.array(4), "z": np.zeros((1, 2))}),               # a scalar input
])
def test_requests_that_cannot_merge_run_directly(signature, arrays):
  calls = []
  batcher = batching.Batcher(lambda s, n, a: calls.append(n) or {"ok": True},
                             max_batch_size=8, timeout_s=5.0)
  assert batcher(FakeServable(), signature, arrays) == {"ok": True}
  assert calls == [signature]


def test_requests_to_different_versions_are_not_merged():
  run = RecordingRun()
  batcher = batching.Batcher(run, max_batch_size=64, timeout_s=0.3)
  servables = [FakeServable(), FakeServable()] * 2
  answers = submit_together(batcher, [double_request(i) for i in range(4)], servables)
  assert len(run.batch_sizes) >= 2 and max(run.batch_sizes) <= 2
  assert [a["y"].tolist() for a in answers] == [[0], [2], [4], [6]]
