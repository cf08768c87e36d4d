"""Levers of the default run's samples: `python -m train.levers --lever=NAME=FLAGS ...`.

Each lever is the default run with some flags changed. Its run of seed s is exactly

  python -m train --seed=s --workdir=ROOT/NAME/seed<s> FLAGS

in a subprocess (the training CLI itself, so a lever is any of its flags), for seeds
0..--seeds-1, beside the lever "default" (no flags), which is always measured. The run's
results.json gives the held-out bits/dim and the sample quality that the training CLI
measures at its end (legible fraction and Frechet distance at each temperature; see
docs/training.md, "Sample quality"). `--base_flags` are added to every run, the default
included (a smaller run for a quick look).

A finished run is reused when its flags, recorded in ROOT/NAME/seed<s>/lever.json, are the
same; an interrupted one resumes from its checkpoint, as `python -m train` does. After
every run ROOT/levers.md is rewritten: per lever, the mean over seeds of the held-out
bits/dim, bits per image (comparable between models that pad the images to other sizes),
legible fraction and Frechet distance at each temperature (and for a class-conditional
model the fraction of samples classified as the class asked for), with every seed's values
beside it.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from . import common_flags
from .errors import InputError

DEFAULT = "default"
TABLE_FILE = "levers.md"
RUN_FILE = "lever.json"
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")

_LEVERS = flags.DEFINE_multi_string(
    "lever", [], "NAME=FLAGS: a lever, the default run with FLAGS (training CLI flags, "
    "space-separated) added, e.g. --lever='steps2500=--steps=2500'. Repeat for more.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds 0..seeds-1 per lever.", lower_bound=1)
_ROOT = flags.DEFINE_string("root", "runs/levers", "Directory of the runs' workdirs and of "
                            f"{TABLE_FILE}.")
_BASE_FLAGS = flags.DEFINE_string("base_flags", "", "Training CLI flags added to every run, "
                                  "the default included.")


def parse_lever(text):
  """(name, [flag, ...]) of "NAME=FLAGS"; raises InputError naming what is wrong."""
  name, sep, rest = text.partition("=")
  if not sep or not _NAME.match(name):
    raise InputError(f"--lever={text!r}: expected NAME=FLAGS with a NAME of letters, digits "
                     "and _.+- (e.g. steps2500=--steps=2500).")
  if name == DEFAULT:
    raise InputError(f"--lever={text!r}: {DEFAULT!r} is the run without flags, always "
                     "measured; choose another name.")
  flag_list = training_flags(rest, f"--lever={text!r}")
  if not flag_list:
    raise InputError(f"--lever={text!r}: FLAGS must be one or more --flag[=value] of the "
                     "training CLI.")
  return name, flag_list


def training_flags(text, where):
  """The training CLI flags of space-separated `text`; raises InputError (`where` names
  the flag they came from) unless each is a --flag[=value] other than --seed and --workdir,
  which each run sets."""
  flag_list = shlex.split(text)
  bad = [f for f in flag_list if not f.startswith("--")]
  if bad:
    raise InputError(f"{where}: {bad[0]!r} is not a --flag[=value] of the training CLI.")
  if any(f.split("=")[0] in ("--seed", "--workdir") for f in flag_list):
    raise InputError(f"{where}: --seed and --workdir are set per run.")
  return flag_list


def _check_levers(values):
  names = [parse_lever(text)[0] for text in values]
  if len(set(names)) != len(names):
    raise InputError(f"Lever names must differ; got {names}.")


flags.register_validator("lever", common_flags.accepted_by(_check_levers))
flags.register_validator("base_flags", common_flags.accepted_by(
    lambda text: training_flags(text, f"--base_flags={text!r}")))


def run_one(root, name, lever_flags, seed, base_flags, python=sys.executable):
  """Trains (or reuses) the run of lever `name` with `seed`; returns its results dict with
  the run's "flags" and "seed" added."""
  workdir = os.path.join(root, name, f"seed{seed}")
  command_flags = [f"--seed={seed}", f"--workdir={workdir}", *base_flags, *lever_flags]
  record_path = os.path.join(workdir, RUN_FILE)
  results_path = os.path.join(workdir, "results.json")
  if os.path.exists(record_path):
    with open(record_path) as f:
      record = json.load(f)
    if record["flags"] != command_flags:
      raise InputError(f"{workdir} holds a run with other flags ({record['flags']}); use "
                       "another --root or delete it.")
  os.makedirs(workdir, exist_ok=True)
  with open(record_path, "w") as f:
    json.dump({"flags": command_flags}, f)
  if not os.path.exists(results_path):
    start = time.time()
    logging.info("lever %s, seed %d: python -m train %s", name, seed, " ".join(command_flags))
    with open(os.path.join(workdir, "train.log"), "a") as log:
      # The training CLI of this package: `train` in a checkout, `glow_tfp.train` installed.
      code = subprocess.run([python, "-m", __package__, *command_flags], stdout=log,
                            stderr=subprocess.STDOUT, check=False).returncode
    if code or not os.path.exists(results_path):
      raise RuntimeError(f"lever {name}, seed {seed}: python -m train exited {code}; see "
                         f"{os.path.join(workdir, 'train.log')}.")
    logging.info("lever %s, seed %d: done in %.0f s", name, seed, time.time() - start)
  with open(results_path) as f:
    results = json.load(f)
  with open(os.path.join(workdir, "config.json")) as f:
    results["image_dims"] = int(np.prod(json.load(f)["image_shape"]))
  return {**results, "flags": lever_flags, "seed": seed}


