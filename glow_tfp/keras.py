"""GlowModel: a Keras model around `glow_tfp.Glow`, for `fit`, `evaluate` and `predict`.

  model = glow_tfp.GlowModel(glow_tfp.GlowConfig.preset("mnist"))
  model.compile(optimizer="adamax", learning_rate=1e-3)   # the update of `python -m train`
  model.fit(train_ds, validation_data=val_ds, epochs=5,
            callbacks=[glow_tfp.keras.SampleGrid("samples")])
  model.evaluate(test_ds)             # {"loss": bits/dim (a bound), "bits_per_dim": the same}
  images = model.sample(16, temperature=0.7)   # uint8 [16, H, W, C]

Both Keras generations work: `GlowModel` and `SampleGrid` here are built on the Keras that
`tf.keras` resolves to (Keras 3 unless TF_USE_LEGACY_KERAS=1), and `for_keras(tf_keras)` or
`for_keras(keras)` gives the classes of either generation.

Keras 3 tracks only `keras.Variable`s, so a flow made of plain `tf.Variable`s (this one, and
TFP's own Glow) would train nothing. Here the flow is built under a `tf.variable_creator_scope`
that creates each of its variables through the model's `add_weight`: Keras owns the weights
(the update, `save_weights`, `get_weights`, callbacks) and the flow reads the very same
`tf.Variable`s, in either generation and under a `tf.distribute` strategy.
"""

import functools
import importlib
import os
import types

import tensorflow as tf

from glow_tfp import config as config_lib
from glow_tfp import execution
from glow_tfp import flow
from glow_tfp import grid
from glow_tfp import likelihood
from glow_tfp import model_space
from glow_tfp.training import ema as ema_lib
from glow_tfp.training import step as step_lib
from glow_tfp.training import update as update_lib

_SUPPORTED_KERAS = {"keras": (2, 3), "tf_keras": (2,)}


def for_keras(keras_module):
  """The Keras classes of this module for one Keras generation.

  Args:
    keras_module: `keras` (Keras 3), `tf_keras` (Keras 2) or `tf.keras`.

  Returns:
    A namespace with `GlowModel` and `SampleGrid` built on that Keras.
  """
  return _classes_for(_canonical_keras(keras_module))


