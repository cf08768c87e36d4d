"""The paper's ablation: `python -m train.ablation [--flag=value ...]`.

Trains the six variants {reverse, shuffle, lu (1x1 conv)} x {additive, affine} with everything
else identical, for each of `--seeds` seeds, on `--dataset` (the training CLI's data sources;
default the bundled MNIST digits). Run `seed` of a variant is exactly `python -m train
--permutation=P --coupling=C --coupling_scale=S --seed=seed` with the same model and training
flags: the seed fixes the held-out split, the data order, the dequantisation noise and the
initial weights, so the variants of one seed see the same data. `--permutations`,
`--couplings` and `--coupling_scales` choose other variants (every combination; a scale
other than "sigmoid" applies to affine coupling only), e.g. the affine coupling scales:

  python -m train.ablation --permutations=lu --couplings=affine \
      --coupling_scales=sigmoid,tanh_bounded

Writes under `--output_dir` (default `--workdir`, beside the runs' training workdirs):
  logs/<permutation>_<coupling>[_<scale>]_seed<s>.json
                                               one run: settings, config, held-out bits/dim
                                               curve (`eval_history`), final bits/dim, time
                                               (the scale is in the name unless "sigmoid")
  bits_per_dim.png                             held-out bits/dim vs step, mean over seeds
                                               and min..max band per variant
  table.md                                     final held-out bits/dim per variant: mean,
                                               standard deviation, every seed's value
The summary is rewritten after every run, so an interrupted ablation leaves what it has; run
again with the same flags and the finished runs are reused.
"""

import dataclasses
import json
import os
import shutil
import sys
import typing

from absl import app
from absl import flags
from absl import logging

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # Files only; no display on a training machine.
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from glow_tfp import config as config_lib  # noqa: E402
from . import common_flags  # noqa: E402
from .data import datasets as data_lib  # noqa: E402
from .engine import loop  # noqa: E402
from .errors import InputError  # noqa: E402

PERMUTATIONS = ("reverse", "shuffle", "lu")
COUPLINGS = ("additive", "affine")
DEFAULT_SCALE = "sigmoid"


class Variant(typing.NamedTuple):
  permutation: str
  coupling: str
  scale: str = DEFAULT_SCALE

  def label(self):
    scale = "" if self.scale == DEFAULT_SCALE else f", {self.scale}"
    return f"{self.permutation}, {self.coupling}{scale}"
LOGS_DIR = "logs"
TABLE_FILE = "table.md"
PLOT_FILE = "bits_per_dim.png"


@dataclasses.dataclass(frozen=True)
class Settings:
  """Everything the six variants share. Each run is `python -m train` with these flags.

  Attributes:
    training: the training options of every run, but for each run's workdir (a directory
      under `training.workdir`) and seed; checkpoints only at the end and no sample grids
      before it, as the ablation needs the curves.
    dataset, data_dir, heldout_fraction: the images (`train.data.load`).
    seeds: runs of seeds 0..seeds-1 per variant.
    permutations, couplings, coupling_scales: the variants, every combination but
      additive coupling with a scale (the scale is the affine coupling's).
    levels, steps_per_level, hidden_channels, n_bits: the size of every model.
  """

  training: loop.Options = loop.Options(
      workdir="runs/ablation", steps=1500, batch_size=32, warmup_steps=100, eval_every=100,
      keep_checkpoints=1, num_samples=16, temperatures=(0.7,))
  dataset: str = "mnist"
  data_dir: str = None
  heldout_fraction: float = 0.1
  seeds: int = 3
  permutations: tuple = PERMUTATIONS
  couplings: tuple = COUPLINGS
  coupling_scales: tuple = (DEFAULT_SCALE,)
  levels: int = 2
  steps_per_level: int = 4
  hidden_channels: int = 32
  n_bits: int = 8

  def variants(self):
    """The variants in run order: couplings, then scales, then permutations."""
    return [Variant(p, c, s) for c in self.couplings for s in self.coupling_scales
            for p in self.permutations if c == "affine" or s == DEFAULT_SCALE]

  def config(self, image_shape, variant):
    try:
      return config_lib.GlowConfig(
          image_shape=image_shape, levels=self.levels, steps_per_level=self.steps_per_level,
          hidden_channels=self.hidden_channels, coupling=variant.coupling,
          coupling_scale=variant.scale, permutation=variant.permutation, n_bits=self.n_bits)
    except ValueError as error:
      raise InputError(str(error)) from error

  def options(self, name, seed):
    """The training options of run `name` with `seed`."""
    training = self.training
    return dataclasses.replace(
        training, workdir=os.path.join(training.workdir, name), seed=seed,
        sample_every=training.steps, checkpoint_every=training.steps,
        log_every=training.eval_every)


