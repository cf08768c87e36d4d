"""Glow: the multi-scale chain of bijectors over a standard-normal base."""

import contextlib
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from glow_tfp import layout as layout_lib
from glow_tfp import likelihood
from glow_tfp import model_space
from glow_tfp import precision
from glow_tfp.bijectors import actnorm
from glow_tfp.bijectors import compose
from glow_tfp.bijectors import coupling
from glow_tfp.bijectors import flow_step
from glow_tfp.bijectors import invertible_conv
from glow_tfp.bijectors import permute
from glow_tfp.bijectors import prior
from glow_tfp.bijectors import split
from glow_tfp.bijectors import squeeze

tfd = tfp.distributions

# Float dtypes of a whole model: float64 is for exactness checks and tight numerical tests.
DTYPES = ("float32", "float64")


class Glow(tf.Module):
  """A Glow model: `distribution` = `bijector` applied to N(0, 1) over [H, W, C].

  The bijector is one `FusedBijector`: per level, squeeze, K steps of flow (ActNorm ->
  channel mixing -> coupling), then a `Split` whose inner part is the next level (or the
  `TopPrior` at the last level), then un-squeeze, so the latent has the image's shape. As in
  all of TFP, `forward` generates (z -> x) and `inverse` normalises (x -> z).

  `log_prob`, `sample`, `encode` and `decode` walk the chain through its fused methods, so
  each coupling network runs once per call; `distribution.log_prob` gives the same values
  the generic TFP way (pass `bijector_kwargs={"labels": y}` to a class-conditional model).
  Model space is [-0.5, 0.5]; see `glow_tfp.model_space` for the way in and out. `layout`, a
  `LatentLayout` computed from the config, holds the shapes of the levels and their latents.
  How a batch runs on this machine is the application's choice, not the model's: the
  training step, `GlowModel` and the export cut batches into parts with `glow_tfp.execution`.

  Args:
    config: `GlowConfig`.
    seed: integer seed of every random initial value (1x1 convs, shuffles, kernels).
    reversible_gradients: recompute activations from outputs during backprop instead of
      storing them, level by level, so peak training memory stays nearly flat in K.
    compute_dtype: dtype of the coupling networks: None (default) for `dtype`, or
      "bfloat16" / "float16" for mixed precision; variables, log-dets and log_prob stay
      in `dtype`. A dtype whose convolutions this machine's TensorFlow cannot run is
      refused here (`glow_tfp.precision`).
    dtype: "float32" (default) or "float64", one of `DTYPES`: the dtype of every variable,
      of the model-space images and latents, and of log_prob.
    name: module name.
  """

  def __init__(self, config, seed=0, reversible_gradients=False, compute_dtype=None,
               dtype="float32", name=None):
    super().__init__(name=name or "glow")
    if dtype not in DTYPES:
      raise ValueError(f"`dtype` must be one of {DTYPES}; instead, it is {dtype!r}.")
    compute_dtypes = coupling.COMPUTE_DTYPES + ("float64",)
    if compute_dtype not in (None,) + compute_dtypes:
      raise ValueError(f"`compute_dtype` must be one of {compute_dtypes}; "
                       f"instead, it is {compute_dtype!r}.")
    precision.check_compute_dtype(compute_dtype)
    self.config = config
    self.dtype = tf.as_dtype(dtype)
    self.layout = layout_lib.LatentLayout.from_config(config)
    builder = _ChainBuilder(config, self.layout, seed, reversible_gradients,
                            compute_dtype or dtype, self.dtype)
    with self.name_scope:
      self.bijector = builder.level(0)
    base = tfd.Normal(tf.constant(0.0, self.dtype), tf.constant(1.0, self.dtype))
    self.distribution = tfd.TransformedDistribution(
        distribution=tfd.Sample(base, list(config.image_shape)),
        bijector=self.bijector, name="glow")
    self._actnorms = tuple(m for m in self.bijector.submodules
                           if isinstance(m, actnorm.ActNorm))

  @contextlib.contextmanager
  def frozen_weights(self):
    """Within it, every step of flow reads its fused affine map from variables set on entry.

    For export: functions traced inside skip recomputing W = P L U and the ActNorm fusion
    per call (`FlowStep.frozen`); their results equal the live model's up to float
    rounding. Yields the new variables, which the caller must save with the functions.
    """
    # Found here rather than kept as an attribute: a tracked attribute would give the steps'
    # variables a second path, and the checkpoint would save them under it.
    steps = [m for m in self.bijector.submodules if isinstance(m, flow_step.FlowStep)]
    with contextlib.ExitStack() as stack:
      yield [variable for step in steps for variable in stack.enter_context(step.frozen())]

  @property
  def initialized(self):
    """Whether the data-dependent initialisation has run (a bool tensor)."""
    return tf.reduce_all(tf.stack([a.initialized for a in self._actnorms]))

  @property
  def latent_shapes(self):
    """The shapes [h, w, c] of `encode`'s latents, from the first level to the top."""
    return self.layout.latent_shapes

  def initialize(self, x, labels=None):
    """Data-dependent initialisation of every ActNorm from a batch in model space."""
    x, labels = self._check_inputs(x, labels)
    self.bijector.initialize_inverse(x, labels=labels)

  def log_prob(self, x, labels=None):
    """Exact log-density [N] at model-space points `x` [N, H, W, C] (not a probability of
    a discrete image: `log_likelihood` gives that).

    A class-conditional model gives log p(x | labels); without labels, the density of its
    mixture over K equally likely classes, log p(x) = logsumexp_y log p(x | y) - log K
    (`class_log_probs`).
    """
    if labels is None and self.config.num_classes:
      return likelihood.class_mixture(self.class_log_probs(x))
    x, labels = self._check_inputs(x, labels)
    z, log_det = self.bijector.inverse_and_log_det(x, labels=labels)
    return _standard_normal_log_prob(z) + log_det

  def class_log_probs(self, x):
    """log p(x | y) [N, K] at model-space points `x` for every class y of a
    class-conditional model, from one pass through the flow: only the top prior depends on
    the class."""
    if not self.config.num_classes:
      raise ValueError("class_log_probs needs a class-conditional model (num_classes > 0).")
    *lower, (positions, log_det, _) = self._terms(self._check_images(x), labels=None)[0]
    shared = log_det + sum(sum(term) for term in lower)
    return shared[:, tf.newaxis] + tf.reduce_sum(positions, axis=[2, 3])

  def level_log_probs(self, x, labels=None, class_positions=False, top_latent=False):
    """log_prob at model-space points `x`, level by level: float [N, L, 2].

    Entry [n, l] is (log N(z_l; 0, I), log|det J_l|): the standard-normal log-density of the
    latent level l factors out (its split half, or the top latent at the last level) and the
    log-det of level l's own layers (its K steps and the split's or top prior's
    standardisation). Everything sums to `log_prob(x)`. The first level mostly scores local
    pixel statistics and the last the global shape (Schirrmeister et al., 2020; Kirichenko
    et al., 2020), which is what `glow_tfp.ood` uses them for. A class-conditional model
    without labels scores the top latent under its mixture of equally likely classes: the
    last level's first entry is then that mixture's log-density, the top prior's
    standardisation included, and its second the log-det of the level's K steps.

    `class_positions=True` (a class-conditional model without labels) returns a pair: the
    terms and, from the same pass, log p(top latent at each position | y) [N, K, h, w] for
    every class y (`TopPrior.class_position_log_probs`), which `glow_tfp.ood` compares
    across positions. `top_latent=True` adds, last, the top level's latent before its prior
    [N, h, w, c] (what the top prior scores), which `glow_tfp.ood` compares with templates.
    """
    mixture = labels is None and bool(self.config.num_classes)
    if class_positions and not mixture:
      raise ValueError("class_positions needs a class-conditional model and no labels.")
    x, labels = ((self._check_images(x), None) if mixture else self._check_inputs(x, labels))
    terms, top = self._terms(x, labels)
    positions = None
    if mixture:
      positions, log_det, _ = terms[-1]
      terms[-1] = (likelihood.class_mixture(tf.reduce_sum(positions, axis=[2, 3])), log_det,
                   0.0)
    stacked = tf.stack([tf.stack([normal, log_det + tail_log_det], axis=-1)
                        for normal, log_det, tail_log_det in terms], axis=1)
    extras = [positions] * class_positions + [top] * top_latent
    return (stacked, *extras) if extras else stacked

  def _terms(self, x, labels):
    """(terms, the top level's input): per level, (log N(z_l; 0, I), the log-det of the
    layers before its tail, the tail's log-det). At the top of a class-conditional model
    without labels, the first is log p(top latent at each position | y) [N, K, h, w], one
    map per class y, the standardisation's log-det included, and the last 0."""
    terms = []
    for tail, y, log_det in self._levels(x, labels):
      if isinstance(tail, split.Split):
        z, tail_log_det = tail.factor_out(y)[1:]
        terms.append((_standard_normal_log_prob(z), log_det, tail_log_det))
      elif labels is None and self.config.num_classes:
        terms.append((tail.class_position_log_probs(y), log_det, 0.0))
      else:
        z, tail_log_det = tail.inverse_and_log_det(y, labels=labels)
        terms.append((_standard_normal_log_prob(z), log_det, tail_log_det))
    return terms, y

  def _levels(self, x, labels):
    """Yields per level (tail, y, log_det): the level's `Split` or, at the top, its
    `TopPrior`; y, the tail's input; log_det, that of the level's layers before the tail."""
    level = self.bijector
    while True:
      to_level, steps, tail, _ = level.bijectors
      y, log_det = steps.inverse_and_log_det(to_level.inverse_and_log_det(x)[0], labels=labels)
      yield tail, y, log_det
      if not isinstance(tail, split.Split):
        return
      x, level = y[..., :split.kept_channels(y.shape[-1])], tail.inner

  def log_likelihood(self, images, labels=None, num_draws=1, seed=0, noise=None):
    """Estimated log-probability [N] in nats of uint8 `images`: `glow_tfp.likelihood`.

    A lower bound on log P(images) in expectation that tightens as `num_draws` grows;
    `likelihood.bits_per_dim` turns it into bits/dim.
    """
    return likelihood.log_likelihood(self, images, labels, num_draws, seed, noise)

  def sample(self, n, temperature=1.0, labels=None, seed=None):
    """`n` model-space samples, the base scaled by `temperature` (0 gives prior means).

    `seed`: None (global RNG) or a stateless seed (int or shape-[2] int tensor).
    """
    return self.generate(self.sample_base(n, temperature, seed), labels)

  def sample_base(self, n, temperature=1.0, seed=None):
    """The base's `n` draws [n, H, W, C] scaled by `temperature`, which `sample` generates
    from; `seed` as in `sample`."""
    shape = tf.concat([[n], self.config.image_shape], axis=0)
    if seed is None:
      z = tf.random.normal(shape, dtype=self.dtype)
    else:
      z = tf.random.stateless_normal(shape, model_space.as_seed(seed), dtype=self.dtype)
    return temperature * z

  def encode(self, x, labels=None):
    """Model-space images -> the standardised latents, one tensor per level."""
    x, labels = self._check_inputs(x, labels)
    return self.layout.unpack(self.bijector.inverse_and_log_det(x, labels=labels)[0])

  def decode(self, latents, labels=None):
    """The latents of `encode` (or any of their shapes) -> model-space images."""
    return self.generate(self.layout.pack(self._check_latents(latents)), labels)

  def generate(self, z, labels=None):
    """Points `z` [N, H, W, C] of the base's space (`sample_base`, or `decode`'s latents
    packed) -> model-space images."""
    labels = self.check_labels(labels, tf.shape(z)[0])
    return self.bijector.forward_and_log_det(z, labels=labels)[0]

  def _check_inputs(self, x, labels):
    x = self._check_images(x)
    return x, self.check_labels(labels, tf.shape(x)[0])

  def _check_images(self, x):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
      raise TypeError(f"images must be float32 model-space values (glow_tfp.to_model_space "
                      f"maps uint8 images there); got dtype {x.dtype.name}.")
    if x.dtype != self.dtype:
      raise TypeError(f"images must be {self.dtype.name}; got dtype {x.dtype.name}.")
    expected = (None,) + self.config.image_shape
    if x.shape.rank != 4 or not x.shape.is_compatible_with(expected):
      raise ValueError(f"images must have shape [N, {', '.join(map(str, expected[1:]))}] "
                       f"(this model's image_shape); got shape {x.shape.as_list() if x.shape.rank is not None else 'unknown'}.")
    return tf.debugging.assert_all_finite(x, "images contain NaN or Inf values")

  def check_labels(self, labels, batch_size, unknown=False):
    """`labels` as a tensor that raises when run unless they are [batch_size] class ids
    (or, with `unknown=True`, -1 for an image of unknown class)."""
    num_classes = self.config.num_classes
    if labels is None:
      if num_classes:
        raise ValueError(f"labels are required: this model is class-conditional "
                         f"({num_classes} classes).")
      return None
    if not num_classes:
      raise ValueError("labels were given, but this model is unconditional (num_classes=0).")
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
      raise TypeError(f"labels must be integers; got dtype {labels.dtype.name}.")
    if labels.shape.rank != 1:
      raise ValueError(f"labels must have shape [N]; got shape {labels.shape.as_list() if labels.shape.rank is not None else 'unknown'}.")
    checks = [
        tf.debugging.assert_equal(tf.shape(labels)[0], tf.cast(batch_size, tf.int32),
                                  message="labels and images have different batch sizes"),
        tf.debugging.assert_greater_equal(
            labels, tf.constant(-1 if unknown else 0, labels.dtype),
            message="labels must be >= -1 (-1: class unknown)" if unknown
            else "labels must be >= 0"),
        tf.debugging.assert_less(labels, tf.cast(num_classes, labels.dtype),
                                 message=f"labels must be < num_classes = {num_classes}"),
    ]
    with tf.control_dependencies(checks):
      return tf.identity(labels)

  def _check_latents(self, latents):
    expected = self.latent_shapes
    if len(latents) != len(expected):
      raise ValueError(f"decode expects {len(expected)} latents (one per level); "
                       f"got {len(latents)}.")
    latents = [tf.convert_to_tensor(z, self.dtype) for z in latents]
    for level, (z, shape) in enumerate(zip(latents, expected)):
      if z.shape.rank != 4 or not z.shape[1:].is_compatible_with(shape):
        raise ValueError(f"latent {level} must have shape [N, {', '.join(map(str, shape))}]; "
                         f"got shape {z.shape.as_list()}.")
    return latents


