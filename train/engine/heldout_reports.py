"""A run's held-out figures: at evaluation steps and at the end of training, logged, written
to the summaries and gathered for the results (results.json)."""

from absl import logging

from . import evaluation


class HeldOutReports:
  """Evaluates a run's weights on the held-out images and reports the figures.

  Attributes:
    eval_weights: the name of the weights whose figures are the run's ("ema" or "raw").
    history: [step, held-out bits/dim] of every evaluation so far, the final one included:
      the K-draw dequantisation bound of `glow_tfp.likelihood`.
  """

  def __init__(self, weights, eval_weights, data, batch_size, seed, num_draws, reporter,
               batch_parts=1):
    """`weights`: {name: Glow}; `seed` and `num_draws` (K) fix the likelihood estimate's
    dequantisation draws, `batch_parts` how its batches run (`evaluation.HeldOut`)."""
    self._heldout = {name: evaluation.HeldOut(model, data, batch_size, num_draws, seed,
                                              batch_parts)
                     for name, model in weights.items()}
    self.eval_weights = eval_weights
    self._reporter = reporter
    self.history = []

  def evaluate(self, step):
    """The evaluation of an `eval_every` step: the bound and the reconstruction check."""
    estimate = self._main.likelihood()
    self.history.append([step, estimate.bits_per_dim])
    logging.info("step %d  held-out %s", step, estimate)
    self._reporter.scalars(step, _scalars(estimate))
    self._reconstruction(step)

  def final(self, step):
    """The end-of-run evaluation, with every set of weights; returns its entries of the
    run's results."""
    estimates = {name: evaluator.likelihood() for name, evaluator in self._heldout.items()}
    main = estimates[self.eval_weights]
    self.history.append([step, main.bits_per_dim])
    by_weights = {f"bits_per_dim_{name}": e.bits_per_dim for name, e in estimates.items()}
    self._reporter.scalars(step, {**_scalars(main),
                                  **{f"heldout/{k}": v for k, v in by_weights.items()}})
    rebuilt = self._reconstruction(step)
    logging.info("held-out %s with the %s weights after %d steps", main, self.eval_weights,
                 step)
    return {**self._unlabelled(step), "heldout_bits_per_dim": main.bits_per_dim,
            "heldout_bits_per_dim_stderr": main.standard_error,
            "likelihood_draws": main.num_draws, "heldout_images": main.num_images,
            "heldout_reconstruction": rebuilt,
            **{f"heldout_{k}": v for k, v in by_weights.items()},
            "eval_weights": self.eval_weights, "eval_history": self.history}

  def _unlabelled(self, step):
    """Of a class-conditional model, the bound on P(x) = mean_y P(x | y) without the
    labels, comparable with an unconditional model's; nothing for an unconditional one."""
    if not self._main.model.config.num_classes:
      return {}
    estimate = self._main.likelihood(labelled=False)
    logging.info("held-out without labels %s", estimate)
    self._reporter.scalars(step, {"heldout/bits_per_dim_unlabelled": estimate.bits_per_dim})
    return {"heldout_bits_per_dim_unlabelled": estimate.bits_per_dim,
            "heldout_bits_per_dim_unlabelled_stderr": estimate.standard_error}

  @property
  def _main(self):
    return self._heldout[self.eval_weights]

  def _reconstruction(self, step):
    """decode(encode(x)) of the held-out images, logged; returns its figures (a dict)."""
    check = self._main.reconstruction()
    logging.info("step %d  held-out decode(encode(x)): max error %.3g, %d/%d exact as uint8, "
                 "%d non-finite", step, check.max_error, check.exact, check.count,
                 check.non_finite)
    self._reporter.scalars(step, {f"heldout/{k}": v for k, v in check.scalars().items()})
    return check.scalars()


def _scalars(estimate):
  return {"heldout/bits_per_dim": estimate.bits_per_dim,
          "heldout/bits_per_dim_stderr": estimate.standard_error}