def __getattr__(name):
  # The default classes need Keras imported; build them on first use, not on import.
  if name in ("GlowModel", "SampleGrid"):
    return getattr(for_keras(tf.keras), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _canonical_keras(keras_module):
  """The top-level `keras` or `tf_keras` module behind `keras_module`."""
  model_class = getattr(keras_module, "Model", None)
  if not isinstance(model_class, type):
    raise TypeError(f"Expected a Keras module (keras, tf_keras or tf.keras); got {keras_module!r}.")
  top = importlib.import_module(model_class.__module__.split(".")[0])
  major = int(top.__version__.split(".")[0])
  if major not in _SUPPORTED_KERAS.get(top.__name__, ()):
    raise ValueError(f"Unsupported Keras {top.__name__} {top.__version__}: GlowModel supports "
                     "Keras 3 (`keras`) and Keras 2 (`tf_keras`).")
  return top


@functools.lru_cache(maxsize=None)
def _classes_for(keras_module):
  model = type("GlowModel", (_GlowModel, keras_module.Model),
               {"__doc__": _GlowModel.__doc__, "__module__": __name__, "keras": keras_module})
  callback = type("SampleGrid", (_SampleGrid, keras_module.callbacks.Callback),
                  {"__doc__": _SampleGrid.__doc__, "__module__": __name__})
  return types.SimpleNamespace(GlowModel=model, SampleGrid=callback)


class _GlowModel:
  """A Keras model whose loss is the negative log-likelihood of a Glow flow.

  Batches are uint8 images [N, H, W, C] as they come from numpy or `tfds`: `images`,
  `(images,)`, `(images, labels)` or a dict with "image" (and "label"). A class-conditional
  model (`config.num_classes > 0`) needs the labels to train and to sample; `evaluate` and
  `predict` without them score log P(x) = log mean_y P(x | y) over equally likely classes
  (`Glow.log_prob`). An unconditional model ignores labels, so
  `tfds.load(..., as_supervised=True)` datasets work unchanged.

  - `fit` runs the update of `python -m train`, `update` (a
    `glow_tfp.training.update.Update`), with the settings given to `compile`: it
    dequantises with uniform noise (seeded by `seed` and `update.step`), in its first step
    initialises every ActNorm from the first global batch, once (the `initialized` flags
    are weights, so restored weights are never initialised again), clips the gradients,
    applies Adam or Adamax at the warmed-up learning rate, and skips the whole update
    (optimizer step and moments included) when the loss or the gradient norm is not finite,
    counting it in `update.skipped_steps`. The loss is the mean bits/dim of the dequantised
    batch, as in the CLI. The update's variables (step, moments, ...) are non-trainable
    weights of the model, saved with the others.
  - With `ema_decay` > 0, `ema_glow` keeps an exponential moving average of the weights
    (`glow_tfp.training.ema`), updated after each applied step and saved with the weights;
    `evaluate`, `predict` and `sample` then use it (`glow` keeps the raw weights).
  - `evaluate` and `predict` estimate the probability of each image with `likelihood_draws`
    fixed uniform dequantisation draws (`glow_tfp.likelihood`: a lower bound on log P in
    expectation; the same draws for every image and batch, those of an export with as many
    draws and `--likelihood_seed=0`). Logs: `loss` and `bits_per_dim` (the same value,
    the mean bound in bits/dim); `predict` gives per-image `log_likelihood` (nats) and
    `bits_per_dim`, the outputs of the serving `log_prob`.
  - `initialize(batch)` runs the data-dependent initialisation explicitly (bin centres).
  - `sample(n, temperature)` returns uint8 images.

  Args:
    config: `GlowConfig`.
    seed: integer seed of the flow's initial values and of the dequantisation noise.
    ema_decay: decay of the EMA weights in [0, 1); 0 (default) keeps none.
    likelihood_draws: K, the dequantisation draws per image of `evaluate` and `predict`.
    compute_dtype: None (float32), "bfloat16" or "float16": the coupling networks' dtype,
      as `Glow`'s (mixed precision); "float16" trains with the update's dynamic loss scale,
      as `python -m train --compute_dtype=float16` does.
    name: model name.

  How the steps run on this machine is an argument of `compile`, as Keras's own
  `jit_compile` and `steps_per_execution` are: `batch_parts`.
  """

  def __init__(self, config, seed=0, ema_decay=0.0, likelihood_draws=1, compute_dtype=None,
               name="glow_model"):
    if not isinstance(config, config_lib.GlowConfig):
      raise TypeError(f"`config` must be a glow_tfp.GlowConfig; got {type(config).__name__}.")
    if not isinstance(seed, int) or isinstance(seed, bool):
      raise TypeError(f"`seed` must be an integer; got {seed!r}.")
    super().__init__(name=name)
    if not 0 <= ema_decay < 1:
      raise ValueError(f"`ema_decay` must be in [0, 1); got {ema_decay!r}.")
    self.config = config
    self._seed, self._ema_decay, self._coupling_dtype = seed, ema_decay, compute_dtype
    self._likelihood_draws = likelihood.check_num_draws(likelihood_draws)
    self._eval_noise = tf.constant(likelihood.fixed_draws(likelihood_draws, config.image_shape))
    with tf.variable_creator_scope(_KerasOwnedVariables(self)):
      self.glow = flow.Glow(config, seed=seed, compute_dtype=compute_dtype)
    self.ema_glow, self._ema = None, None
    if ema_decay:
      with tf.variable_creator_scope(_KerasOwnedVariables(self, trainable=False)):
        self.ema_glow = flow.Glow(config, seed=seed, compute_dtype=compute_dtype,
                                  name="ema_glow")
      self._ema = ema_lib.ExponentialMovingAverage(self.glow, self.ema_glow, ema_decay)
    # Made here, not in compile: a model loads the weights of a trained one uncompiled.
    with tf.variable_creator_scope(_KerasOwnedVariables(self, trainable=False)):
      self.update = update_lib.Update(self.glow, seed=seed, ema=self._ema,
                                      loss_scaling=compute_dtype == "float16")
    self.built = True  # every variable exists now; Keras must not build again
    self._batch_parts = None  # `compile`'s; None: execution.default_batch_parts()
    self._loss_tracker = self.keras.metrics.Mean(name="loss")
    self._bits_tracker = self.keras.metrics.Mean(name="bits_per_dim")
    self._check_keras_sees_the_flow()

  def _check_keras_sees_the_flow(self):
    seen = {id(_tf_variable(w)) for w in self.trainable_weights}
    missing = [v.name for v in self.glow.trainable_variables if id(v) not in seen]
    if missing:
      raise RuntimeError(f"Keras {self.keras.__version__} does not see {len(missing)} trainable "
                         f"variables of the flow (e.g. {missing[0]}); fit would not train them.")

  @property
  def _eval_glow(self):
    return self.ema_glow or self.glow

  def get_config(self):
    return {"glow_config": self.config.to_json(), "seed": self._seed,
            "ema_decay": self._ema_decay, "likelihood_draws": self._likelihood_draws,
            "compute_dtype": self._coupling_dtype, "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(config_lib.GlowConfig.from_json(config["glow_config"]), seed=config["seed"],
               ema_decay=config.get("ema_decay", 0.0),
               likelihood_draws=config.get("likelihood_draws", 1),
               compute_dtype=config.get("compute_dtype"), name=config["name"])

  @property
  def metrics(self):
    return [self._loss_tracker, self._bits_tracker]

  def compile(self, optimizer=update_lib.Settings.optimizer,
              learning_rate=update_lib.Settings.learning_rate,
              warmup_steps=update_lib.Settings.warmup_steps,
              grad_clip_norm=update_lib.Settings.grad_clip_norm,
              decay_steps=update_lib.Settings.decay_steps, batch_parts=None, **kwargs):
    """Sets the update of `fit`, with the flags and defaults of `python -m train`.

    Args:
      optimizer: "adam" or "adamax" (the update's own; a Keras optimizer is refused).
      learning_rate: the peak learning rate (> 0).
      warmup_steps: steps of linear warm-up to it (>= 0), counted by `update.step`.
      grad_clip_norm: clip the gradients to this global norm (>= 0; 0: no clipping).
      decay_steps: 0 keeps the peak after the warm-up; S > warmup_steps decays it to 0 at
        step S along a half cosine (`python -m train --lr_decay=cosine` gives S = --steps).
      batch_parts: cut each replica's batch of the train, test and predict steps into this
        many parts that run side by side (`glow_tfp.execution.map_parts`); None (default):
        `execution.default_batch_parts()`, one per CPU core on a machine without a GPU
        (call `execution.configure_threads()` first for the threads that suit it), and one
        under XLA. Values and weights are the same for any count.
      **kwargs: options of `keras.Model.compile` (`jit_compile`, `steps_per_execution`,
        ...) but no `loss` or `metrics`: the model brings its own.
    """
    given = sorted(k for k in ("loss", "loss_weights", "metrics", "weighted_metrics")
                   if kwargs.get(k) is not None)
    if given:
      raise ValueError(f"GlowModel.compile takes no {', '.join(given)}: the loss is the "
                       "model's negative log-likelihood and it reports bits_per_dim itself.")
    settings = update_lib.Settings(optimizer, learning_rate, warmup_steps, grad_clip_norm,
                                   decay_steps)
    parts = execution.resolve_batch_parts(batch_parts)
    super().compile(optimizer=None, **kwargs)
    if self.jit_compile and parts > 1:
      # Keras traces the step for a batch of unknown size, so the parts' sizes are known only
      # when it runs, and XLA, which needs them to compile, would compile every step again.
      if batch_parts is not None:
        raise ValueError(f"`batch_parts={batch_parts}` needs jit_compile off: under XLA a "
                         "step runs whole batches (batch_parts=None or 1).")
      parts = 1
    self._batch_parts = parts
    self.update.gradients_fn = functools.partial(step_lib.loss_and_gradients,
                                                 batch_parts=parts)
    self.update.configure(settings)

  def _get_optimizer(self, optimizer):
    # Keras 2 turns `compile`'s optimizer into a Keras one; the update brings its own.
    del optimizer
    return None

  def call(self, inputs, training=False):
    """Per-image `log_likelihood` (estimated log P, nats) and `bits_per_dim`."""
    images, labels = self._unpack(inputs)
    return self._scores(images, labels)

  def train_step(self, data):
    images, labels = self._unpack(data)
    if labels is None and self.config.num_classes:
      raise ValueError(f"labels are required to train a class-conditional model "
                       f"({self.config.num_classes} classes): pass (images, labels) or a "
                       f"dict with 'label'.")
    result = self.update(images, labels)
    self._loss_tracker.update_state(result.loss)
    self._bits_tracker.update_state(result.loss)
    return {m.name: m.result() for m in self.metrics}

  def test_step(self, data):
    images, labels = self._unpack(data)
    return self._update_metrics(self._scores(images, labels))

  def predict_step(self, data):
    return self.call(data)

  def initialize(self, batch):
    """Initialises every ActNorm from `batch` (any batch form `fit` takes), at bin centres."""
    images, labels = self._unpack(batch)
    self.glow.initialize(self._bin_centres(images), labels)
    if self._ema is not None:
      self._ema.reset()

  def sample(self, n, temperature=1.0, labels=None, seed=None):
    """`n` uint8 images [n, H, W, C]; `seed` None (global RNG) or an int (stateless)."""
    x = self._eval_glow.sample(n, temperature=temperature, labels=labels, seed=seed)
    return model_space.to_images(x, self.config.n_bits)

  def _unpack(self, data):
    """(images, labels) of a batch; labels None for an unconditional model."""
    if isinstance(data, dict):
      if "image" not in data:
        raise ValueError(f"A dict batch needs an 'image' key (as from tfds); got keys "
                         f"{sorted(data)}.")
      images, labels = data["image"], data.get("label")
    elif isinstance(data, (tuple, list)):
      if len(data) == 1:  # Keras wraps x alone, as in `predict(x)`, in a 1-tuple.
        return self._unpack(data[0])
      if len(data) != 2:
        raise ValueError("A batch is images, (images,) or (images, labels); got a tuple of "
                         f"{len(data)} elements.")
      images, labels = data
    else:
      images, labels = data, None
    return images, (labels if self.config.num_classes else None)

  def _bin_centres(self, images):
    return model_space.to_model_space(images, self.config.n_bits)

  def _parts(self):
    return self._batch_parts or execution.default_batch_parts()

  def _scores(self, images, labels):
    # The draws are the same for every image, so parts give the whole batch's values.
    nats = execution.map_parts(
        lambda images, labels: self._eval_glow.log_likelihood(images, labels,
                                                              noise=self._eval_noise),
        (images, labels), self._parts())
    return {"log_likelihood": nats,
            "bits_per_dim": likelihood.bits_per_dim(nats, self.config.num_dims)}

  def _update_metrics(self, scores):
    self._loss_tracker.update_state(scores["bits_per_dim"])
    self._bits_tracker.update_state(scores["bits_per_dim"])
    return {m.name: m.result() for m in self.metrics}


class _KerasOwnedVariables:
  """A variable creator that makes each new `tf.Variable` a weight of a Keras model.

  The model's `add_weight` creates the variable (itself through `tf.Variable`, which comes
  back here and is passed on), and the creator returns the `tf.Variable` underneath.
  """

  def __init__(self, model, trainable=None):
    self._model = model
    self._trainable = trainable  # None: as the flow asks; False for the EMA weights.
    self._creating = False

  def __call__(self, next_creator, **kwargs):
    if self._creating:
      return next_creator(**kwargs)
    self._creating = True
    try:
      return _tf_variable(self._add_weight(**kwargs))
    finally:
      self._creating = False

  def _add_weight(self, initial_value, name, trainable=None, dtype=None, **unused_kwargs):
    value = tf.convert_to_tensor(initial_value() if callable(initial_value) else initial_value,
                                 dtype)
    return self._model.add_weight(
        name=_weight_name(name), shape=value.shape, dtype=value.dtype,
        initializer=lambda shape, dtype=None: value,
        trainable=_first_given(self._trainable, trainable, True))


def _first_given(*values):
  return next(v for v in values if v is not None)


def _weight_name(name):
  # Keras 3 forbids "/" in names; the name scope makes each flow variable's name unique.
  scope = tf.get_current_name_scope()
  return f"{scope}/{name}".strip("/").replace("/", ".")


def _tf_variable(weight):
  """The `tf.Variable` of a Keras weight: Keras 3 wraps it, Keras 2 uses it directly."""
  return weight if isinstance(weight, tf.Variable) else weight.value


class _SampleGrid:
  """Writes a PNG grid of samples of a `GlowModel` at the end of every `every` epochs.

  The same latents (from `seed`) each time, so the files show training progress:
  `<directory>/samples_epoch0001.png`, ... (epochs counted from 1, as Keras displays them).

  Args:
    directory: where the PNGs go (created if needed).
    num_samples: images per grid (>= 1).
    temperature: scale of the base distribution (>= 0); the paper shows 0.7.
    labels: int labels [num_samples] for a class-conditional model.
    seed: integer seed of the latents.
    every: write after every `every` epochs (>= 1).
  """

  def __init__(self, directory, num_samples=16, temperature=0.7, labels=None, seed=0, every=1):
    super().__init__()
    if num_samples < 1 or every < 1:
      raise ValueError(f"`num_samples` and `every` must be >= 1; got {num_samples} and {every}.")
    if temperature < 0:
      raise ValueError(f"`temperature` must be >= 0; got {temperature}.")
    self.directory = directory
    self.num_samples, self.temperature, self.labels = num_samples, temperature, labels
    self.seed, self.every = seed, every

  def path(self, epoch):
    """The PNG written after `epoch` (counted from 1)."""
    return os.path.join(self.directory, f"samples_epoch{epoch:04d}.png")

  def on_train_begin(self, logs=None):
    if not isinstance(self.model, _GlowModel):
      raise TypeError(f"SampleGrid needs a GlowModel; got {type(self.model).__name__}.")

  def on_epoch_end(self, epoch, logs=None):
    if (epoch + 1) % self.every:
      return
    images = self.model.sample(self.num_samples, self.temperature, self.labels, self.seed)
    grid.save_png(self.path(epoch + 1), grid.image_grid(images))
