"""The PyTorch peer as one more system of `benchmarks.speed`: a child process per architecture.

`benchmarks.torch_peer` runs under another Python (one with torch) and builds
rosinality/glow-pytorch's Glow at the architecture; this side sends it one request per call
and waits for the answer, so `benchmarks.timing` times it like the TensorFlow systems, in
the same repeats and alternating with them. A round trip through the pipes costs tens of
microseconds, against tens of milliseconds per call. The child sleeps on its pipe while
the others run, so it takes no CPU from them.
"""

import dataclasses
import json
import os
import subprocess

from benchmarks import workloads

NAME = "pytorch"
FAMILY = "pytorch"
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_peer.py")


@dataclasses.dataclass(frozen=True)
class Settings:
  """Where the peer lives: a Python with torch, a glow-pytorch checkout, the harness."""

  python: str
  glow_dir: str
  harness: str = HARNESS
  threads: int = os.cpu_count() or 1


class TorchPeer:
  """A running peer at one `architectures.Architecture`; `close()` ends it.

  Raises RuntimeError, with the peer's own message where it sent one, when the peer fails
  to start, answers with an error or exits.
  """

  def __init__(self, settings, arch):
    batches = {w: workloads.batch_size(w, arch) for w in workloads.WORKLOADS}
    command = [settings.python, settings.harness, f"--glow_dir={settings.glow_dir}",
               f"--config={arch.config.to_json()}", f"--batches={json.dumps(batches)}",
               f"--learning_rate={workloads.LEARNING_RATE}", f"--threads={settings.threads}"]
    self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
    self.info = self._answer()

  def workload(self, name):
    """A zero-argument callable that runs one call of workload `name` in the peer."""
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
      raise RuntimeError(f"The PyTorch peer failed: {answer['error']}")
    return answer

  def _exited(self):
    raise RuntimeError(f"The PyTorch peer exited (status {self._process.wait()}) without "
                       "answering; its error output is above.")
