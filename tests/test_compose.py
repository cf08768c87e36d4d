import numpy as np
import pytest

from glow_tfp.bijectors import actnorm
from glow_tfp.bijectors import compose
from glow_tfp.bijectors import invertible_conv
from glow_tfp.bijectors import squeeze
from tests.checks import assert_close, check_bijector, perturb, random_images


def test_sequential_properties_across_a_change_of_shape():
  chain = compose.Sequential([squeeze.Squeeze(), actnorm.ActNorm(8),
                              invertible_conv.Invertible1x1Conv(8, seed=2),
                              compose.Invert(squeeze.Squeeze())])
  perturb(chain, scale=0.2)
  check_bijector(chain, random_images([2, 4, 4, 2]))
  assert chain.inverse_event_shape([4, 4, 2]) == [4, 4, 2]


def test_sequential_inverse_applies_the_first_member_first():
  norm = actnorm.ActNorm(8)
  norm.bias.assign(np.arange(8, dtype=np.float32))
  chain = compose.Sequential([squeeze.Squeeze(), norm])
  x = random_images([1, 4, 4, 2])
  expected = squeeze.Squeeze().inverse(x).numpy() + np.arange(8)
  assert_close(chain.inverse(x).numpy(), expected, rtol=2e-7)


def test_invert_swaps_directions():
  inverted = compose.Invert(squeeze.Squeeze())
  x = random_images([1, 2, 2, 4])
  np.testing.assert_array_equal(inverted.inverse(x).numpy(), squeeze.Squeeze().forward(x).numpy())


def test_empty_sequential_is_rejected():
  with pytest.raises(ValueError, match="`bijectors` must be a non-empty list"):
    compose.Sequential([])
