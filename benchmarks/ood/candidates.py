"""AUROC of out-of-distribution scores that `glow_tfp.ood` does not serve, beside its
`ood_score`, on the sources of `python -m train.ood`:

  python -m benchmarks.ood.candidates --workdir=DIR [--background_workdir=DIR]

The flags, the held-out split and the generated sources are `python -m train.ood`'s (the
same --seed draws the same images, --likelihood_draws the same dequantisation draws): the
first half of the held-out images is the
reference, the second the in-distribution side of every AUROC. Candidates (higher = less
like the training data):

  ood_score              the served score: the sum of its standardised tests, typicality's
                         part above its held-out 80th percentile alone;
  without_typicality     the same sum without typicality;
  typicality_above_qN    the same sum with typicality's part above the fit half's N-th
                         percentile (ood_score's is the 80th);
  whole_typicality       the same sum with all of typicality's standardised value;
  tests_max              the largest of the same standardised tests;
  tests_and_complexity   ood_score + the standardised complexity_corrected;
  likelihood_ratio       with a background model: bits/dim minus its bits/dim, alone;
  class_inconsistency    of a class-conditional model: the served test alone;
  template_inconsistency the served test alone (style templates of the training images);
  without_templates      ood_score without template_inconsistency;
  latent_maps            the Mahalanobis distance of the latent code lengths per position:
                         at each position of each level's factored-out latent, its
                         -log density summed over channels (the first level's pooled 2x2;
                         a class-conditional top under the class posterior);
  class_log_likelihoods  the Mahalanobis distance of log P(x | y) over the classes y
                         (class-conditional models);
  classifier_features    the Mahalanobis distance of the features of the workdir's
                         sample-quality classifier (Lee et al., NeurIPS 2018, one mean).

Beside them, each source's legible fraction: the images that classifier reads as one digit
with probability >= 0.9 (`glow_tfp.sample_quality.LEGIBLE_PROBABILITY`), how many of a
source look like a digit to a discriminative model, and ood_score's AUROC on the rest of
the source: how well the served score does on the images that the classifier does not
read as a digit.

Each distance's mean and covariance are of the whole reference half, with a ridge of 1e-3 of
the covariance's mean variance. Writes benchmarks/results/<--name>.json and .md.
"""

import numpy as np

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks.common import report  # noqa: E402
from benchmarks.ood import scores  # noqa: E402
from glow_tfp import classifier as classifier_lib  # noqa: E402
from glow_tfp import likelihood  # noqa: E402
from glow_tfp import workdir as workdir_lib  # noqa: E402
from train import ood as train_ood  # noqa: E402  (its flags are this benchmark's)
from train.data import datasets as data_lib  # noqa: E402

FLAGS = flags.FLAGS
_OUT_DIR = flags.DEFINE_string("out_dir", "benchmarks/results", "Where results go.")
_NAME = flags.DEFINE_string("name", "ood_candidates", "Base name of the result files.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  model = workdir_lib.restore_model(FLAGS.workdir)[0]
  background = (workdir_lib.restore_model(FLAGS.background_workdir)[0]
                if FLAGS.background_workdir else None)
  data = data_lib.load(FLAGS.dataset, model.config.levels, FLAGS.seed,
                       FLAGS.heldout_fraction, FLAGS.data_dir)
  classifier = classifier_lib.load_or_fit(
      workdir_lib.classifier_path(FLAGS.workdir), data.train_images, data.train_labels,
      data.num_classes, FLAGS.seed, write=False)[0]
  half = len(data.heldout_images) // 2
  inliers, labels = data.heldout_images[half:], data.heldout_labels[half:]
  rng = np.random.default_rng(FLAGS.seed)
  sources = {name: train_ood.source_images(name, inliers, model.config.levels, rng, labels)
             for name in FLAGS.ood}
  draws = likelihood.fixed_draws(FLAGS.likelihood_draws, model.config.image_shape, 0)
  results = scores.measure(model, classifier, data.heldout_images[:half], inliers,
                           sources, FLAGS.batch_size, background, draws,
                           data.train_arrays(workdir_lib.MAX_TRAIN_REFERENCE_IMAGES))
  env = report.environment()
  lines = scores.markdown(results, env)
  report.publish({"environment": env, "auroc": results}, lines, _OUT_DIR.value, _NAME.value)


if __name__ == "__main__":
  app.run(main)
