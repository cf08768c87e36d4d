"""What the two choices of `glow_tfp.execution` buy on a CPU: parts as calls, parts of 32.

  python -m benchmarks.cpu.parts_speed                       # both architectures
  python -m benchmarks.cpu.parts_speed --parts_architecture=28x28x1 --parts_repeats=3
  python -m benchmarks.cpu.parts_speed --parts_busy_cores=1  # a neighbour busy on one core
  TF_ENABLE_ONEDNN_OPTS=0 python -m benchmarks.cpu.parts_speed  # TensorFlow's own kernels

A glow_tfp model with one part of the batch per core (intra-op 1, inter-op one per core, as
the CLI, the server and `benchmarks.speed.run`'s glow_tfp_cores run it) times the benchmark's
three workloads (Adam training step, `log_prob` at batch 256, sampling at batch 64) three
ways, traced in this one process and alternating within each repeat:

- inlined: one part per core, the parts' calls inlined into the caller's graph, so the ops of
  all parts interleave in one executor (glow_tfp before these choices);
- calls: one part per core, each part a call of the one traced function
  (`execution.PART_CALL_ATTRIBUTES`);
- parts of 32: calls, and a batch larger than cores x `execution.PART_SIZE` cut into more
  parts of at most that many images (glow_tfp's default).

`--parts_busy_cores=N` keeps N other processes spinning while the workloads are timed,
as on a shared host where another job holds a core. Prints images/s (median over repeats),
first-call seconds and the ratios to "inlined" (medians of per-repeat ratios); writes
--parts_out_dir/parts_speed.{json,md}, with _busy<N> and _onednn_off in the name for
those settings.
"""

import contextlib
import os

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import tensorflow as tf  # noqa: E402

from benchmarks.common import architectures  # noqa: E402
from benchmarks.common import peers  # noqa: E402
from benchmarks.common import report  # noqa: E402
from benchmarks.cpu import ways  # noqa: E402

_ARCHITECTURES = flags.DEFINE_multi_enum(
    "parts_architecture", list(architectures.ARCHITECTURES),
    list(architectures.ARCHITECTURES), "Architectures.")
_REPEATS = flags.DEFINE_integer("parts_repeats", 5, "Repeats (the ways alternate).",
                                lower_bound=1)
_SECONDS = flags.DEFINE_float("parts_seconds", 2.0, "Seconds per way per repeat.",
                              lower_bound=0.0)
_BUSY = flags.DEFINE_integer("parts_busy_cores", 0, "Processes spinning while timing.",
                             lower_bound=0)
_OUT_DIR = flags.DEFINE_string("parts_out_dir", "benchmarks/results", "Where results go.")

WAYS = ("inlined", "calls", "parts of 32")
# A part size no batch reaches: one part per core.
_NO_LIMIT = 1 << 30


@contextlib.contextmanager
def _parts_choices(way):
  """Within it, `glow_tfp.execution` traces parts the way `way` names."""
  saved = execution.PART_SIZE, execution.PART_CALL_ATTRIBUTES
  if way != "parts of 32":
    execution.PART_SIZE = _NO_LIMIT
  if way == "inlined":
    execution.PART_CALL_ATTRIBUTES = {}
  try:
    yield
  finally:
    execution.PART_SIZE, execution.PART_CALL_ATTRIBUTES = saved


def measure(arch, repeats, seconds, busy_cores=0):
  """`ways.measure` of the glow_tfp_cores model at `arch`, the choices of parts as ways."""
  model = peers.build_initialized(peers.SYSTEMS["glow_tfp_cores"], arch)
  return ways.measure(arch, model, {way: lambda way=way: _parts_choices(way) for way in WAYS},
                      repeats, seconds, busy_cores)


def markdown(result):
  lines = (["# Parts of a batch on a CPU: inlined, calls, parts of 32", ""]
           + report.environment_lines(result["environment"])
           + ["", f"Threads: intra-op 1, inter-op {peers.CORES}; one part per core "
              f"({peers.CORES}), parts of at most {execution.PART_SIZE} images in "
              "\"parts of 32\". Ratios: medians of per-repeat ratios to \"inlined\". "
              f"Processes spinning while timing: {result['busy_cores']}. "
              f"TF_ENABLE_ONEDNN_OPTS={result['onednn']}."])
  for arch_name, by_workload in result["architectures"].items():
    lines += ["", f"## {arch_name}", ""] + ways.markdown_table(by_workload)
  return lines


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(peers.CORES)
  result = {"architectures": {
      name: measure(architectures.ARCHITECTURES[name], _REPEATS.value, _SECONDS.value,
                    _BUSY.value)
      for name in dict.fromkeys(_ARCHITECTURES.value)},
      "busy_cores": _BUSY.value, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
      "environment": report.environment()}
  lines = markdown(result)
  print("\n".join(lines))
  name = ("parts_speed" + (f"_busy{_BUSY.value}" if _BUSY.value else "")
          + ("_onednn_off" if result["onednn"] == "0" else ""))
  for path in report.write(result, lines, _OUT_DIR.value, name):
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
