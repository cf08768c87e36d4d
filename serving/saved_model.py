"""A Glow model as a SavedModel with serving signatures, in TF Serving's versioned layout.

`export_version` writes `<export_base>/<model_name>/<version>/`; `python -m serving.export`
does that from a training workdir. The signatures all have a dynamic batch dimension N:

  log_prob (also serving_default)
      images uint8 [N, H, W, C] (+ labels int32 [N] for a class-conditional model: each
      image's class, or -1 where it is unknown, for P(x) = mean_y P(x | y) over equally
      likely classes)
      -> log_likelihood float32 [N]: estimated log-probability of each image, in nats
         bits_per_dim   float32 [N]: -log_likelihood / (D log 2)
  sample
      num_samples int32 [], temperature float32 [], seed int64 [] (+ labels int32 [N])
      -> images uint8 [N, H, W, C]   (deterministic for a given seed)
  encode
      images uint8 [N, H, W, C] (+ labels) -> latent_0 ... latent_{L-1} float32, one per level
  decode
      latent_0 ... latent_{L-1} float32 (+ labels) -> images uint8 [N, H, W, C]
  score (when exported with reference statistics of held-out images)
      images uint8 [N, H, W, C] -> float32 [N] each, higher = less like the
      training data (`glow_tfp.ood`; a class-conditional model scores every image under its
      mixture of equally likely classes, as an out-of-distribution input has no class):
      bits_per_dim, png_bits_per_dim,
      complexity_corrected, typicality, level_distance, likelihood_ratio (exported with a
      background model only), class_inconsistency (a class-conditional model only),
      template_inconsistency (exported with templates only), ood_score, ood_percentile;
      and the decision at the
      export's false-positive rate: is_ood bool [N] (ood_score above the stored threshold),
      ood_false_positive_rate float32 [N] (the threshold's rate measured on held-out
      images, the same for every image)
  log_prob_encoded, score_encoded (the latter with score; for grey or RGB images, C = 1 or 3)
      image_bytes string [N]: PNG or JPEG files of H x W pixels, decoded in the graph
      (+ labels for log_prob_encoded) -> log_prob's or score's outputs

The served log-likelihood is `glow_tfp.likelihood`'s estimate of log P(image) with K fixed
uniform dequantisation draws stored in the SavedModel (`likelihood_draws`, K x H x W x C): a
lower bound on the probability of the discrete image in expectation, never above 0, and the
same for an image in any request and batch. `score`'s bits_per_dim is the same estimate.
Encoding uses bin centres. The SavedModel holds only TensorFlow ops and
variables (the reference statistics of `score` among them): it loads with `tf.saved_model.load`, `saved_model_cli` and TF Serving, without
glow_tfp or TensorFlow Probability.

Each step of flow's fused weights (ActNorm folded into the 1x1 convolution, W = P L U for
the LU form, its inverse and log-determinant) are computed once at export and stored as
variables (`Glow.frozen_weights`), so a call of a signature runs only the convolutions and
coupling networks; the results equal the live model's up to float rounding.

`assets.extra/example_counts.json` names `sample`'s `num_samples` as the input that says how
many examples a request produces, so that a server counts it against its batch limit
(`serving.signatures.EXAMPLE_COUNTS_FILE`).

`assets.extra/tf_serving_warmup_requests` holds TF Serving's warm-up requests, one per
signature and batch size of `serving.warmup.BATCH_SIZES`, which a server replays when it
loads the version (`serving.warmup`).

This module defines no flags, so any program or test may import it.
"""

import contextlib
import dataclasses
import functools
import json
import os
import uuid

import tensorflow as tf

from glow_tfp import likelihood
from glow_tfp import model_space
from glow_tfp import ood
from glow_tfp import execution
from . import model_name as model_name_lib
from . import signatures as signatures_lib
from . import warmup

SIGNATURES = ("log_prob", "sample", "encode", "decode", "score", "log_prob_encoded",
              "score_encoded")
