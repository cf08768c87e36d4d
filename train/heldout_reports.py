"""A run's held-out figures: at evaluation steps and at the end of training, logged, written
to the summaries and gathered for the results (results.json)."""

from absl import logging

from . import evaluation


class HeldOutReports:
  """Evaluates a run's weights on the held-out images and reports the figures.

  Attributes:
    eval_weights: the name of the weights whose figures are the run's ("ema" or "raw").
    history: [step, held-out bits/dim] of every evaluation so far, the final one included.
  """

  def __init__(self, weights, eval_weights, data, batch_size, noise_seed, reporter):
    """`weights`: {name: Glow}; `noise_seed` seeds the final dequantisation-noise figure."""
    self._heldout = {name: evaluation.HeldOut(model, data, batch_size)
                     for name, model in weights.items()}
    self.eval_weights = eval_weights
    self._noise_seed, self._reporter = noise_seed, reporter
    self.history = []

  def evaluate(self, step):
    """The evaluation of an `eval_every` step: bits/dim and the reconstruction check."""
    heldout = self._main.bits_per_dim()
    self.history.append([step, heldout])
    logging.info("step %d  held-out %.4f bits/dim", step, heldout)
    self._reporter.scalars(step, {"heldout/bits_per_dim": heldout})
    self._reconstruction(step)

  def final(self, step):
    """The end-of-run evaluation, with every set of weights and with dequantisation noise;
    returns its entries of the run's results."""
    heldout = {name: evaluator.bits_per_dim() for name, evaluator in self._heldout.items()}
    main = heldout[self.eval_weights]
    noise = self._main.bits_per_dim(noise_seed=self._noise_seed)
    self.history.append([step, main])
    by_weights = {f"bits_per_dim_{name}": value for name, value in heldout.items()}
    self._reporter.scalars(step, {"heldout/bits_per_dim": main,
                                  "heldout/bits_per_dim_uniform_noise": noise,
                                  **{f"heldout/{k}": v for k, v in by_weights.items()}})
    rebuilt = self._reconstruction(step)
    logging.info("held-out bits/dim %.4f (bin centres, %s weights), %.4f (uniform "
                 "dequantisation noise) after %d steps", main, self.eval_weights, noise, step)
    return {"heldout_bits_per_dim": main, "heldout_bits_per_dim_uniform_noise": noise,
            "heldout_reconstruction": rebuilt,
            **{f"heldout_{k}": v for k, v in by_weights.items()},
            "eval_weights": self.eval_weights, "eval_history": self.history}

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