# The default run fits in under an hour on 2 CPU cores (docs/ablation.md); --quick in a few
# minutes.
_DEFAULTS = Settings()
_QUICK = dataclasses.replace(
    _DEFAULTS, seeds=2, steps_per_level=2, hidden_channels=16,
    training=dataclasses.replace(_DEFAULTS.training, steps=150, warmup_steps=20,
                                 eval_every=50))

_DATA = common_flags.define_data_flags()
_SEEDS = flags.DEFINE_integer("seeds", _DEFAULTS.seeds, "Seeds 0..seeds-1 per variant.",
                              lower_bound=1)
_VARIANTS = {
    "permutations": flags.DEFINE_list("permutations", list(_DEFAULTS.permutations),
                                      f"Permutations compared, of {PERMUTATIONS}."),
    "couplings": flags.DEFINE_list("couplings", list(_DEFAULTS.couplings),
                                   f"Couplings compared, of {COUPLINGS}."),
    "coupling_scales": flags.DEFINE_list(
        "coupling_scales", list(_DEFAULTS.coupling_scales),
        f"Affine coupling scales compared, of {config_lib.COUPLING_SCALES}."),
}
for _name, _allowed in (("permutations", PERMUTATIONS), ("couplings", COUPLINGS),
                        ("coupling_scales", config_lib.COUPLING_SCALES)):
  flags.register_validator(
      _name, lambda values, allowed=_allowed: bool(values) and set(values) <= set(allowed),
      f"--{_name} must name one or more of {', '.join(_allowed)}.")
_MODEL = common_flags.define_model_flags(_DEFAULTS.levels, _DEFAULTS.steps_per_level,
                                         _DEFAULTS.hidden_channels, _DEFAULTS.n_bits)
_TRAINING = common_flags.define_training_flags(_DEFAULTS.training)
_THREADS = common_flags.define_thread_flags()
_QUICK_FLAG = flags.DEFINE_bool("quick", False,
                                "A few-minute smoke version: defaults "
                                f"{_QUICK.seeds} seeds, K={_QUICK.steps_per_level}, width "
                                f"{_QUICK.hidden_channels}, {_QUICK.training.steps} steps; "
                                "explicit flags still override them.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where logs/, table.md and "
                                  "bits_per_dim.png go; default --workdir.")
_WORKDIR = common_flags.define_workdir_flag(
    _DEFAULTS.training.workdir, "Root of the runs' training workdirs (checkpoints), one per "
    "run.")

flags.register_validator("output_dir", lambda v: v is None or bool(v),
                         "--output_dir must not be empty.")
# So that --help lists the shared flags too.
flags.adopt_module_key_flags(common_flags)


def recorded_settings(settings):
  """The settings as every run's log records them: all but the training options that are
  not flags of the ablation (a rerun reuses a log only if they are the same)."""
  shared = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if f.name not in ("training",) + _VARIANT_FIELDS}
  return {**shared, **{name: getattr(settings.training, name) for name in _TRAINING}}


# They choose which runs there are, not how one runs, so a log is reused whatever they say.
_VARIANT_FIELDS = ("permutations", "couplings", "coupling_scales")


def run_name(variant, seed):
  scale = "" if variant.scale == DEFAULT_SCALE else f"_{variant.scale}"
  return f"{variant.permutation}_{variant.coupling}{scale}_seed{seed}"


def run_ablation(settings, output_dir):
  """Trains every (variant, seed) not already logged; returns the logs in run order.

  Seeds are the outer loop, so a cut-short ablation has whole seeds of all variants.
  """
  logs = []
  for seed in range(settings.seeds):
    data = data_lib.load(settings.dataset, settings.levels, seed, settings.heldout_fraction,
                         settings.data_dir)
    for variant in settings.variants():
      logs.append(_logged_run(settings, data, variant, seed, output_dir))
      write_summary(settings, logs, output_dir)
  return logs


def _logged_run(settings, data, variant, seed, output_dir):
  name = run_name(variant, seed)
  path = os.path.join(output_dir, LOGS_DIR, name + ".json")
  if os.path.exists(path):
    log = read_log(path)
    if log["settings"] != recorded_settings(settings):
      raise InputError(f"{path} was written with other settings ({log['settings']}); use "
                       "another --output_dir or delete it.")
    logging.info("Reusing %s: %.4f bits/dim.", path, log["final_heldout_bits_per_dim"])
    return log
  log = train_one(settings, data, variant, seed)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(log, f, indent=1)
  return log