# Image channels the `_encoded` signatures serve: grey and RGB, which PNG and JPEG both hold.
ENCODED_CHANNELS = (1, 3)
# The scalar input of each signature that says how many examples it produces.
_EXAMPLE_COUNTS = {"sample": "num_samples"}


def serving_functions(glow, draws, reference=None, batch_parts=1, background=None,
                      templates=None):
  """The serving signatures of `glow`, as concrete functions keyed by name.

  `draws`: the fixed dequantisation draws [K, H, W, C] of the likelihood estimate
  (`glow_tfp.likelihood.fixed_draws`, an array or a variable). `reference`: a
  `glow_tfp.ood.Reference` (of arrays or variables) measured with the same draws; `score` is
  among the signatures only when it is given. `batch_parts`: each request's batch runs in
  this many parts side by side (`glow_tfp.execution.map_parts`). `background`: the
  background `Glow` of `score`'s likelihood ratio (the reference must include it), or None.
  `templates`: the `glow_tfp.ood.Templates` of `score`'s template_inconsistency (the
  reference must include it), or None.
  """
  config = glow.config
  conditional = config.num_classes > 0
  labels = [tf.TensorSpec([None], tf.int32, name="labels")] if conditional else []
  images = tf.TensorSpec((None,) + config.image_shape, tf.uint8, name="images")
  latents = [tf.TensorSpec((None,) + shape, tf.float32, name=f"latent_{level}")
             for level, shape in enumerate(glow.latent_shapes)]
  scalars = [tf.TensorSpec([], tf.int32, name="num_samples"),
             tf.TensorSpec([], tf.float32, name="temperature"),
             tf.TensorSpec([], tf.int64, name="seed")]
  # Served graphs are never differentiated, so they may pick their parts when they run.
  in_parts = functools.partial(execution.map_parts, parts=batch_parts, differentiable=False)
  builders = {
      "log_prob": (lambda g: _log_prob_fn(g, draws, in_parts), [images] + labels),
      "sample": (lambda g: _sample_fn(g, in_parts), scalars + labels),
      "encode": (lambda g: _encode_fn(g, in_parts), [images] + labels),
      "decode": (lambda g: _decode_fn(g, in_parts), latents + labels),
  }
  if reference is not None:
    builders["score"] = (
        lambda g: _score_fn(g, draws, reference, background, templates, in_parts), [images])
  if config.image_shape[-1] in ENCODED_CHANNELS:
    encoded = tf.TensorSpec([None], tf.string, name="image_bytes")
    for name in [name for name in ("log_prob", "score") if name in builders]:
      builders[f"{name}_encoded"] = (_decoding(builders[name][0], config.image_shape),
                                     [encoded] + builders[name][1][1:])
  return {name: tf.function(build(glow), input_signature=specs).get_concrete_function()
          for name, (build, specs) in builders.items()}


def _checked_labels(glow, labels, batch, unknown=False):
  """`labels`, checked against the whole request before it is cut into parts (-1 allowed
  with `unknown`).

  Checked within each part instead, a part whose check fails cancels its siblings, and
  the request may then get their CancelledError in place of the check's message.
  """
  return (None if labels is None
          else glow.check_labels(labels, tf.shape(batch)[0], unknown=unknown))


def _log_prob_fn(glow, draws, in_parts):
  # Every image gets the same fixed draws, so parts give the whole batch's values.
  def log_prob(images, labels=None):
    if labels is None:
      nats = in_parts(lambda images: glow.log_likelihood(images, noise=draws), (images,))
    else:
      # Label -1 (class unknown) gets P(x) = mean_y P(x | y): every class from one pass.
      labels = _checked_labels(glow, labels, images, unknown=True)
      per_class = in_parts(lambda images: likelihood.class_log_likelihood(glow, images,
                                                                          noise=draws),
                           (images,))
      nats = likelihood.given_or_mixture(per_class, labels)
    return {"log_likelihood": nats,
            "bits_per_dim": likelihood.bits_per_dim(nats, glow.config.num_dims)}
  return log_prob


