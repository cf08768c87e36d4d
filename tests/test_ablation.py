"""`python -m train.ablation` on a tiny image folder: the files, and the table = the logs.

The runner is driven as a command (a subprocess): its absl flags share names with the
training CLI's, which other tests import into this process.
"""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two of the three permutations keep every check meaningful (orderings, one table row per
# variant) at two thirds of the runs.
_PERMUTATIONS = ("reverse", "lu")
_VARIANTS = [(p, c) for c in ("additive", "affine") for p in _PERMUTATIONS]
_SEEDS = 2
_STEPS, _EVAL_EVERY = 4, 2
_ROW = re.compile(r"^\| (\w+) \| (\w+) \| ([\w-]+) \| ([\d.]+) \| ([\d.]+|n/a) \| (.*) \| (\d+) \|$")


def _ablation(*argv):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "train.ablation", *argv], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def _write_folder(path, count=24, side=8):
  rng = np.random.default_rng(0)
  os.makedirs(path)
  for i in range(count):
    PIL.Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(
        os.path.join(path, f"{i:02d}.png"))


def _tiny_flags(tmp_path, steps=_STEPS):
  return [f"--dataset=folder:{tmp_path / 'images'}", "--quick", f"--seeds={_SEEDS}",
          f"--permutations={','.join(_PERMUTATIONS)}",
          "--levels=2", "--steps_per_level=1", "--hidden_channels=4", f"--steps={steps}",
          f"--eval_every={_EVAL_EVERY}", "--batch_size=8", "--warmup_steps=1",
          "--heldout_fraction=0.25", "--nojit_compile", f"--output_dir={tmp_path / 'out'}",
          f"--workdir={tmp_path / 'runs'}"]


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("ablation")
  _write_folder(tmp_path / "images")
  result = _ablation(*_tiny_flags(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  return tmp_path, result


def _logs(out):
  logs = {}
  for path in glob.glob(str(out / "logs" / "*.json")):
    with open(path) as f:
      log = json.load(f)
    logs[log["permutation"], log["coupling"], log["seed"]] = log
  return logs


def _table_rows(out):
  with open(out / "table.md") as f:
    return [m.groups() for m in map(_ROW.match, f.read().splitlines()) if m]


def test_writes_one_log_per_variant_and_seed_with_the_whole_curve(ablation):
  tmp_path, _ = ablation
  logs = _logs(tmp_path / "out")
  assert sorted(logs) == sorted((p, c, s) for p, c in _VARIANTS for s in range(_SEEDS))
  for (permutation, coupling, seed), log in logs.items():
    assert log["config"]["permutation"] == permutation
    assert log["config"]["coupling"] == coupling
    assert [s for s, _ in log["eval_history"]] == list(range(_EVAL_EVERY, _STEPS + 1,
                                                             _EVAL_EVERY))
    assert log["eval_history"][-1][1] == log["final_heldout_bits_per_dim"]
    assert np.isfinite(log["final_heldout_bits_per_dim"])


def test_everything_but_the_variant_is_identical_within_a_seed(ablation):
  tmp_path, _ = ablation
  logs = _logs(tmp_path / "out")
  for seed in range(_SEEDS):
    shared = {json.dumps({**log["config"], "permutation": None, "coupling": None},
                         sort_keys=True) + json.dumps(log["settings"], sort_keys=True)
              for (_, _, s), log in logs.items() if s == seed}
    assert len(shared) == 1
  # Different variants really are different models: their curves differ.
  finals = {log["final_heldout_bits_per_dim"] for (_, _, s), log in logs.items() if s == 0}
  assert len(finals) == len(_VARIANTS)


def test_table_numbers_are_those_of_the_logs(ablation):
  tmp_path, result = ablation
  logs = _logs(tmp_path / "out")
  rows = _table_rows(tmp_path / "out")
  assert [(p, c) for p, c, *_ in rows] == _VARIANTS
  assert {scale for _, c, scale, *_ in rows} == {"-", "sigmoid"}
  for permutation, coupling, _, mean, std, per_seed, _ in rows:
    values = [logs[permutation, coupling, s]["final_heldout_bits_per_dim"]
              for s in range(_SEEDS)]
    assert mean == f"{np.mean(values):.4f}"
    assert std == f"{np.std(values, ddof=1):.4f}"
    assert per_seed == ", ".join(f"{s}: {v:.4f}" for s, v in enumerate(values))
  # The command prints the same table it writes.
  with open(tmp_path / "out" / "table.md") as f:
    assert f.read().strip() in result.stdout


def test_orderings_follow_the_means(ablation):
  tmp_path, _ = ablation
  rows = _table_rows(tmp_path / "out")
  with open(tmp_path / "out" / "table.md") as f:
    text = f.read()
  for coupling in ("additive", "affine"):
    means = {p: float(m) for p, c, _, m, *_ in rows if c == coupling}
    order = " < ".join(f"{p} {means[p]:.4f}" for p in sorted(means, key=means.get))
    assert f"- {coupling}: by mean, {order}." in text


def test_plot_is_a_png(ablation):
  tmp_path, _ = ablation
  with PIL.Image.open(tmp_path / "out" / "bits_per_dim.png") as image:
    assert image.format == "PNG" and image.width > image.height > 100


def test_rerun_with_other_settings_is_refused_and_keeps_the_logs(ablation):
  tmp_path, _ = ablation
  before = {p: os.path.getmtime(p) for p in glob.glob(str(tmp_path / "out" / "logs" / "*"))}
  result = _ablation(*_tiny_flags(tmp_path, steps=_STEPS + 2))
  assert result.returncode == 1
  assert "train.ablation: error:" in result.stderr
  assert "was written with other settings" in result.stderr
  assert "Traceback" not in result.stderr
  after = {p: os.path.getmtime(p) for p in glob.glob(str(tmp_path / "out" / "logs" / "*"))}
  assert after == before


def test_coupling_scales_are_variants_named_after_their_scale(ablation):
  tmp_path, _ = ablation
  out = tmp_path / "scales"
  # Without --output_dir the logs and summary go beside the runs, under --workdir.
  flags = [f for f in _tiny_flags(tmp_path) if not f.startswith(("--output_dir", "--workdir"))]
  result = _ablation(*flags, f"--workdir={out}", "--seeds=1", "--permutations=lu",
                     "--couplings=affine,additive", "--coupling_scales=sigmoid,tanh_bounded")
  assert result.returncode == 0, result.stderr[-3000:]
  names = sorted(os.path.basename(p) for p in glob.glob(str(out / "logs" / "*.json")))
  assert names == ["lu_additive_seed0.json", "lu_affine_seed0.json",
                   "lu_affine_tanh_bounded_seed0.json"]
  assert (out / "lu_affine_seed0" / "checkpoints").is_dir()
  with open(out / "logs" / "lu_affine_tanh_bounded_seed0.json") as f:
    log = json.load(f)
  assert log["config"]["coupling_scale"] == log["coupling_scale"] == "tanh_bounded"
  rows = _table_rows(out)
  assert [(p, c, scale) for p, c, scale, *_ in rows] == [  # the order they ran in
      ("lu", "affine", "sigmoid"), ("lu", "affine", "tanh_bounded"), ("lu", "additive", "-")]
  means = {scale: float(m) for _, c, scale, m, *_ in rows if c == "affine"}
  order = " < ".join(f"{k} {means[k]:.4f}" for k in sorted(means, key=means.get))
  with open(out / "table.md") as f:
    assert f"- lu, affine scales: by mean, {order}." in f.read()
  # The sigmoid run is the six-variant ablation's own run of that seed: same name, same log.
  with open(tmp_path / "out" / "logs" / "lu_affine_seed0.json") as f:
    six = json.load(f)
  with open(out / "logs" / "lu_affine_seed0.json") as f:
    assert json.load(f)["final_heldout_bits_per_dim"] == six["final_heldout_bits_per_dim"]


def test_an_unknown_scale_is_refused_by_name(tmp_path):
  result = _ablation("--coupling_scales=sigmoid,huge", f"--output_dir={tmp_path}")
  assert result.returncode == 1
  assert "--coupling_scales must name one or more of" in result.stderr
