"""glow_tfp.keras.GlowModel: fit / evaluate / predict, initialisation, saving, callbacks.

Every behaviour runs under both Keras generations: Keras 3 (`keras`) and Keras 2 (`tf_keras`).
"""

import os

import keras as keras3
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import glow_tfp
from glow_tfp import keras as glow_keras
from glow_tfp import likelihood
from glow_tfp.training import update as update_lib
from serving import saved_model
from train.engine import loop
from tests.checks import assert_close, needs_compute_dtype

KERAS = [pytest.param(keras3, id="keras3"), pytest.param(tf_keras, id="tf_keras")]
CONFIG = glow_tfp.GlowConfig(image_shape=(8, 8, 1), levels=2, steps_per_level=1,
                             hidden_channels=8)


def blocky_images(rng, n, low=0, high=256):
  """Learnable uint8 images [n, 8, 8, 1]: random 2x2 blocks of 4x4 pixels, plus noise."""
  blocks = rng.integers(low, high, (n, 2, 2, 1))
  pixels = np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2) + rng.integers(-4, 5, (n, 8, 8, 1))
  return np.clip(pixels, low, high - 1).astype(np.uint8)


def model_for(keras_module, config=CONFIG, seed=0, learning_rate=1e-2, batch_parts=None,
              **kwargs):
  model = glow_keras.for_keras(keras_module).GlowModel(config, seed=seed, **kwargs)
  model.compile(learning_rate=learning_rate, warmup_steps=0, batch_parts=batch_parts)
  return model


def freeze(model):
  """Makes the learning rate of every later step 0 (through the schedule's scale)."""
  model.update.learning_rate.scale.assign(0.0)
  return model


def flow_values(glow):
  return [v.numpy() for v in glow.variables]


def max_difference(values, others):
  return max(np.abs(np.float32(a) - np.float32(b)).max() for a, b in zip(values, others))


def reference_log_likelihood(glow, images, labels=None):
  """log P of `images` by hand: the density at the one default fixed draw, times V."""
  draw = likelihood.fixed_draws(1, glow.config.image_shape, seed=0)[0]
  x = glow_tfp.to_model_space(images, glow.config.n_bits, noise=draw)
  return np.minimum(glow.log_prob(x, labels).numpy() + likelihood.log_bin_volume(glow.config),
                    0.0)


def reference_bits(glow, images, labels=None):
  return glow_tfp.bits_per_dim(reference_log_likelihood(glow, images, labels),
                               glow.config.num_dims)


@pytest.fixture(scope="module", params=KERAS)
def trained(request):
  """(keras module, a GlowModel fitted two epochs, its training images)."""
  images = blocky_images(np.random.default_rng(0), 32)
  model = model_for(request.param)
  model.fit(images, batch_size=16, epochs=2, verbose=0)
  return request.param, model, images


@pytest.mark.parametrize("keras_module", KERAS)
def test_fit_trains_every_flow_variable_and_lowers_the_loss(keras_module, rng):
  model = model_for(keras_module)
  flow_variables = model.glow.trainable_variables
  assert len(model.trainable_weights) == len(flow_variables) > 0
  images = blocky_images(rng, 64)
  model.initialize(images[:32])
  before = [v.numpy() for v in flow_variables]
  history = model.fit(images, batch_size=16, epochs=4, verbose=0).history
  unchanged = [v.name for v, b in zip(flow_variables, before) if np.array_equal(v.numpy(), b)]
  assert not unchanged
  assert history["loss"][-1] < history["loss"][0]
  assert history["bits_per_dim"][-1] < history["bits_per_dim"][0]


