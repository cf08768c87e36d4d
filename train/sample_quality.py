"""The sample quality of a training workdir's model (`glow_tfp.sample_quality`):
`python -m train.sample_quality --workdir=DIR [--temperatures=0.5,0.7,1.0]
[--num_samples=N] [--seed=S]`.

Restores the newest good checkpoint (its EMA weights when kept), splits --dataset as the
training run did (pass the run's --dataset, --heldout_fraction, --heldout_dataset,
--eval_examples and --seed), reads the run's classifier from the workdir or trains it, and
prints a Markdown table (one row per temperature and the held-out reference row); writes the
figures as JSON to --output (default <workdir>/sample_quality.json). With the run's seed,
temperatures and N, it gives the figures the run's results.json holds.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from glow_tfp import workdir as workdir_lib
from . import common_flags
from .data import datasets as data_lib
from .engine import quality_reports
from .errors import InputError

_WORKDIR = common_flags.define_workdir_flag("workdir", "Training workdir (config.json and "
                                           "checkpoints/).")
_DATA = common_flags.define_data_flags()
_HELDOUT = common_flags.define_heldout_flags()
_SEED = common_flags.define_seed_flag("The training run's --seed (held-out split and "
                                      "classifier); also seeds the samples.")
_TEMPERATURES = common_flags.define_temperatures_flag((0.5, 0.7, 1.0),
                                                      "Sampling temperatures.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 500, "Samples per temperature.",
                                    lower_bound=2)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 500, "Samples per model call.",
                                   lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "JSON file; default <workdir>/"
                              "sample_quality.json.")


def measure(workdir, data, temperatures, num_samples, seed, batch_size):
  """(figures as in results.json's `sample_quality` plus `checkpoint`, Markdown table) of
  the model of `workdir` on `data` (`train.data.load`)."""
  model, checkpoint = workdir_lib.restore_model(workdir)
  if data.image_shape != tuple(model.config.image_shape):
    raise InputError(f"The model takes images {model.config.image_shape}; {data.name} has "
                     f"{data.image_shape}: pass the --dataset it was trained on.")
  reason = quality_reports.unavailable_reason(data, num_samples)
  if reason:
    raise InputError(f"No sample quality: {reason}.")
  quality, reused = quality_reports.prepare(model, data, workdir, num_samples, seed,
                                            batch_size)
  scores = quality.scores(temperatures)
  return ({"checkpoint": checkpoint, **quality_reports.results(quality, scores, reused)},
          quality_reports.table(quality, scores))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  workdir = _WORKDIR.value
  try:
    config = workdir_lib.load_config(workdir)
    data = data_lib.load(_DATA["dataset"].value, config.levels, _SEED.value,
                         _DATA["heldout_fraction"].value, _DATA["data_dir"].value,
                         _HELDOUT["heldout_dataset"].value, _HELDOUT["eval_examples"].value)
    figures, table = measure(workdir, data, [float(t) for t in _TEMPERATURES.value],
                             _NUM_SAMPLES.value, _SEED.value, _BATCH_SIZE.value)
  except (InputError, FileNotFoundError) as problem:
    sys.exit(f"train.sample_quality: error: {problem}")
  output = _OUTPUT.value or os.path.join(workdir, "sample_quality.json")
  with open(output, "w") as f:
    json.dump(figures, f, indent=1)
  reuse = "read from the workdir" if figures["classifier_reused"] else "trained"
  print(f"model from {figures['checkpoint']}, classifier {reuse}; {_NUM_SAMPLES.value} "
        f"samples per temperature, seed {_SEED.value}\n{table}\nwrote {output}")


if __name__ == "__main__":
  app.run(main)
