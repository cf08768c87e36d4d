"""LatentLayout: the shapes of the multi-scale flow's levels and latents, from the config."""

import dataclasses

import tensorflow as tf

from glow_tfp.bijectors import split

SQUEEZE_FACTOR = 2


@dataclasses.dataclass(frozen=True)
class Level:
  """One level of the multi-scale flow.

  Attributes:
    shape: (h, w, c) that the level's steps of flow see, after its squeeze.
    kept: channels that continue to the next level (the first `kept`); the other c - kept
      leave the flow as this level's latent. 0 at the top level, whose latent is all of it.
  """

  shape: tuple
  kept: int

  @property
  def latent_shape(self):
    height, width, channels = self.shape
    return (height, width, channels - self.kept)


@dataclasses.dataclass(frozen=True)
class LatentLayout:
  """Where each level's latent lies in the flow's latent, which has the image's shape.

  Level l squeezes its input, runs its steps of flow and keeps the first `levels[l].kept`
  channels for level l + 1; the others are latent l. `unpack` takes the flow's latent apart
  into the per-level latents and `pack` puts them back, exactly (no arithmetic).

  Attributes:
    levels: one `Level` per level, from the first to the top.
  """

  levels: tuple

  @classmethod
  def from_config(cls, config):
    """The layout of the model of a `GlowConfig`."""
    levels = []
    height, width, channels = config.image_shape
    for index in range(config.levels):
      height, width = height // SQUEEZE_FACTOR, width // SQUEEZE_FACTOR
      channels *= SQUEEZE_FACTOR**2
      kept = 0 if index == config.levels - 1 else split.kept_channels(channels)
      levels.append(Level((height, width, channels), kept))
      channels = kept
    return cls(tuple(levels))

  @property
  def latent_shapes(self):
    """The shapes (h, w, c) of the latents, from the first level to the top."""
    return [level.latent_shape for level in self.levels]

  def unpack(self, z):
    """The flow's latent [N, H, W, C] -> the latents of the levels, first to top."""
    latents = []
    for level in self.levels:
      z = tf.nn.space_to_depth(z, SQUEEZE_FACTOR)
      latents.append(z[..., level.kept:])
      z = z[..., :level.kept]
    return latents

  def pack(self, latents):
    """The latents of the levels, first to top -> the flow's latent [N, H, W, C]."""
    z = latents[-1]
    for latent in reversed(latents[:-1]):
      z = tf.concat([tf.nn.depth_to_space(z, SQUEEZE_FACTOR), latent], axis=-1)
    return tf.nn.depth_to_space(z, SQUEEZE_FACTOR)
