"""Exports a training workdir's model for serving: `python -m serving.export`.

  python -m serving.export --workdir=<training workdir> --export_base=exports --model_name=glow

writes `<export_base>/<model_name>/<version>/` (the next free integer version unless
`--version` is given) with the weights of the newest checkpoint that reads back completely
(`glow_tfp.workdir.newest_good_checkpoint`; the EMA weights when training kept them); the
signatures are described in `serving/saved_model.py`. The reference statistics of
the `score` signature come from the held-out images training wrote to
`<workdir>/heldout_reference.npz`, or from `--reference_images`. The served log-likelihood
is estimated with `--likelihood_draws` fixed uniform dequantisation draws, seeded by
`--likelihood_seed` and stored in the export (`glow_tfp.likelihood`). `score`'s `is_ood`
flags an image whose ood_score is above a threshold that about `--ood_false_positive_rate`
of in-distribution images exceed: the reference images are split in alternate halves, the
first fits the statistics and the threshold, the second measures the threshold's
false-positive rate, stored and served as `ood_false_positive_rate` (`glow_tfp.ood`).
Each request's batch is cut into `--batch_parts` parts that run side by side, by default
one per CPU core (`glow_tfp.execution`), which serves fastest with the server's default
threads (one per op, one op per core).
"""

import sys

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from glow_tfp import likelihood  # noqa: E402
from glow_tfp import ood  # noqa: E402
from glow_tfp import workdir as workdir_lib  # noqa: E402
from . import common_flags  # noqa: E402
from . import saved_model  # noqa: E402
from . import signatures  # noqa: E402
# The library entry points, importable from here too; serving.saved_model has them without
# this module's flags.
from .saved_model import export_saved_model  # noqa: E402,F401
from .saved_model import export_version  # noqa: E402

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Training workdir: config.json and checkpoints/.")
_EXPORT_BASE = flags.DEFINE_string(
    "export_base", None, "Directory of served models; the export goes to "
    "<export_base>/<model_name>/<version>/.")
_MODEL_NAME = common_flags.define_model_name_flag()
_VERSION = flags.DEFINE_integer(
    "version", None, "Version number to write; default: the next free one.", lower_bound=1)
_USE_EMA = flags.DEFINE_bool(
    "use_ema", True, "Export the EMA weights when the checkpoint has them.")
_REFERENCE_IMAGES = flags.DEFINE_string(
    "reference_images", None, "An .npz of held-out images (uint8 `images` [N, H, W, C], "
    "int32 `labels` [N]) for the `score` signature's reference statistics; default "
    f"<workdir>/{workdir_lib.REFERENCE_FILE}, which training writes.")
_LIKELIHOOD_DRAWS = flags.DEFINE_integer(
    "likelihood_draws", 1, "K, the fixed uniform dequantisation draws per image of the "
    "served log-likelihood (a lower bound on log P in expectation that tightens as K "
    "grows; each request costs K forward passes).", lower_bound=1)
_LIKELIHOOD_SEED = flags.DEFINE_integer(
    "likelihood_seed", 0, "Seed of the fixed dequantisation draws.", lower_bound=0)
_OOD_FALSE_POSITIVE_RATE = flags.DEFINE_float(
    "ood_false_positive_rate", ood.DEFAULT_FALSE_POSITIVE_RATE, "F: the `score` signature's "
    "is_ood flags images whose ood_score is above the threshold that about a fraction F of "
    "in-distribution images exceed; in (0, 0.5].")
flags.register_validator(
    "ood_false_positive_rate", ood.is_valid_false_positive_rate,
    message=f"--ood_false_positive_rate must be {ood.FALSE_POSITIVE_RATE_RULE}, the "
    "fraction of in-distribution images is_ood may flag.")

_TEMPLATES = flags.DEFINE_bool(
    "templates", True, "Fit style templates of the top latent on the training images "
    f"training wrote to <workdir>/{workdir_lib.TRAIN_REFERENCE_FILE}: `score` then also "
    "serves template_inconsistency, and ood_score uses it (docs/ood.md). Without that file "
    "the export goes on without them and says so.")

