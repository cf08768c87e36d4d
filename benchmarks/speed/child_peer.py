"""A system timed in a child process of its own, as one more system of `benchmarks.speed.speed`.

Some systems cannot share the benchmark's process: the PyTorch peer needs another Python,
and a TensorFlow system with its own thread settings needs its own runtime (TensorFlow's
thread pools are per process). The child serves `benchmarks.speed.peer_protocol`; this side sends
it one request per call and waits for the answer, so `benchmarks.common.timing` times it like the
systems in the process, in the same repeats and alternating with them. A round trip through
the pipes costs tens of microseconds, against milliseconds per call. The child sleeps on
its pipe while the others run, so it takes no CPU from them.
"""

import json
import subprocess


class ChildPeer:
  """A running child started by `command`; `info` is its first line; `close()` ends it.

  Raises RuntimeError, with the child's own message where it sent one, when the child
  fails to start, answers with an error or exits. `label` names it in those messages.
  """

  def __init__(self, command, label, cwd=None):
    self._label = label
    self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, cwd=cwd)
    self.info = self._answer()

  def workload(self, name):
    """A zero-argument callable that runs one call of workload `name` in the child."""
    request = json.dumps({"run": name}) + "\n"
    return lambda: self._request(request)

  def close(self):
    if self._process.poll() is None:
      self._process.stdin.write(json.dumps({"quit": True}) + "\n")
      self._process.stdin.close()
      self._process.wait(timeout=60)

  def _request(self, line):
    try:
      self._process.stdin.write(line)
      self._process.stdin.flush()
    except BrokenPipeError:
      self._exited()
    self._answer()

  def _answer(self):
    line = self._process.stdout.readline()
    if not line:
      self._exited()
    answer = json.loads(line)
    if "error" in answer:
      self._process.wait(timeout=60)
      raise RuntimeError(f"{self._label} failed: {answer['error']}")
    return answer

  def _exited(self):
    raise RuntimeError(f"{self._label} exited (status {self._process.wait()}) without "
                       "answering; its error output is above.")
