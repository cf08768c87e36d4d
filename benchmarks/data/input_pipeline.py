"""The streaming input pipeline: memory and start-up against dataset size, and its
throughput against the training step's, measured in one run.

  python -m benchmarks.data.input_pipeline
  python -m benchmarks.data.input_pipeline --sizes=5000,50000 --repeats=3

Generates (once) folders of random 32x32 RGB PNGs of each of --sizes, the same images as
TFRecord shards (`train.records`, --record_shards files), and --jpeg_count random 64x64 RGB
JPEGs, under --data_root. Then measures:
  - listing: seconds to list a folder (os.scandir), to open it as a source (listing,
    held-out rule, sample check), and to open its TFRecord shards as a source (the scan of
    the record headers into the offset table, held-out rule, sample check);
  - training: a short `python -m train` on each folder in a fresh process: its peak RSS
    and the seconds from its start to its first training step;
  - throughput: images/s of the input pipeline alone (read, decode, batch 64 uint8 images)
    for the PNG and JPEG folders, and of the training step (batch 64) of the --presets,
    taken in turn within each repeat; the ratios are per repeat, medians reported.
Writes --out_dir/input_pipeline.json (with the command line, the machine and the versions)
and .md and prints the Markdown.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import tensorflow as tf  # noqa: E402

import glow_tfp  # noqa: E402
from benchmarks.common import report  # noqa: E402
from benchmarks.common import workloads  # noqa: E402
from train.data import datasets as data_lib  # noqa: E402
from train.data import tfrecord  # noqa: E402

_SIZES = flags.DEFINE_list("sizes", ["5000", "50000"], "PNG folder sizes compared.")
_DATA_ROOT = flags.DEFINE_string("data_root", "runs/input_pipeline",
                                 "Where the generated folders go (outside the repository).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 10, "Steps of each short training run.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Throughput rounds (median reported).",
                                lower_bound=1)
_BATCHES = flags.DEFINE_integer("batches", 40, "Input batches timed per round.",
                                lower_bound=1)
_JPEG_COUNT = flags.DEFINE_integer("jpeg_count", 5000, "Images of the JPEG folder.",
                                   lower_bound=1)
_RECORD_SHARDS = flags.DEFINE_integer("record_shards", 8, "TFRecord files of each size.",
                                      lower_bound=1)
_PRESETS = flags.DEFINE_list("presets", ["cifar10", "mnist"],
                             "GlowConfig presets whose training steps are timed.")
flags.register_validator("presets", lambda names: set(names) <= set(glow_tfp.PRESETS),
                         f"--presets must be among {sorted(glow_tfp.PRESETS)}.")
_OUT_DIR = flags.DEFINE_string("out_dir", "benchmarks/results", "Where results go.")

_BATCH = 64
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TRAIN_FLAGS = ["--levels=2", "--steps_per_level=2", "--hidden_channels=16",
                f"--batch_size={_BATCH}", "--log_every=1", "--eval_every=100000",
                "--sample_every=100000", "--checkpoint_every=100000", "--num_samples=4",
                "--temperatures=1.0", "--eval_examples=64", "--nojit_compile"]


def generate(directory, count, side, extension):
  """`count` random RGB images side x side in `directory`, unless already there."""
  if os.path.isdir(directory) and len(os.listdir(directory)) == count:
    return directory
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(count):
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    PIL.Image.fromarray(image).save(os.path.join(directory, f"{i:07d}{extension}"))
  return directory


def write_records(directory, output, num_shards):
  """The images of `directory` as TFRecord shards in `output`, unless already there;
  returns the `tfrecord:` spec."""
  catalog = data_lib.catalog(f"folder:{directory}")
  if _written_examples(output) != len(catalog):
    tfrecord.write(catalog, output, num_shards)
  return f"tfrecord:{os.path.join(output, '*.tfrecord')}"


def _written_examples(output):
  """The number of examples `tfrecord.write` wrote to `output`; 0 if none."""
  try:
    with open(os.path.join(output, tfrecord.INFO_FILE)) as f:
      return json.load(f)["examples"]
  except FileNotFoundError:
    return 0


def listing_seconds(directory, records):
  """{scandir_seconds, open_seconds, open_records_seconds}: listing the folder, and opening
  it and its TFRecord shards (spec `records`) as training sources."""
  start = time.perf_counter()
  sum(1 for _ in os.scandir(directory))
  times = {"scandir_seconds": time.perf_counter() - start}
  for name, spec in (("open_seconds", f"folder:{directory}"),
                     ("open_records_seconds", records)):
    start = time.perf_counter()
    data_lib.load(spec, levels=2)
    times[name] = time.perf_counter() - start
  return times


def short_training(directory, workdir, steps):
  """{peak_rss_mib, first_step_seconds} of `python -m train` on the folder."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable, "-m", "train", f"--dataset=folder:{directory}",
             f"--workdir={workdir}", f"--steps={steps}", *_TRAIN_FLAGS]
  start = time.perf_counter()
  process = subprocess.Popen(command, cwd=_ROOT, env=env, stderr=subprocess.PIPE, text=True,
                             stdout=subprocess.DEVNULL)
  first_step, tail = None, []
  for line in process.stderr:
    tail = (tail + [line])[-20:]
    if first_step is None and f"step 1/{steps}" in line:
      first_step = time.perf_counter() - start
  _, status, usage = os.wait4(process.pid, 0)
  process.returncode = status
  if status or first_step is None:
    raise RuntimeError(f"{' '.join(command)} failed:\n{''.join(tail)}")
  return {"peak_rss_mib": usage.ru_maxrss / 1024, "first_step_seconds": first_step}


