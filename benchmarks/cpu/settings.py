"""Training speed of the default model under the CPU settings a user can change.

  python -m benchmarks.cpu.settings                   # 2 rounds (docs/training.md)
  python -m benchmarks.cpu.settings --cpu_rounds=1
  python -m benchmarks.cpu.settings --cpu_driver=fit  # Keras GlowModel.fit (docs/keras.md)

Each setting runs in a fresh process, because TensorFlow reads oneDNN's switch
(TF_ENABLE_ONEDNN_OPTS) when it loads and sizes its thread pools once: oneDNN's convolutions
on or off, intra-/inter-op threads (0 = TensorFlow's choice, 1, and one per core), XLA, and,
with oneDNN on, each batch cut into one part per core (`glow_tfp.execution`), other batch
sizes and widths. A measurement builds the `mnist` preset model (28x28x1, L=2, K=8,
width 64), initialises it on synthetic images, times its first Adam step (trace and run),
takes one more and then times steps for --cpu_seconds. The settings run in turn within each
round, so load on a shared machine hits them alike; the table gives the median over rounds and the
ratio to TensorFlow's defaults on CPUs without AVX-512 (oneDNN off, 0/0 threads). Writes
--out_dir/cpu_settings.json and .md and prints the Markdown.

`--cpu_driver=fit` times `glow_tfp.GlowModel.fit` on uint8 images instead of the bare step
(dequantisation, ActNorm guard, skipped non-finite steps and Keras' loop included), under
the settings a notebook can choose: oneDNN, threads, and parts
(`GlowModel.compile(batch_parts=)`); it writes cpu_settings_fit.json and .md.
"""

import dataclasses
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
import tensorflow as tf  # noqa: E402

import glow_tfp  # noqa: E402
from benchmarks.common import peers  # noqa: E402
from benchmarks.common import report  # noqa: E402
from benchmarks.common import workloads  # noqa: E402

_ROUNDS = flags.DEFINE_integer("cpu_rounds", 2, "Rounds over all settings.", lower_bound=1)
_SECONDS = flags.DEFINE_float("cpu_seconds", 10.0, "Timed seconds per measurement.",
                              lower_bound=0.0)
_OUT_DIR = flags.DEFINE_string("cpu_out_dir", "benchmarks/results", "Where results go.")
_DRIVER = flags.DEFINE_enum("cpu_driver", "step", ["step", "fit"],
                            "What is timed: the bare training step, or Keras' GlowModel.fit.")
_CHILD = flags.DEFINE_string("cpu_child", None, "Internal: run one setting (JSON) and print "
                             "its images/s.")


@dataclasses.dataclass(frozen=True)
class Setting:
  """One way to run the training step."""

  onednn: bool = False
  intra: int = 0
  inter: int = 0
  jit: bool = False
  batch: int = 64
  hidden_channels: int = 64
  steps_per_level: int = 8
  batch_parts: int = 1
  driver: str = "step"

  def label(self):
    return (f"{self.driver}: oneDNN {'on' if self.onednn else 'off'}, threads {self.intra}/{self.inter}, XLA "
            f"{'on' if self.jit else 'off'}, batch {self.batch} in {self.batch_parts} parts, "
            f"K={self.steps_per_level}, width {self.hidden_channels}")


def settings(cores, driver="step"):
  """The compared settings. The first, the baseline of the ratios, is TensorFlow's defaults on
  a CPU without AVX-512: oneDNN's convolutions off, thread pools of TensorFlow's choice."""
  if driver == "fit":
    parts = [(1, cores, cores), (0, 0, cores)] if cores > 1 else []
    return [Setting(onednn, intra, inter, batch_parts=count, driver="fit")
            for onednn in (False, True) for intra, inter, count in [(0, 0, 1)] + parts]
  threads = sorted({(0, 0), (1, 1), (cores, 1), (1, cores), (cores, cores)})
  grid = [Setting(onednn, intra, inter) for onednn in (False, True) for intra, inter in threads]
  parts = [Setting(True, intra, inter, batch_parts=cores)
           for intra, inter in ((0, 0), (1, cores))] if cores > 1 else []
  return grid + parts + [Setting(False, jit=True), Setting(True, jit=True),
                 Setting(True, batch=32), Setting(True, batch=128),
                 Setting(True, hidden_channels=48), Setting(True, hidden_channels=96,
                                                            steps_per_level=6)]


def measure(setting, seconds):
  """(images/s, seconds of the first step: trace and run) of `setting` in a fresh process."""
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if setting.onednn else "0")
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.cpu.settings",
       f"--cpu_child={json.dumps(dataclasses.asdict(setting))}", f"--cpu_seconds={seconds}"],
      env=env, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"{setting.label()} failed:\n{result.stderr[-2000:]}")
  images_per_s, first_step_s = result.stdout.strip().splitlines()[-1].split()
  return float(images_per_s), float(first_step_s)


