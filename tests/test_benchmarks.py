"""Smoke tests of the benchmark runners at a tiny architecture (CI does not run benchmarks)."""

import dataclasses
import json
import os
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.common import architectures
from benchmarks.common import peers
from benchmarks.common import report
from benchmarks.common import timing
from benchmarks.common import workloads
from benchmarks.cpu import isa
from benchmarks.cpu import parts_speed
from benchmarks.cpu import settings as cpu_settings
from benchmarks.data import input_pipeline
from benchmarks.layers import invertible_conv
from benchmarks.memory import peak_memory
from benchmarks.speed import roofline
from benchmarks.speed import speed
from benchmarks.speed import torch_client
import glow_tfp
from glow_tfp import execution
from tests import checks

_TINY = architectures.Architecture(
    glow_tfp.GlowConfig(image_shape=(8, 8, 1), levels=2, steps_per_level=1,
                        hidden_channels=4),
    train_batch=2, log_prob_batch=2, sample_batch=2)


# Speaks the PyTorch peer's protocol (benchmarks.speed.torch_peer) without torch: a ready line,
# then one answer per request, after writing down its arguments and requests.
_FAKE_PEER = textwrap.dedent("""
    import json, os, sys, time
    log = os.path.join(os.path.dirname(__file__), "log.jsonl")
    with open(log, "a") as f:
      f.write(json.dumps(sys.argv[1:]) + "\\n")
    print(json.dumps({"parameters": 123, "torch": "fake", "threads": 1}), flush=True)
    for line in sys.stdin:
      request = json.loads(line)
      if request.get("quit"):
        break
      if request["run"] == "{fail_on}":
        print(json.dumps({"error": "ValueError: no " + request["run"]}), flush=True)
        sys.exit(1)
      time.sleep(0.002)
      with open(log, "a") as f:
        f.write(line)
      print(json.dumps({"ok": True}), flush=True)
    """)


def _fake_peer(folder, fail_on="nothing"):
  os.makedirs(folder, exist_ok=True)
  harness = os.path.join(folder, "fake_peer.py")
  with open(harness, "w") as f:
    f.write(_FAKE_PEER.replace("{fail_on}", fail_on))
  return torch_client.Settings(sys.executable, glow_dir=str(folder), harness=harness)


@pytest.fixture(scope="module")
def fake_peer_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("fake_peer")


