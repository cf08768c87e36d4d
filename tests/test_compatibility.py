"""Values and checkpoints of this version match those recorded from earlier versions."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from tests.checks import assert_close, perturb, random_images

# log_prob of `_model(coupling)` (the original sigmoid scale) on `random_images((3, 8, 8, 2), seed=4)`, recorded once.
RECORDED_LOG_PROB = {
    "affine": [-113.57632446289062, -156.7290496826172, -162.53814697265625],
    "additive": [-211.53961181640625, -280.22503662109375, -355.7288513183594],
}

# The variables' object-graph paths in a checkpoint of `CHECKPOINTED_CONFIG`, recorded once:
# a checkpoint restores into a model that tracks its variables under the same paths.
CHECKPOINTED_CONFIG = glow_tfp.GlowConfig(image_shape=(8, 8, 1), levels=2, steps_per_level=1,
                                          hidden_channels=4)
RECORDED_CHECKPOINT_KEYS = [
    "_CHECKPOINTABLE_OBJECT_GRAPH",
    "model/_actnorms/0/bias",
    "model/_actnorms/0/initialized",
    "model/_actnorms/0/log_scale",
    "model/_actnorms/1/bias",
    "model/_actnorms/1/initialized",
    "model/_actnorms/1/log_scale",
    "model/_actnorms/2/bias",
    "model/_actnorms/2/initialized",
    "model/_actnorms/2/log_scale",
    "model/_actnorms/3/bias",
    "model/_actnorms/3/initialized",
    "model/_actnorms/3/log_scale",
    "model/_actnorms/4/bias",
    "model/_actnorms/4/initialized",
    "model/_actnorms/4/log_scale",
    "model/_actnorms/5/bias",
    "model/_actnorms/5/initialized",
    "model/_actnorms/5/log_scale",
    "model/bijector/_bijectors/1/_bijectors/0/coupling/net/conv_hidden/kernel",
    "model/bijector/_bijectors/1/_bijectors/0/coupling/net/conv_in/kernel",
    "model/bijector/_bijectors/1/_bijectors/0/coupling/net/conv_out/bias",
    "model/bijector/_bijectors/1/_bijectors/0/coupling/net/conv_out/kernel",
    "model/bijector/_bijectors/1/_bijectors/0/coupling/net/conv_out/log_scale",
    "model/bijector/_bijectors/1/_bijectors/0/mixing/log_s",
    "model/bijector/_bijectors/1/_bijectors/0/mixing/lower",
    "model/bijector/_bijectors/1/_bijectors/0/mixing/permutation",
    "model/bijector/_bijectors/1/_bijectors/0/mixing/sign_s",
    "model/bijector/_bijectors/1/_bijectors/0/mixing/upper",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/coupling/net/conv_hidden/kernel",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/coupling/net/conv_in/kernel",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/coupling/net/conv_out/bias",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/coupling/net/conv_out/kernel",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/coupling/net/conv_out/log_scale",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/mixing/log_s",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/mixing/lower",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/mixing/permutation",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/mixing/sign_s",
    "model/bijector/_bijectors/2/inner/_bijectors/1/_bijectors/0/mixing/upper",
    "model/bijector/_bijectors/2/inner/_bijectors/2/bias",
    "model/bijector/_bijectors/2/prior/bias",
    "model/bijector/_bijectors/2/prior/kernel",
    "model/bijector/_bijectors/2/prior/log_scale",
    "save_counter",
]
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _model(coupling):
  config = glow_tfp.GlowConfig(image_shape=(8, 8, 2), levels=2, steps_per_level=2,
                               hidden_channels=8, coupling=coupling, coupling_scale="sigmoid")
  model = glow_tfp.Glow(config, seed=3)
  model.initialize(random_images((4, 8, 8, 2), seed=1))
  perturb(model, scale=0.05, seed=2)
  return model


@pytest.mark.parametrize("coupling", sorted(RECORDED_LOG_PROB))
def test_log_prob_matches_the_recorded_values(coupling):
  log_prob = _model(coupling).log_prob(random_images((3, 8, 8, 2), seed=4))
  assert_close(log_prob.numpy(), RECORDED_LOG_PROB[coupling], rtol=1e-6)


def test_checkpoint_keys_match_the_recorded_ones(tmp_path):
  path = tf.train.Checkpoint(model=glow_tfp.Glow(CHECKPOINTED_CONFIG)).save(
      str(tmp_path / "ckpt"))
  keys = {name.removesuffix(_VALUE_SUFFIX) for name, _ in tf.train.list_variables(path)}
  assert keys == set(RECORDED_CHECKPOINT_KEYS)
