"""One glow_tfp model's three workloads traced several ways, timed alternating in one process.

A "way" is a context manager under which a workload is traced (a swapped kernel, another
choice of parts); the function keeps what it traced, so the ways can then run in turn
within each repeat and be compared like with like on a shared machine (`benchmarks.common.timing`).
"""

import contextlib
import multiprocessing

from benchmarks.common import report
from benchmarks.common import timing
from benchmarks.common import workloads


def measure(arch, model, ways, repeats, seconds, busy_cores=0):
  """{workload: {"images_per_s": {way: [...]}, "first_call_s": {way: s}, "ratios": {way: r}}}.

  Args:
    arch: `benchmarks.common.architectures.Architecture` of `model`.
    model: an initialised glow_tfp model.
    ways: {name: zero-argument context manager factory}; ratios are to the first way.
    repeats, seconds: as `timing.alternate` and `timing.calls_lasting` take them.
    busy_cores: processes kept spinning while timing (a neighbour on a shared host).
  """
  reference = next(iter(ways))
  results = {}
  for workload in workloads.WORKLOADS:
    fns, first_call = {}, {}
    for name, way in ways.items():
      with way():
        fns[name] = workloads.make(workload, arch, model, jit_compile=False)
        first_call[name] = timing.first_call_seconds(fns[name])  # Traced while in place.
    with busy_neighbours(busy_cores):
      seconds_per_call = timing.alternate(fns, repeats, timing.calls_lasting(fns, seconds))
    batch = workloads.batch_size(workload, arch)
    rates = {name: [batch / s for s in seconds_per_call[name]] for name in ways}
    results[workload] = {
        "images_per_s": rates, "first_call_s": first_call,
        "ratios": {name: timing.paired_ratio(rates[name], rates[reference]) for name in ways}}
  return results


def markdown_table(by_workload):
  """The Markdown table of one architecture's `measure` result."""
  rows = []
  for workload, r in by_workload.items():
    reference = next(iter(r["images_per_s"]))
    for name, rates in r["images_per_s"].items():
      rows.append([workload, name, f"{timing.median(rates):.1f}", f"{r['ratios'][name]:.2f}x",
                   f"{r['first_call_s'][name]:.1f}"])
  return report.table(["workload", "way", "img/s (median)", f"/ {reference}",
                       "first call (s)"], rows)


def _spin():
  while True:
    pass


@contextlib.contextmanager
def busy_neighbours(count):
  """Within it, `count` other processes each keep a core busy."""
  spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
  for spinner in spinners:
    spinner.start()
  try:
    yield
  finally:
    for spinner in spinners:
      spinner.terminate()
      spinner.join()