def row(runs):
  """The measurements of one lever's runs: {column: (mean, [per seed])}."""
  columns = {"held-out bits/dim": [r["heldout_bits_per_dim"] for r in runs],
             "bits/image": [r["heldout_bits_per_dim"] * r["image_dims"] for r in runs]}
  # A conditional model's bits/dim above is of P(x | y); this one, of P(x), compares.
  if all("heldout_bits_per_dim_unlabelled" in r for r in runs):
    columns["bits/dim without labels"] = [r["heldout_bits_per_dim_unlabelled"] for r in runs]
  for temperature in _temperatures(runs):
    per_t = [r["sample_quality"]["temperatures"][temperature] for r in runs]
    columns[f"legible T={temperature}"] = [q["legible_fraction"] for q in per_t]
    columns[f"Frechet T={temperature}"] = [q["frechet_distance"] for q in per_t]
    # A conditional model's samples are of asked classes: the fraction classified as asked.
    if all("agreement" in q for q in per_t):
      columns[f"asked class T={temperature}"] = [q["agreement"] for q in per_t]
  return {column: (float(np.mean(values)), values) for column, values in columns.items()}


def _temperatures(runs):
  present = [set(r.get("sample_quality", {}).get("temperatures", {})) for r in runs]
  if not all(present):
    raise InputError("A run has no sample quality in its results.json: levers need labelled "
                     "data and --quality_samples above 0.")
  return sorted(set.intersection(*present), key=float)


def table_markdown(levers, results):
  """The Markdown table of every lever's row (`row`): mean, then each seed's value ("-"
  where a lever has no such column)."""
  rows = {name: row(runs) for name, runs in results.items()}
  # In the order of the row with the most columns (a conditional lever's), then the rest.
  fullest = max(rows.values(), key=len)
  columns = list(dict.fromkeys([*fullest, *(c for cells in rows.values() for c in cells)]))
  lines = ["| lever | flags | seeds | " + " | ".join(columns) + " |",
           "|---" * (len(columns) + 3) + "|"]
  for name, cells in rows.items():
    seeds = ", ".join(str(r["seed"]) for r in results[name])
    text = [_cell(*cells[column]) if column in cells else "-" for column in columns]
    lines.append(f"| {name} | {' '.join(levers[name]) or '(none)'} | {seeds} | "
                 + " | ".join(text) + " |")
  return "\n".join(lines) + "\n"


def _cell(mean, values):
  return f"{mean:.4g} ({' / '.join(f'{v:.4g}' for v in values)})"


def run_levers(levers, seeds, root, base_flags):
  """Runs every lever (seeds the outer loop, so a cut-short run has whole seeds); writes
  and returns the table."""
  results = {name: [] for name in levers}
  table = ""
  for seed in range(seeds):
    for name, lever_flags in levers.items():
      results[name].append(run_one(root, name, lever_flags, seed, base_flags))
      table = table_markdown(levers, {n: r for n, r in results.items() if r})
      with open(os.path.join(root, TABLE_FILE), "w") as f:
        f.write(table)
  return table


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  levers = {DEFAULT: [], **dict(parse_lever(text) for text in _LEVERS.value)}
  os.makedirs(_ROOT.value, exist_ok=True)
  try:
    table = run_levers(levers, _SEEDS.value, _ROOT.value,
                       training_flags(_BASE_FLAGS.value, "--base_flags"))
  except (InputError, RuntimeError) as error:
    sys.exit(f"train.levers: error: {error}")
  print(table, end="")
  print(f"Wrote {os.path.join(_ROOT.value, TABLE_FILE)}.")


if __name__ == "__main__":
  app.run(main)