@pytest.fixture(scope="module")
def speed_results(fake_peer_dir):
  systems = [peers.SYSTEMS[n] for n in ("glow_tfp", "glow_tfp_cores", "tfp")]
  onednn = {"onednn_isa": "Intel AVX2", "convolution": "brg_conv_fwd:avx2",
            "TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "unset", "requested_isa": "native"}
  return speed.run({"tiny": _TINY}, systems, repeats=2, memory=False,
                   seconds_per_measurement=0.05, onednn=onednn, peak_batch=2,
                   torch_settings=_fake_peer(fake_peer_dir))


def test_run_writes_json_and_markdown_with_every_figure(speed_results, tmp_path):
  json_path, md_path = report.write(speed_results, speed.markdown(speed_results), str(tmp_path),
                                    "speed")
  with open(json_path) as f:
    written = json.load(f)
  arch = written["architectures"]["tiny"]
  assert set(arch["systems"]) == {"glow_tfp", "glow_tfp_cores", "tfp", "pytorch"}
  assert arch["systems"]["pytorch"]["parameters"] == 123
  assert (arch["systems"]["glow_tfp_cores"]["parameters"]
          == arch["systems"]["glow_tfp"]["parameters"])
  for result in arch["systems"].values():
    assert result["parameters"] > 0
    for workload in workloads.WORKLOADS:
      assert result["images_per_s"][workload] > 0
      assert result["first_call_s"][workload] > 0
      assert len(result["images_per_s_repeats"][workload]) == 2
  for workload in workloads.WORKLOADS:
    assert set(arch["ratios"][workload]) == {"glow_tfp/tfp", "glow_tfp/pytorch",
                                             "glow_tfp_cores/tfp", "glow_tfp_cores/pytorch",
                                             "best/best"}
  assert set(written["environment"]) >= {"date_utc", "command", "device", "tensorflow"}
  with open(md_path) as f:
    text = f.read()
  assert "| glow_tfp |" in text and "| tfp |" in text and "fastest float32 glow_tfp" in text
  assert "oneDNN: ISA Intel AVX2 (--isa=native)" in text and "% of peak" in text
  assert "| pytorch |" in text and "| glow_tfp/pytorch |" in text
  assert (f"glow_tfp_cores: its own process, intra_op 1 / inter_op {peers.CORES} threads, "
          f"batches cut into {peers.CORES} parts") in text
  assert written["peak_conv"]["flop_per_s"] > 0
  flops = arch["conv_flops_per_image"]
  assert flops["train"] == 3 * flops["log_prob"] == 3 * flops["sample"] > 0
  rates = arch["systems"]["tfp"]
  assert rates["conv_flop_per_s"]["sample"] == pytest.approx(
      rates["images_per_s"]["sample"] * flops["sample"])


def test_pytorch_peer_gets_the_architecture_and_one_request_per_timed_call(speed_results,
                                                                          fake_peer_dir):
  with open(fake_peer_dir / "log.jsonl") as f:
    arguments, *requests = [json.loads(line) for line in f]
  assert f"--config={_TINY.config.to_json()}" in arguments
  assert '--batches={"train": 2, "log_prob": 2, "sample": 2}' in arguments
  runs = [r["run"] for r in requests]
  calls = speed_results["architectures"]["tiny"]["systems"]["pytorch"]["calls_per_repeat"]
  for workload in workloads.WORKLOADS:  # first call, warm call, calls_lasting's probe, repeats
    assert runs.count(workload) == 3 + 2 * calls[workload]


def test_pytorch_peer_failure_is_raised_with_its_message(tmp_path):
  peer = torch_client.TorchPeer(_fake_peer(tmp_path, fail_on="sample"), _TINY)
  peer.workload("train")()
  with pytest.raises(RuntimeError, match="PyTorch peer failed: ValueError: no sample"):
    peer.workload("sample")()
  with pytest.raises(RuntimeError, match="exited"):
    peer.workload("train")()


@pytest.mark.skipif(not os.environ.get("TORCH_PYTHON") or not os.environ.get("TORCH_GLOW"),
                    reason="set TORCH_PYTHON and TORCH_GLOW to run the real PyTorch peer")
def test_real_pytorch_peer_runs_every_workload():
  settings = torch_client.Settings(os.environ["TORCH_PYTHON"], os.environ["TORCH_GLOW"])
  arch = _TINY.replace(hidden_channels=8)
  peer = torch_client.TorchPeer(settings, arch)
  try:
    for workload in workloads.WORKLOADS:
      peer.workload(workload)()
  finally:
    peer.close()
  assert peer.info["parameters"] > 0


def test_convolution_flops_are_counted_from_the_architecture():
  # One level of one step at 4x4x4 after the squeeze (8x8x1 in), width 3, affine:
  # 1x1 mixing 4*4, coupling 3x3 2->3, 1x1 3->3, zero 3x3 3->4; no split at the top.
  config = glow_tfp.GlowConfig(image_shape=(8, 8, 1), levels=1, steps_per_level=1,
                               hidden_channels=3)
  per_position = 4 * 4 + 9 * 2 * 3 + 3 * 3 + 9 * 3 * 4
  assert roofline.forward_flops_per_image(config) == 2 * 4 * 4 * per_position
  # A split adds its prior's zero 3x3 (2 -> 4 channels at 4x4) and the next level's steps.
  two_levels = config.replace(levels=2)
  assert (roofline.forward_flops_per_image(two_levels)
          > roofline.forward_flops_per_image(config) + roofline.conv_flops(4, 4, 3, 2, 4))


def test_onednn_report_is_parsed():
  text = ("onednn_verbose,v1,info,cpu,isa:Intel AVX2\n"
          "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward,...\n")
  assert isa.parse(text) == {"onednn_isa": "Intel AVX2",
                                 "convolution": "brg_conv_fwd:avx2"}
  assert isa.parse("") == {"onednn_isa": isa.UNKNOWN, "convolution": isa.NOT_ONEDNN}


def test_isa_probe_sees_the_cap_of_this_process(monkeypatch):
  # SSE4.1 is below every x86-64 CPU TensorFlow runs on, so the cap always shows.
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
  monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
  found = isa.probe()
  assert "SSE4.1" in found["onednn_isa"] and found["ONEDNN_MAX_CPU_ISA"] == "SSE41"
  assert found["convolution"] != isa.NOT_ONEDNN
  assert isa.capped_environment("avx2")["ONEDNN_MAX_CPU_ISA"] == "AVX2"
  assert not isa.is_capped("avx2") and isa.is_capped("native")


def test_matched_peer_has_nearly_the_same_parameter_count():
  config = architectures.ARCHITECTURES["28x28x1"].config
  ours, theirs = (peers.parameter_count(peers.build(peers.SYSTEMS[name], config))
                  for name in ("glow_tfp", "tfp"))
  assert abs(ours - theirs) / theirs < 0.02


def test_no_xla_drops_the_compiled_systems():
  names = [s.name for s in speed.selected_systems(speed.DEFAULT_SYSTEMS, xla=False)]
  assert names == ["glow_tfp", "glow_tfp_cores", "glow_tfp_bf16", "tfp"]


def test_peak_memory_probe_reports_the_step_memory():
  # Through the probe process, which sets up the allocator statistics that the default CPU
  # allocator of an AVX2-only machine lacks. TensorFlow's CPU allocator statistics skip
  # buffers under 256 KiB, so the activations here are made larger than that.
  config = glow_tfp.GlowConfig(image_shape=(16, 16, 1), levels=1, steps_per_level=1,
                               hidden_channels=64)
  result = peak_memory.peak_training_memory("glow_tfp", config, batch_size=32, steps=1)
  assert set(result) == {"peak_mib", "settled_mib", "step_peak_mib", "step_mib",
                         "process_peak_rss_mib", "device"}
  assert result["peak_mib"] >= result["step_peak_mib"] > 0


def test_recorded_command_names_no_directory_outside_the_repository():
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(report.__file__))))
  argv = [os.path.join(root, "benchmarks", "speed", "run.py"), "--quick",
          "--torch_python=/opt/torchenv/bin/python", f"--out_dir={root}/benchmarks/results",
          "--name=x"]
  python = os.path.basename(sys.executable)
  assert report.command(argv) == (f"{python} -m benchmarks.speed.run --quick "
                                  "--torch_python=$TORCH_PYTHON "
                                  "--out_dir=benchmarks/results --name=x")


