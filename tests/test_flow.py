import itertools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import glow_tfp
from glow_tfp.bijectors import nets
from tests.checks import assert_close, check_bijector, needs_compute_dtype, perturb, random_images

SHAPE = (8, 8, 2)
VARIANTS = list(itertools.product(["lu", "conv", "shuffle", "reverse"], ["affine", "additive"]))


def tiny_config(**changes):
  fields = dict(image_shape=SHAPE, levels=2, steps_per_level=2, hidden_channels=8)
  fields.update(changes)
  return glow_tfp.GlowConfig(**fields)


def trained_looking_model(config, seed=0):
  """A model initialised on data, then moved off its initial values."""
  model = glow_tfp.Glow(config, seed=seed)
  labels = tf.range(4) % config.num_classes if config.num_classes else None
  model.initialize(random_images((4,) + SHAPE, seed=seed), labels)
  perturb(model, scale=0.05, seed=seed)
  return model


@pytest.mark.parametrize("permutation, coupling", VARIANTS)
def test_model_properties(permutation, coupling):
  model = trained_looking_model(tiny_config(permutation=permutation, coupling=coupling))
  check_bijector(model.bijector, random_images((2,) + SHAPE, seed=5))


@pytest.mark.parametrize("class_prior", ["per_position", "per_channel"])
def test_class_conditional_model_properties(class_prior):
  model = trained_looking_model(tiny_config(num_classes=3, class_prior=class_prior))
  check_bijector(model.bijector, random_images((2,) + SHAPE, seed=5), labels=tf.constant([0, 2]))


def dynamic_batch_log_prob(model):
  """model.log_prob as a tf.function whose batch dimension is None."""
  images = tf.TensorSpec((None,) + SHAPE, tf.float32)
  if model.config.num_classes:
    return tf.function(model.log_prob, input_signature=[images, tf.TensorSpec([None], tf.int32)])
  traced = tf.function(model.log_prob, input_signature=[images])
  return lambda x, labels: traced(x)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_log_prob_agrees_eager_graph_xla_and_tfp(num_classes):
  model = trained_looking_model(tiny_config(num_classes=num_classes))
  x = random_images((5,) + SHAPE, seed=6)
  labels = tf.constant([0, 1, 2, 0, 1]) if num_classes else None
  eager = model.log_prob(x, labels).numpy()
  graph = dynamic_batch_log_prob(model)
  xla = tf.function(model.log_prob, jit_compile=True)
  tfp_value = model.distribution.log_prob(
      x, bijector_kwargs={"labels": labels} if num_classes else {})
  assert_close(graph(x, labels).numpy(), eager, rtol=1e-5)
  first_two = None if labels is None else labels[:2]
  assert_close(graph(x[:2], first_two).numpy(), eager[:2], rtol=1e-5)
  assert_close(xla(x, labels).numpy(), eager, rtol=1e-5)
  assert_close(tfp_value.numpy(), eager, rtol=1e-5)


def test_fresh_identity_model_log_prob_is_standard_normal_and_the_likelihood_follows():
  config = tiny_config(permutation="reverse", coupling="additive", learn_top_prior=False)
  model = glow_tfp.Glow(config)
  x = random_images((3,) + SHAPE, seed=2)
  expected = tf.reduce_sum(tfp.distributions.Normal(0.0, 1.0).log_prob(x), [1, 2, 3])
  assert_close(model.log_prob(x).numpy(), expected.numpy(), rtol=1e-6)
  images = glow_tfp.to_images(x)
  draws = np.random.default_rng(0).random((1,) + SHAPE, dtype=np.float32)
  dequantized = glow_tfp.to_model_space(images, noise=draws[0])
  expected = tf.reduce_sum(tfp.distributions.Normal(0.0, 1.0).log_prob(dequantized), [1, 2, 3])
  d = np.prod(SHAPE)
  assert_close(model.log_likelihood(images, noise=draws).numpy(),
               expected.numpy() - d * 8 * np.log(2), rtol=1e-6)


def test_encode_decode_is_exact_and_latents_have_one_tensor_per_level():
  model = trained_looking_model(tiny_config(levels=2))
  x = random_images((3,) + SHAPE, seed=3)
  latents = model.encode(x)
  assert [tuple(z.shape) for z in latents] == [(3, 4, 4, 4), (3, 2, 2, 16)]
  assert model.latent_shapes == [(4, 4, 4), (2, 2, 16)]
  assert sum(np.prod(s) for s in model.latent_shapes) == np.prod(SHAPE)
  assert_close(model.decode(latents).numpy(), x.numpy(), rtol=5e-4)


