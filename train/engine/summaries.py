"""What a run leaves for people: progress lines, TensorBoard scalars and images, sample
PNG grids at several temperatures, and the held-out evaluation as JSON.

Only the chief writes files; on other workers every method still runs its TensorFlow
computation (so collective ops stay in step) but writes nothing.
"""

import json
import os
import time

from absl import logging
import tensorflow as tf

from glow_tfp import grid
from glow_tfp import model_space

SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
RESULTS_FILE = "results.json"


class Reporter:
  """Writes the outputs of one run under `workdir` (when `chief`)."""

  def __init__(self, workdir, total_steps, chief):
    self.workdir = workdir
    self.total_steps = total_steps
    self.chief = chief
    if chief:
      self._writer = tf.summary.create_file_writer(os.path.join(workdir, LOGS_DIR))
    else:
      self._writer = tf.summary.create_noop_writer()
    self._mark = (0, time.perf_counter())

  def start(self, step):
    """Restarts the images/s and ETA clock at `step`."""
    self._mark = (step, time.perf_counter())

  def scalars(self, step, values):
    with self._writer.as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar(name, value)

  def progress(self, step, bits_per_dim, batch_size, learning_rate, skipped):
    """Logs step, train bits/dim, images/s, learning rate and ETA since the last call."""
    last_step, last_time = self._mark
    now = time.perf_counter()
    steps_per_second = (step - last_step) / max(now - last_time, 1e-9)
    eta = (self.total_steps - step) / max(steps_per_second, 1e-9)
    self._mark = (step, now)
    logging.info("step %d/%d  train %.4f bits/dim  %.1f images/s  lr %.3g  ETA %s%s",
                 step, self.total_steps, bits_per_dim, steps_per_second * batch_size,
                 learning_rate, _duration(eta), f"  skipped {skipped}" if skipped else "")

  def samples(self, step, images_by_temperature, n_bits):
    """Writes one PNG grid per temperature and the same grids to TensorBoard."""
    paths = []
    for temperature, x in images_by_temperature.items():
      image = grid.image_grid(model_space.to_images(x, n_bits))
      path = os.path.join(self.workdir, SAMPLES_DIR,
                          f"step{step:06d}_temperature{temperature:.1f}.png")
      if self.chief:
        grid.save_png(path, image)
        with self._writer.as_default(step=step):
          tf.summary.image(f"samples/temperature_{temperature:.1f}", image[tf.newaxis])
      paths.append(path)
    return paths

  def results(self, results):
    """Writes `results` (a JSON-able dict) to <workdir>/results.json."""
    if self.chief:
      with tf.io.gfile.GFile(os.path.join(self.workdir, RESULTS_FILE), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)

  def flush(self):
    self._writer.flush()


def _duration(seconds):
  minutes, seconds = divmod(int(round(seconds)), 60)
  return f"{minutes}m{seconds:02d}s"
