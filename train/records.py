"""Writes any source as TFRecord shards for `--dataset=tfrecord:GLOB`.

  python -m train.records --dataset=folder:PATH --output=DIR --num_shards=N

Every image of --dataset (unsplit, in the source's order, the bundled mnist unpadded) is
written as a PNG-encoded `image` bytes feature with its int64 `label` into N shards of
contiguous examples, DIR/images-00000-of-0000N.tfrecord ..., plus DIR/records.json with the
number of classes. Train on them with --dataset='tfrecord:DIR/*.tfrecord'.
"""

import sys

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from . import common_flags  # noqa: E402
from .data import datasets as data_lib  # noqa: E402
from .data import tfrecord  # noqa: E402
from .errors import InputError  # noqa: E402

_DATA = common_flags.define_data_flags()
_OUTPUT = flags.DEFINE_string("output", None, "Directory for the shards.", required=True)
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 16, "Files to write (at most one per "
                                   "image).", lower_bound=1)

# Progress lines come at most this often, in images.
_PROGRESS_EVERY = 1000


def progress(done, total):
  """Rewrites one progress line on stderr; ends it after the last image."""
  if done % _PROGRESS_EVERY and done != total:
    return
  sys.stderr.write(f"\rrecords: {done}/{total} images ({100 * done // total}%)")
  if done == total:
    sys.stderr.write("\n")
  sys.stderr.flush()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    catalog = data_lib.catalog(_DATA["dataset"].value, _DATA["data_dir"].value)
    paths = tfrecord.write(catalog, _OUTPUT.value, _NUM_SHARDS.value, progress)
  except InputError as error:
    sys.exit(f"records: error: {error}")
  print(f"Wrote {len(catalog)} images of {catalog.name} to {len(paths)} shards in "
        f"{_OUTPUT.value}.")


if __name__ == "__main__":
  app.run(main)
