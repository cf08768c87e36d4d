"""train/levers.py: levers of the default run, each the training CLI with flags added."""

import json
import os
import subprocess
import sys

import pytest

from tests.checks import assert_close
from train import levers
from train.errors import InputError

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny default run: the levers runner adds these to every run.
_BASE = ["--steps_per_level=1", "--hidden_channels=4", "--batch_size=8", "--steps=2",
         "--warmup_steps=1", "--nojit_compile", "--num_samples=4", "--temperatures=0.7,1",
         "--quality_samples=20", "--eval_examples=40", "--log_every=1"]


@pytest.mark.parametrize("text, message", [
    ("steps2500", "expected NAME=FLAGS"),
    ("a b=--steps=2", "expected NAME=FLAGS"),
    ("default=--steps=2", "'default' is the run without flags"),
    ("more=", "FLAGS must be one or more"),
    ("more=steps=2", "'steps=2' is not a --flag"),
    ("seeded=--seed=3", "--seed and --workdir are set per run"),
])
def test_a_malformed_lever_is_refused_with_what_is_wrong(text, message):
  with pytest.raises(InputError, match=message):
    levers.parse_lever(text)


def test_a_lever_is_its_name_and_flags():
  assert levers.parse_lever("l3=--levels=3 --steps=2000") == ("l3", ["--levels=3",
                                                                     "--steps=2000"])


def test_levers_train_each_seed_reuse_finished_runs_and_tabulate(tmp_path, monkeypatch):
  monkeypatch.chdir(_ROOT)
  root = str(tmp_path / "levers")
  chosen = {levers.DEFAULT: [], "wider": ["--hidden_channels=6"]}
  table = levers.run_levers(chosen, 1, root, _BASE)
  with open(os.path.join(root, "wider", "seed0", "config.json")) as f:
    assert json.load(f)["hidden_channels"] == 6
  with open(os.path.join(root, levers.DEFAULT, "seed0", "results.json")) as f:
    results = json.load(f)
  lines = table.splitlines()
  assert lines[0].startswith("| lever | flags | seeds | held-out bits/dim | bits/image |")
  assert "legible T=0.7" in lines[0] and "Frechet T=1" in lines[0]
  default_row = lines[2].split(" | ")
  bits = float(default_row[3].split(" ")[0])
  assert_close(bits, results["heldout_bits_per_dim"], rtol=1e-3)
  assert_close(float(default_row[4].split(" ")[0]), bits * 28 * 28, rtol=1e-3)
  assert lines[3].startswith("| wider | --hidden_channels=6 | 0 |")
  assert open(os.path.join(root, levers.TABLE_FILE)).read() == table

  finished = os.path.getmtime(os.path.join(root, "wider", "seed0", "results.json"))
  assert levers.run_levers(chosen, 1, root, _BASE) == table
  assert os.path.getmtime(os.path.join(root, "wider", "seed0", "results.json")) == finished
  with pytest.raises(InputError, match="holds a run with other flags"):
    levers.run_levers({"wider": ["--hidden_channels=8"]}, 1, root, _BASE)


def test_the_command_refuses_a_bad_lever_before_training(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "train.levers", "--lever=l3=levels=3", f"--root={tmp_path}"],
      cwd=_ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert "'levels=3' is not a --flag[=value] of the training CLI" in result.stderr
  assert os.listdir(tmp_path) == []


def test_the_table_gives_the_asked_class_and_unlabelled_bits_of_conditional_levers_and_a_dash_elsewhere():
  def run(seed, legible, agreement=None):
    quality = {"legible_fraction": legible, "frechet_distance": 10.0}
    result = {"seed": seed, "heldout_bits_per_dim": 2.0, "image_dims": 784,
              "sample_quality": {"temperatures": {"0.7": quality}}}
    if agreement is not None:
      quality["agreement"] = agreement
      result["heldout_bits_per_dim_unlabelled"] = 2.0 + seed
    return result

  table = levers.table_markdown(
      {"default": [], "conditional": ["--conditional"]},
      {"default": [run(0, 0.5), run(1, 0.7)],
       "conditional": [run(0, 0.8, 0.75), run(1, 0.6, 0.25)]})
  header, _, default, conditional = table.splitlines()
  assert header.endswith("| legible T=0.7 | Frechet T=0.7 | asked class T=0.7 |")
  assert default.endswith("| 0.6 (0.5 / 0.7) | 10 (10 / 10) | - |")
  assert conditional.endswith("| 0.7 (0.8 / 0.6) | 10 (10 / 10) | 0.5 (0.75 / 0.25) |")
  assert "| 1568 (1568 / 1568) |" in default
  assert "| bits/image | bits/dim without labels |" in header
  assert "| 1568 (1568 / 1568) | - |" in default
  assert "| 1568 (1568 / 1568) | 2.5 (2 / 3) |" in conditional
