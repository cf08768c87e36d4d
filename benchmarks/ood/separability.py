"""How far a discriminative model tells each source of `python -m train.ood` from held-out
digits: the peers that put ood_score's AUROC in proportion.

  python -m benchmarks.ood.separability [--seed=S] [--ood=SOURCE,...] [--peers=PEER,...]

The held-out split and the generated sources are `python -m train.ood`'s: the same --seed,
--heldout_fraction, --levels and --ood list draw the same images, so each AUROC here stands
beside that run's. Each peer is a small convolutional network
(`benchmarks.ood.discriminators.network`) trained to tell the training images (label 0)
from other images (label 1), scored by its logit on the second half of the held-out images
and on each source:

  supervised        one network per source, trained against that source generated afresh
                    from the training images: a detector that knows how the source is made,
                    an upper reference (it may read the traces of how the source is made,
                    such as the seam of two half digits, not only their meaning;
                    sklearn_digits has 1,797 images, so the two draws share them);
  outlier_exposure  one network for every source, trained against `glow_tfp.negatives`
                    (noise, constant images, blobs, scrambled and tiled digits), never a
                    source: a detector taught with generic junk (Hendrycks et al., ICLR
                    2019), which a source beats when it is junk of a new kind;
  near_miss_exposure  outlier exposure with near misses: for each near-OOD source one
                    network trained against the other near-OOD sources (made from the
                    training images) and the generic negatives, never that source: whether
                    knowing some near misses teaches another (the other groups share one
                    network trained against every near-OOD source).

No flow is involved: the figures hold for the data and the source, whatever the model.
Writes benchmarks/results/<--name>.json and .md.
"""

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks.common import report  # noqa: E402
from benchmarks.ood import discriminators  # noqa: E402
from train import common_flags  # noqa: E402
from train.data import datasets as data_lib  # noqa: E402
from train.ood_sources import GENERATED  # noqa: E402

_SEED = common_flags.define_seed_flag("The training run's --seed (held-out split); also "
                                      "seeds the sources, as train.ood's, and the networks.")
_HELDOUT_FRACTION = flags.DEFINE_float("heldout_fraction", 0.1, "The training run's "
                                       "--heldout_fraction.", lower_bound=0.0, upper_bound=1.0)
_LEVELS = flags.DEFINE_integer("levels", 2, "The model's levels, which pad the images as its "
                               "training did.", lower_bound=1)
_OOD = flags.DEFINE_list("ood", list(GENERATED), f"Generated sources: {', '.join(GENERATED)}.")
flags.register_validator("ood", lambda names: bool(names) and set(names) <= set(GENERATED),
                         message=f"--ood must name sources of {', '.join(GENERATED)}.")
_PEERS = flags.DEFINE_list("peers", list(discriminators.PEERS),
                           f"Peers to train: {', '.join(discriminators.PEERS)}.")
flags.register_validator(
    "peers", lambda names: bool(names) and set(names) <= set(discriminators.PEERS),
    message=f"--peers must name peers of {', '.join(discriminators.PEERS)}.")
_EPOCHS = flags.DEFINE_integer("epochs", 5, "Training epochs of each network.", lower_bound=1)
_OUT_DIR = flags.DEFINE_string("out_dir", "benchmarks/results", "Where results go.")
_NAME = flags.DEFINE_string("name", "ood_separability", "Base name of the result files.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  data = data_lib.load("mnist", _LEVELS.value, _SEED.value, _HELDOUT_FRACTION.value)
  results = discriminators.measure(data, _OOD.value, _EPOCHS.value, _SEED.value,
                                   _PEERS.value)
  env = report.environment()
  inliers = len(data.heldout_images) - len(data.heldout_images) // 2
  lines = discriminators.markdown(results, env, inliers)
  report.publish({"environment": env, "auroc": results}, lines, _OUT_DIR.value, _NAME.value)


if __name__ == "__main__":
  app.run(main)
