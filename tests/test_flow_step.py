import numpy as np
import pytest

from glow_tfp.bijectors import actnorm
from glow_tfp.bijectors import compose
from glow_tfp.bijectors import coupling
from glow_tfp.bijectors import flow_step
from glow_tfp.bijectors import invertible_conv
from glow_tfp.bijectors import permute
from tests.checks import assert_close, check_bijector, perturb, random_images

CHANNELS = 5  # odd, so the coupling's halves differ in size (3 and 2)

MIXINGS = {
    "lu": lambda: invertible_conv.Invertible1x1Conv(CHANNELS, lu=True, seed=3),
    "plain": lambda: invertible_conv.Invertible1x1Conv(CHANNELS, lu=False, seed=3),
    "shuffle": lambda: permute.ChannelPermutation(CHANNELS, "shuffle", seed=3),
}


def moved_step(mixing, kind="affine"):
  """A step whose layers are initialised from data and then moved off their initial values."""
  step = flow_step.FlowStep(actnorm.ActNorm(CHANNELS), MIXINGS[mixing](),
                            coupling.Coupling(CHANNELS, 8, kind, seed=4))
  step.initialize_inverse(random_images([8, 3, 3, CHANNELS], seed=5))
  perturb(step, scale=0.2)
  return step


@pytest.mark.parametrize("mixing", list(MIXINGS))
@pytest.mark.parametrize("kind", coupling.COUPLING_KINDS)
def test_properties_after_parameters_move(mixing, kind):
  check_bijector(moved_step(mixing, kind), random_images([2, 3, 3, CHANNELS]))


@pytest.mark.parametrize("mixing", list(MIXINGS))
def test_fused_step_equals_the_chain_of_its_three_layers(mixing):
  step = moved_step(mixing)
  chain = compose.Sequential([step.actnorm, step.mixing, step.coupling])
  x = random_images([3, 4, 4, CHANNELS], seed=6)
  for fused, unfused in [(step.inverse_and_log_det(x), chain.inverse_and_log_det(x)),
                         (step.forward_and_log_det(x), chain.forward_and_log_det(x))]:
    assert_close(fused[0].numpy(), unfused[0].numpy(), rtol=2e-5)
    assert_close(fused[1].numpy(), unfused[1].numpy(), rtol=1e-5)


@pytest.mark.parametrize("mixing", list(MIXINGS))
def test_frozen_step_equals_the_live_step_and_ignores_later_affine_changes(mixing):
  step = moved_step(mixing)
  x = random_images([3, 4, 4, CHANNELS], seed=6)
  live = [step.inverse_and_log_det(x), step.forward_and_log_det(x)]
  with step.frozen() as variables:
    assert not any(v.trainable for v in variables)
    frozen = [step.inverse_and_log_det(x), step.forward_and_log_det(x)]
    for layer in (step.actnorm, step.mixing):  # The frozen layers: not seen inside.
      perturb(layer, scale=0.2, seed=9)
    after_change = step.inverse_and_log_det(x)
  for expected, got in zip(live + live[:1], frozen + [after_change]):
    assert_close(got[0].numpy(), expected[0].numpy(), rtol=1e-6)
    assert_close(got[1].numpy(), expected[1].numpy(), rtol=1e-6)
  # Outside the context, the moved parameters count again.
  assert not np.allclose(step.inverse_and_log_det(x)[1].numpy(), live[0][1].numpy())


def test_initialization_standardises_the_actnorm_input_statistics():
  step = flow_step.FlowStep(actnorm.ActNorm(CHANNELS), MIXINGS["lu"](),
                            coupling.Coupling(CHANNELS, 8, seed=4))
  x = 3.0 + 2.0 * random_images([16, 3, 3, CHANNELS], seed=7)
  step.initialize_inverse(x)
  normalised = step.actnorm.inverse(x).numpy()
  # Zero to the scale of the output, whose standard deviation is 1.
  assert_close(normalised.mean(axis=(0, 1, 2)), 0.0, rtol=1e-5, scale=1.0)
  assert_close(normalised.std(axis=(0, 1, 2)), 1.0, rtol=1e-4)
  assert step.coupling.net.norm_in.initialized.numpy()


def test_layers_over_different_channel_counts_are_rejected():
  with pytest.raises(ValueError, match=r"same number of channels; instead, they have \[5, 6, 5\]"):
    flow_step.FlowStep(actnorm.ActNorm(CHANNELS), invertible_conv.Invertible1x1Conv(6),
                       coupling.Coupling(CHANNELS, 8))
