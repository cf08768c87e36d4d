"""The generated sources of `python -m train.ood`: `generate(name, heldout, rng, labels)`
returns as many images as `heldout` (uint8 [N, H, W, C]) and of its shape, drawn with `rng`
(the held-out `labels` pick the second digit of the sources that join two).

STANDARD, noise, simple images and whole digits transformed:
  noise:uniform     pixels uniform in 0..255
  noise:gaussian    pixels N(127.5, 64^2), clipped
  constant          every pixel one random value in 0..255
  black             near-black: pixels uniform in 0..7
  shrunk            held-out images at half size (bilinear) centred on a black canvas
  flipped           held-out images upside down
  inverted          255 - held-out images
  sklearn_digits    scikit-learn's bundled 8x8 digits upscaled to the model's size
NEAR_OOD, handwriting-like (MNIST's strokes and grey levels) but not one centred digit:
  pair              two digits side by side, each squeezed to half width, framed as MNIST
                    frames one digit (a 20x20 box in 28x28, centred by centre of mass)
  overlay           two digits superimposed (pixelwise max)
  chimera           the top half of one digit above the bottom half of another
  fragment          a crop of 40-60% of a digit's height and width around an inked pixel,
                    upscaled to the whole image
  off_centre        a digit moved 8-10 px from the centre, cut off by the border
  scribble          1-3 random Bezier pen strokes of MNIST's width, drawn 4x supersampled
                    and downsampled, framed as MNIST frames a digit
PERTURBED, digits under small geometric changes (reported, not out-of-distribution targets):
  rotated           rotated by 15-25 degrees either way
  shifted           moved 2-4 px
  rescaled          scaled about the centre by 0.75-0.85 or 1.15-1.25, strokes kept at their
                    width (the ink grows with the scale, not its square)
The second digit of pair, overlay and chimera is another held-out image, of another class
where `labels` has one.

`python -m train.ood_sources [PATH]` writes a montage of 8 images per source drawn from the
bundled MNIST's held-out digits (seed 0) to PATH, by default docs/ood/sources.png.
"""

import math
import sys

import matplotlib

matplotlib.use("Agg")  # Files only.
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import PIL.ImageDraw  # noqa: E402
import sklearn.datasets  # noqa: E402

STANDARD = ("noise:uniform", "noise:gaussian", "constant", "black", "shrunk", "flipped",
            "inverted", "sklearn_digits")
NEAR_OOD = ("pair", "overlay", "chimera", "fragment", "off_centre", "scribble")
PERTURBED = ("rotated", "shifted", "rescaled")
GENERATED = STANDARD + NEAR_OOD + PERTURBED
GROUPS = {"standard": STANDARD, "near-OOD": NEAR_OOD, "perturbed": PERTURBED}

_MNIST_BOX = 20 / 28  # MNIST fits each digit in a 20x20 box of its 28x28 image.
_SUPERSAMPLE = 4


def group(name):
  """The group of source `name` (a key of `GROUPS`), or "dataset"."""
  return next((g for g, names in GROUPS.items() if name in names), "dataset")


def generate(name, heldout, rng, labels=None):
  """The images of a generated source, as many as `heldout` and of its shape."""
  if name not in _SOURCES:
    raise ValueError(f"Unknown generated source {name!r}.")
  return _SOURCES[name](heldout, rng, labels).astype(np.uint8)


def _uniform(heldout, rng, labels):
  """Pixels uniform in 0..255."""
  return rng.integers(0, 256, heldout.shape)


def _gaussian(heldout, rng, labels):
  """Pixels N(127.5, 64^2), rounded and clipped to 0..255."""
  return np.clip(rng.normal(127.5, 64.0, heldout.shape).round(), 0, 255)


def _constant(heldout, rng, labels):
  """Every pixel of an image one random value in 0..255."""
  return np.broadcast_to(rng.integers(0, 256, (len(heldout), 1, 1, 1)), heldout.shape)


def _black(heldout, rng, labels):
  """Near-black: pixels uniform in 0..7."""
  return rng.integers(0, 8, heldout.shape)


def _shrunk(heldout, rng, labels):
  """Held-out images at half size (bilinear) centred on a black canvas."""
  return np.stack([_shrink(image) for image in heldout])


def _flipped(heldout, rng, labels):
  """Held-out images upside down."""
  return heldout[:, ::-1]


