"""Images that are not images of the data: the reject class of `glow_tfp.classifier`.

`draw(images, count, rng)` makes `count` uint8 images [count, H, W, C] in equal shares of
these kinds, each aimed at a way in which a sample goes wrong without looking like noise to a
classifier that has seen only real images:
  uniform     every value an independent uniform draw;
  gaussian    every value an independent draw of N(m, s^2), m ~ U[0, 255], s ~ U[16, 128];
  constant    one value everywhere;
  blobs       white noise blurred by a Gaussian of width sigma ~ U[1, 3] pixels, scaled to
              [0, 1] and passed through a steep ramp at a random level: smooth bright shapes
              on a dark ground, strokes without the form of a digit;
  permuted    a training image with its values shuffled over the pixels: its intensity
              histogram, no shape;
  tiled       a training image cut into T x T tiles (T = a quarter of the side) put back in a
              random order: its local strokes, no global shape.
Every value is then floored to the nearest of the values the training images take, so that
quantised images (`glow_tfp.sample_quality.quantise`) get negatives of the same levels.
"""

import numpy as np

KINDS = ("uniform", "gaussian", "constant", "blobs", "permuted", "tiled")


def draw(images, count, rng):
  """`count` negatives of the uint8 `images` [N, H, W, C] (the kinds in turn), drawn by the
  numpy Generator `rng`."""
  images = np.asarray(images, np.uint8)
  shares = np.bincount(np.arange(count) % len(KINDS), minlength=len(KINDS))
  parts = [_DRAWERS[kind](images, int(n), rng) for kind, n in zip(KINDS, shares)]
  return _snap(np.concatenate(parts), np.flatnonzero(np.bincount(images.ravel(), minlength=256)))


def _uniform(images, count, rng):
  return rng.uniform(0.0, 256.0, (count, *images.shape[1:]))


def _gaussian(images, count, rng):
  mean, scale = rng.uniform(0, 255, (2, count, 1, 1, 1))
  return rng.normal(mean, 16 + 112 * scale / 255, (count, *images.shape[1:]))


def _constant(images, count, rng):
  return np.broadcast_to(rng.uniform(0.0, 256.0, (count, 1, 1, 1)),
                         (count, *images.shape[1:]))


def _blobs(images, count, rng):
  height, width = images.shape[1:3]
  sigma = rng.uniform(1.0, 3.0, count)
  noise = rng.normal(size=(count, images.shape[3], height, width))
  # Blurring is separable: a [H, H] matrix along the rows, a [W, W] one along the columns.
  smooth = (_blur(height, sigma)[:, None] @ noise @ _blur(width, sigma)[:, None].swapaxes(2, 3))
  smooth = smooth.transpose(0, 2, 3, 1)
  low = smooth.min(axis=(1, 2, 3), keepdims=True)
  unit = (smooth - low) / (smooth.max(axis=(1, 2, 3), keepdims=True) - low)
  level = rng.uniform(0.5, 0.85, (count, 1, 1, 1))
  return 255.0 * np.clip((unit - level) / 0.15, 0.0, 1.0)


def _blur(size, sigma):
  """[count, size, size] Gaussian blurring matrices, rows summing to one."""
  offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
  weights = np.exp(-offsets[None] ** 2 / (2 * sigma[:, None, None] ** 2))
  return weights / weights.sum(axis=2, keepdims=True)


def _permuted(images, count, rng):
  picked = images[rng.integers(len(images), size=count)]
  flat = picked.reshape(count, -1 if count else 0, images.shape[-1])
  return rng.permuted(flat, axis=1).reshape(picked.shape).astype(np.float64)


def _tiled(images, count, rng):
  picked = images[rng.integers(len(images), size=count)]
  height, width, channels = images.shape[1:]
  th, tw = max(height // 4, 1), max(width // 4, 1)
  rows, cols = height // th, width // tw
  cropped = picked[:, :rows * th, :cols * tw]
  tiles = cropped.reshape(count, rows, th, cols, tw, channels).transpose(0, 1, 3, 2, 4, 5)
  tiles = tiles.reshape(count, rows * cols, th, tw, channels)
  order = rng.random((count, rows * cols)).argsort(axis=1)
  tiles = tiles[np.arange(count)[:, None], order]
  shuffled = tiles.reshape(count, rows, cols, th, tw, channels).transpose(0, 1, 3, 2, 4, 5)
  out = picked.astype(np.float64)
  out[:, :rows * th, :cols * tw] = shuffled.reshape(cropped.shape)
  return out


def _snap(values, levels):
  """Each value floored to the nearest of the sorted `levels` (the lowest below them)."""
  # A table from each byte to its level: a look-up per value instead of a search.
  table = levels[np.clip(np.searchsorted(levels, np.arange(256), side="right") - 1, 0, None)]
  return table[np.clip(values, 0, 255).astype(np.uint8)].astype(np.uint8)


_DRAWERS = {"uniform": _uniform, "gaussian": _gaussian, "constant": _constant,
            "blobs": _blobs, "permuted": _permuted, "tiled": _tiled}