@pytest.mark.parametrize("levels, num_classes", [(1, 0), (2, 0), (3, 0), (2, 3)])
def test_level_log_probs_sum_to_log_prob_and_score_each_levels_latent(levels, num_classes):
  model = trained_looking_model(tiny_config(levels=levels, num_classes=num_classes))
  x = random_images((3,) + SHAPE, seed=4)
  labels = tf.constant([0, 2, 1]) if num_classes else None
  terms = model.level_log_probs(x, labels).numpy()
  assert terms.shape == (3, levels, 2)
  assert_close(terms.sum(axis=(1, 2)), model.log_prob(x, labels).numpy(), rtol=1e-5)
  normal = tfp.distributions.Normal(0.0, 1.0)
  for level, z in enumerate(model.encode(x, labels)):
    expected = tf.reduce_sum(normal.log_prob(z), axis=[1, 2, 3]).numpy()
    assert_close(terms[:, level, 0], expected, rtol=1e-5)


def test_sampling_at_temperature_zero_decodes_the_prior_means():
  model = trained_looking_model(tiny_config())
  zeros = [tf.zeros((2,) + shape) for shape in model.latent_shapes]
  assert_close(model.sample(2, temperature=0.0, seed=1).numpy(), model.decode(zeros).numpy(),
               rtol=2e-6)


def test_sampling_is_reproducible_with_a_seed_and_round_trips():
  model = trained_looking_model(tiny_config())
  a = model.sample(3, temperature=0.7, seed=11)
  np.testing.assert_array_equal(a.numpy(), model.sample(3, temperature=0.7, seed=11).numpy())
  assert np.abs((a - model.sample(3, temperature=0.7, seed=12)).numpy()).max() > 1e-3
  assert_close(model.decode(model.encode(a)).numpy(), a.numpy(), rtol=5e-5)


def test_class_labels_change_log_prob_and_samples():
  model = trained_looking_model(tiny_config(num_classes=3))
  x = tf.concat([random_images((1,) + SHAPE, seed=4)] * 2, axis=0)
  log_prob = model.log_prob(x, tf.constant([0, 2])).numpy()
  assert abs(log_prob[0] - log_prob[1]) > 1e-3
  samples = model.sample(2, labels=tf.constant([0, 2]), temperature=0.0)
  assert np.abs((samples[0] - samples[1]).numpy()).max() > 1e-4


def test_initialize_standardises_the_first_actnorm():
  model = glow_tfp.Glow(tiny_config())
  assert not model.initialized.numpy()
  x = random_images((16,) + SHAPE, seed=8)
  model.initialize(x)
  assert model.initialized.numpy()
  first = model.bijector.bijectors[1].bijectors[0].actnorm
  y = first.inverse(tf.nn.space_to_depth(x, 2))
  # Zero to the scale of the output, whose standard deviation is 1.
  assert_close(tf.reduce_mean(y, [0, 1, 2]).numpy(), 0.0, rtol=1e-5, scale=1.0)


def test_checkpoint_restore_into_a_fresh_model_gives_identical_log_prob(tmp_path):
  config = tiny_config(num_classes=2)
  model = trained_looking_model(config)
  x, labels = random_images((3,) + SHAPE, seed=9), tf.constant([0, 1, 1])
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  restored = glow_tfp.Glow(config, seed=99)
  assert not restored.initialized.numpy()
  tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
  assert restored.initialized.numpy()
  np.testing.assert_array_equal(restored.log_prob(x, labels).numpy(),
                                model.log_prob(x, labels).numpy())


def test_all_variables_are_created_up_front_and_tracked():
  model = glow_tfp.Glow(tiny_config())
  before = len(model.variables)
  model.initialize(random_images((2,) + SHAPE))
  model.log_prob(random_images((2,) + SHAPE))
  assert len(model.variables) == before > 0
  assert len(model.trainable_variables) < before


@pytest.mark.parametrize("images, labels, error, message", [
    (np.zeros((2, 8, 8), np.float32), None, ValueError, r"shape \[N, 8, 8, 2\].*got shape \[2, 8, 8\]"),
    (np.zeros((2, 8, 4, 2), np.float32), None, ValueError, r"got shape \[2, 8, 4, 2\]"),
    (np.zeros((2, 8, 8, 2), np.uint8), None, TypeError, "model-space values.*uint8"),
    (np.zeros((2, 8, 8, 2), np.float64), None, TypeError, "must be float32; got dtype float64"),
    (np.full((2, 8, 8, 2), np.nan, np.float32), None, tf.errors.InvalidArgumentError, "NaN"),
    (np.zeros((2, 8, 8, 2), np.float32), [0, 1], ValueError, "unconditional"),
], ids=["rank", "shape", "uint8", "float64", "nan", "labels-for-unconditional"])
def test_bad_images_are_rejected(images, labels, error, message):
  with pytest.raises(error, match=message):
    glow_tfp.Glow(tiny_config()).log_prob(images, labels)