def _decoding(build, image_shape):
  """`build`'s signature builder, taking PNG or JPEG bytes decoded in the graph for images."""
  def build_encoded(glow):
    fn = build(glow)

    def encoded(image_bytes, *labels):
      return fn(_decode_images(image_bytes, image_shape), *labels)
    return encoded
  return build_encoded


def _decode_images(image_bytes, image_shape):
  """PNG or JPEG bytes [N] -> uint8 images [N, H, W, C]; channels are converted (RGB to
  grey and back), the size must match."""
  height, width, channels = image_shape

  def decode(data):
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)

    def wrong_size():
      refusal = tf.debugging.Assert(False, [
          f"each encoded image must be {height}x{width} pixels; got (H, W, C) =",
          tf.shape(image)])
      with tf.control_dependencies([refusal]):
        return tf.zeros(image_shape, tf.uint8)
    # A branch, not a control dependency: grappler may run a shape check before an assert.
    return tf.cond(tf.reduce_all(tf.shape(image)[:2] == [height, width]),
                   lambda: tf.reshape(image, image_shape), wrong_size)
  return tf.map_fn(decode, image_bytes,
                   fn_output_signature=tf.TensorSpec(image_shape, tf.uint8))


def _score_fn(glow, draws, reference, background, templates, in_parts):
  def score(images):
    matrix = ood.image_features(glow, images, None, draws, background, in_parts, templates)
    return ood.scores(matrix, reference,
                      ood.model_test_names(glow, None, background, templates))
  return score


def _sample_fn(glow, in_parts):
  def sample(num_samples, temperature, seed, labels=None):
    checks = [
        tf.debugging.assert_non_negative(num_samples, message="num_samples must be >= 0"),
        tf.debugging.Assert(tf.math.is_finite(temperature) & (temperature >= 0.0),
                            ["temperature must be a finite number >= 0; got", temperature]),
    ]
    with tf.control_dependencies(checks):
      # The draws of the whole request first, so that its images do not depend on the parts.
      z = glow.sample_base(num_samples, temperature, seed=seed)
      x = in_parts(glow.generate, (z, _checked_labels(glow, labels, z)))
    return {"images": model_space.to_images(x, glow.config.n_bits)}
  return sample


def _encode_fn(glow, in_parts):
  def encode(images, labels=None):
    labels = _checked_labels(glow, labels, images)
    latents = in_parts(glow.encode, (model_space.to_model_space(images, glow.config.n_bits),
                                     labels))
    return {f"latent_{level}": z for level, z in enumerate(latents)}
  return encode


def _decode_fn(glow, in_parts):
  levels = glow.config.levels

  def decode(*inputs):
    latents = [tf.debugging.assert_all_finite(z, f"latent_{level} has NaN or Inf values")
               for level, z in enumerate(inputs[:levels])]
    labels = inputs[levels] if len(inputs) > levels else None
    labels = _checked_labels(glow, labels, latents[0])
    x = in_parts(lambda labels, *latents: glow.decode(latents, labels), (labels, *latents))
    return {"images": model_space.to_images(x, glow.config.n_bits)}
  return decode


