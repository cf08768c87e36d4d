"""glow_tfp.reconstruction: decode(encode(x)) exact as uint8 images, or how far from it."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import reconstruction
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
