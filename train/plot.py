"""Plots the bits/dim curve of a finished run: `python -m train.plot
--results_json=workdir/results.json`, which writes workdir/bits_per_dim.png.

Reads the results.json that `python -m train` writes in its workdir and draws the training
bits/dim (a moving average over `--smoothing_steps` steps), the held-out bits/dim at each
evaluation and the final held-out bits/dim with uniform dequantisation noise. (The flag
names differ from the training CLI's so that both modules can be imported together.)
"""

import json
import os

from absl import app
from absl import flags
import matplotlib

matplotlib.use("Agg")  # Files only; no display on a training machine.
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from .engine import summaries  # noqa: E402

CURVE_FILE = "bits_per_dim.png"

_RESULTS_JSON = flags.DEFINE_string("results_json",
                                    os.path.join("workdir", summaries.RESULTS_FILE),
                                    "results.json of a finished training run.")
_CURVE_PNG = flags.DEFINE_string("curve_png", None, "PNG file to write; default "
                                 f"{CURVE_FILE} next to --results_json.")
_SMOOTHING_STEPS = flags.DEFINE_integer("smoothing_steps", 50, "Moving-average window "
                                        "(steps) of the training curve.", lower_bound=1)


def load_results(path):
  if not os.path.exists(path):
    raise FileNotFoundError(f"No results file {path!r}: has training finished there?")
  with open(path) as f:
    return json.load(f)


def plot(results, output, smoothing):
  """Writes the curve of `results` (the dict of `train.engine.loop.run`) to the PNG `output`."""
  steps, bits = np.array(results["train_history"], dtype=float).T
  window = min(smoothing, len(bits))
  smoothed = np.convolve(bits, np.ones(window) / window, mode="valid")
  figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
  axes.plot(steps[window - 1:], smoothed, label=f"train (K=1 dequantisation bound, mean of {window})")
  eval_steps, eval_bits = np.array(results["eval_history"], dtype=float).T
  axes.plot(eval_steps, eval_bits, "o-",
            label=f"held-out (K={results['likelihood_draws']} dequantisation bound)")
  axes.set_xlabel("step")
  axes.set_ylabel("bits/dim")
  axes.set_ylim(top=min(float(np.max(smoothed)), 8.0))
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
  figure.savefig(output)
  plt.close(figure)


def curve_path(results_json, curve_png=None):
  """`curve_png`, or by default bits_per_dim.png in the directory of `results_json`."""
  return curve_png or os.path.join(os.path.dirname(results_json), CURVE_FILE)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  output = curve_path(_RESULTS_JSON.value, _CURVE_PNG.value)
  plot(load_results(_RESULTS_JSON.value), output, _SMOOTHING_STEPS.value)
  print(f"wrote {output}")


if __name__ == "__main__":
  app.run(main)
