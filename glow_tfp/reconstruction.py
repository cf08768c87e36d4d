"""Reconstruction error: how exactly decode(encode(x)) gives uint8 images back.

An exact inverse is what makes Glow's latents usable (manipulation, compression); a
coupling scale that collapses towards 0 loses it (`GlowConfig.coupling_scale`), first on
inputs unlike the training data, so it is measured on held-out and unusual images alike.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from glow_tfp import model_space


@dataclasses.dataclass(frozen=True)
class Reconstruction:
  """decode(encode(x)) of `count` uint8 images.

  Attributes:
    max_error: largest |decode(encode(x)) - x| in model space over the images whose
      reconstruction is finite (0 if none is).
    exact: images that come back identical as uint8 images.
    non_finite: images whose reconstruction holds NaN or Inf.
    count: images in all.
    rebuilt: the reconstructions as uint8 images [N, H, W, C].
  """

  max_error: float
  exact: int
  non_finite: int
  count: int
  rebuilt: np.ndarray

  @property
  def exact_fraction(self):
    return self.exact / self.count

  @property
  def passed(self):
    """Every image comes back identical as a uint8 image (so every reconstruction is finite).

    No float tolerance: rounding that leaves every pixel in its bin is exact for images;
    `max_error` is reported for information.
    """
    return self.exact == self.count

  def scalars(self):
    """The figures as {name: float}, for summaries and JSON."""
    return {"reconstruction_max_error": self.max_error,
            "reconstruction_exact_fraction": self.exact_fraction,
            "reconstruction_non_finite": float(self.non_finite)}

  def report(self, what="held-out images"):
    verdict = "OK" if self.passed else "FAILED"
    line = (f"reconstruction check {verdict}: {self.exact}/{self.count} {what} identical as "
            "uint8 images after decode(encode(x)); max |decode(encode(x)) - x| = "
            f"{self.max_error:.3g} in model space")
    return line + (f"; {self.non_finite} non-finite" if self.non_finite else "")


def reconstruct(model, images, labels=None, batch_size=256):
  """Encodes and decodes uint8 `images` [N, H, W, C] with `model` (a `Glow`), in batches.

  `labels` [N] are used by a class-conditional model and ignored otherwise.
  """
  n_bits = model.config.n_bits
  images = np.asarray(images, np.uint8)
  errors, rebuilt = [], []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    x = tf.cast(model_space.to_model_space(chunk, n_bits), model.dtype)
    chunk_labels = None
    if model.config.num_classes:
      chunk_labels = tf.constant(labels[start:start + batch_size], tf.int32)
    back = model.decode(model.encode(x, chunk_labels), chunk_labels)
    # numpy's max, unlike TensorFlow's on some devices, propagates NaN.
    errors.append(np.abs((back - x).numpy()).max(axis=(1, 2, 3)))
    rebuilt.append(model_space.to_images(tf.cast(back, tf.float32), n_bits).numpy())
  errors, rebuilt = np.concatenate(errors), np.concatenate(rebuilt)
  finite = np.isfinite(errors)
  exact = finite & np.all(rebuilt == images, axis=(1, 2, 3))
  return Reconstruction(max_error=float(errors[finite].max(initial=0.0)),
                        exact=int(exact.sum()), non_finite=int((~finite).sum()),
                        count=len(images), rebuilt=rebuilt)