@pytest.mark.parametrize("labels, error, message", [
    ([0, 3], tf.errors.InvalidArgumentError, "labels must be < num_classes = 3"),
    ([0, -1], tf.errors.InvalidArgumentError, "labels must be >= 0"),
    ([0.0, 1.0], TypeError, "labels must be integers; got dtype float32"),
    ([0, 1, 2], tf.errors.InvalidArgumentError, "different batch sizes"),
    ([[0], [1]], ValueError, r"labels must have shape \[N\]"),
], ids=["too-large", "negative", "float", "batch", "rank"])
def test_bad_labels_are_rejected(labels, error, message):
  model = glow_tfp.Glow(tiny_config(num_classes=3))
  with pytest.raises(error, match=message):
    model.log_prob(np.zeros((2,) + SHAPE, np.float32), labels)


@pytest.mark.parametrize("class_prior", ["per_position", "per_channel"])
def test_class_log_probs_of_one_pass_equal_log_prob_given_each_label(class_prior):
  model = trained_looking_model(tiny_config(num_classes=3, class_prior=class_prior))
  x = random_images((4,) + SHAPE, seed=7)
  per_class = model.class_log_probs(x).numpy()
  expected = np.stack([model.log_prob(x, tf.fill([4], label)).numpy() for label in range(3)],
                      axis=1)
  assert_close(per_class, expected, 1e-5)
  assert np.ptp(per_class, axis=1).min() > 1e-3


def test_log_prob_without_labels_is_the_mixture_over_equally_likely_classes():
  model = trained_looking_model(tiny_config(num_classes=3), seed=2)
  x = random_images((4,) + SHAPE, seed=8)
  given = np.stack([model.log_prob(x, tf.fill([4], label)).numpy() for label in range(3)],
                   axis=1).astype(np.float64)
  peak = given.max(axis=1)
  mixture = peak + np.log(np.exp(given - peak[:, None]).mean(axis=1))
  assert_close(model.log_prob(x).numpy(), mixture, 1e-5)
  assert_close(tf.function(model.log_prob, jit_compile=True)(x).numpy(), mixture, 1e-5)


def test_level_terms_without_labels_score_the_top_latent_under_the_class_mixture():
  model = trained_looking_model(tiny_config(num_classes=3), seed=3)
  x = random_images((4,) + SHAPE, seed=9)
  terms = model.level_log_probs(x).numpy()
  assert_close(terms.sum(axis=(1, 2)), model.log_prob(x).numpy(), 1e-5)
  labelled = model.level_log_probs(x, tf.fill([4], 1)).numpy()
  assert_close(terms[:, 0], labelled[:, 0], 1e-6)  # below the top, labels play no part


def test_class_positions_sum_to_each_classes_log_prob_in_the_same_pass():
  model = trained_looking_model(tiny_config(num_classes=3), seed=3)
  x = random_images((4,) + SHAPE, seed=9)
  terms, positions = model.level_log_probs(x, class_positions=True)
  assert_close(terms.numpy(), model.level_log_probs(x).numpy(), 1e-6)
  assert positions.shape == (4, 3) + tuple(model.latent_shapes[-1][:2])
  per_class = model.class_log_probs(x).numpy()
  lower = terms.numpy()[:, :-1].sum(axis=(1, 2)) + terms.numpy()[:, -1, 1]
  assert_close(positions.numpy().sum(axis=(2, 3)) + lower[:, None], per_class, 1e-5)
  with pytest.raises(ValueError, match="class_positions needs a class-conditional model"):
    model.level_log_probs(x, tf.fill([4], 1), class_positions=True)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_the_top_latent_is_what_encode_standardises_at_the_top(num_classes):
  model = trained_looking_model(tiny_config(num_classes=num_classes), seed=3)
  x = random_images((4,) + SHAPE, seed=9)
  labels = tf.fill([4], 1) if num_classes else None
  terms, top = model.level_log_probs(x, labels, top_latent=True)
  assert_close(terms.numpy(), model.level_log_probs(x, labels).numpy(), 1e-6)
  assert top.shape == (4,) + tuple(model.latent_shapes[-1])
  # The top prior standardises the top latent into encode's last latent.
  top_prior = list(model._levels(x, labels))[-1][0]
  assert_close(top_prior.inverse(top, labels=labels).numpy(),
               model.encode(x, labels)[-1].numpy(), 1e-5)
  if num_classes:
    *_, positions, also_top = model.level_log_probs(x, class_positions=True, top_latent=True)
    assert positions.shape == (4, 3) + tuple(model.latent_shapes[-1][:2])
    assert_close(also_top.numpy(), model.level_log_probs(x, top_latent=True)[1].numpy(), 1e-6)