def train_one(settings, data, variant, seed):
  """Trains one variant from scratch in its workdir; returns its log (a JSON-able dict)."""
  # A workdir without a log is left from an interrupted run, whose curve before the
  # interruption is lost: start it again rather than resume half a curve.
  name = run_name(variant, seed)
  options = settings.options(name, seed)
  shutil.rmtree(options.workdir, ignore_errors=True)
  config = settings.config(data.image_shape, variant)
  results = loop.run(config, data, options)
  logging.info("%s: %.4f bits/dim in %.0f s.", name,
               results["heldout_bits_per_dim"], results["seconds"])
  return {"permutation": variant.permutation, "coupling": variant.coupling,
          "coupling_scale": variant.scale, "seed": seed,
          "settings": recorded_settings(settings),
          "config": json.loads(config.to_json()), "dataset": data.name,
          "train_images": data.num_train, "heldout_images": data.num_heldout,
          "eval_history": results["eval_history"],
          "final_heldout_bits_per_dim": results["heldout_bits_per_dim"],
          "final_heldout_bits_per_dim_stderr": results["heldout_bits_per_dim_stderr"],
          "likelihood_draws": results["likelihood_draws"],
          "skipped_steps": results["skipped_steps"], "restores": results["restores"],
          "seconds": results["seconds"]}


def read_log(path):
  with open(path) as f:
    return json.load(f)


def variant_of(log):
  """The `Variant` of a run's log (logs written before scales were compared: "sigmoid")."""
  return Variant(log["permutation"], log["coupling"], log.get("coupling_scale", DEFAULT_SCALE))


def by_variant(logs):
  """{Variant: [log, ...] sorted by seed}, in the order the variants first ran."""
  groups = {}
  for log in sorted(logs, key=lambda g: g["seed"]):
    groups.setdefault(variant_of(log), []).append(log)
  return groups


def final_statistics(runs):
  """(mean, sample standard deviation or None for one run) of the runs' final bits/dim."""
  values = np.array([g["final_heldout_bits_per_dim"] for g in runs])
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def write_summary(settings, logs, output_dir):
  """Writes table.md and bits_per_dim.png for `logs`; returns their paths."""
  groups = by_variant(logs)
  table = os.path.join(output_dir, TABLE_FILE)
  with open(table, "w") as f:
    f.write(table_markdown(settings, groups))
  figure = os.path.join(output_dir, PLOT_FILE)
  plot(groups, figure)
  return table, figure


def table_markdown(settings, groups):
  """The Markdown table of final held-out bits/dim, then the orderings it implies."""
  training = settings.training
  lines = [f"Final held-out bits/dim (K={training.likelihood_draws} dequantisation bound on "
           f"the discrete likelihood; lower is better) after {training.steps} "
           f"steps of batch {training.batch_size} on {settings.dataset}; L={settings.levels}, "
           f"K={settings.steps_per_level}, width {settings.hidden_channels}, "
           f"{settings.n_bits} bits.", "",
           "| permutation | coupling | scale | mean | std | per seed | seconds/run |",
           "|---|---|---|---|---|---|---|"]
  for variant, runs in groups.items():
    mean, std = final_statistics(runs)
    seeds = ", ".join(f"{g['seed']}: {g['final_heldout_bits_per_dim']:.4f}" for g in runs)
    seconds = np.mean([g["seconds"] for g in runs])
    scale = variant.scale if variant.coupling == "affine" else "-"
    lines.append(f"| {variant.permutation} | {variant.coupling} | {scale} | {mean:.4f} | "
                 f"{'n/a' if std is None else f'{std:.4f}'} | {seeds} | {seconds:.0f} |")
  lines.append("")
  lines.extend(ordering_lines(groups))
  return "\n".join(lines) + "\n"


def ordering_lines(groups):
  """The orders by mean, and per seed which pairs hold: of the permutations per coupling (and
  scale), and of the scales per permutation of affine coupling."""
  lines = []
  for coupling, scale in dict.fromkeys((v.coupling, v.scale) for v in groups):
    present = [p for p in PERMUTATIONS if Variant(p, coupling, scale) in groups]
    if len(present) < 2:
      continue
    runs = {p: groups[Variant(p, coupling, scale)] for p in present}
    name = coupling if scale == DEFAULT_SCALE else f"{coupling}, {scale}"
    lines.extend(_order_lines(name, runs, (("shuffle", "reverse"), ("lu", "shuffle"),
                                           ("lu", "reverse"))))
  for permutation in PERMUTATIONS:
    runs = {v.scale: r for v, r in groups.items()
            if v.permutation == permutation and v.coupling == "affine"}
    if len(runs) < 2:
      continue
    best = min(runs, key=lambda s: final_statistics(runs[s])[0])
    lines.extend(_order_lines(f"{permutation}, affine scales", runs,
                              [(best, other) for other in runs if other != best]))
  return lines