@pytest.mark.parametrize("keras_module", KERAS)
def test_fit_in_parts_trains_as_whole_batches(keras_module, rng):
  # A small rate: Adam's normalisation magnifies rounding in near-zero gradients.
  images = blocky_images(rng, 48)
  whole, parts = (model_for(keras_module, batch_parts=batch_parts, learning_rate=1e-5)
                  for batch_parts in (1, 2))
  histories = [m.fit(images, batch_size=16, epochs=2, shuffle=False, verbose=0).history
               for m in (whole, parts)]
  assert_close(histories[1]["loss"], histories[0]["loss"], rtol=1e-5)
  assert max_difference(flow_values(parts.glow), flow_values(whole.glow)) < 1e-4
  assert_close(parts.predict(images, verbose=0)["bits_per_dim"],
               whole.predict(images, verbose=0)["bits_per_dim"], rtol=1e-5)


def test_fit_under_xla_initializes_and_trains(rng):
  # Keras 3's default jit_compile="auto" means XLA on a single GPU.
  images = blocky_images(rng, 64)
  model = glow_keras.for_keras(keras3).GlowModel(CONFIG)
  model.compile(learning_rate=1e-2, warmup_steps=0, jit_compile=True)
  history = model.fit(images, batch_size=16, epochs=3, verbose=0).history
  assert model.glow.initialized
  assert history["loss"][-1] < history["loss"][0]
  # Parts of a batch of unknown size made XLA compile every step again.
  assert model.update.gradients_fn.keywords["batch_parts"] == 1


@pytest.mark.parametrize("keras_module", KERAS)
def test_xla_refuses_batch_parts_and_names_them(keras_module):
  model = glow_keras.for_keras(keras_module).GlowModel(CONFIG)
  with pytest.raises(ValueError, match=r"`batch_parts=2` needs jit_compile off"):
    model.compile(batch_parts=2, jit_compile=True)


@pytest.mark.parametrize("keras_module", KERAS)
def test_fit_initializes_actnorm_once_from_the_first_batch(keras_module, rng):
  dark, bright = blocky_images(rng, 16, 0, 64), blocky_images(rng, 32, 192, 256)
  model = freeze(model_for(keras_module))
  assert not model.glow.initialized
  model.fit(np.concatenate([dark, bright]), batch_size=16, epochs=2, shuffle=False, verbose=0)
  assert model.glow.initialized
  from_dark, from_bright = glow_tfp.Glow(CONFIG), glow_tfp.Glow(CONFIG)
  from_dark.initialize(glow_tfp.to_model_space(dark))
  from_bright.initialize(glow_tfp.to_model_space(bright[:16]))
  # Only the dequantisation noise separates fit's initialisation from the bin-centre one:
  # every value within 1% of the largest initial value.
  expected_values = flow_values(from_dark)
  scale = max(np.abs(v).max() for v in expected_values)
  for got, expected in zip(flow_values(model.glow), expected_values):
    assert_close(got, expected, rtol=1e-2, scale=scale)
  assert max_difference(flow_values(from_dark), flow_values(from_bright)) > 0.3


@pytest.mark.parametrize("keras_module", KERAS)
def test_fit_dequantises_with_noise_and_evaluate_uses_fixed_draws(keras_module, rng):
  images = blocky_images(rng, 32)
  model = freeze(model_for(keras_module))
  model.initialize(images)
  fit_losses = model.fit(images, batch_size=16, epochs=2, verbose=0).history["loss"]
  first, second = (model.evaluate(images, batch_size=16, verbose=0, return_dict=True)
                   for _ in range(2))
  assert first == second
  # The loss is the bound in bits/dim, as in `python -m train` (glow_tfp.training.update).
  expected = np.mean(reference_bits(model.glow, images))
  assert_close(first["loss"], expected, rtol=1e-5)
  assert_close(first["bits_per_dim"], expected, rtol=1e-5)
  # The model is frozen (learning rate 0): only fresh noise makes the two epochs differ.
  assert fit_losses[0] != fit_losses[1]
  assert_close(fit_losses, first["loss"], rtol=2e-2)


