"""`python -m train` on one worker of a MultiWorkerMirroredStrategy cluster, after writing
which training examples this worker's input pipeline reads in the first epoch: the SHA-1 of
each image's pixels, one per line, to --shard_file. Run by tests/test_train_distributed.py.

The epoch is read through the strategy that the training then uses, right after
`train.engine.strategy.make` creates it: TensorFlow's runtime must not start before the CLI has
applied its thread flags, and a process sets up its collective ops once. The training is
unchanged by the extra epoch: every batch is a function of the seed and the step.
"""

import hashlib

from absl import app
from absl import flags

from train import cli
from train.data import datasets as data_lib
from train.engine import strategy as strategy_lib

_SHARD_FILE = flags.DEFINE_string("shard_file", None, "Where this worker's hashes go.",
                                  required=True)
FLAGS = flags.FLAGS


def write_first_epoch(strategy, path):
  data = data_lib.load(FLAGS.dataset, cli.model_config().levels, FLAGS.seed,
                       FLAGS.heldout_fraction)
  steps = data.num_train // FLAGS.batch_size
  dataset = strategy.distribute_datasets_from_function(
      data.training_dataset_fn(FLAGS.batch_size, FLAGS.seed, 0, steps))
  with open(path, "w") as f:
    for images, _ in dataset:
      for local in strategy.experimental_local_results(images):
        f.writelines(hashlib.sha1(image.tobytes()).hexdigest() + "\n" for image in local.numpy())


def main(argv):
  make = strategy_lib.make

  def make_and_write_first_epoch(*args):
    strategy = make(*args)
    write_first_epoch(strategy, _SHARD_FILE.value)
    return strategy

  strategy_lib.make = make_and_write_first_epoch
  cli.main(argv)


if __name__ == "__main__":
  app.run(main)
