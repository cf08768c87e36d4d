"""Wall-clock timing that alternates the systems compared, so shared-machine noise hits all.

A busy neighbour process slows whichever system happens to run during its burst; running
the systems in turn within each repeat (and reversing the order every other repeat) spreads
that noise evenly, and a ratio taken inside one repeat compares two systems that ran
seconds apart. Medians over the repeats discard the worst bursts.
"""

import math
import statistics
import time


def first_call_seconds(fn):
  """Seconds of the first call of `fn` (tracing, compilation and one run)."""
  start = time.perf_counter()
  _block(fn())
  return time.perf_counter() - start


def seconds_per_call(fn, calls):
  """Mean seconds of `calls` consecutive calls of `fn`, each waited on."""
  start = time.perf_counter()
  for _ in range(calls):
    _block(fn())
  return (time.perf_counter() - start) / calls


def calls_lasting(fns, seconds):
  """Calls per measurement so that the fastest of `fns` runs for about `seconds` (>= 1).

  One call of a small workload lasts tens of milliseconds, short enough for a single
  scheduler hiccup to move it by a tenth; several back-to-back calls average that out.
  """
  fastest = min(seconds_per_call(fn, 1) for fn in fns.values())
  return max(1, math.ceil(seconds / fastest))


def alternate(fns, repeats, calls):
  """{name: [seconds per call, one per repeat]}, the names run in turn within each repeat.

  Args:
    fns: {name: zero-argument callable}; each has been called once already (warm).
    repeats: number of rounds.
    calls: calls of each callable per round.
  """
  names = list(fns)
  seconds = {name: [] for name in names}
  for repeat in range(repeats):
    for name in names if repeat % 2 == 0 else reversed(names):
      seconds[name].append(seconds_per_call(fns[name], calls))
  return seconds


def median(values):
  return statistics.median(values)


def paired_ratio(numerators, denominators):
  """Median over repeats of numerator / denominator, each pair from the same repeat."""
  return statistics.median(n / d for n, d in zip(numerators, denominators))


def _block(result):
  """Waits for `result` (a tensor or a nest of them) by copying it to the host."""
  if isinstance(result, (tuple, list)):
    for item in result:
      _block(item)
  elif hasattr(result, "numpy"):
    result.numpy()
