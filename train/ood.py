"""How well the scores of `glow_tfp.ood` tell other images from the training data:
`python -m train.ood --workdir=DIR --ood=SOURCE[,SOURCE...]`.

The held-out images of --dataset (split by --seed and --heldout_fraction: pass the training
run's values) are halved: the first half gives the reference statistics and the is_ood
threshold at --ood_false_positive_rate (`glow_tfp.ood.reference_statistics`), the second
half is the in-distribution side of every comparison, so no image is both. Sources: the generated
ones of `train.ood_sources` (noise and simple images, near-out-of-distribution handwriting,
and digits under small geometric changes, which are reported but are not
out-of-distribution), or any --dataset spec ('tfds:NAME[:SPLIT]', 'folder:PATH') of images
of the model's shape.
Images are scored without labels, as the served `score` scores them: a class-conditional
model under its mixture of equally likely classes. Its AUROCs also include class_doubt,
1 - max_y P(y | x), from P(x | y) of every class (`glow_tfp.ood.class_doubt`).
Writes under --output_dir (default <workdir>/ood): ood.md (AUROC of each score per source
and the 95% interval of ood_score's (`glow_tfp.ood.auroc_interval`);
the fraction of each source that is_ood flags, its detection rate, and of the
in-distribution side, its false-positive rate; decode(encode(x)) of each source: max error,
exact as uint8, non-finite),
results.json, and per source a histogram PNG of bits/dim, the complexity-corrected score and
ood_score, in-distribution against the source.
"""

import json
import os
import sys

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # Files only; no display on a training machine.
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from glow_tfp import likelihood  # noqa: E402
from glow_tfp import ood  # noqa: E402
from glow_tfp import reconstruction  # noqa: E402
from glow_tfp import workdir as workdir_lib  # noqa: E402
from . import common_flags  # noqa: E402
from .data import datasets as data_lib  # noqa: E402
from .errors import InputError  # noqa: E402
from .ood_sources import GENERATED, generate, group  # noqa: E402,F401  (generate: for callers)

AUROC_SCORES = ("bits_per_dim", "png_bits_per_dim", "complexity_corrected", "typicality",
                "level_distance", "ood_score")
HISTOGRAM_SCORES = ("bits_per_dim", "complexity_corrected", "ood_score")
# Of a class-conditional model, also reported: 1 - max_y P(y | x) (`ood.class_doubt`), the
# class posterior from P(x | y) of every class (one pass through the flow). Measured here,
# not served.
CLASS_DOUBT = "class_doubt"
# The confidence level of each AUROC's interval (`glow_tfp.ood.auroc_interval`): how far
# another draw of the held-out images and of the source could move it.
AUROC_INTERVAL_LEVEL = 0.95

_WORKDIR = common_flags.define_workdir_flag("workdir", "Training workdir (config.json and "
                                           "checkpoints/).")
_OOD = flags.DEFINE_list("ood", list(GENERATED), "Out-of-distribution sources: "
                         f"{', '.join(GENERATED)}, or a --dataset spec.")
_DATA = common_flags.define_data_flags()
_SEED = common_flags.define_seed_flag("The training run's --seed (held-out split); also "
                                      "seeds the generated sources.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Default <workdir>/ood.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 250, "Images per model call.",
                                   lower_bound=1)
_BACKGROUND_WORKDIR = flags.DEFINE_string(
    "background_workdir", None, "Workdir of a background model (`python -m train "
    "--perturb_fraction=...`): adds the likelihood ratio, which ood_score then uses, as "
    "serving.export's flag of the same name.")
_OOD_FALSE_POSITIVE_RATE = flags.DEFINE_float(
    "ood_false_positive_rate", ood.DEFAULT_FALSE_POSITIVE_RATE, "F of the is_ood threshold, "
    "as serving.export's flag: about a fraction F of in-distribution images score above it.")
flags.register_validator(
    "ood_false_positive_rate", ood.is_valid_false_positive_rate,
    message=f"--ood_false_positive_rate must be {ood.FALSE_POSITIVE_RATE_RULE}.")
_LIKELIHOOD_DRAWS = flags.DEFINE_integer(
    "likelihood_draws", 1, "K, the fixed dequantisation draws per image of every score, as "
    "serving.export's flag of the same name (seed 0, its default --likelihood_seed): the "
    "scores an export with K draws serves, at K model passes per image.", lower_bound=1)


def _load(spec, levels):
  """Dataset `spec` split as the training run split it (--seed, --heldout_fraction)."""
  return data_lib.load(spec, levels, _SEED.value, _DATA["heldout_fraction"].value,
                       _DATA["data_dir"].value)