def test_predict_gives_per_image_log_likelihood_and_bits_per_dim(trained):
  _, model, images = trained
  predictions = model.predict(images, batch_size=16, verbose=0)
  assert_close(predictions["log_likelihood"], reference_log_likelihood(model.glow, images),
               rtol=1e-5)
  assert_close(predictions["bits_per_dim"], reference_bits(model.glow, images), rtol=1e-5)


def test_save_and_load_weights_round_trip(trained, tmp_path):
  keras_module, model, images = trained
  path = str(tmp_path / "glow.weights.h5")
  model.save_weights(path)
  restored = glow_keras.for_keras(keras_module).GlowModel(CONFIG, seed=1)
  restored.load_weights(path)
  assert restored.glow.initialized
  # The update's state is among the weights: step, applied updates, moments.
  assert int(restored.update.step.numpy()) == int(model.update.step.numpy()) == 4
  assert int(restored.update.optimizer.iterations.numpy()) == 4
  for ours, theirs in zip(restored.update.optimizer.second_moments,
                          model.update.optimizer.second_moments):
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
  assert_close(restored.predict(images, verbose=0)["log_likelihood"],
               model.predict(images, verbose=0)["log_likelihood"], rtol=1e-6)


def test_savedmodel_export_gives_the_live_log_prob(trained, tmp_path):
  _, model, images = trained
  export_dir = saved_model.export_saved_model(model.glow, str(tmp_path / "export"))
  served = tf.saved_model.load(export_dir).signatures["log_prob"](images=tf.constant(images))
  live = model.predict(images, verbose=0)
  for key in ("log_likelihood", "bits_per_dim"):
    assert_close(served[key].numpy(), live[key], rtol=1e-6)


@pytest.mark.parametrize("keras_module", KERAS)
def test_fit_under_mirrored_strategy_initializes_globally_and_trains(keras_module, rng):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  # Each replica gets one half of the first batch: dark for one, bright for the other.
  first_batch = np.concatenate([blocky_images(rng, 8, 0, 64), blocky_images(rng, 8, 192, 256)])
  images = np.concatenate([first_batch, blocky_images(rng, 16)])
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
  with strategy.scope():
    model = freeze(model_for(keras_module, learning_rate=1e-3))
  model.fit(dataset, epochs=1, verbose=0)
  reference = glow_tfp.Glow(CONFIG)
  reference.initialize(glow_tfp.to_model_space(first_batch))
  expected_values = flow_values(reference)
  scale = max(np.abs(v).max() for v in expected_values)
  for variable, expected in zip(model.glow.variables, expected_values):
    replicas = strategy.experimental_local_results(variable)
    assert len(replicas) == 2
    np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())
    assert_close(replicas[0].numpy(), expected, rtol=1e-2, scale=scale)

  model.update.learning_rate.scale.assign(1.0)
  before = [v.numpy() for v in model.glow.trainable_variables]
  history = model.fit(dataset, epochs=3, verbose=0).history
  after = [v.numpy() for v in model.glow.trainable_variables]
  assert not [v.name for v, b, a in zip(model.glow.trainable_variables, before, after)
              if np.array_equal(a, b)]
  assert history["loss"][-1] < history["loss"][0]


def test_class_conditional_model_trains_on_labelled_batches(rng):
  config = CONFIG.replace(num_classes=3)
  images, labels = blocky_images(rng, 32), rng.integers(0, 3, 32).astype(np.int32)
  model = model_for(keras3, config)
  embedding = next(v for v in model.glow.trainable_variables if "embedding" in v.name)
  dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}).batch(16)
  model.fit(dataset, epochs=2, verbose=0)
  assert np.abs(embedding.numpy()).max() > 0
  predictions = model.predict((images, labels), batch_size=16, verbose=0)
  assert_close(predictions["bits_per_dim"], reference_bits(model.glow, images, labels), rtol=1e-5)
  assert model.sample(3, labels=[0, 1, 2], seed=0).shape == (3, 8, 8, 1)
  with pytest.raises(ValueError, match="labels are required to train"):
    model.fit(images, epochs=1, verbose=0)
  per_class = likelihood.class_log_likelihood(model.glow, images,
                                              noise=likelihood.default_draws(config))
  mixture = tf.reduce_logsumexp(per_class, axis=1) - np.log(3.0)
  unlabelled = model.predict(images, batch_size=16, verbose=0)
  assert_close(unlabelled["log_likelihood"], mixture.numpy(), rtol=1e-5)


