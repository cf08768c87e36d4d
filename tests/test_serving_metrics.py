"""Prometheus text exposition of request counts and latency histograms."""

import re

from serving import metrics


def test_counts_and_histograms_in_the_text_format():
  recorder = metrics.Metrics()
  recorder.record("glow", "Predict", "GRPC", "OK", 0.000005)
  recorder.record("glow", "Predict", "GRPC", "OK", 0.002)
  recorder.record("glow", "Predict", "GRPC", "INVALID_ARGUMENT", 10_000.0)
  recorder.record('a"b\\', "GetModelStatus", "REST", "NOT_FOUND", 0.001)
  lines = recorder.text().splitlines()
  labels = 'model_name="glow",API="Predict",entrypoint="GRPC"'
  assert f':tensorflow:serving:request_count{{{labels},status="OK"}} 2' in lines
  assert f':tensorflow:serving:request_count{{{labels},status="INVALID_ARGUMENT"}} 1' in lines
  assert (':tensorflow:serving:request_count{model_name="a\\"b\\\\",API="GetModelStatus",'
          'entrypoint="REST",status="NOT_FOUND"} 1') in lines
  assert "# TYPE :tensorflow:serving:request_latency histogram" in lines
  buckets = [line for line in lines
             if line.startswith(f":tensorflow:serving:request_latency_bucket{{{labels}")]
  assert len(buckets) == 34
  assert buckets[0] == f':tensorflow:serving:request_latency_bucket{{{labels},le="10"}} 1'
  assert buckets[-1] == f':tensorflow:serving:request_latency_bucket{{{labels},le="+Inf"}} 3'
  counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
  assert counts == sorted(counts) and counts[-2] == 2  # 10^10 us is above the last bound.
  assert f":tensorflow:serving:request_latency_count{{{labels}}} 3" in lines
  total = next(line for line in lines
               if line.startswith(f":tensorflow:serving:request_latency_sum{{{labels}"))
  assert float(total.rsplit(" ", 1)[1]) == 5 + 2000 + 1e10


def test_every_line_is_a_comment_or_a_sample():
  recorder = metrics.Metrics()
  recorder.record("m", "Predict", "REST", "OK", 0.1)
  sample = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*\{([a-zA-Z_]+="[^"]*",?)*\} \S+')
  for line in recorder.text().splitlines():
    assert line.startswith("# ") or sample.fullmatch(line), line
