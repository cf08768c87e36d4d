"""Speed, first-call time and peak memory of several systems at one architecture.

For each architecture every system builds its model, then each workload (an Adam training
step, log_prob, sampling) is traced and timed with the systems alternating within every
repeat (see `benchmarks.common.timing`). Ratios glow_tfp / TFP are medians of per-repeat ratios.
Peak training memory comes from a fresh process per system (`benchmarks.memory.peak_memory`).
Each rate is also given as convolution FLOP/s against the CPU's measured convolution peak
(`benchmarks.speed.roofline`).
"""

import dataclasses
import functools
import json
import os
import sys

from absl import logging

from benchmarks.common import peers
from benchmarks.common import report
from benchmarks.common import timing
from benchmarks.common import workloads
from benchmarks.memory import peak_memory
from benchmarks.speed import child_peer
from benchmarks.speed import roofline
from benchmarks.speed import torch_client

DEFAULT_SYSTEMS = ("glow_tfp", "glow_tfp_cores", "glow_tfp_xla", "glow_tfp_bf16", "tfp",
                   "tfp_xla")
# The project's speed targets: glow_tfp / TFP images per second, measured in the same run.
TARGETS = {"train": 1.5, "log_prob": 2.0, "sample": 1.5}
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PAIR_LABELS = {"best/best": "fastest float32 glow_tfp / fastest TFP"}


def measure(arch, systems, repeats, memory, seconds_per_measurement, torch_settings=None):
  """Every figure of one `architectures.Architecture`: per-system results and ratios.

  A system with its own thread settings runs in a child process (`benchmarks.speed.tf_peer`);
  with `torch_settings` (a `torch_client.Settings`), so does the PyTorch peer. Children
  live for the length of this architecture and are timed with the other systems.
  """
  results, makers, children = {}, {}, {}
  try:
    for s in systems:
      if s.threads:
        children[s.name] = _tf_child(s, arch)
        parameters = children[s.name].info["parameters"]
        makers[s.name] = children[s.name].workload
      else:
        model = peers.build_initialized(s, arch)
        parameters = peers.parameter_count(model)
        makers[s.name] = functools.partial(_tf_workload, arch, model, s.jit_compile)
      results[s.name] = _empty_result(s.family, parameters, jit_compile=s.jit_compile,
                                      options=dict(s.options), threads=list(s.threads),
                                      batch_parts=s.batch_parts)
    if torch_settings:
      peer = children[torch_client.NAME] = torch_client.TorchPeer(torch_settings, arch)
      results[torch_client.NAME] = _empty_result(
          torch_client.FAMILY, peer.info["parameters"], torch=peer.info["torch"],
          threads=peer.info["threads"])
      makers[torch_client.NAME] = peer.workload
    for workload in workloads.WORKLOADS:
      _time_workload(workload, arch, makers, results, repeats, seconds_per_measurement)
  finally:
    for child in children.values():
      child.close()
  flops = {w: roofline.workload_flops_per_image(arch.config, w) for w in workloads.WORKLOADS}
  for result in results.values():
    result["conv_flop_per_s"] = {w: result["images_per_s"][w] * flops[w] for w in flops}
  if memory:
    for s in systems:
      logging.info("%s: peak training memory (a fresh process)", s.name)
      results[s.name]["peak_memory"] = peak_memory.peak_training_memory(
          s.name, arch.config, arch.train_batch)
  return {"config": dataclasses.asdict(arch.config), "train_batch": arch.train_batch,
          "log_prob_batch": arch.log_prob_batch, "sample_batch": arch.sample_batch,
          "conv_flops_per_image": flops, "systems": results, "ratios": _ratios(results)}


def _empty_result(family, parameters, jit_compile=False, options=None, **details):
  return {"family": family, "jit_compile": jit_compile, "options": options or {},
          "parameters": parameters, "first_call_s": {}, "images_per_s": {},
          "images_per_s_repeats": {}, **details}


def _tf_workload(arch, model, jit_compile, workload):
  return workloads.make(workload, arch, model, jit_compile)


def _tf_child(system, arch):
  batches = {w: workloads.batch_size(w, arch) for w in workloads.WORKLOADS}
  command = [sys.executable, "-m", "benchmarks.speed.tf_peer", f"--peer_system={system.name}",
             f"--peer_config={arch.config.to_json()}", f"--peer_batches={json.dumps(batches)}"]
  return child_peer.ChildPeer(command, f"The {system.name} process", cwd=_REPO_ROOT)