def source_images(name, heldout, levels, rng, labels=None):
  """The images of source `name`: generated (`labels`: those of `heldout`), or the first of a
  dataset spec."""
  if name in GENERATED:
    return generate(name, heldout, rng, labels)
  data = _load(name, levels)
  images = np.concatenate([data.heldout_images, data.train_images])[:len(heldout)]
  if images.shape[1:] != heldout.shape[1:]:
    raise InputError(f"--ood source {name} has images {images.shape[1:]}; the model takes "
                     f"{heldout.shape[1:]}.")
  return images


def evaluate(model, data, sources, batch_size, seed,
             false_positive_rate=ood.DEFAULT_FALSE_POSITIVE_RATE, background=None,
             likelihood_draws=1, templates=True):
  """({source: {"group": name, "auroc": {score: value}, "auroc_interval": {score: (low,
  high)}, "flagged": fraction is_ood, "reconstruction": scalars}} (the in-distribution side:
  "flagged" and "reconstruction"; the intervals at `AUROC_INTERVAL_LEVEL`), the
  raw scores, and the threshold: its false-positive rate, value and rate on the reference's
  check half). `background`: a background `Glow` for the likelihood ratio, or None;
  `likelihood_draws`: K, the fixed draws of seed 0 of every score (`likelihood.fixed_draws`),
  those of an export with K draws; `templates`: whether ood_score has template_inconsistency,
  with templates fitted on the training images that training keeps for an export
  (`glow_tfp.workdir.MAX_TRAIN_REFERENCE_IMAGES`)."""
  half = len(data.heldout_images) // 2
  draws = likelihood.fixed_draws(likelihood_draws, model.config.image_shape, 0)
  if templates:
    templates = ood.fit_templates(
        model, *data.train_arrays(workdir_lib.MAX_TRAIN_REFERENCE_IMAGES), batch_size, draws)
  else:
    templates = None
  # Without labels, as the served `score` (a class-conditional model: its class mixture).
  reference = ood.reference_statistics(model, data.heldout_images[:half], None, batch_size,
                                       draws, false_positive_rate, background, templates)
  inliers = data.heldout_images[half:]
  labels = data.heldout_labels[half:]
  def score(images):
    scores = ood.score_images(model, images, None, reference, batch_size, draws, background,
                              templates)
    if model.config.num_classes:
      scores[CLASS_DOUBT] = ood.class_doubt(ood.class_log_likelihoods(model, images,
                                                                     batch_size, draws))
    return scores

  inlier_scores = score(inliers)
  names = auroc_scores(background is not None, model.config.num_classes > 0,
                       templates is not None)
  rng = np.random.default_rng(seed)
  results, raw = {}, {"in-distribution": inlier_scores}
  for name in sources:
    images = source_images(name, inliers, model.config.levels, rng, labels)
    raw[name] = score(images)
    check = reconstruction.reconstruct(model, images, labels, batch_size)
    results[name] = {
        "group": group(name),
        "auroc": {s: ood.auroc(inlier_scores[s], raw[name][s]) for s in names},
        "auroc_interval": {s: ood.auroc_interval(inlier_scores[s], raw[name][s],
                                                 AUROC_INTERVAL_LEVEL) for s in names},
        "flagged": float(np.mean(raw[name]["is_ood"])),
        "reconstruction": check.scalars()}
  check = reconstruction.reconstruct(model, inliers, labels, batch_size)
  results["in-distribution"] = {"flagged": float(np.mean(inlier_scores["is_ood"])),
                                "reconstruction": check.scalars()}
  threshold = {"false_positive_rate": false_positive_rate,
               "ood_threshold": float(reference.ood_threshold),
               "reference_false_positive_rate": float(reference.heldout_false_positive_rate)}
  return results, raw, threshold


def auroc_scores(background, conditional=False, templates=False):
  """The scores whose AUROC is reported: `AUROC_SCORES`, before ood_score the likelihood
  ratio with a background model, class_inconsistency of a class-conditional one and
  template_inconsistency with templates, and `CLASS_DOUBT` last for a class-conditional
  model."""
  tests = ood.optional_tests(background, conditional, templates)
  return (AUROC_SCORES[:-1] + tests + AUROC_SCORES[-1:]
          + ((CLASS_DOUBT,) if conditional else ()))