def test_environment_line_names_the_versions_and_no_commit():
  line = report.environment_lines(report.environment())[0]
  assert "Python " in line and "TensorFlow " in line and "TFP " in line
  assert "commit" not in line


def test_memory_markdown_has_a_row_per_depth():
  cell = {"peak_mib": 150.0, "settled_mib": 120.0, "step_peak_mib": 140.0, "step_mib": 20.0,
          "process_peak_rss_mib": 900.0, "device": "CPU:0"}
  results = {"environment": report.environment(),
             "architecture": {"config": dataclasses.asdict(_TINY.config), "train_batch": 2},
             "depths": [1, 2], "peak_memory": {"glow_tfp": {1: cell, 2: cell}}}
  text = "\n".join(peak_memory.depth_markdown(results))
  assert "| 1 | +20 (peak 150) |" in text and "| 2 | +20 (peak 150) |" in text


def test_lu_vs_conv_measures_both_forms():
  results = invertible_conv.measure([4], hidden_channels=4, batch_size=2, spatial=2, repeats=1)
  assert set(results[4]["log_det_us"]) == {"lu", "conv", "call_overhead"}
  assert set(results[4]["step_ms"]) == {"lu", "conv"}
  assert results[4]["step_conv_over_lu"] > 0


def test_calls_lasting_repeats_short_calls_until_the_time_is_filled():
  sleepy = {"fast": lambda: time.sleep(0.01), "slow": lambda: time.sleep(0.05)}
  calls = timing.calls_lasting(sleepy, 0.1)
  assert 5 <= calls <= 10  # set by the faster callable: 0.1 s / 0.01 s
  assert timing.calls_lasting(sleepy, 0.0) == 1


def test_input_pipeline_benchmark_times_input_and_training_in_the_same_rounds(tmp_path):
  folder = input_pipeline.generate(str(tmp_path / "png"), 80, 8, ".png")
  rates, ratios = input_pipeline.throughput({"png": folder}, {"tiny": _TINY.config},
                                            repeats=2, batch_count=1, seconds=0.0)
  assert set(rates) == {"input png", "training tiny"} and min(rates.values()) > 0
  assert ratios["input png / training tiny"] > 0
  text = input_pipeline.markdown({"folders": {70: {
      "scandir_seconds": 0.1, "open_seconds": 0.2, "open_records_seconds": 0.3,
      "peak_rss_mib": 500.0, "first_step_seconds": 9.0}}, "rates": rates, "ratios": ratios})
  assert "| 70 | 0.10 | 0.20 | 0.30 | 500 | 9.0 |" in text


def test_input_pipeline_benchmark_opens_the_folder_and_its_records_as_sources(tmp_path):
  folder = input_pipeline.generate(str(tmp_path / "png"), 20, 8, ".png")
  records = input_pipeline.write_records(folder, str(tmp_path / "records"), num_shards=2)
  written = os.path.getmtime(tmp_path / "records" / "records.json")
  assert input_pipeline.write_records(folder, str(tmp_path / "records"), 2) == records
  assert os.path.getmtime(tmp_path / "records" / "records.json") == written
  times = input_pipeline.listing_seconds(folder, records)
  assert set(times) == {"scandir_seconds", "open_seconds", "open_records_seconds"}
  assert min(times.values()) > 0