def _standard_normal_log_prob(z):
  num_dims = tf.cast(tf.reduce_prod(tf.shape(z)[1:]), z.dtype)
  return (-0.5 * tf.reduce_sum(tf.square(z), axis=[1, 2, 3])
          - 0.5 * num_dims * math.log(2.0 * math.pi))


class _ChainBuilder:
  """Builds the multi-scale chain of one model, drawing every seed from one generator."""

  def __init__(self, config, layout, seed, reversible_gradients, compute_dtype, dtype):
    self._config = config
    self._layout = layout
    self._rng = np.random.default_rng(seed)
    self._reversible = reversible_gradients
    self._compute_dtype = compute_dtype
    self._dtype = dtype

  def level(self, level):
    """Squeeze, K steps, split (or the top prior), un-squeeze: [h, w, c] -> [h, w, c]."""
    config = self._config
    channels = self._layout.levels[level].shape[-1]
    steps = compose.Sequential(
        [self.step(channels, f"level{level}_step{k}") for k in range(config.steps_per_level)],
        reversible=self._reversible, name=f"level{level}_steps")
    if level == config.levels - 1:
      per_position = config.class_prior == "per_position"
      class_shape = self._layout.levels[level].shape[:2] if per_position else (1, 1)
      tail = prior.TopPrior(channels, config.learn_top_prior, config.num_classes,
                            dtype=self._dtype, name=f"level{level}_top_prior",
                            class_shape=class_shape)
    else:
      tail = split.Split(self.level(level + 1), channels, dtype=self._dtype,
                         name=f"level{level}_split")
    factor = layout_lib.SQUEEZE_FACTOR
    return compose.Sequential(
        [squeeze.Squeeze(factor, self._dtype, name=f"level{level}_squeeze"), steps, tail,
         compose.Invert(squeeze.Squeeze(factor, self._dtype, name=f"level{level}_unsqueeze"))],
        name=f"level{level}")

  def step(self, channels, name):
    """One step of flow in normalising order: ActNorm, channel mixing, coupling."""
    config = self._config
    seed = int(self._rng.integers(2**31))
    if config.permutation in permute.PERMUTATION_KINDS:
      mixing = permute.ChannelPermutation(channels, config.permutation, seed=seed,
                                          dtype=self._dtype, name=f"{name}_permute")
    else:
      mixing = invertible_conv.Invertible1x1Conv(channels, lu=config.permutation == "lu",
                                                 seed=seed, dtype=self._dtype,
                                                 name=f"{name}_conv")
    return flow_step.FlowStep(
        actnorm.ActNorm(channels, self._dtype, name=f"{name}_actnorm"), mixing,
        coupling.Coupling(channels, config.hidden_channels, config.coupling, seed=seed + 1,
                          dtype=self._dtype, compute_dtype=self._compute_dtype,
                          scale=config.coupling_scale,
                          log_scale_bound=config.coupling_log_scale_bound,
                          name=f"{name}_coupling"),
        name=name)