def test_unconditional_model_ignores_the_labels_of_supervised_datasets(trained):
  _, model, images = trained
  supervised = tf.data.Dataset.from_tensor_slices((images, np.zeros(32, np.int64))).batch(16)
  as_tfds = tf.data.Dataset.from_tensor_slices({"image": images}).batch(16)
  expected = model.evaluate(images, batch_size=16, verbose=0, return_dict=True)
  assert model.evaluate(supervised, verbose=0, return_dict=True) == pytest.approx(expected)
  assert model.evaluate(as_tfds, verbose=0, return_dict=True) == pytest.approx(expected)


def test_sample_gives_uint8_images_deterministic_for_a_seed(trained):
  _, model, _ = trained
  images = model.sample(4, temperature=0.7, seed=3)
  assert images.dtype == tf.uint8 and images.shape == (4, 8, 8, 1)
  np.testing.assert_array_equal(images, model.sample(4, temperature=0.7, seed=3))


@pytest.mark.parametrize("keras_module", KERAS)
def test_standard_callbacks_and_sample_grid(keras_module, rng, tmp_path):
  images = blocky_images(rng, 32)
  checkpoint = str(tmp_path / "best.weights.h5")
  api = glow_keras.for_keras(keras_module)
  grids = api.SampleGrid(str(tmp_path / "samples"), num_samples=4)
  callbacks = [
      keras_module.callbacks.ModelCheckpoint(checkpoint, monitor="val_bits_per_dim", mode="min",
                                             save_best_only=True, save_weights_only=True),
      keras_module.callbacks.TensorBoard(str(tmp_path / "logs")),
      # No epoch improves validation bits/dim by 10: training stops after the second.
      keras_module.callbacks.EarlyStopping(monitor="val_bits_per_dim", mode="min",
                                           patience=1, min_delta=10.0),
      grids,
  ]
  model = model_for(keras_module)
  history = model.fit(images, batch_size=16, epochs=6, validation_data=(images[:16],),
                      callbacks=callbacks, verbose=0).history
  assert len(history["val_bits_per_dim"]) == 2
  best = model_for(keras_module, seed=1)
  best.load_weights(checkpoint)
  best_bits = min(history["val_bits_per_dim"])
  assert best.evaluate(images[:16], verbose=0, return_dict=True)["bits_per_dim"] == (
      pytest.approx(best_bits, rel=1e-5))
  for split in ("train", "validation"):
    assert "epoch_bits_per_dim" in _summary_tags(tmp_path / "logs" / split)
  for epoch in (1, 2):
    png = tf.io.decode_png(tf.io.read_file(grids.path(epoch)))
    assert png.dtype == tf.uint8 and png.shape == (19, 19, 1)  # 2 x 2 tiles of 8 + padding


def _summary_tags(directory):
  return {value.tag for name in os.listdir(directory)
          for event in tf.compat.v1.train.summary_iterator(str(directory / name))
          for value in event.summary.value}


