import numpy as np
import pytest
import tensorflow as tf

from glow_tfp.bijectors import coupling
from tests.checks import check_bijector, perturb, random_images


@pytest.mark.parametrize("kind", coupling.COUPLING_KINDS)
def test_properties_after_parameters_move(kind):
  bijector = coupling.Coupling(4, 8, kind, seed=1)
  x = random_images([2, 3, 3, 4])
  bijector.initialize_inverse(x)
  perturb(bijector, scale=0.2)
  check_bijector(bijector, x)


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
  np.testing.assert_allclose(z[..., 2:].numpy(), x[..., 2:].numpy() * scale, rtol=1e-6)
  np.testing.assert_allclose(log_det.numpy(), [18 * np.log(scale)] * 2, rtol=1e-6)


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
], ids=["channels", "hidden", "kind"])
def test_bad_arguments_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match=message):
    coupling.Coupling(**kwargs)
