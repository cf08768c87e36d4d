import numpy as np
import pytest
import tensorflow as tf

from glow_tfp.bijectors import invertible_conv
from tests.checks import assert_close, check_bijector, perturb, random_images


@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
def test_properties_after_parameters_move(lu):
  bijector = invertible_conv.Invertible1x1Conv(4, lu=lu, seed=3)
  perturb(bijector, scale=0.2)
  check_bijector(bijector, random_images([2, 3, 3, 4]))


@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
def test_initial_weight_is_a_seeded_rotation(lu):
  weight = invertible_conv.Invertible1x1Conv(5, lu=lu, seed=7).weight_matrix().numpy()
  assert_close(weight @ weight.T, np.eye(5), rtol=1e-5)
  same_seed = invertible_conv.Invertible1x1Conv(5, lu=lu, seed=7).weight_matrix().numpy()
  other_seed = invertible_conv.Invertible1x1Conv(5, lu=lu, seed=8).weight_matrix().numpy()
  np.testing.assert_array_equal(weight, same_seed)
  assert np.abs(weight - other_seed).max() > 0.1


def test_lu_weight_is_p_l_u_with_signed_diagonal():
  bijector = invertible_conv.Invertible1x1Conv(4, seed=1)
  perturb(bijector, scale=0.3)
  p = bijector.permutation.numpy()
  lower = np.tril(bijector.lower.numpy(), -1) + np.eye(4)
  upper = (np.triu(bijector.upper.numpy(), 1)
           + np.diag(bijector.sign_s.numpy() * np.exp(bijector.log_s.numpy())))
  assert_close(bijector.weight_matrix().numpy(), p @ lower @ upper, rtol=1e-6)


@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
def test_log_abs_det_equals_slogdet_and_inverse_is_exact(lu):
  bijector = invertible_conv.Invertible1x1Conv(6, lu=lu, seed=2)
  perturb(bijector, scale=0.3)
  weight = bijector.weight_matrix()
  assert_close(bijector.log_abs_det_weight().numpy(), tf.linalg.slogdet(weight)[1].numpy(),
               rtol=5e-5)
  assert_close((bijector.inverse_weight_matrix() @ weight).numpy(), np.eye(6), rtol=1e-5)


def test_permutation_and_sign_are_not_trained():
  bijector = invertible_conv.Invertible1x1Conv(3)
  trainable = {v.ref() for v in bijector.trainable_variables}
  assert bijector.permutation.ref() not in trainable
  assert bijector.sign_s.ref() not in trainable
  assert {bijector.lower.ref(), bijector.upper.ref(), bijector.log_s.ref()} == trainable


def test_nonpositive_channels_are_rejected():
  with pytest.raises(ValueError, match="`channels` must be positive; instead, it is -1"):
    invertible_conv.Invertible1x1Conv(-1)
