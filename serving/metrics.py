"""Request counts and latencies in Prometheus' text format, under TF Serving's names.

  :tensorflow:serving:request_count{model_name, API, entrypoint, status}    counter
  :tensorflow:serving:request_latency{model_name, API, entrypoint}          histogram (us)

TF Serving exports its monitoring metrics `/tensorflow/serving/request_count` and
`/tensorflow/serving/request_latency` under these names, with the latency's buckets in
microseconds growing by 1.8 from 10 us. Its request count has the labels model_name and
status only; the added API and entrypoint labels split it further, so a query that sums over
them reads the same on both servers. API: the RPC (Predict, GetModelMetadata, GetModelStatus);
entrypoint: GRPC or REST; status: the canonical code (OK, INVALID_ARGUMENT, ...).
"""

import collections
import threading

PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_COUNT = ":tensorflow:serving:request_count"
_LATENCY = ":tensorflow:serving:request_latency"
_BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33))


class Metrics:
  """Counts requests and their latencies; `text` renders them for Prometheus."""

  def __init__(self):
    self._lock = threading.Lock()
    self._counts = collections.Counter()
    self._latencies = {}

  def record(self, model_name, api, entrypoint, status, seconds):
    """Counts one finished request of `seconds` with its canonical status code."""
    micros = seconds * 1e6
    labels = (("model_name", model_name), ("API", api), ("entrypoint", entrypoint))
    with self._lock:
      self._counts[labels + (("status", status),)] += 1
      histogram = self._latencies.setdefault(labels, _Histogram())
      histogram.add(micros)

  def text(self):
    """The Prometheus text exposition of every metric."""
    with self._lock:
      counts = sorted(self._counts.items())
      latencies = [(labels, self._latencies[labels].copy()) for labels in sorted(self._latencies)]
    lines = [f"# HELP {_COUNT} The total number of requests.", f"# TYPE {_COUNT} counter"]
    lines += [f"{_COUNT}{_labels(labels)} {count}" for labels, count in counts]
    lines += [f"# HELP {_LATENCY} Distribution of wall time (in microseconds) for "
              "TensorFlow Serving request.", f"# TYPE {_LATENCY} histogram"]
    for labels, histogram in latencies:
      lines += histogram.lines(_LATENCY, labels)
    return "\n".join(lines) + "\n"


class _Histogram:
  """Counts per bucket of `_BUCKETS_US` (+Inf last), their sum and their number."""

  def __init__(self, counts=None, total=0.0):
    self.counts = counts or [0] * (len(_BUCKETS_US) + 1)
    self.total = total

  def add(self, value):
    index = next((i for i, bound in enumerate(_BUCKETS_US) if value <= bound),
                 len(_BUCKETS_US))
    self.counts[index] += 1
    self.total += value

  def copy(self):
    return _Histogram(list(self.counts), self.total)

  def lines(self, name, labels):
    bounds = [format(bound, ".10g") for bound in _BUCKETS_US] + ["+Inf"]
    cumulative = 0
    lines = []
    for bound, count in zip(bounds, self.counts):
      cumulative += count
      lines.append(f"{name}_bucket{_labels(labels + (('le', bound),))} {cumulative}")
    lines.append(f"{name}_sum{_labels(labels)} {self.total!r}")
    lines.append(f"{name}_count{_labels(labels)} {cumulative}")
    return lines


def _labels(pairs):
  def escape(value):
    return str(value).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
  return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in pairs) + "}"