def _inverted(heldout, rng, labels):
  """255 - held-out images."""
  return 255 - heldout


def _sklearn_digits(heldout, rng, labels):
  """scikit-learn's bundled 8x8 digits (1,797 images, 17 grey levels; another scanner and
  writers than MNIST's), drawn without replacement while they last and upscaled bilinearly
  to the model's size."""
  digits = sklearn.datasets.load_digits().images  # floats 0..16
  count, height, width, channels = heldout.shape
  picked = rng.choice(len(digits), count, replace=count > len(digits))
  images = [_resize((digits[i] * (255 / 16)).round()[..., None], height, width)
            for i in picked]
  return np.repeat(np.stack(images), channels, axis=-1)


def _pair(heldout, rng, labels):
  """Two digits side by side, each squeezed to half width, framed like one MNIST digit."""
  partners = _partners(len(heldout), rng, labels)
  return np.stack([_side_by_side(image, heldout[j]) for image, j in zip(heldout, partners)])


def _overlay(heldout, rng, labels):
  """Two digits superimposed: their pixelwise max."""
  return np.maximum(heldout, heldout[_partners(len(heldout), rng, labels)])


def _chimera(heldout, rng, labels):
  """The top half of each digit above the bottom half of another."""
  images = heldout.copy()
  half = heldout.shape[1] // 2
  images[:, half:] = heldout[_partners(len(heldout), rng, labels), half:]
  return images


def _fragment(heldout, rng, labels):
  """A crop of 40-60% of a digit's height and width around an inked pixel, upscaled."""
  return np.stack([_zoom_in(image, rng) for image in heldout])


def _off_centre(heldout, rng, labels):
  """Digits moved 8-10 px from the centre (further where the border cuts off so much that
  the rest's centre of mass stays within 6 px of the centre)."""
  return np.stack([_move(image, rng, 8, 10, least=6) for image in heldout])


def _scribble(heldout, rng, labels):
  """1-3 random smooth pen strokes of MNIST's width, framed like one MNIST digit."""
  return np.stack([_strokes(heldout.shape[1:], rng) for _ in heldout])


def _rotated(heldout, rng, labels):
  """Digits rotated by 15-25 degrees either way about the centre."""
  angles = rng.choice([-1, 1], len(heldout)) * rng.uniform(15, 25, len(heldout))
  return np.stack([_warp(image, angle=a) for image, a in zip(heldout, angles)])


def _shifted(heldout, rng, labels):
  """Digits moved 2-4 px."""
  return np.stack([_move(image, rng, 2, 4) for image in heldout])


def _rescaled(heldout, rng, labels):
  """Digits scaled about the centre by 0.75-0.85 or 1.15-1.25, strokes kept at their width."""
  scales = np.where(rng.random(len(heldout)) < 0.5, rng.uniform(0.75, 0.85, len(heldout)),
                    rng.uniform(1.15, 1.25, len(heldout)))
  return np.stack([_with_ink(_warp(image, scale=s), s * _ink(image))
                   for image, s in zip(heldout, scales)])


_SOURCES = dict(zip(GENERATED, (
    _uniform, _gaussian, _constant, _black, _shrunk, _flipped, _inverted, _sklearn_digits,
    _pair, _overlay, _chimera, _fragment, _off_centre, _scribble,
    _rotated, _shifted, _rescaled)))


def _per_channel(image, operation):
  """`operation` (PIL image -> PIL image) applied to each channel of uint8 [H, W, C]."""
  return np.stack([np.asarray(operation(PIL.Image.fromarray(image[..., c].astype(np.uint8))))
                   for c in range(image.shape[-1])], axis=-1)


def _resize(image, height, width):
  return _per_channel(image, lambda c: c.resize((width, height), PIL.Image.BILINEAR))


def _warp(image, angle=0.0, scale=1.0, shift=(0, 0)):
  """`image` rotated by `angle` degrees (counter-clockwise) and scaled by `scale` about its
  centre, then moved by `shift` (down, right) pixels; bilinear, black outside."""
  height, width = image.shape[:2]
  cos, sin = math.cos(math.radians(angle)) / scale, math.sin(math.radians(angle)) / scale
  # PIL maps each output point (x, y) to the input point (a x + b y + c, d x + e y + f).
  x0, y0 = width / 2 + shift[1], height / 2 + shift[0]
  matrix = (cos, -sin, width / 2 - cos * x0 + sin * y0,
            sin, cos, height / 2 - sin * x0 - cos * y0)
  return _per_channel(image, lambda c: c.transform(c.size, PIL.Image.AFFINE, matrix,
                                                   PIL.Image.BILINEAR))