def test_cpu_settings_compare_against_tensorflows_defaults_first():
  compared = cpu_settings.settings(cores=4)
  assert compared[0] == cpu_settings.Setting()
  assert {(s.intra, s.inter) for s in compared if not s.onednn and not s.jit} == {
      (0, 0), (1, 1), (4, 1), (1, 4), (4, 4)}
  assert {(s.intra, s.inter) for s in compared if s.batch_parts == 4} == {(0, 0), (1, 4)}
  assert len(set(compared)) == len(compared)


def test_cpu_settings_of_keras_fit_compare_parts_with_and_without_onednn():
  compared = cpu_settings.settings(cores=4, driver="fit")
  assert compared[0] == cpu_settings.Setting(driver="fit")
  assert {s.driver for s in compared} == {"fit"}
  assert {(s.onednn, s.intra, s.inter, s.batch_parts) for s in compared} == {
      (onednn, *rest) for onednn in (False, True)
      for rest in ((0, 0, 1), (1, 4, 4), (0, 0, 4))}


def test_cpu_settings_time_keras_fit_in_a_fresh_process():
  tiny = cpu_settings.Setting(onednn=True, intra=1, inter=2, batch=4, hidden_channels=4,
                              steps_per_level=1, batch_parts=2, driver="fit")
  images_per_s, first_step_s = cpu_settings.measure(tiny, seconds=0.2)
  assert images_per_s > 0 and first_step_s > 0


def test_cpu_settings_measure_a_setting_in_a_fresh_process_and_tabulate_it():
  tiny = cpu_settings.Setting(onednn=False, intra=1, inter=1, batch=4, hidden_channels=4,
                              steps_per_level=1, batch_parts=2)
  images_per_s, first_step_s = cpu_settings.measure(tiny, seconds=0.2)
  assert images_per_s > 0 and first_step_s > 0
  row = {**dataclasses.asdict(tiny), "median": images_per_s, "ratio": 1.0,
         "first_step_s": first_step_s}
  text = cpu_settings.markdown({"cores": 2, "rounds": 1, "seconds": 0.2, "rows": [row]})
  assert (f"| off | 1/1 | off | 4 (2) | 1, 4 | {images_per_s:.0f} | 1.00x | "
          f"{first_step_s:.1f} |") in text


def test_convolutions_of_one_level_are_listed_with_their_shapes():
  # The one-level model of the FLOP-count test above: 4x4x4 after the squeeze, width 3.
  config = glow_tfp.GlowConfig(image_shape=(8, 8, 1), levels=1, steps_per_level=1,
                               hidden_channels=3)
  assert roofline.convolutions(config) == [
      ("level 0 mixing", 1, 4, 4, 4, 4, 1), ("level 0 coupling in", 3, 2, 3, 4, 4, 1),
      ("level 0 coupling hidden", 1, 3, 3, 4, 4, 1), ("level 0 coupling out", 3, 3, 4, 4, 4, 1)]
  assert [row[0] for row in roofline.convolutions(config.replace(levels=2))].count(
      "level 0 split prior") == 1


@pytest.mark.parametrize("way, sizes, inline", [
    ("inlined", [50, 50], True), ("calls", [50, 50], False), ("parts of 32", [25] * 4, False)])
def test_parts_speed_ways_trace_their_parts_and_restore_the_defaults(way, sizes, inline):
  defaults = execution.PART_SIZE, dict(execution.PART_CALL_ATTRIBUTES)
  with parts_speed._parts_choices(way):
    rows = tf.function(lambda x: execution.map_parts(
        checks.part_size_of_each_row, (x, None), 2))(tf.zeros([100, 1]))
    np.testing.assert_array_equal(rows, np.repeat(sizes, sizes))
    assert (execution.PART_CALL_ATTRIBUTES.get("_noinline") is None) == inline
  assert (execution.PART_SIZE, execution.PART_CALL_ATTRIBUTES) == defaults


def test_parts_speed_times_every_way_of_every_workload_beside_a_busy_neighbour():
  result = {"architectures": {"tiny": parts_speed.measure(_TINY, repeats=1, seconds=0.0,
                                                             busy_cores=1)},
            "busy_cores": 1, "onednn": "1", "environment": report.environment()}
  by_workload = result["architectures"]["tiny"]
  assert set(by_workload) == set(workloads.WORKLOADS)
  for r in by_workload.values():
    assert set(r["images_per_s"]) == set(parts_speed.WAYS)
    assert min(min(rates) for rates in r["images_per_s"].values()) > 0
    assert r["ratios"]["inlined"] == 1.0
  lines = parts_speed.markdown(result)
  assert "Processes spinning while timing: 1." in "\n".join(lines)
  assert sum(line.startswith("| train |") for line in lines) == len(parts_speed.WAYS)
