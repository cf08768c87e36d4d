"""`python -m train` writes the sample quality into results.json, and
`python -m train.sample_quality` gives the same figures for the same seed, reading the
run's classifier from the workdir."""

import json
import os
import subprocess
import sys

import pytest

from tests.test_train_cli import _ROOT, _TINY


def _run(module, *argv):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", module, *argv], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("wd")
  result = _run("train", *_TINY, "--steps=2", "--temperatures=0.7,1.0", "--quality_samples=16",
                f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, result


def test_training_writes_the_metric_keys_into_results_json(trained):
  workdir, result = trained
  with open(workdir / "results.json") as f:
    quality = json.load(f)["sample_quality"]
  assert sorted(quality["temperatures"]) == ["0.7", "1"]
  assert {"legible_fraction", "coverage_bits", "class_counts", "frechet_distance",
          "agreement"} <= set(quality["reference"])
  assert "Sample quality after 2 steps:" in result.stderr


def test_the_tool_reuses_the_classifier_and_reproduces_the_run(trained, tmp_path):
  workdir, _ = trained
  output = tmp_path / "quality.json"
  result = _run("train.sample_quality", f"--workdir={workdir}", "--temperatures=1.0",
                "--num_samples=16", "--seed=0", f"--output={output}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "classifier read from the workdir" in result.stdout
  assert "| samples T=1 |" in result.stdout and "| held-out (reference) |" in result.stdout
  with open(output) as f:
    tool = json.load(f)
  with open(workdir / "results.json") as f:
    run = json.load(f)["sample_quality"]
  assert tool["classifier_reused"]
  # The same images and classifier; a float may differ in its last bits, as the matrix
  # square root of the Frechet distance sums in a thread-dependent order on some CPUs.
  assert tool["reference"].keys() == run["reference"].keys()
  for key, value in run["reference"].items():
    if isinstance(value, float):
      assert tool["reference"][key] == pytest.approx(value, rel=1e-6), key
    else:
      assert tool["reference"][key] == value, key
  assert tool["temperatures"]["1"]["class_counts"] == run["temperatures"]["1"]["class_counts"]
  assert tool["temperatures"]["1"]["frechet_distance"] == pytest.approx(
      run["temperatures"]["1"]["frechet_distance"], rel=1e-3)


def test_the_tool_refuses_an_unlabelled_dataset_in_one_line(trained, tmp_path, write_png):
  workdir, _ = trained
  for i in range(4):
    write_png(str(tmp_path / "images" / f"{i}.png"), (28, 28, 1), 10 * i)
  result = _run("train.sample_quality", f"--workdir={workdir}",
                f"--dataset=folder:{tmp_path / 'images'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "train.sample_quality: error: No sample quality: "
      f"folder:{tmp_path / 'images'} has no class labels to train a classifier on.")
