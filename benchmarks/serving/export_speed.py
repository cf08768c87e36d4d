"""The exported SavedModel's log_prob against the library's, in one process, alternating.

  python -m benchmarks.serving.export_speed
  python -m benchmarks.serving.export_speed --export_speed_batches=1,64 \\
      --export_speed_repeats=7
  python -m benchmarks.serving.export_speed --export_speed_batch_parts=2 \\
      --export_speed_threads=1/2

Builds a model of `--export_speed_preset` initialised on random images (untrained: the
arithmetic, not the weights, sets the speed), exports it with `serving.saved_model`, loads it
with `tf.saved_model.load` and times, taking turns within every repeat:
  - library: `tf.function(glow.log_prob)` on model-space images;
  - saved_model: the `log_prob` signature on the same images as uint8 (it also converts them
    to model space and computes the discrete likelihood and bits/dim).
Prints images/s (median over repeats), images/s per core and the saved_model/library ratio
(median of the per-repeat ratios) as a Markdown table. `--export_speed_batch_parts` cuts
every batch of both into parts (`glow_tfp.execution`), and `--export_speed_threads` sizes
TensorFlow's thread pools, as a server's would be.

Flags are prefixed, since benchmark and training modules are imported together in tests.
"""

import os
import re
import tempfile

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import glow_tfp  # noqa: E402
from benchmarks.common import timing  # noqa: E402
from serving import saved_model  # noqa: E402

_PRESET = flags.DEFINE_enum("export_speed_preset", "mnist", sorted(glow_tfp.PRESETS),
                            "GlowConfig preset of the measured model.")
_BATCHES = flags.DEFINE_list("export_speed_batches", ["1", "64"], "Batch sizes measured.")
_REPEATS = flags.DEFINE_integer("export_speed_repeats", 7, "Timing rounds (median reported).",
                                lower_bound=1)
_SECONDS = flags.DEFINE_float("export_speed_seconds", 1.0,
                              "About how long each timing lasts.", lower_bound=0.0)

_PARTS = flags.DEFINE_integer("export_speed_batch_parts", 1,
                              "Parts each batch is cut into (glow_tfp.execution).",
                               lower_bound=1)
_THREADS = flags.DEFINE_string("export_speed_threads", "0/0",
                               "TensorFlow's intra_op/inter_op threads (0: its choice).")


@flags.validator("export_speed_threads",
                 message="--export_speed_threads: give intra_op/inter_op, such as 1/2.")
def _check_threads(value):
  return re.fullmatch(r"\d+/\d+", value) is not None


@flags.validator("export_speed_batches", message="--export_speed_batches must be integers >= 1.")
def _check_batches(values):
  return all(v.isdigit() and int(v) >= 1 for v in values)


def random_uint8(config, batch, seed=0):
  shape = (batch,) + tuple(config.image_shape)
  return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def build_model(config, seed=0):
  """An untrained Glow of `config`, its ActNorms initialised on random images."""
  model = glow_tfp.Glow(config, seed=seed)
  model.initialize(glow_tfp.to_model_space(random_uint8(config, 16, seed), config.n_bits))
  return model


def candidates(model, signature, images, batch_parts=1):
  """{name: zero-argument call} of the compared log_prob implementations on `images`, the
  library's in `batch_parts` parts as the SavedModel's."""
  library = tf.function(lambda x: execution.map_parts(model.log_prob, (x, None), batch_parts))
  x = glow_tfp.to_model_space(images, model.config.n_bits)
  images = tf.constant(images)
  return {"library": lambda: library(x),
          "saved_model": lambda: signature(images=images)["log_likelihood"]}


def measure(model, export_dir, batches, repeats, seconds, batch_parts=1):
  """[{batch, library, saved_model (images/s, medians), ratio (saved_model / library)}],
  each batch in `batch_parts` parts."""
  signature = tf.saved_model.load(saved_model.export_saved_model(
      model, export_dir, batch_parts=batch_parts)).signatures["log_prob"]
  rows = []
  for batch in batches:
    fns = candidates(model, signature, random_uint8(model.config, batch, seed=batch),
                     batch_parts)
    for fn in fns.values():
      timing.first_call_seconds(fn)
    calls = timing.calls_lasting(fns, seconds)
    times = timing.alternate(fns, repeats, calls)
    rows.append({"batch": batch,
                 **{name: batch / timing.median(t) for name, t in times.items()},
                 "ratio": timing.paired_ratio(times["library"], times["saved_model"])})
  return rows


def markdown(rows, cores):
  lines = [f"| batch | library images/s | SavedModel images/s | per core (library / SavedModel, "
           f"{cores} cores) | SavedModel / library |", "| --- | --- | --- | --- | --- |"]
  for r in rows:
    lines.append(f"| {r['batch']} | {r['library']:.1f} | {r['saved_model']:.1f} | "
                 f"{r['library'] / cores:.1f} / {r['saved_model'] / cores:.1f} | "
                 f"{r['ratio']:.2f} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  intra, inter = (int(n) for n in _THREADS.value.split("/"))
  tf.config.threading.set_intra_op_parallelism_threads(intra)
  tf.config.threading.set_inter_op_parallelism_threads(inter)
  model = build_model(glow_tfp.GlowConfig.preset(_PRESET.value))
  with tempfile.TemporaryDirectory() as tmp:
    rows = measure(model, os.path.join(tmp, "export"), [int(b) for b in _BATCHES.value],
                   _REPEATS.value, _SECONDS.value, _PARTS.value)
  print(markdown(rows, os.cpu_count()))


if __name__ == "__main__":
  app.run(main)