@pytest.mark.parametrize("keras_module", KERAS)
def test_backup_and_restore_resumes_without_initializing_again(keras_module, rng, tmp_path):
  images, bright = blocky_images(rng, 32), blocky_images(rng, 32, 192, 256)
  backup = keras_module.callbacks.BackupAndRestore(str(tmp_path / "backup"))
  interrupted = model_for(keras_module)
  with pytest.raises(RuntimeError, match="interrupted"):
    interrupted.fit(images, batch_size=16, epochs=3, verbose=0,
                    callbacks=[backup, _interrupt_after_epoch(keras_module, 2)])
  at_interruption = flow_values(interrupted.glow)
  resumed = model_for(keras_module, seed=1)
  history = resumed.fit(bright, batch_size=16, epochs=3, verbose=0, callbacks=[backup])
  assert history.epoch == [2]
  # Two Adam steps move each weight by about 2e-2 at most; initialising from the bright
  # first batch would move the ActNorms much further.
  assert max_difference(flow_values(resumed.glow), at_interruption) < 0.05
  interrupted.initialize(bright[:16])
  assert max_difference(flow_values(interrupted.glow), at_interruption) > 0.3


def _interrupt_after_epoch(keras_module, epochs):
  class Interrupt(keras_module.callbacks.Callback):

    def on_epoch_end(self, epoch, logs=None):
      if epoch + 1 == epochs:
        raise RuntimeError("interrupted")
  return Interrupt()


def _batch_recorder(keras_module):
  """A callback that records (epoch, batch) of every training batch in `seen`."""
  class Recorder(keras_module.callbacks.Callback):

    def __init__(self):
      super().__init__()
      self.seen, self.epoch = [], None

    def on_epoch_begin(self, epoch, logs=None):
      self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
      self.seen.append((self.epoch, int(batch)))
  return Recorder()


def _kill_at_step(keras_module, step):
  class Kill(keras_module.callbacks.Callback):

    def __init__(self):
      super().__init__()
      self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
      self.steps += 1
      if self.steps == step:
        raise RuntimeError("killed")
  return Kill()


@pytest.mark.parametrize("keras_module", KERAS)
def test_backup_and_restore_resumes_a_killed_fit_to_the_weights_of_an_uninterrupted_one(
    keras_module, rng, tmp_path):
  images = blocky_images(rng, 48)  # 3 batches of 16 an epoch

  def fit(*callbacks):
    model = model_for(keras_module, ema_decay=0.9)
    recorder = _batch_recorder(keras_module)
    history = model.fit(images, batch_size=16, epochs=3, shuffle=False, verbose=0,
                        callbacks=[*callbacks, recorder])
    return model, history, recorder.seen

  straight, _, _ = fit()
  backup = str(tmp_path / "backup")
  with pytest.raises(RuntimeError, match="killed"):
    fit(keras_module.callbacks.BackupAndRestore(backup), _kill_at_step(keras_module, 5))
  resumed, history, seen = fit(keras_module.callbacks.BackupAndRestore(backup))
  # Killed at the second batch of epoch 1: the backup of epoch 0's end restarts epoch 1.
  assert history.epoch == [1, 2]
  assert seen == [(epoch, batch) for epoch in (1, 2) for batch in range(3)]
  assert int(resumed.update.step.numpy()) == 9
  for glow, reference in ((resumed.glow, straight.glow), (resumed.ema_glow, straight.ema_glow)):
    for ours, theirs in zip(flow_values(glow), flow_values(reference)):
      np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("keras_module", KERAS)
def test_get_config_rebuilds_the_model(keras_module):
  model = glow_keras.for_keras(keras_module).GlowModel(CONFIG, seed=5, name="digits")
  rebuilt = type(model).from_config(model.get_config())
  assert (rebuilt.config, rebuilt.name) == (CONFIG, "digits")
  for got, expected in zip(flow_values(rebuilt.glow), flow_values(model.glow)):
    np.testing.assert_array_equal(got, expected)


