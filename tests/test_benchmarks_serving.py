"""Smoke runs of the serving speed benchmarks on a tiny model: seconds, not measurements."""

import pytest

import glow_tfp
from benchmarks.serving import export_speed
from benchmarks.serving import serving_speed

TINY = glow_tfp.GlowConfig(image_shape=(8, 8, 2), levels=2, steps_per_level=1,
                           hidden_channels=8)


@pytest.mark.parametrize("batch_parts", [1, 2])
def test_export_speed_times_the_library_and_the_saved_model(tmp_path, batch_parts):
  model = export_speed.build_model(TINY)
  rows = export_speed.measure(model, str(tmp_path / "export"),
                              batches=[1, 3], repeats=2, seconds=0.0,
                              batch_parts=batch_parts)
  assert [row["batch"] for row in rows] == [1, 3]
  assert all(row["library"] > 0 and row["saved_model"] > 0 and row["ratio"] > 0
             for row in rows)
  table = export_speed.markdown(rows, cores=2)
  assert table.count("\n") == 3 and "| 3 |" in table


def test_serving_speed_measures_each_setting_through_the_server(tmp_path):
  settings = [("1/1", "1"), ("1/2/2", "1")]
  paths = serving_speed.export(TINY, str(tmp_path), [1, 2])
  assert sorted(paths) == [1, 2] and paths[1] != paths[2]
  results = serving_speed.measure(paths, TINY, settings,
                                  concurrencies=[2], batches=[1, 4], images=4, rounds=2,
                                  log_dir=str(tmp_path))
  assert set(results) == {(s, 2, b) for s in settings for b in (1, 4)}
  assert all(len(rates) == 2 and min(rates) > 0 for rates in results.values())
  table = serving_speed.markdown(results, settings, [2], [1, 4])
  assert "| threads 1/1, oneDNN on | " in table and "(1.00)" in table
  assert "| threads 1/2, 2 parts, oneDNN on | " in table


def test_serving_speed_refuses_malformed_thread_settings():
  assert serving_speed._check_threads(["0/0", "2/1", "1/2/2"])
  assert not serving_speed._check_threads(["1/2/0"])
  assert not serving_speed._check_threads(["2"])
  assert not serving_speed._check_threads(["-1/1"])


def test_export_speed_refuses_malformed_thread_settings():
  assert export_speed._check_threads("1/2")
  assert not export_speed._check_threads("1")
  assert not export_speed._check_threads("a/2")
