import numpy as np
import pytest
import tensorflow as tf

from glow_tfp.bijectors import coupling
from tests.checks import (assert_close, assert_log_det_close, brute_force_log_det,
                          check_bijector, perturb, random_images)


@pytest.mark.parametrize("kind", coupling.COUPLING_KINDS)
def test_properties_after_parameters_move(kind):
  bijector = coupling.Coupling(4, 8, kind, seed=1)
  x = random_images([2, 3, 3, 4])
  bijector.initialize_inverse(x)
  perturb(bijector, scale=0.2)
  check_bijector(bijector, x)


@pytest.mark.parametrize("scale", coupling.SCALE_KINDS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["float32", "float64"])
def test_every_scale_passes_the_property_check(scale, dtype):
  bijector = coupling.Coupling(4, 8, "affine", seed=1, dtype=dtype, scale=scale)
  x = random_images([2, 3, 3, 4], dtype=dtype)
  bijector.initialize_inverse(x)
  perturb(bijector, scale=0.05)
  check_bijector(bijector, x)


def push_scale_logits(bijector, value):
  """Makes the network's scale output `value` everywhere: zero kernel, constant bias."""
  out = bijector.net.conv_out
  half = out.bias.shape[0] // 2
  out.kernel.assign(tf.zeros_like(out.kernel))
  out.log_scale.assign(tf.zeros_like(out.log_scale))
  out.bias.assign(tf.constant([value] * half + [0.0] * half, out.bias.dtype))


@pytest.mark.parametrize("scale, low, high", [
    ("sigmoid_floor", coupling.SCALE_FLOOR, 1.0 + coupling.SCALE_FLOOR),
    ("tanh_bounded", np.exp(-coupling.LOG_SCALE_BOUND), np.exp(coupling.LOG_SCALE_BOUND)),
])
def test_bounded_scales_stay_inside_their_bounds_at_extreme_network_outputs(scale, low, high):
  bijector = coupling.Coupling(4, 8, "affine", scale=scale)
  x = random_images([2, 3, 3, 4])
  for logits, bound in ((-1e4, low), (1e4, high)):
    push_scale_logits(bijector, logits)
    z, log_det = bijector.inverse_and_log_det(x)
    assert_close(z[..., 2:].numpy(), x[..., 2:].numpy() * bound, rtol=1e-5)
    assert_close(log_det.numpy(), [18 * np.log(bound)] * 2, rtol=1e-5)
    assert_close(bijector.forward(z).numpy(), x.numpy(), rtol=5e-6)


@pytest.mark.parametrize("scale, largest_gain", [
    ("sigmoid", None),
    ("sigmoid_floor", 1.0 / coupling.SCALE_FLOOR),
    ("tanh_bounded", np.exp(coupling.LOG_SCALE_BOUND)),
])
def test_generative_direction_amplifies_latent_errors_only_with_the_sigmoid(scale,
                                                                           largest_gain):
  bijector = coupling.Coupling(4, 8, "affine", scale=scale)
  push_scale_logits(bijector, -30.0)
  z = bijector.inverse(random_images([2, 3, 3, 4]))
  gain = np.abs((bijector.forward(z + 1e-6) - bijector.forward(z)).numpy()).max() / 1e-6
  if largest_gain is None:
    assert gain > 1e9
  else:
    assert gain <= largest_gain * 1.01


@pytest.mark.parametrize("bound", [0.25, 0.5, 3.0])
def test_the_log_scale_bound_caps_log_s_at_huge_network_outputs(bound):
  bijector = coupling.Coupling(4, 8, "affine", scale="tanh_bounded", log_scale_bound=bound)
  x = random_images([2, 3, 3, 4])
  for logits in (-1e6, -30.0, 30.0, 1e6):
    push_scale_logits(bijector, logits)
    z, log_det = bijector.inverse_and_log_det(x)
    log_s = np.log(np.abs(z[..., 2:].numpy() / x[..., 2:].numpy()))
    assert np.abs(log_s).max() <= bound * (1 + 1e-5)
    # 18 transformed elements per example, each at the bound.
    assert np.all(np.abs(log_det.numpy()) <= 18 * bound * (1 + 1e-6))
  assert_close(log_det.numpy(), [18 * bound] * 2, rtol=1e-6)


