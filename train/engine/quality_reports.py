"""A run's sample quality (`glow_tfp.sample_quality`): at evaluation steps and at the end of
training, logged, written to the summaries and gathered for the results (results.json); and
the same figures for `python -m train.sample_quality`.

The classifier trains on (at most `MAX_CLASSIFIER_IMAGES` of) the training images with the
run's seed and is kept in the workdir (`glow_tfp.workdir.classifier_path`), so later
evaluations and the tool read it instead of training it again.
"""

import time

from absl import logging

from glow_tfp import classifier as classifier_lib
from glow_tfp import sample_quality
from glow_tfp import workdir as workdir_lib

# Enough for an accurate small classifier; more only costs time (and, for a streamed source,
# reading every training image).
MAX_CLASSIFIER_IMAGES = 20000


def unavailable_reason(data, num_samples):
  """Why the sample quality of a run on `data` with `num_samples` is not measured, or None."""
  if not num_samples:
    return "no samples asked for"
  if data.num_classes < 2:
    return f"{data.name} has no class labels to train a classifier on"
  return None


def prepare(model, data, workdir, num_samples, seed, batch_size, write=True):
  """The `SampleQuality` of `model` on `data`, its classifier read from `workdir` or
  trained (and written there if `write`).

  Returns:
    (quality, reused): the `glow_tfp.sample_quality.SampleQuality`, and whether the
    classifier came from the workdir.
  """
  n_bits = model.config.n_bits
  images, labels = data.train_arrays(MAX_CLASSIFIER_IMAGES)
  images = sample_quality.quantise(images, n_bits)
  classifier, reused = classifier_lib.load_or_fit(
      workdir_lib.classifier_path(workdir), images, labels, data.num_classes, seed, write)
  reference = sample_quality.Reference(classifier, *data.heldout_arrays(), images,
                                       num_samples, n_bits, seed)
  return sample_quality.SampleQuality(model, reference, num_samples, seed, batch_size), reused


def results(quality, scores, reused):
  """The JSON-able figures of `scores` ({temperature: Scores}) and the reference row."""
  return {"num_samples": quality.num_samples, "classifier_reused": reused,
          "reference": quality.reference.scores.as_dict(),
          "temperatures": {f"{t:g}": s.as_dict() for t, s in scores.items()}}


def table(quality, scores):
  """A Markdown table: one row per temperature, then the held-out reference row."""
  lines = ["| images | legible | coverage (bits) | Frechet distance | agreement |",
           "| --- | --- | --- | --- | --- |"]
  rows = [(f"samples T={t:g}", s) for t, s in scores.items()]
  rows.append(("held-out (reference)", quality.reference.scores))
  for name, s in rows:
    agreement = "-" if s.agreement is None else f"{s.agreement:.3f}"
    lines.append(f"| {name} | {s.legible_fraction:.3f} | {s.coverage_bits:.2f} | "
                 f"{s.frechet_distance:.3g} | {agreement} |")
  return "\n".join(lines)


class QualityReports:
  """Measures the sample quality of `model` at `temperatures` and has `reporter` write it.

  Nothing is measured, and `final` adds nothing to the results, when `unavailable_reason`
  gives a reason (logged once). The classifier is prepared at the first measurement.
  """

  def __init__(self, model, data, workdir, num_samples, temperatures, seed, batch_size,
               reporter):
    self._model, self._data, self._workdir = model, data, workdir
    self._num_samples, self._temperatures = num_samples, temperatures
    self._seed, self._batch_size, self._reporter = seed, batch_size, reporter
    self._quality, self._reused = None, None
    self.skipped = unavailable_reason(data, num_samples)
    if self.skipped:
      logging.info("Sample quality not measured: %s.", self.skipped)

  def evaluate(self, step):
    """Measures, logs and writes the figures of an `eval_every` step."""
    if not self.skipped:
      self._measure(step)

  def final(self, step):
    """The end-of-run measurement; returns its entries of the run's results."""
    if self.skipped:
      return {}
    scores = self._measure(step)
    logging.info("Sample quality after %d steps:\n%s", step, table(self._quality, scores))
    return {"sample_quality": results(self._quality, scores, self._reused)}

  def _measure(self, step):
    started = time.perf_counter()
    if self._quality is None:
      self._quality, self._reused = prepare(
          self._model, self._data, self._workdir, self._num_samples, self._seed,
          self._batch_size, write=self._reporter.chief)
      logging.info("Sample-quality classifier %s; held-out reference: %s",
                   "read from the workdir" if self._reused else "trained",
                   self._quality.reference.scores.line())
    scores = self._quality.scores(self._temperatures)
    for t, s in scores.items():
      logging.info("step %d  %d samples at T=%g: %s", step, s.count, t, s.line())
    logging.info("step %d  sample quality measured in %.1f s", step,
                 time.perf_counter() - started)
    values = {f"sample_quality/T{t:g}/{k}": v for t, s in scores.items()
              for k, v in s.scalars().items()}
    values.update({f"sample_quality/reference/{k}": v
                   for k, v in self._quality.reference.scores.scalars().items()})
    self._reporter.scalars(step, values)
    return scores
