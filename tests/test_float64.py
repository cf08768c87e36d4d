"""The shared property check in float64 for every bijector and the whole model, where the
brute-force Jacobian holds the analytic log-dets to 1e-9 (`checks.TOLERANCE_FACTOR`)."""

import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp.bijectors import actnorm
from glow_tfp.bijectors import compose
from glow_tfp.bijectors import coupling
from glow_tfp.bijectors import flow_step
from glow_tfp.bijectors import invertible_conv
from glow_tfp.bijectors import permute
from glow_tfp.bijectors import prior
from glow_tfp.bijectors import split
from glow_tfp.bijectors import squeeze
from tests.checks import check_bijector, perturb, random_images

F64 = tf.float64
CHANNELS = 4

BIJECTORS = {
    "actnorm": lambda: actnorm.ActNorm(CHANNELS, F64),
    "conv_lu": lambda: invertible_conv.Invertible1x1Conv(CHANNELS, lu=True, seed=3, dtype=F64),
    "conv_plain": lambda: invertible_conv.Invertible1x1Conv(CHANNELS, lu=False, seed=3,
                                                            dtype=F64),
    "shuffle": lambda: permute.ChannelPermutation(CHANNELS, "shuffle", seed=3, dtype=F64),
    "additive_coupling": lambda: coupling.Coupling(CHANNELS, 8, "additive", dtype=F64),
    "split": lambda: split.Split(actnorm.ActNorm(2, F64), CHANNELS, dtype=F64),
    "top_prior": lambda: prior.TopPrior(CHANNELS, dtype=F64),
    "flow_step": lambda: flow_step.FlowStep(
        actnorm.ActNorm(CHANNELS, F64),
        invertible_conv.Invertible1x1Conv(CHANNELS, seed=3, dtype=F64),
        coupling.Coupling(CHANNELS, 8, seed=4, dtype=F64, scale="tanh_bounded")),
    "sequential_squeeze": lambda: compose.Sequential(
        [squeeze.Squeeze(dtype=F64), actnorm.ActNorm(4 * CHANNELS, F64),
         compose.Invert(squeeze.Squeeze(dtype=F64))]),
}


@pytest.mark.parametrize("name", list(BIJECTORS))
def test_bijector_properties_in_float64(name):
  bijector = BIJECTORS[name]()
  x = random_images([2, 4, 4, CHANNELS], seed=2, dtype=F64)
  bijector.initialize_inverse(x)
  perturb(bijector, scale=0.2)
  check_bijector(bijector, x)


@pytest.mark.parametrize("scale", coupling.SCALE_KINDS)
def test_model_properties_in_float64(scale):
  config = glow_tfp.GlowConfig(image_shape=(8, 8, 2), levels=2, steps_per_level=2,
                               hidden_channels=8, coupling_scale=scale, num_classes=3)
  model = glow_tfp.Glow(config, seed=1, dtype="float64")
  labels = tf.constant([0, 2])
  model.initialize(random_images((4, 8, 8, 2), seed=1, dtype=F64), tf.constant([0, 1, 2, 0]))
  perturb(model, scale=0.05)
  check_bijector(model.bijector, random_images((2, 8, 8, 2), seed=5, dtype=F64), labels=labels)
  assert model.log_prob(random_images((2, 8, 8, 2), dtype=F64), labels).dtype == F64
  assert model.sample(2, labels=labels, seed=1).dtype == F64


def test_float32_images_into_a_float64_model_are_rejected():
  model = glow_tfp.Glow(glow_tfp.GlowConfig(image_shape=(4, 4, 1), levels=1,
                                            steps_per_level=1, hidden_channels=4),
                        dtype="float64")
  with pytest.raises(TypeError, match="images must be float64; got dtype float32"):
    model.log_prob(random_images((1, 4, 4, 1)))


def test_unknown_model_dtype_is_rejected():
  with pytest.raises(ValueError, match="`dtype` must be one of"):
    glow_tfp.Glow(glow_tfp.GlowConfig(), dtype="float16")
