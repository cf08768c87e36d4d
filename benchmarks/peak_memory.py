"""Peak memory of a few training steps, each measurement in a fresh process.

A process's peak resident set size only ever grows, so every measurement needs its own
process: `peak_training_memory` starts `python -m benchmarks.probe`, which calls `measure`
and prints one JSON line. On a GPU `measure` reads the allocator's peak
(`tf.config.experimental.get_memory_info`) instead of the host's RSS.
"""

import json
import os
import resource
import subprocess
import sys

import tensorflow as tf

from benchmarks import peers
from benchmarks import report
from benchmarks import workloads

RESULT_PREFIX = "PROBE_RESULT "
_MIB = 2.0**20
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_training_memory(system_name, config, batch_size, steps=2, timeout=1200):
  """`measure(...)`'s result, from a fresh `python -m benchmarks.probe` process."""
  command = [sys.executable, "-m", "benchmarks.probe", f"--system={system_name}",
             f"--config={config.to_json()}", f"--batch_size={batch_size}", f"--steps={steps}"]
  done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                        cwd=_REPO_ROOT)
  for line in done.stdout.splitlines():
    if line.startswith(RESULT_PREFIX):
      return json.loads(line[len(RESULT_PREFIX):])
  raise RuntimeError(f"memory probe for {system_name} failed (exit {done.returncode}):\n"
                     f"{done.stderr[-3000:]}")


def measure(system_name, config, batch_size, steps):
  """{"baseline_mib", "peak_mib", "delta_mib", "method"} of 1 + `steps` training steps.

  `baseline_mib` is the peak before the first training step (TensorFlow, the model and the
  data loaded); `delta_mib` = peak - baseline is what training added: the traced graph and
  the activations and gradients of one step. Meaningful only in a fresh process.
  """
  system = peers.SYSTEMS[system_name]
  on_gpu = bool(tf.config.list_physical_devices("GPU"))
  x = workloads.synthetic_images(batch_size, config.image_shape)
  model = peers.build(system, config)
  model.initialize(x)
  step = workloads.train_step(model, x, system.jit_compile)
  if on_gpu:
    tf.config.experimental.reset_memory_stats("GPU:0")
  baseline = 0.0 if on_gpu else _host_peak_mib()
  for _ in range(1 + steps):
    step().numpy()
  if on_gpu:
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / _MIB
    method = "GPU allocator peak (tf.config.experimental.get_memory_info)"
  else:
    peak = _host_peak_mib()
    method = "host peak RSS (VmHWM)"
  return {"baseline_mib": baseline, "peak_mib": peak, "delta_mib": peak - baseline,
          "method": method}


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
            f"({_method(by_system)}). Each cell: peak MiB (+ MiB added by training over the "
            "loaded model).", ""]
  lines += report.table(["K"] + list(by_system),
                        [[k] + [_cell(by_system[s][k]) for s in by_system] for k in depths])
  lines += ["", "Growth of the training part from K={} to K={}: ".format(depths[0], depths[-1])
            + ", ".join(f"{s} {_growth(by_system[s], depths):.2f}x" for s in by_system) + "."]
  return lines


def _cell(result):
  return f"{result['peak_mib']:.0f} (+{result['delta_mib']:.0f})"


def _growth(per_depth, depths):
  return per_depth[depths[-1]]["delta_mib"] / max(per_depth[depths[0]]["delta_mib"], 1.0)


def _method(by_system):
  return next(iter(next(iter(by_system.values())).values()))["method"]


def _host_peak_mib():
  """This process's peak resident set size in MiB.

  Linux's `getrusage` keeps ru_maxrss across fork and exec, so a probe started by a large
  parent would report the parent's peak; VmHWM belongs to the process's own address space.
  Without /proc (macOS) ru_maxrss is all there is, and it counts bytes there.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0  # the value is in kB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _MIB
