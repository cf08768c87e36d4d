"""Sample grids during training: the same seed at every step, one grid per temperature."""

import tensorflow as tf


class SampleGrids:
  """Draws `num_samples` images of `model` at each of `temperatures` with `seed` and has
  `reporter` (a `summaries.Reporter`) write them; class-conditional models cycle through the
  classes."""

  def __init__(self, model, num_samples, temperatures, seed, reporter):
    self.model, self.num_samples, self.temperatures = model, num_samples, temperatures
    self.seed, self.reporter = seed, reporter

  def write(self, step):
    """Writes the grids of `step`; returns the PNG paths."""
    grids = {t: self._sample(tf.constant(t)) for t in self.temperatures}
    return self.reporter.samples(step, grids, self.model.config.n_bits)

  @tf.function
  def _sample(self, temperature):
    n, classes = self.num_samples, self.model.config.num_classes
    labels = tf.range(n) % classes if classes else None
    return self.model.sample(n, temperature, labels=labels, seed=self.seed)
