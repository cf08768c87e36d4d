import numpy as np
import pytest

from glow_tfp.bijectors import actnorm
from glow_tfp.bijectors import split
from tests.checks import check_bijector, perturb, random_images


def test_properties_after_parameters_move():
  bijector = split.Split(actnorm.ActNorm(2), channels=4)
  perturb(bijector, scale=0.3)
  check_bijector(bijector, random_images([2, 3, 3, 4]))


def test_fresh_prior_is_standard_normal():
  bijector = split.Split(actnorm.ActNorm(2), channels=4)
  x = random_images([2, 3, 3, 4])
  np.testing.assert_array_equal(bijector.inverse(x).numpy(), x.numpy())


def test_factored_half_depends_on_the_kept_half():
  bijector = split.Split(actnorm.ActNorm(2), channels=4)
  perturb(bijector, scale=0.3)
  x = random_images([1, 3, 3, 4])
  changed = np.array(x)
  changed[..., 0] += 0.1
  z, z_changed = bijector.inverse(x).numpy(), bijector.inverse(changed).numpy()
  assert np.abs(z[..., 2:] - z_changed[..., 2:]).max() > 1e-4


def test_too_few_channels_are_rejected():
  with pytest.raises(ValueError, match="`channels` must be at least 2; instead, it is 1"):
    split.Split(actnorm.ActNorm(1), channels=1)