def export_saved_model(glow, export_dir, reference=None, draws=None, batch_parts=None,
                       background=None, templates=None):
  """Writes `glow` as a SavedModel with the signatures of this module's docstring.

  Args:
    glow: an initialised `glow_tfp.Glow` (trained, or restored from a checkpoint).
    export_dir: directory to write; it must not exist yet or be empty.
    reference: the `glow_tfp.ood.Reference` of held-out images measured with `draws`
      (`glow_tfp.ood.reference_statistics`), stored in the SavedModel for `score`; without
      it the SavedModel has no `score` signature.
    draws: the fixed dequantisation draws [K, H, W, C] in [0, 1) of the served likelihood
      (`glow_tfp.likelihood.fixed_draws`); default `likelihood.default_draws(glow.config)`.
    batch_parts: each request's batch runs in this many parts side by side
      (`glow_tfp.execution`); None (default): `execution.default_batch_parts()` of this
      machine. Give the serving machine's cores when it is another.
    background: an initialised background `Glow` of the same image shape (trained with
      `python -m train --perturb_fraction`), whose likelihood ratio `score` serves; the
      reference must have been measured with it. None (default): no ratio.
    templates: the `glow_tfp.ood.Templates` of training images (`glow_tfp.ood.fit_templates`)
      whose template_inconsistency `score` serves, stored in the SavedModel; the reference
      must have been measured with them. None (default): no template test.

  Returns:
    `export_dir`.
  """
  if not bool(glow.initialized):
    raise ValueError("The model is not initialised (its ActNorm data-dependent "
                     "initialisation has not run): export a trained or restored model.")
  _check_background(glow, background, templates, reference)
  _check_templates(glow, background, templates, reference)
  if tf.io.gfile.exists(export_dir) and tf.io.gfile.listdir(export_dir):
    raise FileExistsError(f"Export directory {export_dir} exists and is not empty.")
  module = tf.Module(name="glow_serving")
  if draws is None:
    draws = likelihood.default_draws(glow.config)
  module.likelihood_draws = tf.Variable(_checked_draws(draws, glow.config), trainable=False,
                                        name="likelihood_draws")
  if reference is not None:
    module.reference_statistics = {
        name: tf.Variable(value, trainable=False, name=name)
        for name, value in reference.as_dict().items()}
    reference = ood.Reference(**module.reference_statistics)
  if templates is not None:
    module.templates = {name: tf.Variable(value, trainable=False, name=f"template_{name}")
                        for name, value in dataclasses.asdict(templates).items()}
    templates = ood.Templates(**module.templates)
  # Served weights never change: the signatures read each step's fused weights (W = P L U
  # among them) from variables computed here, instead of recomputing them every call.
  with contextlib.ExitStack() as stack:
    frozen = [v for model in (glow, background) if model is not None
              for v in stack.enter_context(model.frozen_weights())]
    functions = serving_functions(glow, module.likelihood_draws, reference,
                                  execution.resolve_batch_parts(batch_parts), background,
                                  templates)
  module.frozen_weights = frozen
  signatures = dict(functions)
  signatures[signatures_lib.DEFAULT_SIGNATURE] = functions["log_prob"]
  # Tracking the variables is all the SavedModel needs; the Glow object itself (TFP
  # distributions and bijectors) stays out of it, so loading never needs glow_tfp.
  module.model_variables = list(glow.variables)
  if background is not None:
    module.background_variables = list(background.variables)
  tf.saved_model.save(module, export_dir, signatures=signatures)
  counts_file = os.path.join(export_dir, signatures_lib.EXAMPLE_COUNTS_FILE)
  tf.io.gfile.makedirs(os.path.dirname(counts_file))
  with tf.io.gfile.GFile(counts_file, "w") as f:
    json.dump(_EXAMPLE_COUNTS, f)
  warmup.write_requests(export_dir, _warmup_requests(functions, glow.config.image_shape))
  return export_dir


def _check_background(glow, background, templates, reference):
  """Refuses a background model the export cannot serve a likelihood ratio with."""
  if background is None:
    names = ood.model_test_names(glow, None, None, templates)
    if reference is not None and reference.test_mean.shape[0] > len(names):
      raise ValueError(f"The reference statistics have {reference.test_mean.shape[0]} "
                       f"tests, more than this export's score ({', '.join(names)}): pass "
                       "the background model (or templates) they were measured with.")
    return
  if not bool(background.initialized):
    raise ValueError("The background model is not initialised: export a trained or "
                     "restored one.")
  ood.check_background(glow, background)
  if reference is None or reference.test_mean.shape[0] < len(
      ood.model_test_names(glow, None, background)):
    raise ValueError("A background model needs reference statistics measured with it "
                     "(`glow_tfp.ood.reference_statistics(..., background=)`).")