def _order_lines(name, runs, pairs):
  means = {key: final_statistics(r)[0] for key, r in runs.items()}
  order = " < ".join(f"{key} {means[key]:.4f}" for key in sorted(runs, key=means.get))
  lines = [f"- {name}: by mean, {order}."]
  for better, worse in pairs:
    if better in runs and worse in runs:
      wins, total = _paired_wins(runs[better], runs[worse])
      lines.append(f"  - {better} below {worse} in {wins} of {total} seeds.")
  return lines


def _paired_wins(better_runs, worse_runs):
  worse = {g["seed"]: g["final_heldout_bits_per_dim"] for g in worse_runs}
  pairs = [(g["final_heldout_bits_per_dim"], worse[g["seed"]]) for g in better_runs
           if g["seed"] in worse]
  return sum(b < w for b, w in pairs), len(pairs)


_COLOURS = {"reverse": "tab:red", "shuffle": "tab:orange", "lu": "tab:blue",
            "sigmoid": "tab:blue", "sigmoid_floor": "tab:green", "tanh_bounded": "tab:purple"}
_LINES = {"additive": "-", "affine": "--"}


def plot(groups, path):
  """Held-out bits/dim vs step: mean over seeds, min..max band; full run and last half.

  Colour tells the permutations apart, or the scales when only one permutation ran."""
  by_scale = len({v.permutation for v in groups}) == 1
  figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
  for variant, runs in groups.items():
    steps = np.array([s for s, _ in runs[0]["eval_history"]], dtype=float)
    curves = np.array([[b for _, b in g["eval_history"]] for g in runs], dtype=float)
    colour = _COLOURS[variant.scale if by_scale else variant.permutation]
    for axis in axes:
      axis.plot(steps, curves.mean(axis=0), _LINES[variant.coupling], color=colour,
                label=f"{variant.label()} ({len(runs)} seeds)")
      axis.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=colour,
                        alpha=0.15)
  _zoom_to_last_half(axes[1], groups)
  axes[0].set_title("held-out bits/dim (mean, min..max over seeds)")
  axes[1].set_title("second half of training")
  for axis in axes:
    axis.set_xlabel("step")
    axis.set_ylabel("bits/dim")
    axis.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  figure.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  figure.savefig(path)
  plt.close(figure)


def _zoom_to_last_half(axis, groups):
  last = max(s for runs in groups.values() for g in runs for s, _ in g["eval_history"])
  values = [b for runs in groups.values() for g in runs for s, b in g["eval_history"]
            if s >= last / 2]
  margin = 0.05 * (max(values) - min(values)) + 1e-3
  axis.set_xlim(last / 2, last)
  axis.set_ylim(min(values) - margin, max(values) + margin)


def settings_from_flags(batch_parts=None):
  """The Settings of the flags, batches cut into `batch_parts` parts; --quick changes the
  defaults of flags not given."""
  base = _QUICK if _QUICK_FLAG.value else _DEFAULTS
  training = _given(_TRAINING)
  training.update(workdir=_WORKDIR.value, batch_parts=batch_parts)
  variants = {name: tuple(values) for name, values in _given(_VARIANTS).items()}
  return dataclasses.replace(base, training=dataclasses.replace(base.training, **training),
                             **_given({**_DATA, **_MODEL, "seeds": _SEEDS}), **variants)


def _given(holders):
  return {name: h.value for name, h in holders.items() if h.present}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  settings = settings_from_flags(common_flags.apply_thread_flags(_THREADS))
  output_dir = _OUTPUT_DIR.value or _WORKDIR.value
  os.makedirs(output_dir, exist_ok=True)
  try:
    logs = run_ablation(settings, output_dir)
  except InputError as error:
    sys.exit(f"train.ablation: error: {error}")
  print(table_markdown(settings, by_variant(logs)))
  print(f"Wrote {len(logs)} run logs, {TABLE_FILE} and {PLOT_FILE} under {output_dir}.")


if __name__ == "__main__":
  app.run(main)
