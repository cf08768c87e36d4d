"""Trains a model conditional on style classes: a top prior with several components per
digit, each fitted to the images of one style.

  python -m train --workdir=runs/default --seed=S
  python -m benchmarks.ood.style_classes --first_workdir=runs/default \\
      --workdir=runs/styles --seed=S [--styles_per_class=8] [train's flags]
  python -m train.ood --workdir=runs/styles [--background_workdir=runs/background]

The first run's model (class-conditional, trained on the bundled digits with the same
--seed, so the same held-out split) gives each training digit its style class
M * digit + k (`benchmarks.ood.styles`): k is its k-means cluster among the top latents of
its digit. Each held-out digit gets the nearest cluster of its digit. A model of the first
run's architecture, conditional on the 10 M style classes, then trains from scratch with
train's flags (the same defaults: 2,500 steps of 64). Its unlabelled held-out bits/dim is
the likelihood of the mixture over all style classes; `python -m train.ood` scores it as
any class-conditional model, its class tests over the style classes. docs/ood.md has the
figures.
"""

import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks.ood import styles  # noqa: E402
from glow_tfp import ood  # noqa: E402
from glow_tfp import workdir as workdir_lib  # noqa: E402
from train import cli  # noqa: E402  (its flags set the training run)
from train.data import datasets as data_lib  # noqa: E402
from train.engine import loop  # noqa: E402
from train.errors import InputError  # noqa: E402

_FIRST_WORKDIR = flags.DEFINE_string(
    "first_workdir", None, "Workdir of a class-conditional run on the bundled digits, with "
    "the same --seed, whose top latents define the styles.")
flags.mark_flag_as_required("first_workdir")
_STYLES_PER_CLASS = flags.DEFINE_integer("styles_per_class", 8, "Style classes M per digit.",
                                         lower_bound=1)
flags.register_multi_flags_validator(
    ["first_workdir", "workdir"], lambda f: f["first_workdir"] != f["workdir"],
    message="--workdir must differ from --first_workdir: the run trains a new model.")


def style_data(model, data, per_class, seed):
  """`data` with the style classes of `model`'s top latents for labels."""
  train_latents = ood.top_latents(model, data.train_images)
  classes = styles.StyleClasses(train_latents, data.train_labels, per_class, seed)
  heldout = classes.labels(ood.top_latents(model, data.heldout_images), data.heldout_labels)
  return data_lib.Data(f"{data.name} in {classes.num_classes} style classes",
                       data.train_images, classes.labels(train_latents, data.train_labels),
                       data.heldout_images, heldout, classes.num_classes)


def _first_model(workdir, data):
  """The first run's model; raises `InputError` unless it is class-conditional on `data`'s
  classes and held out `data`'s images."""
  model = workdir_lib.restore_model(workdir).model
  if model.config.num_classes != data.num_classes:
    raise InputError(f"The model of {workdir} must be conditional on the {data.num_classes} "
                     f"classes of {data.name}; it has num_classes={model.config.num_classes}.")
  reference = workdir_lib.load_reference_images(workdir_lib.reference_path(workdir))[0]
  if not np.array_equal(reference, data.heldout_images[:len(reference)]):
    raise InputError(f"{workdir} held out other images: pass its run's --seed and "
                     "--heldout_fraction.")
  return model


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  batch_parts = cli.thread_parts()
  seed = flags.FLAGS.seed
  try:
    config = workdir_lib.load_config(_FIRST_WORKDIR.value)
    data = data_lib.load("mnist", config.levels, seed, flags.FLAGS.heldout_fraction)
    first = _first_model(_FIRST_WORKDIR.value, data)
    data = style_data(first, data, _STYLES_PER_CLASS.value, seed)
    config = config.replace(num_classes=data.num_classes)
    options = cli.training_options(data.num_train, batch_parts)
    logging.info("Training %s on %s: %d steps of batch %d.", config, data.name, options.steps,
                 options.batch_size)
    results = loop.run(config, data, options)
  except (InputError, FileNotFoundError, workdir_lib.CheckpointError) as error:
    sys.exit(f"style_classes: error: {error}")
  print(f"held-out bits/dim without labels: {results['heldout_bits_per_dim_unlabelled']:.4f} "
        f"+- {results['heldout_bits_per_dim_unlabelled_stderr']:.4f} (the mixture over "
        f"{data.num_classes} style classes; workdir {options.workdir})")


if __name__ == "__main__":
  app.run(main)