@needs_compute_dtype("float16")
@pytest.mark.parametrize("keras_module", KERAS)
def test_float16_fit_trains_under_the_updates_loss_scale(keras_module, rng):
  model = model_for(keras_module, compute_dtype="float16", learning_rate=1e-3)
  scale = model.update.loss_scale.scale
  # Saved with the weights, as the CLI saves it in its checkpoints.
  assert any(glow_keras._tf_variable(w) is scale for w in model.non_trainable_weights)
  history = model.fit(blocky_images(rng, 32), batch_size=16, epochs=1, verbose=0).history
  assert np.isfinite(history["loss"][0])
  assert int(model.update.step.numpy()) == 2
  rebuilt = type(model).from_config(model.get_config())
  assert rebuilt.update.loss_scale is not None
  assert model_for(keras_module).update.loss_scale is None


def test_default_glow_model_is_built_on_tf_keras_resolution():
  assert issubclass(glow_tfp.GlowModel, tf.keras.Model)
  assert glow_tfp.GlowModel is glow_keras.GlowModel
  assert issubclass(glow_keras.SampleGrid, tf.keras.callbacks.Callback)


def test_for_keras_gives_one_class_per_generation():
  assert glow_keras.for_keras(tf_keras).GlowModel is glow_keras.for_keras(tf_keras).GlowModel
  assert issubclass(glow_keras.for_keras(tf_keras).GlowModel, tf_keras.Model)
  assert issubclass(glow_keras.for_keras(keras3).GlowModel, keras3.Model)


@pytest.mark.parametrize("module, error, match", [
    pytest.param(np, TypeError, "Expected a Keras module", id="not_keras"),
    pytest.param(tf, TypeError, "Expected a Keras module", id="tensorflow"),
])
def test_for_keras_rejects_other_modules(module, error, match):
  with pytest.raises(error, match=match):
    glow_keras.for_keras(module)


@pytest.mark.parametrize("args, match", [
    pytest.param(({"image_shape": (8, 8, 1)},), "must be a glow_tfp.GlowConfig", id="dict_config"),
    pytest.param((CONFIG, 1.5), "`seed` must be an integer", id="float_seed"),
])
def test_glow_model_rejects_bad_arguments(args, match):
  with pytest.raises(TypeError, match=match):
    glow_keras.for_keras(keras3).GlowModel(*args)


@pytest.mark.parametrize("batch_parts", [0, 1.5])
def test_compile_rejects_a_bad_part_count(batch_parts):
  with pytest.raises(ValueError, match="`batch_parts` must be an integer >= 1"):
    glow_keras.for_keras(keras3).GlowModel(CONFIG).compile(batch_parts=batch_parts)


@pytest.mark.parametrize("keras_module", KERAS)
def test_compile_takes_the_settings_and_defaults_of_the_cli(keras_module):
  model = glow_keras.for_keras(keras_module).GlowModel(CONFIG)
  model.compile()
  defaults = loop.Options(workdir="unused")
  assert model.update.settings == update_lib.Settings(
      defaults.optimizer, defaults.learning_rate, defaults.warmup_steps,
      defaults.grad_clip_norm)
  model.compile(optimizer="adamax", learning_rate=2e-3, warmup_steps=10, grad_clip_norm=0.0)
  assert model.update.settings == update_lib.Settings("adamax", 2e-3, 10, 0.0)
  assert model.update.optimizer.kind == "adamax"
  assert model.update.learning_rate.peak == 2e-3 and model.update.learning_rate.warmup_steps == 10


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"loss": "mse"}, "takes no loss", id="loss"),
    pytest.param({"metrics": ["mae"]}, "takes no metrics", id="metrics"),
    pytest.param({"optimizer": keras3.optimizers.Adam(1e-3)},
                 r"`optimizer` must be one of \('adam', 'adamax'\)", id="keras_optimizer"),
    pytest.param({"optimizer": "sgd"}, r"`optimizer` must be one of \('adam', 'adamax'\)",
                 id="unknown_optimizer"),
    pytest.param({"learning_rate": -1.0}, "`learning_rate` must be a number > 0",
                 id="negative_learning_rate"),
    pytest.param({"warmup_steps": -1}, "`warmup_steps` must be an integer >= 0",
                 id="negative_warmup"),
])
def test_compile_rejects_a_loss_metrics_or_bad_settings(kwargs, match):
  model = glow_keras.for_keras(keras3).GlowModel(CONFIG)
  with pytest.raises(ValueError, match=match):
    model.compile(**kwargs)


