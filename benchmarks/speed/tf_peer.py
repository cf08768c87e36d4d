"""A TensorFlow system timed in a process of its own: the child that `benchmarks.speed.speed` runs
for a system with thread settings (`peers.System.threads`), since TensorFlow's thread pools
are per process.

  python -m benchmarks.speed.tf_peer --peer_system=glow_tfp_cores \\
      --peer_config='<GlowConfig JSON>' \\
      --peer_batches='{"train": 64, "log_prob": 256, "sample": 64}'

It sets the system's threads before TensorFlow starts, builds and initialises its model
(`peers.build_initialized`), and serves `benchmarks.speed.peer_protocol` with the same workloads
the benchmark's own process runs (`benchmarks.common.workloads`); its first line is
{"parameters", "threads"}.
"""

import functools
import json

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import tensorflow as tf  # noqa: E402

from benchmarks.common import architectures  # noqa: E402
from benchmarks.common import peers  # noqa: E402
from benchmarks.common import workloads  # noqa: E402
from benchmarks.speed import peer_protocol  # noqa: E402
import glow_tfp  # noqa: E402

_SYSTEM = flags.DEFINE_enum("peer_system", None, list(peers.SYSTEMS), "System to run.")
_CONFIG = flags.DEFINE_string("peer_config", None, "The GlowConfig, as JSON.")
_BATCHES = flags.DEFINE_string("peer_batches", None,
                               'JSON {"train": N, "log_prob": N, "sample": N}.')
flags.mark_flags_as_required(["peer_system", "peer_config", "peer_batches"])


class Workloads:
  """The system's three workloads at `arch`, one method each, as the protocol calls them."""

  def __init__(self, system, arch):
    model = peers.build_initialized(system, arch)
    self.parameters = peers.parameter_count(model)
    for name in workloads.WORKLOADS:
      setattr(self, name, workloads.make(name, arch, model, system.jit_compile))


def start(system, arch):
  if system.threads:
    tf.config.threading.set_intra_op_parallelism_threads(system.threads[0])
    tf.config.threading.set_inter_op_parallelism_threads(system.threads[1])
  runs = Workloads(system, arch)
  return {"parameters": runs.parameters, "threads": list(system.threads)}, runs


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  batches = json.loads(_BATCHES.value)
  arch = architectures.Architecture(glow_tfp.GlowConfig.from_json(_CONFIG.value),
                                    train_batch=batches["train"],
                                    log_prob_batch=batches["log_prob"],
                                    sample_batch=batches["sample"])
  peer_protocol.run_child(functools.partial(start, peers.SYSTEMS[_SYSTEM.value], arch))


if __name__ == "__main__":
  app.run(main)
