"""One training update of a Glow: what `python -m train` and `GlowModel.fit` both run.

Called in a replica context, `Update.__call__(images, labels)` at step counter s:
  1. `step.replica_step`: dequantise with noise seeded by (seed, s), initialise every
     ActNorm once, the global-batch loss (bits/dim) and its all-reduced gradients, under
     the float16 loss scale when there is one, clipped to global norm `grad_clip_norm`;
  2. in the cross-replica context: when the loss and the gradient norm are finite, the
     optimizer moves the weights at rate lr(s) = peak * min(1, (s + 1) / warmup_steps) *
     cosine decay (with `decay_steps`) * scale (`schedule.LearningRate`) and the EMA
     weights follow; otherwise nothing of them
     changes (all or nothing) and the step counts in `skipped_steps`. The loss scale halves
     after an overflow and grows after enough good steps; s advances either way.
"""

import dataclasses

import tensorflow as tf

from glow_tfp.training import loss_scale as loss_scale_lib
from glow_tfp.training import optimizer as optimizer_lib
from glow_tfp.training import schedule
from glow_tfp.training import step as step_lib


@dataclasses.dataclass(frozen=True)
class Settings:
  """How the update moves the weights; the defaults are those of `python -m train`.

  Attributes:
    optimizer: "adam" or "adamax".
    learning_rate: the peak learning rate (> 0).
    warmup_steps: steps of linear warm-up to the peak (>= 0; 0: none).
    grad_clip_norm: clip the gradients to this global norm (>= 0; 0: no clipping).
    decay_steps: 0 (default) keeps the peak after the warm-up; S > warmup_steps decays it
      to 0 at step S along a half cosine (`schedule.LearningRate`).
  """

  optimizer: str = "adam"
  learning_rate: float = 1e-3
  warmup_steps: int = 200
  grad_clip_norm: float = 50.0
  decay_steps: int = 0

  def __post_init__(self):
    if not isinstance(self.optimizer, str) or self.optimizer not in optimizer_lib.KINDS:
      raise ValueError(f"`optimizer` must be one of {optimizer_lib.KINDS} (the update's own "
                       f"Adam or Adamax); instead, it is {self.optimizer!r}.")
    _check_number("learning_rate", self.learning_rate, 0, inclusive=False)
    _check_number("warmup_steps", self.warmup_steps, 0, integer=True)
    _check_number("grad_clip_norm", self.grad_clip_norm, 0)
    _check_number("decay_steps", self.decay_steps, 0, integer=True)
    if 0 < self.decay_steps <= self.warmup_steps:
      raise ValueError(f"`decay_steps` must be 0 (no decay) or above `warmup_steps` "
                       f"({self.warmup_steps}); instead, it is {self.decay_steps}.")


def _check_number(name, value, minimum, inclusive=True, integer=False):
  kinds = int if integer else (int, float)
  if (isinstance(value, bool) or not isinstance(value, kinds)
      or not (value >= minimum if inclusive else value > minimum)):
    bound = ">=" if inclusive else ">"
    kind = "an integer" if integer else "a number"
    raise ValueError(f"`{name}` must be {kind} {bound} {minimum}; instead, it is {value!r}.")


class Update:
  """The training update of `model`; create it under the strategy's scope.

  Its variables, all saved with the model: `step` (the step counter, which seeds the noise
  and the schedule), `skipped_steps`, the optimizer's moments and count of applied updates,
  the learning rate's `scale` and the loss scale. `gradients_fn` may be replaced before the
  first step is traced.

  Args:
    model: the `Glow`.
    settings: the `Settings`; `configure` replaces them.
    seed: the integer seed of the dequantisation noise.
    ema: the `ema.ExponentialMovingAverage` of `model`, or None.
    loss_scaling: scale the loss dynamically (`loss_scale.DynamicLossScale`), for float16.
    gradients_fn: `step.loss_and_gradients` or a compiled version of it.
  """

  def __init__(self, model, settings=Settings(), seed=0, ema=None, loss_scaling=False,
               gradients_fn=step_lib.loss_and_gradients):
    self.model, self.ema, self.seed = model, ema, seed
    self.gradients_fn = gradients_fn
    self.optimizer = optimizer_lib.Optimizer(model.trainable_variables, settings.optimizer)
    self.learning_rate = schedule.LearningRate(settings.learning_rate, settings.warmup_steps,
                                               settings.decay_steps)
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
    self.loss_scale = loss_scale_lib.DynamicLossScale() if loss_scaling else None
    self.configure(settings)

  def configure(self, settings):
    """Trains with `settings` (a `Settings`) from the next traced step on."""
    self.settings = settings
    self.optimizer.kind = settings.optimizer
    self.learning_rate.peak = settings.learning_rate
    self.learning_rate.warmup_steps = settings.warmup_steps
    self.learning_rate.decay_steps = settings.decay_steps

  def initialize(self, images, labels):
    """Initialises every ActNorm (and the EMA weights) from the global batch of `images`,
    dequantised as the current step would, if not done yet; call in a replica context."""
    x = step_lib.dequantize(images, self.model.config.n_bits, self.seed, self.step)
    step_lib.initialize_once(self.model, x, labels, self.ema)

  def __call__(self, images, labels):
    """One step on this replica's `images` and `labels` (or None) in a replica context;
    returns its `step.StepResult`, after the update."""
    context = tf.distribute.get_replica_context()
    global_batch_size = tf.cast(tf.shape(images)[0] * context.num_replicas_in_sync,
                                tf.float32)
    result = step_lib.replica_step(
        self.model, images, labels, self.step, self.seed, global_batch_size,
        self.settings.grad_clip_norm, self.gradients_fn, self.loss_scale, self.ema)
    context.merge_call(self._apply, args=(result.gradients, result.ok, result.overflow))
    return result

  def _apply(self, strategy, gradients, ok, overflow):
    # Cross-replica context: `ok` and `overflow` are the same on every replica.
    ok, overflow = (strategy.experimental_local_results(v)[0] for v in (ok, overflow))
    self.optimizer.apply(gradients, self.learning_rate.at(self.step), ok)
    if self.ema is not None:
      self.ema.update(self.optimizer.iterations, ok)
    if self.loss_scale is not None:
      self.loss_scale.update(~overflow)
    self.skipped_steps.assign_add(tf.cast(~ok, tf.int64))
    self.step.assign_add(1)