@pytest.mark.parametrize("batch, error, match", [
    pytest.param(np.zeros((2, 8, 8, 1), np.float32), TypeError, "must be uint8", id="float"),
    pytest.param({"pixels": np.zeros((2, 8, 8, 1), np.uint8)}, ValueError, "'image' key",
                 id="dict_without_image"),
    pytest.param((np.zeros((2, 8, 8, 1), np.uint8),) * 3, ValueError, "tuple of 3",
                 id="three_tuple"),
    pytest.param(np.zeros((2, 4, 4, 1), np.uint8), ValueError, "image_shape",
                 id="wrong_shape"),
])
def test_bad_batches_are_rejected_with_a_clear_error(batch, error, match):
  model = glow_keras.for_keras(keras3).GlowModel(CONFIG)
  with pytest.raises(error, match=match):
    model.initialize(batch)


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"num_samples": 0}, "num_samples", id="no_samples"),
    pytest.param({"every": 0}, "every", id="every_zero"),
    pytest.param({"temperature": -1.0}, "temperature", id="negative_temperature"),
])
def test_sample_grid_rejects_bad_arguments(kwargs, match, tmp_path):
  with pytest.raises(ValueError, match=match):
    glow_keras.for_keras(keras3).SampleGrid(str(tmp_path), **kwargs)


def test_sample_grid_needs_a_glow_model(tmp_path):
  model = keras3.Sequential([keras3.Input((1,)), keras3.layers.Dense(1)])
  model.compile(optimizer="sgd", loss="mse")
  grids = glow_keras.for_keras(keras3).SampleGrid(str(tmp_path))
  with pytest.raises(TypeError, match="needs a GlowModel"):
    model.fit(np.zeros((2, 1)), np.zeros((2, 1)), verbose=0, callbacks=[grids])


def test_a_flow_of_variables_keras_does_not_see_is_refused(monkeypatch):
  # Without the variable creator the flow holds plain tf.Variables, as TFP's own Glow does,
  # and Keras 3 sees none of them.
  monkeypatch.setattr(glow_keras._KerasOwnedVariables, "__call__",
                      lambda self, next_creator, **kwargs: next_creator(**kwargs))
  with pytest.raises(RuntimeError, match="does not see 32 trainable variables"):
    glow_keras.for_keras(keras3).GlowModel(CONFIG)


@pytest.mark.parametrize("keras_module", KERAS)
def test_ema_weights_follow_applied_steps_and_serve_evaluation(keras_module, rng):
  images = blocky_images(rng, 32)
  model = model_for(keras_module, ema_decay=0.9)
  model.fit(images, batch_size=16, epochs=1, verbose=0)
  assert 0.0 < max_difference(flow_values(model.ema_glow), flow_values(model.glow)) < 0.1
  assert_close(model.evaluate(images, batch_size=16, verbose=0),
               [np.mean(reference_bits(model.ema_glow, images))] * 2, rtol=1e-5)
  kernel = next(v for v in model.glow.trainable_variables if "kernel" in v.name)
  kernel.assign(tf.fill(kernel.shape, np.nan))
  before, iterations = flow_values(model.ema_glow), int(model.update.optimizer.iterations)
  model.fit(images, batch_size=16, epochs=1, verbose=0)  # every step non-finite: skipped
  assert max_difference(flow_values(model.ema_glow), before) == 0.0
  assert int(model.update.optimizer.iterations) == iterations
  assert int(model.update.skipped_steps) == 2 and int(model.update.step) == 4
