"""Sample quality in training: at evaluation steps and at the end, in the summaries and the
results, its classifier kept in the workdir and read back by a resumed run; nothing for
unlabelled data or without samples."""

import json
import shutil

import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import workdir as workdir_lib
from train.data import datasets as data_lib
from train.engine import loop
from train.engine import quality_reports
from train.errors import InputError

_CONFIG = glow_tfp.GlowConfig(image_shape=(28, 28, 1), levels=2, steps_per_level=1,
                              hidden_channels=4)


def _options(workdir, **changes):
  base = dict(workdir=str(workdir), steps=4, batch_size=8, warmup_steps=2, eval_every=2,
              sample_every=1000, checkpoint_every=2, log_every=2, num_samples=4,
              eval_batch_size=8, jit_compile=False, temperatures=(0.5, 1.0),
              quality_samples=12)
  base.update(changes)
  return loop.Options(**base)


def _summary_tags(directory):
  return {value.tag for path in tf.io.gfile.glob(str(directory / "events.out.tfevents*"))
          for event in tf.compat.v1.train.summary_iterator(path)
          for value in event.summary.value}


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory, tiny_mnist):
  workdir = tmp_path_factory.mktemp("quality")
  return workdir, loop.run(_CONFIG, tiny_mnist, _options(workdir))


def test_results_hold_every_temperature_and_the_reference_row(quality_run):
  workdir, results = quality_run
  with open(workdir / "results.json") as f:
    quality = json.load(f)["sample_quality"]
  assert quality == json.loads(json.dumps(results["sample_quality"]))
  assert quality["num_samples"] == 12 and not quality["classifier_reused"]
  assert sorted(quality["temperatures"]) == ["0.5", "1"]
  for figures in [quality["reference"], *quality["temperatures"].values()]:
    assert {"legible_fraction", "coverage_bits", "class_counts",
            "frechet_distance"} <= set(figures)
    assert 0 <= figures["legible_fraction"] <= 1 and figures["frechet_distance"] >= 0
  assert quality["temperatures"]["1"]["count"] == 12
  assert quality["reference"]["count"] == 16  # every held-out image of tiny_mnist
  assert "agreement" in quality["reference"]  # the classifier's held-out accuracy
  assert "agreement" not in quality["temperatures"]["1"]  # no class asked for


def test_each_evaluation_writes_the_figures_to_the_summaries(quality_run):
  workdir, _ = quality_run
  tags = _summary_tags(workdir / "logs")
  assert {"sample_quality/T0.5/legible_fraction", "sample_quality/T1/frechet_distance",
          "sample_quality/T1/coverage_bits", "sample_quality/reference/agreement"} <= tags


def test_a_resumed_run_reads_the_classifier_back(quality_run, tiny_mnist, tmp_path):
  workdir, _ = quality_run
  assert (workdir / workdir_lib.CLASSIFIER_FILE).exists()
  resumed = tmp_path / "resumed"
  shutil.copytree(workdir, resumed)
  results = loop.run(_CONFIG, tiny_mnist, _options(resumed, steps=6))
  assert results["sample_quality"]["classifier_reused"]


@pytest.mark.parametrize("quality_samples, num_classes, reason", [
    (0, 10, "no samples asked for"),
    (12, 0, "no class labels"),
])
def test_nothing_is_measured_without_samples_or_labels(tiny_mnist, tmp_path,
                                                       quality_samples, num_classes, reason):
  data = data_lib.Data("digits", tiny_mnist.train_images, tiny_mnist.train_labels,
                       tiny_mnist.heldout_images, tiny_mnist.heldout_labels, num_classes)
  assert reason in quality_reports.unavailable_reason(data, quality_samples)
  results = loop.run(_CONFIG, data, _options(tmp_path, steps=2,
                                              quality_samples=quality_samples))
  assert "sample_quality" not in results
  assert not (tmp_path / workdir_lib.CLASSIFIER_FILE).exists()


def test_one_sample_is_refused(tmp_path):
  with pytest.raises(InputError, match="quality_samples must be a number >= 2; got 1"):
    _options(tmp_path, quality_samples=1)