def input_rate(directory, batch_count):
  """A callable timing `batch_count` batches of the folder's training pipeline: images/s."""
  stream = data_lib.load(f"folder:{directory}", levels=2)
  context = tf.distribute.InputContext()
  batches = iter(stream.training_dataset_fn(_BATCH, 0, 0, 10 ** 9)(context))

  def rate():
    next(batches)  # the pipeline refills its prefetch buffer between rounds
    start = time.perf_counter()
    for _ in range(batch_count):
      next(batches)
    return batch_count * _BATCH / (time.perf_counter() - start)

  return rate


def training_rate(config, seconds):
  """A callable timing training steps of batch 64 of `config` for `seconds`: images/s."""
  model = glow_tfp.Glow(config)
  x = workloads.synthetic_images(_BATCH, config.image_shape)
  model.initialize(x)
  step = workloads.train_step(model, x, jit_compile=False)
  step()

  def rate():
    start = time.perf_counter()
    steps = 0
    while steps < 2 or time.perf_counter() - start < seconds:
      float(step())
      steps += 1
    return steps * _BATCH / (time.perf_counter() - start)

  return rate


def throughput(folders, configs, repeats, batch_count, seconds=5.0):
  """{name: median images/s} and {input/training: median ratio}, in alternating rounds.

  Args:
    folders: {name: image folder} whose input pipelines are timed.
    configs: {name: GlowConfig} whose training steps are timed.
    repeats: rounds; batch_count: input batches a round; seconds: training time a round.
  """
  rates = {f"input {name}": input_rate(path, batch_count) for name, path in folders.items()}
  rates.update({f"training {name}": training_rate(config, seconds)
                for name, config in configs.items()})
  rounds = {name: [] for name in rates}
  for repeat in range(repeats):
    names = list(rates) if repeat % 2 == 0 else list(reversed(rates))
    for name in names:
      rounds[name].append(rates[name]())
  ratios = {f"{i} / {t}": statistics.median(a / b for a, b in zip(rounds[i], rounds[t]))
            for i in rounds if i.startswith("input") for t in rounds if t.startswith("train")}
  return {name: statistics.median(r) for name, r in rounds.items()}, ratios


def markdown(results):
  lines = ["| PNG 32x32 files | os.scandir s | open source s | open records s | peak RSS MiB | "
           "first step s |", "|---:|---:|---:|---:|---:|---:|"]
  for size, r in results["folders"].items():
    lines.append(f"| {int(size):,} | {r['scandir_seconds']:.2f} | {r['open_seconds']:.2f} | "
                 f"{r['open_records_seconds']:.2f} | {r['peak_rss_mib']:.0f} | "
                 f"{r['first_step_seconds']:.1f} |")
  lines += ["", "| images/s (median) | |", "|---|---:|"]
  lines += [f"| {name} | {rate:.1f} |" for name, rate in results["rates"].items()]
  lines += ["", "| input / training step (median of per-round ratios) | |", "|---|---:|"]
  lines += [f"| {name} | {ratio:.1f}x |" for name, ratio in results["ratios"].items()]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  root = _DATA_ROOT.value
  results = {"environment": report.environment(), "folders": {}}
  for size in (int(s) for s in _SIZES.value):
    directory = generate(os.path.join(root, f"png32_{size}"), size, 32, ".png")
    records = write_records(directory, os.path.join(root, f"records32_{size}"),
                            _RECORD_SHARDS.value)
    results["folders"][size] = {
        **listing_seconds(directory, records),
        **short_training(directory, os.path.join(root, f"workdir_{size}_{time.time_ns()}"),
                         _TRAIN_STEPS.value)}
  folders = {"PNG 32x32": os.path.join(root, f"png32_{_SIZES.value[0]}"),
             "JPEG 64x64": generate(os.path.join(root, f"jpeg64_{_JPEG_COUNT.value}"),
                                    _JPEG_COUNT.value, 64, ".jpg")}
  configs = {preset: glow_tfp.GlowConfig.preset(preset) for preset in _PRESETS.value}
  results["rates"], results["ratios"] = throughput(folders, configs, _REPEATS.value,
                                                   _BATCHES.value)
  text = markdown(results)
  report.write(results, report.environment_lines(results["environment"]) + [""]
               + text.splitlines(), _OUT_DIR.value, "input_pipeline")
  print(text)


if __name__ == "__main__":
  app.run(main)