_BACKGROUND_WORKDIR = flags.DEFINE_string(
    "background_workdir", None, "Workdir of a background model (trained with `python -m "
    "train --perturb_fraction=...` on the same data): `score` then also serves the "
    "likelihood ratio, and ood_score uses it (docs/ood.md).")

_BATCH_PARTS = flags.DEFINE_integer(
    "batch_parts", None, "Parts each request's batch is cut into, run side by side "
    "(glow_tfp.execution); unset: one per CPU core of this machine without a GPU, else 1. "
    "Give the serving machine's cores when it is another.", lower_bound=1)

flags.mark_flags_as_required(["workdir", "export_base"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  reference_file = _REFERENCE_IMAGES.value or workdir_lib.reference_path(_WORKDIR.value)
  try:
    glow, checkpoint = workdir_lib.restore_model(_WORKDIR.value, use_ema=_USE_EMA.value)
    images, _ = workdir_lib.load_reference_images(reference_file)
    background = None
    if _BACKGROUND_WORKDIR.value:
      background = workdir_lib.restore_model(_BACKGROUND_WORKDIR.value)[0]
  except FileNotFoundError as error:
    sys.exit(f"serving.export: error: {error}")
  draws = likelihood.fixed_draws(_LIKELIHOOD_DRAWS.value, glow.config.image_shape,
                                 _LIKELIHOOD_SEED.value)
  templates, templates_note = _templates(glow, draws)
  try:
    # Without labels, as `score` serves them (a class-conditional model: its class mixture).
    reference = ood.reference_statistics(glow, images, None, draws=draws,
                                         false_positive_rate=_OOD_FALSE_POSITIVE_RATE.value,
                                         background=background, templates=templates)
    batch_parts = execution.resolve_batch_parts(_BATCH_PARTS.value)
    path = export_version(glow, _EXPORT_BASE.value, _MODEL_NAME.value, _VERSION.value,
                          reference, draws, batch_parts, background, templates)
  except ValueError as error:
    sys.exit(f"serving.export: error: {error}")
  names = [name for name in saved_model.SIGNATURES if not name.endswith("_encoded")
           or glow.config.image_shape[-1] in saved_model.ENCODED_CHANNELS]
  print(f"Exported {checkpoint} to {path} (signatures: {', '.join(names)}; "
        f"{signatures.DEFAULT_SIGNATURE} = log_prob; log-likelihood from "
        f"{_LIKELIHOOD_DRAWS.value} fixed dequantisation draws; score's reference: {len(images)} "
        f"held-out images of {reference_file}; {templates_note}; batches in {batch_parts} "
        "parts).")
  print(describe_decision(reference, len(images), _OOD_FALSE_POSITIVE_RATE.value))


def _templates(glow, draws):
  """(`glow_tfp.ood.Templates` or None, a note on them for the export's summary line)."""
  if not _TEMPLATES.value:
    return None, "no style templates (--notemplates)"
  path = workdir_lib.train_reference_path(_WORKDIR.value)
  training = workdir_lib.load_training_images(_WORKDIR.value)
  if training is None:
    return None, (f"no style templates: no {path} (training writes it when it starts or "
                  "resumes)")
  images, labels = training
  templates = ood.fit_templates(glow, images, labels, draws=draws)
  return templates, (f"{len(templates.means)} style templates from {len(images)} training "
                     f"images of {path}")


def describe_decision(reference, count, rate):
  """One line on the OOD threshold at false-positive `rate` of a `reference` of `count`
  images: the rate measured on the check half, and a warning where too few images fit it
  for that rate (`glow_tfp.ood.threshold_rank`)."""
  fit_count, check_count = (len(rows) for rows in ood.split(count))
  line = (f"is_ood: ood_score > {float(reference.ood_threshold):.4g}, the threshold at "
          f"false-positive rate {rate:g} from {fit_count} fit images; measured on the "
          f"{check_count} other held-out images: "
          f"{float(reference.heldout_false_positive_rate):.4f}.")
  if fit_count < ood.min_fit_count(rate):
    line += (f" Warning: under {ood.min_fit_count(rate)} fit images the threshold is their "
             f"largest score, whose expected false-positive rate is 1/{fit_count + 1} > "
             f"{rate:g}; give more reference images.")
  return line


def run():
  """The console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
