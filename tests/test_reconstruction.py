"""glow_tfp.reconstruction: decode(encode(x)) exact as uint8 images, or how far from it."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import reconstruction
from glow_tfp.training import update as update_lib
from tests.checks import perturb, random_images

SHAPE = (8, 8, 1)


def tiny_model(num_classes=0, scale="sigmoid"):
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=4, num_classes=num_classes,
                               coupling_scale=scale)
  model = glow_tfp.Glow(config)
  labels = tf.range(4) % num_classes if num_classes else None
  model.initialize(random_images((4,) + SHAPE), labels)
  perturb(model, scale=0.05)
  return model


def uint8_images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPE).astype(np.uint8)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_a_well_conditioned_model_gives_every_image_back(num_classes):
  images = uint8_images(5)
  check = reconstruction.reconstruct(tiny_model(num_classes), images, np.arange(5) % 3,
                                     batch_size=2)
  assert (check.exact, check.non_finite, check.count) == (5, 0, 5)
  assert check.max_error < 1e-5 and check.passed and check.exact_fraction == 1.0
  np.testing.assert_array_equal(check.rebuilt, images)


def test_every_image_identical_passes_whatever_the_float_error():
  check = reconstruction.Reconstruction(max_error=2.84e-4, exact=2, non_finite=0, count=2,
                                        rebuilt=np.zeros((2,) + SHAPE, np.uint8))
  assert check.passed
  assert check.report() == ("reconstruction check OK: 2/2 held-out images identical as uint8 "
                            "images after decode(encode(x)); max |decode(encode(x)) - x| = "
                            "0.000284 in model space")


def saturate_couplings(model, logits):
  """Sets every coupling's scale output to `logits` (zero kernels, constant bias)."""
  for module in model.submodules:
    if isinstance(module, glow_tfp.bijectors.coupling.Coupling):
      out = module.net.conv_out
      half = out.bias.shape[0] // 2
      out.kernel.assign(tf.zeros_like(out.kernel))
      out.bias.assign(tf.constant([logits] * half + [0.0] * half))


def test_a_collapsed_sigmoid_scale_is_reported_and_fails_the_check():
  model = tiny_model()
  saturate_couplings(model, -14.0)
  check = reconstruction.reconstruct(model, uint8_images(4))
  assert check.exact < 4 and not check.passed
  assert check.non_finite > 0 or check.max_error > 1e-3
  assert check.report().startswith("reconstruction check FAILED")


def test_non_finite_reconstructions_are_counted_not_maxed():
  check = reconstruction.Reconstruction(max_error=0.0, exact=0, non_finite=2, count=2,
                                        rebuilt=np.zeros((2,) + SHAPE, np.uint8))
  assert not check.passed
  assert check.report().endswith("; 2 non-finite")
  assert check.scalars() == {"reconstruction_max_error": 0.0,
                             "reconstruction_exact_fraction": 0.0,
                             "reconstruction_non_finite": 2.0}


def _ood_images(n, shape, seed=0):
  """`train.ood`'s generated sources, `n` images each: uniform noise, Gaussian noise,
  constant and near-black images."""
  rng = np.random.default_rng(seed)
  return {
      "noise:uniform": rng.integers(0, 256, (n,) + shape).astype(np.uint8),
      "noise:gaussian": np.clip(rng.normal(127.5, 64.0, (n,) + shape).round(), 0,
                                255).astype(np.uint8),
      "constant": np.broadcast_to(rng.integers(0, 256, (n, 1, 1, 1)),
                                  (n,) + shape).astype(np.uint8),
      "black": rng.integers(0, 8, (n,) + shape).astype(np.uint8),
  }


def _briefly_trained_at_the_bound(data, bound, steps=30, logit_shift=3.0):
  """A K=4, width-16 model trained `steps` steps on `data`'s digits, then every coupling's
  scale logits raised by `logit_shift`: log s = B tanh((raw + 3) / B), near +B wherever
  the network's raw output is not far below -3."""
  config = glow_tfp.GlowConfig(image_shape=data.image_shape, levels=2, steps_per_level=4,
                               hidden_channels=16, coupling_log_scale_bound=bound)
  model = glow_tfp.Glow(config)
  trainer = update_lib.Update(model, update_lib.Settings(learning_rate=2e-3,
                                                         warmup_steps=5))
  step = tf.function(lambda images: trainer(images, None))
  order = np.random.default_rng(1).integers(0, len(data.train_images), (steps, 8))
  trainer.initialize(tf.constant(data.train_images[order[0]]), None)
  for batch in order:
    step(tf.constant(data.train_images[batch]))
  for module in model.submodules:
    if isinstance(module, glow_tfp.bijectors.coupling.Coupling):
      out = module.net.conv_out
      half = out.bias.shape[0] // 2
      # The network's output is (conv + bias) * exp(3 log_scale) per channel.
      raise_by = logit_shift / tf.exp(3.0 * out.log_scale[:half])
      out.bias.assign(out.bias + tf.concat([raise_by, tf.zeros([half])], axis=0))
  return model


@pytest.mark.parametrize("bound, exact", [
    (glow_tfp.GlowConfig().coupling_log_scale_bound, True),
    (2.0, False),
], ids=["default_bound", "bound_2"])
def test_the_default_bound_gives_noise_constant_and_black_images_back_exactly(tiny_mnist,
                                                                           bound, exact):
  """decode(encode(x)) of out-of-distribution images with every coupling at its bound.

  Thirty steps leave the couplings' scales near 1, where no bound is reached and every
  image comes back at any B. Raising the scale logits by 3 puts each coupling where a
  longer-trained model's couplings go on noise: near the bound, so the normalising
  direction multiplies by up to e**B per coupling, eight times over, and the generative
  direction must undo it through networks that see those magnified values. With B = 2 (the
  bound before `coupling_log_scale_bound` existed) most noise images come back wrong, as
  on the quick start's model (docs/ood.md); the default bound must give every one back.
  """
  model = _briefly_trained_at_the_bound(tiny_mnist, bound)
  checks = {name: reconstruction.reconstruct(model, images)
            for name, images in _ood_images(16, tiny_mnist.image_shape).items()}
  if exact:
    for name, check in checks.items():
      assert (check.exact, check.non_finite) == (check.count, 0), (name, check.report())
  else:
    assert not all(check.passed for check in checks.values())