def table_markdown(results, sources, count, threshold):
  names = list(results[sources[0]]["auroc"]) if sources else list(AUROC_SCORES)
  lines = [f"AUROC against {count} held-out images (1.0: every source image scores above "
           "every held-out one; 0.5: chance; below 0.5: the score ranks the source as more "
           "typical). Perturbed sources are digits under small geometric changes: not "
           "out-of-distribution, an AUROC near 0.5 is the wanted answer. Last column: the "
           f"{100 * AUROC_INTERVAL_LEVEL:g}% interval of ood_score's AUROC (DeLong), how far "
           "other draws of the held-out images and the source could move it.", "",
           "| source | group | " + " | ".join(names) + " | ood_score interval |",
           "|---" * (len(names) + 3) + "|"]
  for name in sources:
    values = results[name]["auroc"]
    low, high = results[name]["auroc_interval"]["ood_score"]
    lines.append(f"| {name} | {group(name)} | " +
                 " | ".join(f"{values[s]:.3f}" for s in names) + f" | {low:.3f}-{high:.3f} |")
  lines += ["", f"Flagged by is_ood (ood_score > {threshold['ood_threshold']:.4g}, the "
            f"threshold at false-positive rate {threshold['false_positive_rate']:g}; its "
            f"rate on the reference's check half: "
            f"{100 * threshold['reference_false_positive_rate']:.1f}%): the detection rate of "
            "each source, the false-positive rate of the in-distribution side.", "",
            "| source | flagged |", "|---|---|"]
  for name in ["in-distribution"] + list(sources):
    lines.append(f"| {name} | {100 * results[name]['flagged']:.1f}% |")
  lines += ["", "decode(encode(x)) per source: largest model-space error over the finite "
            "reconstructions, images exact as uint8, images with NaN or Inf.", "",
            "| source | max error | exact as uint8 | non-finite |", "|---|---|---|---|"]
  for name in ["in-distribution"] + list(sources):
    r = results[name]["reconstruction"]
    lines.append(f"| {name} | {r['reconstruction_max_error']:.3g} | "
                 f"{100 * r['reconstruction_exact_fraction']:.1f}% | "
                 f"{int(r['reconstruction_non_finite'])} |")
  return "\n".join(lines) + "\n"


def histogram(raw, name, path):
  """In-distribution vs `name`, one panel per score of `HISTOGRAM_SCORES`."""
  figure, axes = plt.subplots(1, len(HISTOGRAM_SCORES), figsize=(12, 3.2), dpi=80)
  for axis, score in zip(axes, HISTOGRAM_SCORES):
    inlier, outlier = raw["in-distribution"][score], raw[name][score]
    values = np.concatenate([inlier, outlier])
    values = values[np.isfinite(values)]
    bins = np.linspace(values.min(), values.max() + 1e-9, 40)
    axis.hist(inlier[np.isfinite(inlier)], bins, alpha=0.6, label="held-out")
    axis.hist(outlier[np.isfinite(outlier)], bins, alpha=0.6, label=name)
    axis.set_title(score)
  axes[0].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


def _file_name(source):
  return "".join(c if c.isalnum() else "_" for c in source)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  output_dir = _OUTPUT_DIR.value or os.path.join(_WORKDIR.value, "ood")
  try:
    model, checkpoint = workdir_lib.restore_model(_WORKDIR.value)
    background = None
    if _BACKGROUND_WORKDIR.value:
      background = workdir_lib.restore_model(_BACKGROUND_WORKDIR.value)[0]
      try:
        ood.check_background(model, background)
      except ValueError as problem:
        raise InputError(problem) from problem
    dataset = _DATA["dataset"].value
    data = _load(dataset, model.config.levels)
    if data.image_shape != tuple(model.config.image_shape):
      raise InputError(f"The model takes images {model.config.image_shape}; {dataset}"
                       f" has {data.image_shape}: pass the --dataset it was trained on.")
    results, raw, threshold = evaluate(model, data, _OOD.value, _BATCH_SIZE.value,
                                       _SEED.value, _OOD_FALSE_POSITIVE_RATE.value,
                                       background, _LIKELIHOOD_DRAWS.value)
  except (InputError, FileNotFoundError) as problem:
    sys.exit(f"train.ood: error: {problem}")
  os.makedirs(output_dir, exist_ok=True)
  for name in _OOD.value:
    histogram(raw, name, os.path.join(output_dir, f"histogram_{_file_name(name)}.png"))
  table = table_markdown(results, _OOD.value, len(raw["in-distribution"]["ood_score"]),
                         threshold)
  with open(os.path.join(output_dir, "ood.md"), "w") as f:
    f.write(table)
  with open(os.path.join(output_dir, "results.json"), "w") as f:
    json.dump({"checkpoint": checkpoint, "background_workdir": _BACKGROUND_WORKDIR.value,
               "likelihood_draws": _LIKELIHOOD_DRAWS.value,
               "threshold": threshold, "sources": results}, f, indent=1)
  print(f"model from {checkpoint}\n{table}wrote {output_dir}")


if __name__ == "__main__":
  app.run(main)
