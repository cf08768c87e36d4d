"""benchmarks/ood/discriminators.py and its CLI benchmarks/ood/separability.py: the
discriminative peers of ood_score."""

import json
import subprocess
import sys

import numpy as np
from benchmarks.common import report
from benchmarks.ood import discriminators


def test_network_gives_one_logit_per_image():
  model = discriminators.network((28, 28, 1))
  images = np.zeros((3, 28, 28, 1), np.uint8)
  assert discriminators.logits(model, images).shape == (3,)


def test_peers_tell_noise_from_digits(tiny_mnist):
  results = discriminators.measure(tiny_mnist, ["noise:uniform", "constant"], epochs=4, seed=0)
  assert set(results) == {"noise:uniform", "constant"}
  for values in results.values():
    assert values["group"] == "standard"
    assert set(values["auroc"]) == set(discriminators.PEERS)
  # Uniform noise is a kind of the generic negatives too: both peers must separate it.
  assert min(results["noise:uniform"]["auroc"].values()) > 0.9


def test_fit_is_reproducible_under_one_seed(tiny_mnist):
  digits, noise = tiny_mnist.train_images[:16], np.full((16, 28, 28, 1), 200, np.uint8)
  first, second = (discriminators.logits(discriminators.fit(digits, noise, 1, seed=3), digits)
                   for _ in range(2))
  np.testing.assert_array_equal(first, second)


def test_markdown_has_a_row_per_source():
  results = {"chimera": {"group": "near-OOD",
                         "auroc": {"supervised": 0.99, "outlier_exposure": 0.8}}}
  lines = discriminators.markdown(results, report.environment(), count=250)
  assert "| chimera | near-OOD | 0.990 | 0.800 |" in lines


def test_cli_refuses_an_unknown_source():
  run = subprocess.run([sys.executable, "-m", "benchmarks.ood.separability", "--ood=nope"],
                       capture_output=True, text=True, timeout=300)
  assert run.returncode != 0
  assert "--ood must name sources of" in run.stderr


def test_cli_refuses_a_network_trained_for_no_epoch():
  run = subprocess.run([sys.executable, "-m", "benchmarks.ood.separability", "--epochs=0"],
                       capture_output=True, text=True, timeout=300)
  assert run.returncode != 0
  assert "epochs" in run.stderr


def test_publish_prints_the_table_and_writes_both_files(tmp_path, capsys):
  results = {"chimera": {"group": "near-OOD",
                         "auroc": {"supervised": 0.99, "outlier_exposure": 0.8}}}
  lines = discriminators.markdown(results, report.environment(), count=250)
  report.publish({"auroc": results}, lines, str(tmp_path), "peers")
  printed = capsys.readouterr().out
  assert "| chimera | near-OOD | 0.990 | 0.800 |" in printed
  assert f"wrote {tmp_path / 'peers.json'}" in printed
  with open(tmp_path / "peers.json") as f:
    assert json.load(f) == {"auroc": results}
  assert (tmp_path / "peers.md").read_text().splitlines() == lines


def test_near_misses_come_in_equal_shares_of_the_families_and_generic_negatives(tiny_mnist):
  images, labels = tiny_mnist.train_images[:30], tiny_mnist.train_labels[:30]
  made = [discriminators.near_misses(images, labels, ("chimera", "scribble"),
                                     np.random.default_rng(5)) for _ in range(2)]
  assert made[0].shape == images.shape and made[0].dtype == np.uint8
  np.testing.assert_array_equal(made[0], made[1])
  unlabelled = discriminators.near_misses(images, None, ("chimera",), np.random.default_rng(5))
  assert unlabelled.shape == images.shape
  # The last share is the generic negatives: uniform noise comes first among their kinds.
  assert made[0][20:].mean() > 2 * images.mean()


def test_the_near_miss_network_of_a_source_never_sees_that_source(tiny_mnist, monkeypatch):
  made = []
  generate = discriminators.generate

  def recording(name, images, rng, labels=None):
    made.append(name)
    return generate(name, images, rng, labels)

  monkeypatch.setattr(discriminators, "generate", recording)
  results = discriminators.measure(tiny_mnist, ["chimera"], epochs=1, seed=0,
                                   peers=("near_miss_exposure",))
  assert set(results["chimera"]["auroc"]) == {"near_miss_exposure"}
  # Once as the measured source (from held-out images), never as a negative.
  assert made.count("chimera") == 1
  assert sorted(made[1:]) == sorted({"pair", "overlay", "fragment", "off_centre", "scribble"})


def test_markdown_has_a_column_per_peer_measured():
  results = {"chimera": {"group": "near-OOD", "auroc": {"near_miss_exposure": 0.6}}}
  lines = discriminators.markdown(results, report.environment(), count=250)
  assert "| chimera | near-OOD | 0.600 |" in lines
  assert not any("supervised" in line for line in lines)


def test_cli_refuses_an_unknown_peer():
  run = subprocess.run([sys.executable, "-m", "benchmarks.ood.separability", "--peers=nope"],
                       capture_output=True, text=True, timeout=300)
  assert run.returncode != 0
  assert "--peers must name peers of" in run.stderr
