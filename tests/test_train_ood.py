"""`python -m train.ood` on a tiny trained model, as a subprocess (its absl flags share
names with the training CLI's)."""

import json
import os
import subprocess
import sys

from glow_tfp import config as config_lib
from train.engine import loop

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ood_cli_writes_the_auroc_table_histograms_and_reconstruction(tiny_mnist, tmp_path):
  config = config_lib.GlowConfig(image_shape=tiny_mnist.image_shape, levels=2,
                                 steps_per_level=1, hidden_channels=4,
                                 coupling_scale="tanh_bounded")
  loop.run(config, tiny_mnist, loop.Options(workdir=str(tmp_path), steps=2, batch_size=8,
                                            eval_every=2, sample_every=2, num_samples=4))
  result = subprocess.run(
      [sys.executable, "-m", "train.ood", f"--workdir={tmp_path}",
       "--ood=black,shrunk,sklearn_digits,pair", "--heldout_fraction=0.02",
       "--ood_false_positive_rate=0.05"], cwd=_ROOT, capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  out = tmp_path / "ood"
  assert sorted(os.listdir(out)) == ["histogram_black.png", "histogram_pair.png",
                                     "histogram_shrunk.png", "histogram_sklearn_digits.png",
                                     "ood.md", "results.json"]
  results = json.loads((out / "results.json").read_text())
  sources = results["sources"]
  assert set(sources) == {"black", "shrunk", "sklearn_digits", "pair", "in-distribution"}
  assert sources["black"]["group"] == "standard" and sources["pair"]["group"] == "near-OOD"
  assert 0.0 <= sources["black"]["auroc"]["ood_score"] <= 1.0
  for name in ("black", "shrunk", "sklearn_digits", "pair"):
    low, high = sources[name]["auroc_interval"]["ood_score"]
    assert 0.0 <= low <= sources[name]["auroc"]["ood_score"] <= high <= 1.0
  assert set(sources["pair"]["auroc_interval"]) == set(sources["pair"]["auroc"])
  assert "ood_score interval |" in result.stdout
  # is_ood at F = 0.05: the detection rate of each source, the false-positive rate of the
  # in-distribution side; the threshold from 25 fit images, measured on 25 others.
  assert results["threshold"]["false_positive_rate"] == 0.05
  assert results["threshold"]["reference_false_positive_rate"] in [i / 25 for i in range(26)]
  for name in sources:
    assert 0.0 <= sources[name]["flagged"] <= 1.0
  assert sources["black"]["flagged"] == 1.0
  assert "| source | flagged |" in result.stdout and "threshold at false-positive rate 0.05" in (
      result.stdout)
  assert sources["in-distribution"]["reconstruction"]["reconstruction_non_finite"] == 0
  assert "| black | standard |" in result.stdout and "| in-distribution |" in result.stdout
  assert results["likelihood_draws"] == 1

  # --likelihood_draws=K scores with K draws, as an export with K draws: other bits/dim,
  # so another threshold on the same reference images.
  result = subprocess.run(
      [sys.executable, "-m", "train.ood", f"--workdir={tmp_path}", "--ood=black",
       "--heldout_fraction=0.02", "--ood_false_positive_rate=0.05", "--likelihood_draws=2",
       f"--output_dir={tmp_path / 'k2'}"], cwd=_ROOT, capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  with_two = json.loads((tmp_path / "k2" / "results.json").read_text())
  assert with_two["likelihood_draws"] == 2
  assert with_two["threshold"]["ood_threshold"] != results["threshold"]["ood_threshold"]


def test_ood_cli_reports_the_likelihood_ratio_and_a_conditional_models_class_posterior(
    tiny_mnist, tmp_path):
  # One run covers both optional parts: a class-conditional model beside an unconditional
  # background model (the only kind a likelihood ratio takes).
  for name, perturb_fraction, classes in (("model", 0.0, tiny_mnist.num_classes),
                                          ("background", 0.2, 0)):
    config = config_lib.GlowConfig(image_shape=tiny_mnist.image_shape, levels=2,
                                   steps_per_level=1, hidden_channels=4, num_classes=classes)
    loop.run(config, tiny_mnist, loop.Options(workdir=str(tmp_path / name), steps=2,
                                              batch_size=8, eval_every=2, sample_every=2,
                                              num_samples=4, perturb_fraction=perturb_fraction))
  result = subprocess.run(
      [sys.executable, "-m", "train.ood", f"--workdir={tmp_path / 'model'}",
       f"--background_workdir={tmp_path / 'background'}", "--ood=black,pair",
       "--heldout_fraction=0.02", "--ood_false_positive_rate=0.05"], cwd=_ROOT,
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  results = json.loads((tmp_path / "model" / "ood" / "results.json").read_text())
  assert results["background_workdir"] == str(tmp_path / "background")
  aurocs = results["sources"]["pair"]["auroc"]
  assert list(aurocs)[-5:] == ["likelihood_ratio", "class_inconsistency",
                               "template_inconsistency", "ood_score", "class_doubt"]
  assert 0.0 <= aurocs["class_doubt"] <= 1.0
  assert ("| likelihood_ratio | class_inconsistency | template_inconsistency | ood_score "
          "| class_doubt |") in result.stdout


def test_sklearn_digits_are_the_bundled_digits_upscaled_to_the_model_size():
  # In a subprocess: train.ood's flags share names with the training CLI's.
  script = """
import numpy as np, PIL.Image, sklearn.datasets
from train import ood
images = ood.generate("sklearn_digits", np.zeros((1797, 24, 16, 2), np.uint8),
                      np.random.default_rng(0))
assert images.shape == (1797, 24, 16, 2) and images.dtype == np.uint8, images.shape
assert (images[..., 0] == images[..., 1]).all()
digits = sklearn.datasets.load_digits().images
small = np.stack([np.asarray(PIL.Image.fromarray(i[..., 0]).resize((8, 8), PIL.Image.BOX))
                  for i in images]).astype(float)
# Without replacement: every bundled digit appears once, shrunk back to about itself.
best = [np.abs(digits * (255 / 16) - s).mean(axis=(1, 2)).argmin() for s in small]
assert len(set(best)) > 1700, len(set(best))
print("ok", images.max())
"""
  result = subprocess.run([sys.executable, "-c", script], cwd=_ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split() == ["ok", "255"]