def _check_templates(glow, background, templates, reference):
  """Refuses templates of another latent shape, and reference statistics measured with
  other tests than the export's `score` serves."""
  if templates is not None:
    shape = (None,) + tuple(glow.latent_shapes[-1])
    for name, value in (("means", templates.means), ("stds", templates.stds)):
      if len(value.shape) != 4 or tuple(value.shape[1:]) != shape[1:]:
        raise ValueError(f"Template {name} must have shape [T, "
                         f"{', '.join(map(str, shape[1:]))}] (the top latent's); got "
                         f"{list(value.shape)}.")
  names = ood.model_test_names(glow, None, background, templates)
  if reference is not None and reference.test_mean.shape[0] != len(names):
    raise ValueError(f"The reference statistics have {reference.test_mean.shape[0]} tests; "
                     f"this export's score has {len(names)} ({', '.join(names)}): measure "
                     "them with the background model and templates it is given "
                     "(`glow_tfp.ood.reference_statistics(..., background=, templates=)`).")


def _checked_draws(draws, config):
  draws = tf.convert_to_tensor(draws, tf.float32)
  if draws.shape.rank != 4 or draws.shape[1:] != config.image_shape or draws.shape[0] < 1:
    raise ValueError(f"`draws` must have shape [K, {', '.join(map(str, config.image_shape))}] "
                     f"with K >= 1; got shape {draws.shape.as_list()}.")
  return draws


def _warmup_requests(functions, image_shape):
  """One request per signature and batch size of `warmup.BATCH_SIZES`; encoded images are
  grey PNGs of zeros, which decode to any channel count."""
  png = tf.io.encode_png(tf.zeros(image_shape[:2] + (1,), tf.uint8)).numpy()
  requests = []
  for name, function in functions.items():
    # An unconditional model's signatures list `labels` as None.
    specs = [signatures_lib.InputSpec(spec.name, spec.dtype.as_numpy_dtype, spec.shape,
                                      counts_examples=_EXAMPLE_COUNTS.get(name) == spec.name)
             for spec in function.structured_input_signature[0] if spec is not None]
    requests += [(name, warmup.example_inputs(specs, size, png))
                 for size in warmup.BATCH_SIZES]
  return requests


def versions(model_dir):
  """The integer version directories under `model_dir`, ascending (none if it is absent)."""
  if not tf.io.gfile.isdir(model_dir):
    return []
  names = (name.rstrip("/") for name in tf.io.gfile.listdir(model_dir))
  return sorted(int(name) for name in names if name.isdigit())


def export_version(glow, export_base, model_name, version=None, reference=None, draws=None,
                   batch_parts=None, background=None, templates=None):
  """Exports `glow` to `<export_base>/<model_name>/<version>/` and returns that path.

  The SavedModel is written to a hidden temporary directory and renamed into place, so a
  server polling the model directory never sees a half-written version.

  Args:
    glow: an initialised `glow_tfp.Glow`.
    export_base: the directory holding one subdirectory per served model.
    model_name: the served model's name (`serving.model_name.RULE`).
    version: positive integer; default: one more than the highest existing version.
    reference: the `glow_tfp.ood.Reference` for the `score` signature (see
      `export_saved_model`).
    draws: the fixed dequantisation draws of the served likelihood (`export_saved_model`).
    batch_parts: the parts of each request's batch (`export_saved_model`).
    background: the background model of `score`'s likelihood ratio (`export_saved_model`).
    templates: the templates of `score`'s template_inconsistency (`export_saved_model`).
  """
  if not model_name_lib.is_valid(model_name):
    raise ValueError(f"Invalid model name {model_name!r}: use {model_name_lib.RULE}.")
  model_dir = os.path.join(export_base, model_name)
  if version is None:
    version = (versions(model_dir) or [0])[-1] + 1
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError(f"`version` must be a positive integer; instead, it is {version!r}.")
  final_dir = os.path.join(model_dir, str(version))
  if tf.io.gfile.exists(final_dir):
    raise FileExistsError(f"Version {version} of model {model_name!r} already exists at "
                          f"{final_dir}.")
  staging_dir = os.path.join(model_dir, f".tmp-{version}-{uuid.uuid4().hex}")
  export_saved_model(glow, staging_dir, reference, draws, batch_parts, background, templates)
  tf.io.gfile.rename(staging_dir, final_dir)
  return final_dir
