import numpy as np
import tensorflow as tf

import glow_tfp
from glow_tfp import layout
from tests.checks import random_images


def test_levels_and_latent_shapes_follow_the_config():
  config = glow_tfp.GlowConfig(image_shape=(8, 8, 3), levels=3, steps_per_level=1)
  latent_layout = layout.LatentLayout.from_config(config)
  assert latent_layout.levels == (layout.Level((4, 4, 12), 6), layout.Level((2, 2, 24), 12),
                                  layout.Level((1, 1, 48), 0))
  assert latent_layout.latent_shapes == [(4, 4, 6), (2, 2, 12), (1, 1, 48)]


def test_unpack_and_pack_are_exact_inverses():
  config = glow_tfp.GlowConfig(image_shape=(8, 8, 3), levels=3, steps_per_level=1)
  latent_layout = layout.LatentLayout.from_config(config)
  z = random_images((2, 8, 8, 3))
  latents = latent_layout.unpack(z)
  assert [tuple(latent.shape[1:]) for latent in latents] == latent_layout.latent_shapes
  np.testing.assert_array_equal(latent_layout.pack(latents).numpy(), z.numpy())


def test_the_first_level_latent_is_the_factored_half_of_the_squeezed_input():
  config = glow_tfp.GlowConfig(image_shape=(4, 4, 1), levels=2, steps_per_level=1)
  z = random_images((1, 4, 4, 1))
  first = layout.LatentLayout.from_config(config).unpack(z)[0]
  np.testing.assert_array_equal(first.numpy(), tf.nn.space_to_depth(z, 2)[..., 2:].numpy())
