"""Peak memory of a few training steps, each measurement in a fresh process.

`measure` reads TensorFlow's own allocator statistics (`tf.config.experimental.
get_memory_info`, which covers the CPU too), not the resident set size: freed tensors stay
in the process's heap, so RSS keeps the first step's activations and cannot show a later
step's. Each measurement still gets a fresh process, so that nothing measured before
(another model, a traced graph) is counted: `peak_training_memory` starts
`python -m benchmarks.memory.probe`, which calls `measure` and prints one JSON line.
On the CPU those statistics skip buffers under 256 KiB (TensorFlow 2.21), so they are lower
bounds, close for the activations of real batches and blind to tiny models.

The probe process is started with `TF_CPU_ALLOCATOR_USE_BFC=true`: TensorFlow keeps CPU
allocator statistics only with its BFC CPU allocator, the default on some CPUs only
(docs/performance.md, "Memory against depth").
"""

import json
import os
import subprocess
import sys

import tensorflow as tf

from benchmarks.common import peers
from benchmarks.common import report
from benchmarks.common import workloads

RESULT_PREFIX = "PROBE_RESULT "
_MIB = 2.0**20
# Read by TensorFlow at start-up: a BFC CPU allocator, the one that keeps statistics.
PROBE_ENVIRONMENT = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_training_memory(system_name, config, batch_size, steps=2, timeout=1200):
  """`measure(...)`'s result, from a fresh `python -m benchmarks.memory.probe` process."""
  command = [sys.executable, "-m", "benchmarks.memory.probe", f"--system={system_name}",
             f"--config={config.to_json()}", f"--batch_size={batch_size}", f"--steps={steps}"]
  done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                        cwd=_REPO_ROOT, env={**os.environ, **PROBE_ENVIRONMENT})
  for line in done.stdout.splitlines():
    if line.startswith(RESULT_PREFIX):
      return json.loads(line[len(RESULT_PREFIX):])
  raise RuntimeError(f"memory probe for {system_name} failed (exit {done.returncode}):\n"
                     f"{done.stderr[-3000:]}")


def measure(system_name, config, batch_size, steps):
  """Memory of a first training step and of `steps` more, in MiB, in this process.

  Returns, from TensorFlow's allocator on the first GPU, else on the CPU:
  {"peak_mib": its peak over the first step and the later ones,
  "settled_mib": in use after the first step (variables, optimizer slots, data),
  "step_peak_mib": its peak during the later steps alone,
  "step_mib": step_peak - settled, what a training step needs on top (activations,
  gradients, workspace): the figure that reversible gradients shrink,
  "process_peak_rss_mib": the whole process's peak resident set size (Linux), tracing and
  graph optimisation included, "device"}.
  Meaningful in a fresh process (`peak_training_memory`).
  """
  if steps < 1:
    raise ValueError(f"`steps` must be at least 1; instead, it is {steps}.")
  system = peers.SYSTEMS[system_name]
  device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
  _check_allocator_statistics(device)
  x = workloads.synthetic_images(batch_size, config.image_shape)
  model = peers.build(system, config)
  model.initialize(x)
  step = workloads.train_step(model, x, system.jit_compile)
  tf.config.experimental.reset_memory_stats(device)
  step().numpy()
  first_peak, settled = _allocator_mib(device, "peak"), _allocator_mib(device, "current")
  tf.config.experimental.reset_memory_stats(device)
  for _ in range(steps):
    step().numpy()
  step_peak = _allocator_mib(device, "peak")
  return {"peak_mib": max(first_peak, step_peak), "settled_mib": settled,
          "step_peak_mib": step_peak, "step_mib": step_peak - settled,
          "process_peak_rss_mib": _process_peak_rss_mib(), "device": device}


def _check_allocator_statistics(device):
  try:
    tf.config.experimental.get_memory_info(device)
  except ValueError as error:
    raise RuntimeError(
        f"TensorFlow keeps no allocator statistics for {device} in this process ({error}); "
        "start it with TF_CPU_ALLOCATOR_USE_BFC=true, as peak_training_memory does.") from error


def _allocator_mib(device, key):
  return tf.config.experimental.get_memory_info(device)[key] / _MIB


def _process_peak_rss_mib():
  """VmHWM, which (unlike getrusage's ru_maxrss) a child does not inherit from its parent."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0  # the value is in kB
  except OSError:  # no /proc: not Linux
    pass
  return None


def depth_sweep(arch, depths, system_names):
  """{system: {K: peak_memory result}} for each depth K of `arch`."""
  return {name: {k: peak_training_memory(
                     name, arch.config.replace(steps_per_level=k), arch.train_batch)
                 for k in depths}
          for name in system_names}


def depth_markdown(results):
  """The Markdown report of a `depth_sweep` (under "peak_memory") with its context."""
  arch, depths = results["architecture"], results["depths"]
  by_system = results["peak_memory"]
  c = arch["config"]
  lines = ["# Peak training memory against depth", ""] + report.environment_lines(
      results["environment"])
  lines += ["", f"{c['image_shape']} L={c['levels']} width {c['hidden_channels']} "
            f"{c['coupling']}, batch {arch['train_batch']}; one fresh process per cell "
            f"(TensorFlow's {_device(by_system)} allocator). Each cell: MiB a training step "
            "allocates on top of what stays allocated (activations, gradients: the part that "
            "grows with depth), then the allocator's peak MiB.", ""]
  lines += report.table(["K"] + list(by_system),
                        [[k] + [_cell(by_system[s][k]) for s in by_system] for k in depths])
  lines += ["", "Growth of the step's memory from K={} to K={}: ".format(depths[0], depths[-1])
            + ", ".join(f"{s} {_growth(by_system[s], depths):.2f}x" for s in by_system) + "."]
  return lines


def _cell(result):
  return f"+{result['step_mib']:.0f} (peak {result['peak_mib']:.0f})"


def _growth(per_depth, depths):
  return per_depth[depths[-1]]["step_mib"] / max(per_depth[depths[0]]["step_mib"], 1.0)


def _device(by_system):
  return next(iter(next(iter(by_system.values())).values()))["device"]