def _child(setting, seconds):
  tf.config.threading.set_intra_op_parallelism_threads(setting.intra)
  tf.config.threading.set_inter_op_parallelism_threads(setting.inter)
  config = glow_tfp.GlowConfig.preset("mnist", hidden_channels=setting.hidden_channels,
                                      steps_per_level=setting.steps_per_level)
  if setting.driver == "fit":
    return _fit_images_per_s(config, setting, seconds)
  model = peers.InParts(glow_tfp.Glow(config, seed=0), setting.batch_parts)
  model.initialize(workloads.synthetic_images(setting.batch, config.image_shape))
  step = workloads.train_step(
      model, workloads.synthetic_images(setting.batch, config.image_shape, seed=1),
      setting.jit)
  start = time.perf_counter()
  step()
  first_step_s = time.perf_counter() - start
  step()
  calls, start = 0, time.perf_counter()
  while calls == 0 or time.perf_counter() - start < seconds:
    step()
    calls += 1
  return calls * setting.batch / (time.perf_counter() - start), first_step_s


def _fit_images_per_s(config, setting, seconds):
  """(images/s, first step's seconds) of `GlowModel.fit` on uint8 images of unknown batch
  size, as `tf.data` batches them; the first step (trace and run) is a fit of its own."""
  model = glow_tfp.GlowModel(config)
  model.compile(learning_rate=workloads.LEARNING_RATE, batch_parts=setting.batch_parts)
  images = np.random.default_rng(0).integers(0, 256, (setting.batch * 4,) + config.image_shape,
                                            dtype=np.uint8)
  batches = tf.data.Dataset.from_tensor_slices(images).repeat().batch(setting.batch)
  start = time.perf_counter()
  model.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)
  first_step_s = time.perf_counter() - start
  model.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)
  timer = _StopAfter(seconds)
  model.fit(batches, steps_per_epoch=1 << 30, epochs=1, verbose=0, callbacks=[timer])
  return timer.steps * setting.batch / (time.perf_counter() - timer.start), first_step_s


class _StopAfter(tf.keras.callbacks.Callback):
  """Stops `fit` after the first step that ends `seconds` after training began."""

  def __init__(self, seconds):
    super().__init__()
    self.seconds, self.steps, self.start = seconds, 0, None

  def on_train_begin(self, logs=None):
    self.start = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    self.steps += 1
    if time.perf_counter() - self.start >= self.seconds:
      self.model.stop_training = True


def run(rounds, seconds, cores=None, driver="step"):
  """{"rows": [...], ...}: the median images/s per setting and its ratio to the first."""
  compared = settings(cores or os.cpu_count(), driver)
  samples, first_steps = {s: [] for s in compared}, {s: [] for s in compared}
  for _ in range(rounds):
    for setting in compared:
      images_per_s, first_step_s = measure(setting, seconds)
      samples[setting].append(images_per_s)
      first_steps[setting].append(first_step_s)
  baseline = statistics.median(samples[compared[0]])
  rows = [{**dataclasses.asdict(s), "label": s.label(), "images_per_s": values,
           "median": statistics.median(values),
           "ratio": statistics.median(values) / baseline,
           "first_step_s": statistics.median(first_steps[s])}
          for s, values in samples.items()]
  return {"cores": cores or os.cpu_count(), "rounds": rounds, "seconds": seconds,
          "driver": driver, "rows": rows}


def markdown(results):
  timed = ("Keras `GlowModel.fit` on uint8 images" if results.get("driver") == "fit"
           else "the training step")
  lines = [f"Training images/s of the `mnist` preset model ({timed}), {results['cores']} "
           "cores, median "
           f"of {results['rounds']} rounds of {results['seconds']:g} s; ratio to the first "
           "row (TensorFlow's defaults on a CPU without AVX-512).", "",
           "| oneDNN | intra/inter threads | XLA | batch (parts) | K, width | images/s | "
           "ratio | first step (s) |",
           "|---|---|---|---|---|---|---|---|"]
  for row in results["rows"]:
    lines.append(f"| {'on' if row['onednn'] else 'off'} | {row['intra']}/{row['inter']} | "
                 f"{'on' if row['jit'] else 'off'} | {row['batch']} ({row['batch_parts']}) | "
                 f"{row['steps_per_level']}, {row['hidden_channels']} | "
                 f"{row['median']:.0f} | {row['ratio']:.2f}x | {row['first_step_s']:.1f} |")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if _CHILD.value:
    print(*_child(Setting(**json.loads(_CHILD.value)), _SECONDS.value))
    return
  results = run(_ROUNDS.value, _SECONDS.value, driver=_DRIVER.value)
  text = markdown(results)
  name = "cpu_settings" + ("_fit" if _DRIVER.value == "fit" else "")
  report.write(results, text.splitlines(), _OUT_DIR.value, name)
  print(text)


if __name__ == "__main__":
  app.run(main)