def _time_workload(workload, arch, makers, results, repeats, seconds_per_measurement):
  """Times `workload` for every system; `makers` maps a name to workload -> callable."""
  fns = {name: make(workload) for name, make in makers.items()}
  for name, fn in fns.items():
    results[name]["first_call_s"][workload] = timing.first_call_seconds(fn)
    logging.info("%s %s: first call %.1f s", name, workload,
                 results[name]["first_call_s"][workload])
    fn()  # a second, untimed call: some runtimes finish setting up on it.
  batch = workloads.batch_size(workload, arch)
  calls = timing.calls_lasting(fns, seconds_per_measurement)
  seconds = timing.alternate(fns, repeats, calls)
  for name in fns:
    results[name].setdefault("calls_per_repeat", {})[workload] = calls
  for name, per_repeat in seconds.items():
    rates = [batch / s for s in per_repeat]
    results[name]["images_per_s_repeats"][workload] = rates
    results[name]["images_per_s"][workload] = timing.median(rates)


def _ratios(results):
  """{workload: {"<glow_tfp system>/<peer system>" and "best/best": median paired ratio}}.

  "best/best" pits glow_tfp and TFP at their fastest float32 settings per repeat: TFP has
  no mixed precision, so glow_tfp's mixed-precision systems get their own rows but not this
  one. The PyTorch peer, when measured, gets rows after TFP's.
  """
  ours = [n for n, r in results.items() if r["family"] == "glow_tfp"]
  theirs = [n for n, r in results.items() if r["family"] == "tfp"]
  pytorch = [n for n, r in results.items() if r["family"] == torch_client.FAMILY]
  ours_float32 = [n for n in ours if "compute_dtype" not in results[n]["options"]]
  ratios = {}
  for workload in workloads.WORKLOADS:
    rates = {n: r["images_per_s_repeats"][workload] for n, r in results.items()}
    ratios[workload] = {f"{a}/{b}": timing.paired_ratio(rates[a], rates[b])
                        for b in theirs + pytorch for a in ours}
    if ours_float32 and theirs:
      ratios[workload]["best/best"] = timing.paired_ratio(_best(rates, ours_float32),
                                                          _best(rates, theirs))
  return ratios


def _best(rates, names):
  """Per repeat, the highest rate among `names`: each family at its fastest setting."""
  return [max(per_name) for per_name in zip(*(rates[n] for n in names))]


def markdown(results):
  """The Markdown report: per architecture, a table of systems and one of ratios."""
  peak = results["peak_conv"]["flop_per_s"]
  lines = ["# glow_tfp vs tfp.bijectors.Glow", ""] + report.environment_lines(
      results["environment"]) + _onednn_lines(results.get("onednn")) + _peak_lines(
          results["peak_conv"]) + ["", f"Repeats: {results['repeats']}, each system timed "
                                 f"for at least {results['seconds_per_measurement']:g} s per "
                                 "repeat (back-to-back calls); images/s are medians over "
                                 "repeats, ratios medians of per-repeat ratios."]
  for name, arch in results["architectures"].items():
    lines += ["", f"## {name}: {_describe(arch)}", ""]
    lines += report.table(["system", "parameters", "train img/s", "log_prob img/s",
                           "sample img/s", "first call train / log_prob / sample (s)",
                           "training step MiB / process peak RSS MiB",
                           "conv GFLOP/s (% of peak) train / log_prob / sample"],
                          [_system_row(n, r, peak) for n, r in arch["systems"].items()])
    lines += _own_process_lines(arch["systems"])
    lines += [""] + report.table(
        ["glow_tfp / peer", "train", "log_prob", "sample"],
        [[_PAIR_LABELS.get(pair, pair)] + [_ratio_cell(arch["ratios"][w][pair], w,
                                                       _has_target(pair, arch["systems"]))
                                           for w in workloads.WORKLOADS]
         for pair in arch["ratios"]["train"]])
  lines += ["", "Targets: " + ", ".join(f"{w} >= {t}x" for w, t in TARGETS.items())
            + " against TFP (a cell is marked **miss** where the ratio falls short)."]
  return lines


def _own_process_lines(systems):
  """What the systems with their own thread settings ran with; the other TensorFlow systems
  share TensorFlow's default threads in the benchmark's process."""
  lines = []
  for name, r in systems.items():
    if r["family"] == torch_client.FAMILY or not r["threads"]:
      continue
    parts = r.get("batch_parts", 1)
    lines.append(f"{name}: its own process, intra_op {r['threads'][0]} / inter_op "
                 f"{r['threads'][1]} threads"
                 + (f", batches cut into {parts} parts (glow_tfp.execution)." if parts > 1 else "."))
  return [""] + lines if lines else []


