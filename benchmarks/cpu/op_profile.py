"""Where the time goes: per-op-type time of one workload, from TensorFlow's profiler.

  python -m benchmarks.cpu.op_profile --system=glow_tfp --workload=train
  python -m benchmarks.cpu.op_profile --system=tfp --workload=log_prob --architecture=32x32x3

Traces a few warm calls with `tf.profiler.experimental`, then sums the duration of every op
the executor ran, by op type, per call. The sums are thread time: ops that run side by side
(TensorFlow's inter-op parallelism) each count in full, so they can exceed the wall time and
slow each other down; compare counts and shares, and take speed from `benchmarks.speed.run`.
"""

import collections
import glob
import os
import tempfile

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from benchmarks.common import architectures  # noqa: E402
from benchmarks.common import peers  # noqa: E402
from benchmarks.common import report  # noqa: E402
from benchmarks.common import workloads  # noqa: E402

_SYSTEM = flags.DEFINE_enum("system", "glow_tfp", list(peers.SYSTEMS), "System to profile.")
_WORKLOAD = flags.DEFINE_enum("workload", "train", list(workloads.WORKLOADS),
                              "Workload to profile.")
_ARCHITECTURE = flags.DEFINE_enum("architecture", "28x28x1", list(architectures.ARCHITECTURES),
                                  "Architecture.")
_CALLS = flags.DEFINE_integer("calls", 3, "Profiled calls (after two warm ones).",
                              lower_bound=1)
_TOP = flags.DEFINE_integer("top", 15, "Op types to list.", lower_bound=1)


def workload_fn(workload, arch, system):
  """A fresh, initialised model of `system` at `arch` and its `workload` callable."""
  model = peers.build_initialized(system, arch)
  return workloads.make(workload, arch, model, system.jit_compile)


def op_times(fn, calls):
  """{op type: (milliseconds per call, ops per call)} over `calls` profiled calls of `fn`."""
  fn()
  fn()
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    for _ in range(calls):
      fn()
    tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(max(paths), "rb") as f:
      space.ParseFromString(f.read())
  picoseconds, counts = _sum_by_op_type(space)
  return {op: (ps / 1e9 / calls, counts[op] / calls) for op, ps in picoseconds.items()}


def _sum_by_op_type(space):
  """Durations and counts of the executor's ops, whose events read "<name>:<OpType>"."""
  picoseconds, counts = collections.Counter(), collections.Counter()
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" in name and "::" not in name:  # "::" marks the executor's own bookkeeping.
          op_type = name.rsplit(":", 1)[1]
          picoseconds[op_type] += event.duration_ps
          counts[op_type] += 1
  return picoseconds, counts


def markdown(times, top):
  total = sum(ms for ms, _ in times.values())
  rows = [[op, f"{ms:.1f}", f"{100 * ms / total:.1f}%", f"{count:.0f}"]
          for op, (ms, count) in sorted(times.items(), key=lambda kv: -kv[1][0])[:top]]
  return [f"Total op time per call: {total:.1f} ms", ""] + report.table(
      ["op type", "ms per call", "share", "ops per call"], rows)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  arch = architectures.ARCHITECTURES[_ARCHITECTURE.value]
  fn = workload_fn(_WORKLOAD.value, arch, peers.SYSTEMS[_SYSTEM.value])
  print(f"{_SYSTEM.value} {_WORKLOAD.value} at {_ARCHITECTURE.value}")
  print("\n".join(markdown(op_times(fn, _CALLS.value), _TOP.value)))


if __name__ == "__main__":
  app.run(main)
