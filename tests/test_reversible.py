import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp.bijectors import actnorm
from glow_tfp.bijectors import compose
from glow_tfp.bijectors import coupling
from glow_tfp.bijectors import invertible_conv
from tests.checks import assert_close, perturb, random_images


def assert_gradients_close(actual, expected):
  """Elementwise within 1e-4 of the gradient's own scale (its largest entry, at least 1).

  The recomputed activations differ from the stored ones by float32 rounding, which the
  backward pass carries into every entry in proportion to the gradient's magnitude.
  """
  assert actual is not None
  actual, expected = tf.convert_to_tensor(actual), tf.convert_to_tensor(expected)
  scale = max(1.0, float(np.abs(expected.numpy()).max()))
  np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=0, atol=1e-4 * scale)


def loss_and_gradients(model, x, labels=None):
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = -tf.reduce_mean(model.log_prob(x, labels))
  return loss, tape.gradient(loss, [x] + list(model.trainable_variables))


def twin_models(config):
  """The same weights, once with ordinary and once with reversible gradients."""
  plain = glow_tfp.Glow(config, seed=3)
  reversible = glow_tfp.Glow(config, seed=3, reversible_gradients=True)
  x = random_images((4,) + config.image_shape, seed=1)
  labels = tf.range(4) % config.num_classes if config.num_classes else None
  plain.initialize(x, labels)
  perturb(plain, scale=0.05)
  for target, source in zip(reversible.variables, plain.variables):
    target.assign(source)
  return plain, reversible, x, labels


@pytest.mark.parametrize("coupling_kind, num_classes", [("affine", 0), ("additive", 2)])
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_reversible_gradients_equal_ordinary_backprop(coupling_kind, num_classes, graph):
  config = glow_tfp.GlowConfig(image_shape=(8, 8, 2), levels=2, steps_per_level=3,
                               hidden_channels=8, coupling=coupling_kind,
                               num_classes=num_classes)
  plain, reversible, x, labels = twin_models(config)
  run = tf.function(loss_and_gradients) if graph else loss_and_gradients
  loss, grads = run(plain, x, labels)
  loss_rev, grads_rev = run(reversible, x, labels)
  assert_close(loss_rev.numpy(), loss.numpy(), rtol=1e-6)
  assert len(grads) == len(grads_rev)
  for g, g_rev in zip(grads, grads_rev):
    assert_gradients_close(g_rev, g)


def test_reversible_sequential_gradient_includes_the_log_det_and_every_member():
  members = [actnorm.ActNorm(4), invertible_conv.Invertible1x1Conv(4, seed=1),
             coupling.Coupling(4, 8, seed=2)]
  chain = compose.Sequential(members)
  reversible_chain = compose.Sequential(members, reversible=True)
  perturb(chain, scale=0.2)
  x = random_images([3, 4, 4, 4])

  def grads_of(bijector):
    with tf.GradientTape() as tape:
      z, log_det = bijector.inverse_and_log_det(x)
      objective = tf.reduce_sum(tf.sin(z)) + tf.reduce_sum(log_det)
    return tape.gradient(objective, bijector.trainable_variables)

  expected, actual = grads_of(chain), grads_of(reversible_chain)
  assert len(expected) == 14 and all(g is not None for g in expected)
  for g, g_rev in zip(expected, actual):
    assert_gradients_close(g_rev, g)