def _shrink(image):
  height, width = image.shape[:2]
  canvas = np.zeros_like(image)
  top, left = height // 4, width // 4
  canvas[top:top + height // 2, left:left + width // 2] = _resize(image, height // 2,
                                                                  width // 2)
  return canvas


def _ink(image):
  return image.astype(np.float64).sum()


def _with_ink(image, target):
  """`image` with its grey levels re-curved (v -> 255 (v / 255)^gamma) so its ink is about
  `target`: strokes thinner (gamma > 1) or thicker (gamma < 1), black and white kept."""
  low, high = -3.0, 3.0  # log gamma
  values = image.astype(np.float64) / 255
  for _ in range(30):
    middle = (low + high) / 2
    low, high = (middle, high) if (255 * values ** math.exp(middle)).sum() > target else (
        low, middle)
  return np.round(255 * values ** math.exp((low + high) / 2))


def _move(image, rng, low, high, least=0):
  """`image` moved `low`..`high` px in a random direction, and on by 1 px at a time while its
  centre of mass is under `least` px from the image's centre."""
  length, angle = rng.uniform(low, high), rng.uniform(0, 2 * math.pi)
  centre = np.array(image.shape[:2]) / 2
  while True:
    moved = _warp(image, shift=(round(length * math.sin(angle)),
                                round(length * math.cos(angle))))
    mass = _centre_of_mass(moved)
    if mass is None or np.hypot(*(mass - centre)) >= least or length > centre.max():
      return moved
    length += 1


def _partners(count, rng, labels):
  """For each image another one's index: of another class where `labels` has one."""
  partners = (np.arange(count) + rng.integers(1, max(count, 2), count)) % count
  if labels is None:
    return partners
  for i in range(count):
    others = np.flatnonzero(labels != labels[i])
    if len(others):
      partners[i] = rng.choice(others)
  return partners


def _box(shape):
  """The (height, width) MNIST fits a digit in, for images of `shape`."""
  return round(shape[0] * _MNIST_BOX), round(shape[1] * _MNIST_BOX)


def _crop(image):
  """`image` cut to the rows and columns with ink (all of it if none)."""
  rows, columns = np.flatnonzero(image.any(axis=(1, 2))), np.flatnonzero(image.any(axis=(0, 2)))
  if not len(rows):
    return image
  return image[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def _centred(piece, shape):
  """`piece` on a black image of `shape`, moved (whole pixels) so its centre of mass is the
  image's centre, as MNIST centres its digits."""
  canvas = np.zeros(shape, np.uint8)
  top, left = (shape[0] - piece.shape[0]) // 2, (shape[1] - piece.shape[1]) // 2
  canvas[top:top + piece.shape[0], left:left + piece.shape[1]] = piece
  centre = _centre_of_mass(canvas)
  if centre is None:
    return canvas
  return _warp(canvas, shift=(round(shape[0] / 2 - centre[0]), round(shape[1] / 2 - centre[1])))


def _centre_of_mass(image):
  """The (row, column) of `image`'s centre of mass, pixel centres at +0.5; None if black."""
  mass = image.astype(np.float64).sum(axis=2)
  if not mass.any():
    return None
  return (np.indices(mass.shape) + 0.5).reshape(2, -1) @ mass.ravel() / mass.sum()


def _side_by_side(left, right):
  """Digits `left` and `right` squeezed to half width, one pixel apart, framed."""
  height, width = _box(left.shape)
  halves = [_squeeze(digit, height, (width - 1) // 2) for digit in (left, right)]
  gap = np.zeros((height, 1, left.shape[2]), np.uint8)
  return _centred(np.concatenate([halves[0], gap, halves[1]], axis=1), left.shape)


def _squeeze(digit, height, max_width):
  """`digit`'s inked part scaled to `height`, then to half its width (at most `max_width`),
  its strokes kept at about their width."""
  piece = _crop(digit)
  width = min(max(round(piece.shape[1] * height / piece.shape[0] / 2), 1), max_width)
  stretch = math.sqrt(height / piece.shape[0] * width / piece.shape[1])
  return _with_ink(_resize(piece, height, width), stretch * _ink(piece))


def _zoom_in(image, rng):
  """A crop of 40-60% of `image`'s height and width around an inked pixel, upscaled."""
  height, width = image.shape[:2]
  size = [max(2, round(n * rng.uniform(0.4, 0.6))) for n in (height, width)]
  inked = np.argwhere(image.max(axis=2) > 127)
  centre = inked[rng.integers(len(inked))] if len(inked) else (height // 2, width // 2)
  top, left = [int(np.clip(c - s // 2, 0, n - s))
               for c, s, n in zip(centre, size, (height, width))]
  return _resize(image[top:top + size[0], left:left + size[1]], height, width)


def _bezier(points, samples=64):
  """`samples` points along the Bezier curve with control points `points` [K, 2]."""
  t = np.linspace(0, 1, samples)[:, None]
  degree = len(points) - 1
  return sum(math.comb(degree, k) * t ** k * (1 - t) ** (degree - k) * point
             for k, point in enumerate(points))


def _strokes(shape, rng):
  """1-3 Bezier strokes (3-5 random control points each) of width 2.5-3.2 px, fitted together
  into MNIST's box, drawn on a 4x canvas and downsampled (area average), then centred."""
  height, width = shape[:2]
  curves = [_bezier(rng.random((rng.integers(3, 6), 2))) for _ in range(rng.integers(1, 4))]
  pen = rng.uniform(2.5, 3.2)
  low = np.min([c.min(axis=0) for c in curves], axis=0)
  extent = np.max([c.max(axis=0) for c in curves], axis=0) - low
  box = np.array(_box(shape)[::-1]) - pen  # (x, y)
  scale = _SUPERSAMPLE * min(box / np.maximum(extent, 1e-6))
  offset = (_SUPERSAMPLE * np.array([width, height]) - extent * scale) / 2
  canvas = PIL.Image.new("L", (_SUPERSAMPLE * width, _SUPERSAMPLE * height))
  draw = PIL.ImageDraw.Draw(canvas)
  radius = _SUPERSAMPLE * pen / 2
  for curve in curves:
    points = (curve - low) * scale + offset
    draw.line([tuple(p) for p in points], fill=255, width=round(2 * radius), joint="curve")
    for x, y in points[[0, -1]]:  # round pen ends
      draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
  small = np.asarray(canvas.resize((width, height), PIL.Image.BOX))
  return _centred(np.repeat(_crop(small[..., None]), shape[2], axis=2), shape)


def write_montage(path, heldout, labels=None, seed=0, count=8, sources=GENERATED):
  """A PNG at `path`: a row of `count` held-out images, then `count` images per source,
  generated from `heldout` with one generator seeded `seed`."""
  rng = np.random.default_rng(seed)
  rows = [("held-out", heldout[:count])] + [
      (f"{name} ({group(name)})", generate(name, heldout, rng, labels)[:count])
      for name in sources]
  figure, axes = plt.subplots(len(rows), 1, figsize=(count * 0.45 + 2.2, len(rows) * 0.48),
                              dpi=80)
  for axis, (title, images) in zip(axes, rows):
    strip = np.concatenate(list(np.pad(images[..., 0], ((0, 0), (1, 1), (1, 1)),
                                       constant_values=128)), axis=1)
    axis.imshow(strip, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
  figure.subplots_adjust(left=0.38, right=0.99, top=0.995, bottom=0.005, hspace=0.08)
  figure.savefig(path)
  plt.close(figure)


def main(argv):
  """`python -m train.ood_sources [PATH]`: the montage of every source, from the second half
  of the bundled MNIST's held-out digits (seed 0, as `python -m train.ood` uses them)."""
  from glow_tfp import execution
  execution.prefer_onednn()
  from .data import datasets as data_lib
  data = data_lib.load("mnist", levels=2, seed=0)
  half = len(data.heldout_images) // 2
  path = argv[1] if len(argv) > 1 else "docs/ood/sources.png"
  write_montage(path, data.heldout_images[half:], data.heldout_labels[half:])
  print(f"wrote {path}")


if __name__ == "__main__":
  main(sys.argv)