def _describe(arch):
  c = arch["config"]
  return (f"L={c['levels']} K={c['steps_per_level']} width {c['hidden_channels']} "
          f"{c['coupling']}, train batch {arch['train_batch']}, log_prob batch "
          f"{arch['log_prob_batch']}, sample batch {arch['sample_batch']}")


def _onednn_lines(onednn):
  if not onednn:
    return []
  return ["", f"oneDNN: ISA {onednn['onednn_isa']} (--isa={onednn['requested_isa']}), "
          f"convolutions by {onednn['convolution']}; TF_ENABLE_ONEDNN_OPTS="
          f"{onednn['TF_ENABLE_ONEDNN_OPTS']}, ONEDNN_MAX_CPU_ISA={onednn['ONEDNN_MAX_CPU_ISA']}."]


def _peak_lines(peak):
  return ["", f"Convolution peak: {peak['flop_per_s'] / 1e9:.0f} GFLOP/s, the fastest call of "
          f"a 3x3 convolution (batch {peak['batch']}, {peak['size']}x{peak['size']}, "
          f"{peak['channels']} -> {peak['channels']} channels). A system's conv GFLOP/s are "
          "the architecture's convolution FLOPs (x3 for a training step) at its measured "
          "rate (benchmarks.speed.roofline)."]


def _roofline_cell(r, peak):
  flops = [r["conv_flop_per_s"][w] for w in workloads.WORKLOADS]
  return " / ".join(f"{f / 1e9:.0f} ({100 * f / peak:.0f}%)" for f in flops)


def _system_row(name, r, peak):
  first = " / ".join(f"{r['first_call_s'][w]:.1f}" for w in workloads.WORKLOADS)
  memory = r.get("peak_memory")
  memory_cell = (f"{memory['step_mib']:.0f} / {memory['process_peak_rss_mib']:.0f}" if memory
                 else "not measured")
  rates = [f"{r['images_per_s'][w]:.1f}" for w in workloads.WORKLOADS]
  return [name, f"{r['parameters']:,}"] + rates + [first, memory_cell, _roofline_cell(r, peak)]


def _has_target(pair, systems):
  """The targets are set against TFP; other peers' ratios are reported as they are."""
  peer = pair.split("/")[1]
  return peer == "best" or systems[peer]["family"] == "tfp"


def _ratio_cell(ratio, workload, targeted):
  return f"{ratio:.2f}x" + ("" if ratio >= TARGETS[workload] or not targeted else " **miss**")


def selected_systems(names, xla):
  return [peers.SYSTEMS[n] for n in dict.fromkeys(names)
          if xla or not peers.SYSTEMS[n].jit_compile]


def run(arch_by_name, systems, repeats, memory, seconds_per_measurement=1.0, onednn=None,
        peak_batch=roofline.PEAK_BATCH, torch_settings=None):
  """All results of one benchmark run, as a JSON-ready dict.

  Args:
    arch_by_name: {name: architectures.Architecture}.
    systems: list of `peers.System`.
    repeats: timing rounds.
    memory: whether to probe peak training memory (a fresh process per system).
    seconds_per_measurement: each system's share of a repeat lasts about this long at
      least (back-to-back calls of the workload; one call when a call is longer).
    onednn: what oneDNN runs with (`benchmarks.cpu.isa.probe()` and the requested ISA),
      recorded as given.
    peak_batch: batch of the convolution that measures the peak (smaller in tests).
    torch_settings: a `torch_client.Settings` to time the PyTorch peer too, or None.
  """
  environment = report.environment()  # before measuring: the date is the measurement's start
  peak = {"flop_per_s": roofline.peak_conv_flops(batch=peak_batch), "batch": peak_batch,
          "size": roofline.PEAK_SIZE, "channels": roofline.PEAK_CHANNELS}
  measured = {name: measure(arch, systems, repeats, memory, seconds_per_measurement,
                            torch_settings)
              for name, arch in arch_by_name.items()}
  return {"environment": environment, "repeats": repeats,
          "seconds_per_measurement": seconds_per_measurement,
          "targets": TARGETS, "onednn": onednn, "peak_conv": peak,
          "architectures": measured}
