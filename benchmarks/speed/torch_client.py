"""The PyTorch peer as one more system of `benchmarks.speed.speed`: a child process per
architecture.

`benchmarks/speed/torch_peer.py` runs under another Python (one with torch) and builds
rosinality/glow-pytorch's Glow at the architecture; `benchmarks.speed.child_peer` times it like
the TensorFlow systems, in the same repeats and alternating with them.
"""

import dataclasses
import json
import os

from benchmarks.common import workloads
from benchmarks.speed import child_peer

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


class TorchPeer(child_peer.ChildPeer):
  """A running peer at one `architectures.Architecture`; `close()` ends it.

  Raises RuntimeError, with the peer's own message where it sent one, when the peer fails
  to start, answers with an error or exits.
  """

  def __init__(self, settings, arch):
    batches = {w: workloads.batch_size(w, arch) for w in workloads.WORKLOADS}
    command = [settings.python, settings.harness, f"--glow_dir={settings.glow_dir}",
               f"--config={arch.config.to_json()}", f"--batches={json.dumps(batches)}",
               f"--learning_rate={workloads.LEARNING_RATE}", f"--threads={settings.threads}"]
    super().__init__(command, "The PyTorch peer")
