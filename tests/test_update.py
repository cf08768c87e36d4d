"""glow_tfp.training.update: the one update of `python -m train` and `GlowModel.fit`.

The CLI's device loop (train.engine.step.DistributedStep) and `GlowModel.fit` under both Keras
generations train the same weights from the same batches, and skip the same non-finite
step, counting it.
"""

import keras as keras3
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import glow_tfp
from glow_tfp import keras as glow_keras
from glow_tfp.training import ema as ema_lib
from glow_tfp.training import step as step_lib
from glow_tfp.training import update as update_lib
from tests.checks import assert_close
from train.engine import guard as guard_lib
from train.engine import step as train_step

KERAS = [pytest.param(keras3, id="keras3"), pytest.param(tf_keras, id="tf_keras")]
_CONFIG = glow_tfp.GlowConfig(image_shape=(8, 8, 1), levels=2, steps_per_level=1,
                              hidden_channels=8)
# Adamax, warm-up and clipping all at work within the few steps.
_SETTINGS = update_lib.Settings(optimizer="adamax", learning_rate=1e-2, warmup_steps=3,
                                grad_clip_norm=2.0)
_BATCH, _STEPS, _SEED, _EMA_DECAY = 8, 5, 3, 0.9
# The batch of this step is all white, and `_poisoned` makes its gradients infinite.
_BAD_STEP = 2


def _images(bad_step=None):
  """uint8 images [_STEPS * _BATCH, 8, 8, 1], at most 200 but for the batch of `bad_step`."""
  images = np.random.default_rng(0).integers(0, 200, (_STEPS * _BATCH, 8, 8, 1), np.uint8)
  if bad_step is not None:
    images[bad_step * _BATCH:(bad_step + 1) * _BATCH] = 255
  return images


def _poisoned(model, x, labels, global_batch_size, loss_scale=None):
  """`loss_and_gradients`, with infinite gradients for a batch of white images."""
  loss, gradients = step_lib.loss_and_gradients(model, x, labels, global_batch_size,
                                                loss_scale)
  factor = tf.where(tf.reduce_min(x) > 0.4, np.inf, 1.0)
  return loss, [g * factor for g in gradients]


def _values(variables):
  return [v.numpy().copy() for v in variables]


def _cli(images, gradients_fn=step_lib.loss_and_gradients):
  """Trains through the CLI's device loop, one step per call: (update, the raw and EMA
  weights after each step)."""
  strategy = tf.distribute.get_strategy()
  model = glow_tfp.Glow(_CONFIG, seed=_SEED)
  ema = ema_lib.ExponentialMovingAverage(model, glow_tfp.Glow(_CONFIG, seed=_SEED), _EMA_DECAY)
  update = update_lib.Update(model, _SETTINGS, _SEED, ema, gradients_fn=gradients_fn)
  guard = guard_lib.NonFiniteGuard(max_bad_steps=3, max_restores=0, restore_lr_factor=0.5,
                                   update=update, restore=None)
  loop = train_step.DistributedStep(update, strategy, guard)
  dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images), np.int64)))
  batches = iter(strategy.experimental_distribute_dataset(dataset.batch(_BATCH)))
  loop.initialize((images[:_BATCH], np.zeros(_BATCH, np.int64)))
  after = []
  for _ in range(_STEPS):
    loop(batches, 1)
    after.append((_values(model.variables), _values(ema.shadow.variables)))
  return update, after


def _fit(keras_module, images, gradients_fn=step_lib.loss_and_gradients):
  """Trains with `GlowModel.fit`: (the model, the raw and EMA weights after each step)."""
  model = glow_keras.for_keras(keras_module).GlowModel(_CONFIG, seed=_SEED,
                                                       ema_decay=_EMA_DECAY)
  model.compile(optimizer=_SETTINGS.optimizer, learning_rate=_SETTINGS.learning_rate,
                warmup_steps=_SETTINGS.warmup_steps, grad_clip_norm=_SETTINGS.grad_clip_norm,
                jit_compile=False)
  model.update.gradients_fn = gradients_fn
  after = []

  class Snapshot(keras_module.callbacks.Callback):

    def on_train_batch_end(self, batch, logs=None):
      after.append((_values(model.glow.variables), _values(model.ema_glow.variables)))

  model.fit(images, batch_size=_BATCH, epochs=1, shuffle=False, verbose=0,
            callbacks=[Snapshot()])
  return model, after


def _assert_same_weights(got, expected):
  for ours, theirs in zip(got, expected):
    assert_close(ours, theirs, rtol=1e-4, scale=np.abs(theirs).max() + 1e-3)


@pytest.mark.parametrize("keras_module", KERAS)
def test_fit_trains_the_weights_of_the_cli_engine(keras_module):
  images = _images()
  update, cli = _cli(images)
  model, fit = _fit(keras_module, images)
  assert len(fit) == len(cli) == _STEPS
  for (raw, ema), (cli_raw, cli_ema) in zip(fit, cli):
    _assert_same_weights(raw, cli_raw)
    _assert_same_weights(ema, cli_ema)
  assert not np.allclose(cli[-1][0][-1], cli[0][0][-1])  # the weights moved
  for engine in (update, model.update):
    assert int(engine.step.numpy()) == int(engine.optimizer.iterations.numpy()) == _STEPS
    assert int(engine.skipped_steps.numpy()) == 0


@pytest.mark.parametrize("keras_module", KERAS)
def test_a_non_finite_step_is_skipped_and_counted_by_both(keras_module):
  images = _images(bad_step=_BAD_STEP)
  update, cli = _cli(images, _poisoned)
  model, fit = _fit(keras_module, images, _poisoned)
  for engine, after in ((update, cli), (model.update, fit)):
    before_bad, at_bad, after_bad = after[_BAD_STEP - 1:_BAD_STEP + 2]
    for ours, theirs in zip(at_bad, before_bad):  # raw and EMA weights
      for variable, value in zip(ours, theirs):
        np.testing.assert_array_equal(variable, value)
    assert not all(np.array_equal(a, b) for a, b in zip(after_bad[0], at_bad[0]))
    assert int(engine.skipped_steps.numpy()) == 1
    assert int(engine.optimizer.iterations.numpy()) == _STEPS - 1
    assert int(engine.step.numpy()) == _STEPS
  for (raw, ema), (cli_raw, cli_ema) in zip(fit, cli):
    _assert_same_weights(raw, cli_raw)
    _assert_same_weights(ema, cli_ema)


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"optimizer": "sgd"}, r"`optimizer` must be one of \('adam', 'adamax'\)",
                 id="unknown_optimizer"),
    pytest.param({"optimizer": tf_keras.optimizers.Adam()}, "must be one of", id="keras_object"),
    pytest.param({"learning_rate": 0.0}, "`learning_rate` must be a number > 0",
                 id="zero_learning_rate"),
    pytest.param({"warmup_steps": 1.5}, "`warmup_steps` must be an integer >= 0",
                 id="fractional_warmup"),
    pytest.param({"grad_clip_norm": -1.0}, "`grad_clip_norm` must be a number >= 0",
                 id="negative_clip"),
    pytest.param({"warmup_steps": 200, "decay_steps": 150},
                 r"`decay_steps` must be 0 \(no decay\) or above `warmup_steps` \(200\)",
                 id="decay_within_warmup"),
])
def test_bad_settings_are_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    update_lib.Settings(**kwargs)
