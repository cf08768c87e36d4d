"""The reconstruction check of a trained Glow: decode(encode(x)) of real images.

Real images are uint8, so the check is exact: it passes when every image comes back
identical as a uint8 image. The largest model-space error max |decode(encode(x)) - x| is
reported for information only: float rounding in the flow makes it nonzero, and it matters
only where it moves a pixel into another bin, which the uint8 comparison counts.
"""

import dataclasses

import numpy as np

import glow_tfp


@dataclasses.dataclass(frozen=True)
class Reconstruction:
  """decode(encode(x)) of real images: the largest model-space error, how many images come
  back identical as uint8, the images [N, H, W, C] and their reconstructions."""

  max_error: float
  identical: int
  images: np.ndarray
  rebuilt: np.ndarray

  @property
  def passed(self):
    return self.identical == len(self.images)

  def report(self):
    verdict = "OK" if self.passed else "FAILED"
    count = len(self.images)
    return (f"reconstruction check {verdict}: {self.identical}/{count} held-out images "
            "identical as uint8 images after decode(encode(x)); max |decode(encode(x)) - x| "
            f"= {self.max_error:.3g} in model space")


def reconstruction(demo):
  """Encodes and decodes every held-out image of `demo` (a `train.latents.Demo`)."""
  images, labels = demo.data.heldout_images, demo.data.heldout_labels
  x = glow_tfp.to_model_space(images, demo.config.n_bits).numpy()
  back = demo.decode(demo.encode(images, labels), labels)
  rebuilt = demo.to_images(back)
  identical = int(np.sum(np.all(rebuilt == images, axis=(1, 2, 3))))
  return Reconstruction(float(np.max(np.abs(back - x))), identical, images, rebuilt)
