import numpy as np
import pytest

from glow_tfp.bijectors import permute
from tests.checks import check_bijector, random_images


@pytest.mark.parametrize("kind", permute.PERMUTATION_KINDS)
def test_properties(kind):
  check_bijector(permute.ChannelPermutation(6, kind, seed=0), random_images([2, 3, 3, 6]))


def test_reverse_reverses_channels():
  x = random_images([1, 2, 2, 5])
  np.testing.assert_array_equal(permute.ChannelPermutation(5, "reverse").inverse(x).numpy(),
                                x.numpy()[..., ::-1])


def test_shuffle_is_a_seeded_permutation():
  order = permute.ChannelPermutation(16, "shuffle", seed=4).order.numpy()
  assert sorted(order) == list(range(16))
  assert list(order) != list(range(16))
  np.testing.assert_array_equal(order, permute.ChannelPermutation(16, "shuffle", seed=4).order)


def test_unknown_kind_is_rejected():
  with pytest.raises(ValueError, match=r"`kind` must be one of \('shuffle', 'reverse'\); "
                     "instead, it is 'random'"):
    permute.ChannelPermutation(4, "random")