@pytest.mark.parametrize("bound", [0.5, 3.0])
def test_log_det_matches_the_brute_force_jacobian_for_another_bound(bound):
  bijector = coupling.Coupling(4, 8, "affine", scale="tanh_bounded", log_scale_bound=bound,
                               dtype=tf.float64)
  x = random_images([2, 3, 3, 4], dtype=tf.float64)
  bijector.initialize_inverse(x)
  # Large enough that many raw outputs reach the curved part of B tanh(raw / B).
  perturb(bijector, scale=1.0)
  z, ildj = bijector.inverse_and_log_det(x)
  assert_log_det_close(ildj.numpy(), brute_force_log_det(bijector.inverse, x), rtol=1e-9)
  fldj = bijector.forward_log_det_jacobian(z)
  assert_log_det_close(fldj.numpy(), brute_force_log_det(bijector.forward, z), rtol=1e-9)
  check_bijector(bijector, x)


def test_fresh_tanh_bounded_coupling_is_the_identity():
  bijector = coupling.Coupling(4, 8, "affine", scale="tanh_bounded")
  x = random_images([2, 3, 3, 4])
  z, log_det = bijector.inverse_and_log_det(x)
  np.testing.assert_array_equal(z.numpy(), x.numpy())
  np.testing.assert_array_equal(log_det.numpy(), [0.0, 0.0])


def test_fresh_additive_coupling_is_the_identity():
  bijector = coupling.Coupling(4, 8, "additive")
  x = random_images([2, 3, 3, 4])
  z, log_det = bijector.inverse_and_log_det(x)
  np.testing.assert_array_equal(z.numpy(), x.numpy())
  np.testing.assert_array_equal(log_det.numpy(), [0.0, 0.0])


def test_fresh_affine_coupling_has_no_shift_and_the_constant_scale_sigmoid_2():
  bijector = coupling.Coupling(4, 8, "affine")
  x = random_images([2, 3, 3, 4])
  z, log_det = bijector.inverse_and_log_det(x)
  scale = 1.0 / (1.0 + np.exp(-2.0))
  np.testing.assert_array_equal(z[..., :2].numpy(), x[..., :2].numpy())
  assert_close(z[..., 2:].numpy(), x[..., 2:].numpy() * scale, rtol=1e-6)
  assert_close(log_det.numpy(), [18 * np.log(scale)] * 2, rtol=1e-6)


def test_first_half_passes_through_unchanged_after_training():
  bijector = coupling.Coupling(4, 8, "affine")
  perturb(bijector, scale=0.2)
  x = random_images([2, 3, 3, 4])
  np.testing.assert_array_equal(bijector.inverse(x)[..., :2].numpy(), x[..., :2].numpy())


def test_initialization_sets_the_network_actnorms():
  bijector = coupling.Coupling(4, 8, "affine")
  bijector.initialize_inverse(random_images([8, 3, 3, 4]))
  assert bijector.net.norm_in.initialized.numpy()
  assert bijector.net.norm_hidden.initialized.numpy()


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=1, hidden_channels=8), "`channels` must be at least 2; instead, it is 1"),
    (dict(channels=4, hidden_channels=0), "`hidden_channels` must be positive"),
    (dict(channels=4, hidden_channels=8, kind="sigmoid"), "`kind` must be one of"),
    (dict(channels=4, hidden_channels=8, scale="exp"), "`scale` must be one of"),
    (dict(channels=4, hidden_channels=8, log_scale_bound=0.0),
     "`log_scale_bound` must be a finite number > 0; got 0.0"),
    (dict(channels=4, hidden_channels=8, log_scale_bound=-2.0), "`log_scale_bound` must be"),
    (dict(channels=4, hidden_channels=8, log_scale_bound=float("nan")),
     "`log_scale_bound` must be"),
], ids=["channels", "hidden", "kind", "scale", "bound_zero", "bound_negative", "bound_nan"])
def test_bad_arguments_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match=message):
    coupling.Coupling(**kwargs)
