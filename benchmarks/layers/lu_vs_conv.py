"""The 1x1 convolution in LU form against the plain matrix, at C = 16, 64, 256, 512.

  python -m benchmarks.layers.lu_vs_conv
  python -m benchmarks.layers.lu_vs_conv --channels=16,64 --repeats=3

Two timings per channel count C, LU and plain alternating within every repeat:
- log-det: log|det W| and its gradient, one `tf.function` call (O(C) in LU form; a QR
  decomposition, O(C^3), for the plain matrix);
- step: an Adam training step of one step of flow (ActNorm -> 1x1 conv -> affine coupling of
  width `--hidden_channels`) on a [batch, 8, 8, C] input, the setting of a deep Glow level.
Writes benchmarks/results/<--name>.json and .md and prints the Markdown.
"""

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks.common import report  # noqa: E402
from benchmarks.layers import invertible_conv  # noqa: E402

_CHANNELS = flags.DEFINE_list("channels", ["16", "64", "256", "512"], "Channel counts C.")
_HIDDEN_CHANNELS = flags.DEFINE_integer("hidden_channels", 512, "Coupling network width.",
                                        lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Batch of the training step.",
                                   lower_bound=1)
_SPATIAL = flags.DEFINE_integer("spatial", 8, "Height and width of the step's input.",
                                lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timing rounds (median reported).",
                                lower_bound=1)
_OUT_DIR = flags.DEFINE_string("out_dir", "benchmarks/results", "Where results go.")
_NAME = flags.DEFINE_string("name", "lu_vs_conv", "Base name of the result files.")


@flags.validator("channels", message="--channels must be integers >= 2.")
def _check_channels(values):
  return all(v.isdigit() and int(v) >= 2 for v in values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  settings = {"hidden_channels": _HIDDEN_CHANNELS.value, "batch_size": _BATCH_SIZE.value,
              "spatial": _SPATIAL.value, "repeats": _REPEATS.value}
  channels = [int(c) for c in _CHANNELS.value]
  results = {"environment": report.environment(), "settings": settings,
             "channels": invertible_conv.measure(channels, **settings)}
  lines = invertible_conv.markdown(results)
  print("\n".join(lines))
  for path in report.write(results, lines, _OUT_DIR.value, _NAME.value):
    print("wrote", path)


if __name__ == "__main__":
  app.run(main)