@pytest.mark.parametrize("method", ["encode", "sample", "initialize"])
def test_a_conditional_model_needs_labels_for_all_but_the_likelihood(method):
  model = glow_tfp.Glow(tiny_config(num_classes=3))
  calls = {"encode": lambda: model.encode(random_images((2,) + SHAPE)),
           "sample": lambda: model.sample(2),
           "initialize": lambda: model.initialize(random_images((2,) + SHAPE))}
  with pytest.raises(ValueError, match=r"labels are required: this model is class-conditional"):
    calls[method]()


def test_class_log_probs_need_a_conditional_model():
  with pytest.raises(ValueError, match="needs a class-conditional model"):
    glow_tfp.Glow(tiny_config()).class_log_probs(random_images((1,) + SHAPE))


def test_decode_rejects_latents_of_the_wrong_number_or_shape():
  model = glow_tfp.Glow(tiny_config())
  with pytest.raises(ValueError, match="decode expects 2 latents"):
    model.decode([tf.zeros([1, 4, 4, 4])])
  with pytest.raises(ValueError, match=r"latent 1 must have shape \[N, 2, 2, 16\]"):
    model.decode([tf.zeros([1, 4, 4, 4]), tf.zeros([1, 2, 2, 8])])


def copy_weights(target, source):
  for t, s in zip(target.variables, source.variables):
    t.assign(s)


@pytest.mark.parametrize("compute_dtype, rtol", [
    pytest.param("bfloat16", 1e-2, marks=needs_compute_dtype("bfloat16")),
    pytest.param("float16", 1e-3, marks=needs_compute_dtype("float16"))])
def test_mixed_precision_log_prob_stays_close_to_float32(compute_dtype, rtol):
  reference = trained_looking_model(tiny_config())
  mixed = glow_tfp.Glow(tiny_config(), compute_dtype=compute_dtype)
  copy_weights(mixed, reference)
  x = random_images((4,) + SHAPE, seed=7)
  log_prob = mixed.log_prob(x)
  assert log_prob.dtype == tf.float32
  assert all(v.dtype == tf.float32 for v in mixed.variables if v.dtype.is_floating)
  np.testing.assert_allclose(log_prob.numpy(), reference.log_prob(x).numpy(), rtol=rtol)


@pytest.mark.parametrize("compute_dtype", [
    pytest.param(dtype, marks=needs_compute_dtype(dtype)) for dtype in ("bfloat16", "float16")])
def test_mixed_precision_trains(compute_dtype):
  model = glow_tfp.Glow(tiny_config(), compute_dtype=compute_dtype)
  x = random_images((16,) + SHAPE, seed=3) * 0.3
  model.initialize(x)
  optimizer = tf.keras.optimizers.Adam(1e-2)
  losses = []
  for _ in range(8):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.log_prob(x))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g.dtype == tf.float32 for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    losses.append(float(loss))
  assert np.isfinite(losses).all() and losses[-1] < losses[0] - 1.0


def test_unknown_compute_dtype_is_rejected():
  with pytest.raises(ValueError, match="`compute_dtype` must be one of"):
    glow_tfp.Glow(tiny_config(), compute_dtype="int8")


def count_network_calls(monkeypatch):
  calls = []
  original = nets.CouplingNet.__call__
  monkeypatch.setattr(nets.CouplingNet, "__call__",
                      lambda net, x: calls.append(net) or original(net, x))
  return calls


def test_each_coupling_network_runs_once_per_log_prob_and_training_forward(monkeypatch):
  config = tiny_config(levels=2, steps_per_level=3)
  model = trained_looking_model(config)
  calls = count_network_calls(monkeypatch)
  x = random_images((2,) + SHAPE)
  model.log_prob(x)
  couplings = config.levels * config.steps_per_level
  assert len(calls) == couplings and len(set(map(id, calls))) == couplings
  calls.clear()
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(model.log_prob(x))
  assert len(calls) == couplings
  tape.gradient(loss, model.trainable_variables)
  assert len(calls) == couplings
  calls.clear()
  model.distribution.log_prob(x)  # TFP's generic path, for contrast: twice per network.
  assert len(calls) == 2 * couplings
