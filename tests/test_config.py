import json

import pytest

from glow_tfp.config import GlowConfig


def test_json_round_trip_keeps_every_field():
  config = GlowConfig(image_shape=(16, 16, 3), levels=3, steps_per_level=4, hidden_channels=32,
                      coupling="additive", permutation="shuffle", n_bits=5,
                      learn_top_prior=False, num_classes=10)
  assert GlowConfig.from_json(config.to_json()) == config


def test_presets_hold_the_papers_configurations():
  cifar = GlowConfig.preset("cifar10")
  assert (cifar.image_shape, cifar.levels, cifar.steps_per_level, cifar.hidden_channels,
          cifar.coupling, cifar.n_bits) == ((32, 32, 3), 3, 32, 512, "affine", 8)
  celeba = GlowConfig.preset("celeba_hq_256")
  assert (celeba.image_shape, celeba.levels, celeba.steps_per_level, celeba.coupling,
          celeba.n_bits) == ((256, 256, 3), 6, 32, "additive", 5)
  assert GlowConfig.preset("mnist").image_shape == (28, 28, 1)
  assert GlowConfig.preset("mnist", steps_per_level=2).steps_per_level == 2


@pytest.mark.parametrize("changes, message", [
    (dict(image_shape=(28, 28, 1), levels=3), r"divisible by 2\*\*levels = 8 \(levels=3\)"),
    (dict(image_shape=(8, 8)), r"image_shape must be three positive integers"),
    (dict(levels=0), r"GlowConfig.levels must be an integer >= 1; got 0"),
    (dict(steps_per_level=0), r"steps_per_level must be an integer >= 1; got 0"),
    (dict(hidden_channels=2.5), r"hidden_channels must be an integer >= 1; got 2.5"),
    (dict(coupling="sigmoid"), r"coupling must be one of \('affine', 'additive'\); got 'sigmoid'"),
    (dict(permutation="random"), r"permutation must be one of \('lu', 'conv', 'shuffle', 'reverse'\)"),
    (dict(n_bits=9), r"n_bits must be an integer in 1..8; got 9"),
    (dict(learn_top_prior="yes"), r"learn_top_prior must be True or False"),
    (dict(num_classes=-1), r"num_classes must be an integer >= 0; got -1"),
    (dict(class_prior="per_pixel"),
     r"class_prior must be one of \('per_channel', 'per_position'\); got 'per_pixel'"),
    (dict(coupling_log_scale_bound=0.0),
     r"coupling_log_scale_bound must be a finite number > 0; got 0.0"),
    (dict(coupling_log_scale_bound=-1), r"coupling_log_scale_bound must be .*; got -1"),
    (dict(coupling_log_scale_bound=float("inf")), r"coupling_log_scale_bound .*; got inf"),
    (dict(coupling_log_scale_bound="1"), r"coupling_log_scale_bound .*; got '1'"),
    (dict(coupling_log_scale_bound=True), r"coupling_log_scale_bound .*; got True"),
], ids=["indivisible", "rank", "levels", "steps", "width", "coupling", "permutation",
        "n_bits", "top_prior", "classes", "class_prior", "bound_zero", "bound_negative", "bound_inf",
        "bound_string", "bound_bool"])
def test_invalid_fields_are_named_with_the_allowed_values(changes, message):
  with pytest.raises(ValueError, match=message):
    GlowConfig(**changes)


def test_unknown_preset_and_unknown_json_fields_are_rejected():
  with pytest.raises(ValueError, match="Unknown GlowConfig preset 'imagenet'"):
    GlowConfig.preset("imagenet")
  with pytest.raises(ValueError, match=r"unknown fields \['depth'\]"):
    GlowConfig.from_json('{"depth": 3}')


def test_json_without_coupling_scale_loads_with_the_original_sigmoid_scale():
  fields = json.loads(GlowConfig(coupling_scale="tanh_bounded").to_json())
  del fields["coupling_scale"]
  assert GlowConfig.from_json(json.dumps(fields)).coupling_scale == "sigmoid"


def test_json_without_the_log_scale_bound_loads_with_the_bound_it_was_trained_with():
  fields = json.loads(GlowConfig(coupling_log_scale_bound=0.5).to_json())
  del fields["coupling_log_scale_bound"]
  assert GlowConfig.from_json(json.dumps(fields)).coupling_log_scale_bound == 2.0


def test_json_without_the_class_prior_loads_with_the_per_channel_one_it_was_trained_with():
  fields = json.loads(GlowConfig(num_classes=10).to_json())
  del fields["class_prior"]
  assert GlowConfig.from_json(json.dumps(fields)).class_prior == "per_channel"
  assert GlowConfig(num_classes=10).class_prior == "per_position"


def test_the_log_scale_bound_is_kept_as_a_float_and_survives_json():
  config = GlowConfig(coupling_log_scale_bound=1)
  assert isinstance(config.coupling_log_scale_bound, float)
  assert GlowConfig.from_json(config.to_json()) == config


def test_new_configs_and_presets_use_the_bounded_scale_by_default():
  assert GlowConfig().coupling_scale == "tanh_bounded"
  assert GlowConfig().coupling_log_scale_bound == 0.75
  for name in ("mnist", "cifar10", "celeba_hq_256"):
    assert GlowConfig.preset(name).coupling_scale == "tanh_bounded"
    assert GlowConfig.preset(name).coupling_log_scale_bound == 0.75
