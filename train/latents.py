"""What Glow's exact latent space does: `python -m train.latents --workdir=DIR [...]`.

From the newest checkpoint of a training workdir (`python -m train`) that reads back
completely (`glow_tfp.workdir.newest_good_checkpoint`), writes PNGs under
`--output_dir` (default <workdir>/latents):
  temperatures.png    samples, one row per temperature, the same base noise in every row
  interpolation.png   per row, two real held-out images and the decodings of the linear
                      interpolation between their latents, level by level
  classes.png         (class-conditional models) one row of samples per class
  attribute_thickness.png, attribute_classA_to_B.png
                      per row, a real held-out image of group A with the direction
                      mean latent(B) - mean latent(A) added with each of --strengths; the
                      groups are the thinnest and the thickest strokes by ink amount
                      (--attribute=thickness) or two classes (--attribute=classes)
  reconstruction.png  held-out images (top) and decode(encode(x)) (bottom)
and prints the reconstruction check (glow_tfp.reconstruction): it passes, and the command
exits 0, when every held-out image comes back identical as a uint8 image from
decode(encode(x)); the largest float error max |decode(encode(x)) - x| is printed as
information. (There is no float tolerance: rounding errors that leave every pixel in its bin
do not change the images.)
The real images come from --dataset split by --seed and --heldout_fraction: pass the values
the model was trained with so that the held-out images are really held out.
"""

import os
import sys

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import glow_tfp  # noqa: E402
from glow_tfp import grid  # noqa: E402
from glow_tfp import reconstruction as reconstruction_lib  # noqa: E402
from glow_tfp import workdir as workdir_lib  # noqa: E402
from . import common_flags  # noqa: E402
from .data import datasets as data_lib  # noqa: E402
from .errors import InputError  # noqa: E402

_WORKDIR = common_flags.define_workdir_flag("workdir", "Training workdir (config.json and "
                                            "checkpoints/).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the PNGs go; default "
                                  "<workdir>/latents.")
_DATA = common_flags.define_data_flags()
_SEED = common_flags.define_seed_flag("The training run's --seed (held-out split); also "
                                      "seeds the samples.")
_TEMPERATURES = common_flags.define_temperatures_flag([0, 0.5, 0.7, 0.85, 1.0],
                                                      "Sampling temperatures, one row each.")
_COLUMNS = flags.DEFINE_integer("columns", 10, "Images per row of every grid.", lower_bound=2)
_PAIRS = flags.DEFINE_integer("pairs", 4, "Interpolated pairs of held-out images.",
                              lower_bound=1)
_CLASS_TEMPERATURE = flags.DEFINE_float("class_temperature", 0.7, "Temperature of the "
                                        "per-class samples.", lower_bound=0.0)
_ATTRIBUTE = flags.DEFINE_enum("attribute", "thickness", ["thickness", "classes"],
                               "Groups of the attribute direction: thin vs thick strokes "
                               "(ink amount quartiles), or two classes (--classes).")
_CLASSES = flags.DEFINE_list("classes", ["1", "0"], "A,B: the direction goes from class A "
                             "to class B (with --attribute=classes).")
_STRENGTHS = flags.DEFINE_list("strengths", ["-1", "-0.5", "0", "0.5", "1", "1.5", "2"],
                               "Multiples of the direction added to the latents.")
_ROWS = flags.DEFINE_integer("rows", 4, "Real images manipulated (rows of attribute.png).",
                             lower_bound=1)
_MAX_GROUP_IMAGES = flags.DEFINE_integer("max_group_images", 1000, "Training images encoded "
                                         "for each group mean.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per encode/decode call.",
                                   lower_bound=1)


def _are_two_classes(values):
  return (len(values) == 2 and all(v.isdigit() for v in values)
          and values[0] != values[1])


flags.register_validator("strengths", common_flags.are_numbers,
                         "--strengths must be a comma-separated list of numbers.")
flags.register_validator("classes", _are_two_classes,
                         "--classes must be two different class indices A,B.")
# So that --help lists the shared flags too.
flags.adopt_module_key_flags(common_flags)


class Demo:
  """A restored model and the real images it is shown with."""

  def __init__(self, model, data, batch_size, seed):
    self.model, self.data, self.batch_size, self.seed = model, data, batch_size, seed
    self.config = model.config
    self.conditional = bool(self.config.num_classes)

  def labels(self, labels):
    return tf.constant(labels, tf.int32) if self.conditional else None

  def encode(self, images, labels):
    """uint8 images -> the per-level latents (numpy), in batches."""
    parts = []
    for start in range(0, len(images), self.batch_size):
      x = glow_tfp.to_model_space(images[start:start + self.batch_size], self.config.n_bits)
      parts.append(self.model.encode(x, self.labels(labels[start:start + self.batch_size])))
    return [np.concatenate([p[level].numpy() for p in parts]) for level in range(len(parts[0]))]

  def decode(self, latents, labels):
    """Per-level latents -> model-space images (numpy), in batches."""
    parts = []
    for start in range(0, len(latents[0]), self.batch_size):
      chunk = [z[start:start + self.batch_size] for z in latents]
      parts.append(self.model.decode(chunk, self.labels(labels[start:start + self.batch_size])))
    return np.concatenate([p.numpy() for p in parts])

  def to_images(self, x):
    return glow_tfp.to_images(tf.constant(x), self.config.n_bits).numpy()

  def sample(self, n, temperature, labels):
    x = self.model.sample(n, temperature, labels=self.labels(labels), seed=self.seed)
    return glow_tfp.to_images(x, self.config.n_bits).numpy()


def save_grid(path, images, columns):
  grid.save_png(path, grid.image_grid(np.asarray(images, np.uint8), columns=columns))
  return path


def temperature_samples(demo, temperatures, columns):
  """One row per temperature; the same base noise (seed) in every row."""
  labels = np.arange(columns) % max(demo.config.num_classes, 1)
  return np.concatenate([demo.sample(columns, t, labels) for t in temperatures])


def class_samples(demo, temperature, columns):
  """One row per class of a class-conditional model."""
  labels = np.repeat(np.arange(demo.config.num_classes), columns)
  return demo.sample(len(labels), temperature, labels)


def interpolation_pairs(labels, count, conditional):
  """Index pairs of held-out images: consecutive ones, or of the same class if conditional
  (a conditional model decodes a latent under one label, so both ends must share it)."""
  pairs, used = [], set()
  for first in range(len(labels)):
    if first in used:
      continue
    same = [j for j in range(first + 1, len(labels)) if j not in used
            and (not conditional or labels[j] == labels[first])]
    if same:
      pairs.append((first, same[0]))
      used.update((first, same[0]))
    if len(pairs) == count:
      return pairs
  raise InputError(f"Found {len(pairs)} of the {count} held-out image pairs asked for "
                   "(--pairs); hold out more images or ask for fewer pairs.")


def interpolation(demo, pairs, columns):
  """Per pair, `columns` decodings of (1 - t) z_a + t z_b, t from 0 to 1, per level."""
  images, labels = demo.data.heldout_images, demo.data.heldout_labels
  ends = np.array(pairs)
  z_a = demo.encode(images[ends[:, 0]], labels[ends[:, 0]])
  z_b = demo.encode(images[ends[:, 1]], labels[ends[:, 1]])
  t = np.linspace(0.0, 1.0, columns, dtype=np.float32).reshape(1, -1, 1, 1, 1)
  mixed = [((1 - t) * a[:, None] + t * b[:, None]).reshape((-1,) + a.shape[1:])
           for a, b in zip(z_a, z_b)]
  return demo.to_images(demo.decode(mixed, np.repeat(labels[ends[:, 0]], columns)))


def ink(images):
  """Mean pixel value per image: the amount of ink of a digit, a proxy of stroke width."""
  return images.reshape(len(images), -1).astype(np.float64).mean(axis=1)


def attribute_groups(data, attribute, classes):
  """(names of groups A and B, `membership(images, labels) -> (in A, in B)` masks)."""
  if attribute == "classes":
    a, b = classes
    for c in (a, b):
      if not np.any(data.train_labels == c):
        raise InputError(f"--classes: {data.name} has no training images of class {c} "
                         f"({data.num_classes} classes).")

    def membership(images, labels):
      return labels == a, labels == b

    return (f"class {a}", f"class {b}"), membership
  # Quartiles of the training images' ink: the thinnest and the thickest quarter of strokes.
  low, high = np.quantile(ink(data.train_images), [0.25, 0.75])

  def membership(images, labels):
    amount = ink(images)
    return amount <= low, amount >= high

  names = ("thin strokes (ink <= 1st quartile)", "thick strokes (ink >= 3rd quartile)")
  return names, membership


def attribute_manipulation(demo, attribute, classes, strengths, rows, limit):
  """Rows: a held-out image of group A, its latent plus each strength times the direction
  mean latent(B) - mean latent(A), level by level. Returns (images, group names)."""
  data = demo.data
  names, membership = attribute_groups(data, attribute, classes)
  means = [_mean_latents(demo, np.flatnonzero(mask)[:limit])
           for mask in membership(data.train_images, data.train_labels)]
  chosen = np.flatnonzero(membership(data.heldout_images, data.heldout_labels)[0])[:rows]
  if len(chosen) < rows:
    raise InputError(f"Only {len(chosen)} held-out images are in group {names[0]!r}; "
                     f"--rows={rows} asks for more.")
  latents = demo.encode(data.heldout_images[chosen], data.heldout_labels[chosen])
  alphas = np.array(strengths, np.float32)
  moved = [(z[:, None] + alphas[None, :, None, None, None] * (b - a)).reshape(
      (-1,) + z.shape[1:]) for z, a, b in zip(latents, *means)]
  labels = np.repeat(data.heldout_labels[chosen], len(alphas))
  return demo.to_images(demo.decode(moved, labels)), names


def _mean_latents(demo, indices):
  data = demo.data
  if not len(indices):
    raise InputError("An attribute group has no training images; choose other --classes or "
                     "--attribute.")
  return [z.mean(axis=0) for z in demo.encode(data.train_images[indices],
                                              data.train_labels[indices])]


def reconstruction(demo):
  """Encodes and decodes every held-out image."""
  return reconstruction_lib.reconstruct(demo.model, demo.data.heldout_images,
                                        demo.data.heldout_labels, demo.batch_size)


def load_demo(workdir, dataset, data_dir, seed, heldout_fraction, batch_size):
  """The model of `workdir` and the data split it was trained on."""
  try:
    model, checkpoint = workdir_lib.restore_model(workdir)
  except FileNotFoundError as error:
    raise InputError(str(error)) from error
  data = data_lib.in_memory(data_lib.load(dataset, model.config.levels, seed, heldout_fraction,
                                          data_dir))
  if data.image_shape != tuple(model.config.image_shape):
    raise InputError(f"The model of {workdir} is for images {tuple(model.config.image_shape)}"
                     f" (H, W, C), but {dataset} has images {data.image_shape}: pass the "
                     "--dataset the model was trained on.")
  if model.config.num_classes and model.config.num_classes != data.num_classes:
    raise InputError(f"The model of {workdir} is conditional on {model.config.num_classes} "
                     f"classes, but {dataset} has {data.num_classes}.")
  return Demo(model, data, batch_size, seed), checkpoint


def _attribute_file(attribute, classes):
  if attribute == "classes":
    return f"attribute_class{classes[0]}_to_{classes[1]}.png"
  return f"attribute_{attribute}.png"


def write_pngs(demo, output_dir, columns):
  """Writes every PNG with the settings of the flags; returns (paths, Reconstruction)."""
  paths = [save_grid(os.path.join(output_dir, "temperatures.png"),
                     temperature_samples(demo, [float(t) for t in _TEMPERATURES.value],
                                         columns), columns)]
  pairs = interpolation_pairs(demo.data.heldout_labels, _PAIRS.value, demo.conditional)
  paths.append(save_grid(os.path.join(output_dir, "interpolation.png"),
                         interpolation(demo, pairs, columns), columns))
  if demo.conditional:
    paths.append(save_grid(os.path.join(output_dir, "classes.png"),
                           class_samples(demo, _CLASS_TEMPERATURE.value, columns), columns))
  strengths = [float(s) for s in _STRENGTHS.value]
  moved, names = attribute_manipulation(demo, _ATTRIBUTE.value,
                                        [int(c) for c in _CLASSES.value], strengths,
                                        _ROWS.value, _MAX_GROUP_IMAGES.value)
  paths.append(save_grid(os.path.join(output_dir, _attribute_file(_ATTRIBUTE.value,
                                                                   _CLASSES.value)),
                         moved, len(strengths)))
  print(f"attribute direction: mean latent of {names[1]} minus that of {names[0]}; "
        f"strengths {strengths}")
  check = reconstruction(demo)
  paths.append(save_grid(os.path.join(output_dir, "reconstruction.png"),
                         np.concatenate([demo.data.heldout_images[:columns],
                                         check.rebuilt[:columns]]),
                         columns))
  return paths, check


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  output_dir = _OUTPUT_DIR.value or os.path.join(_WORKDIR.value, "latents")
  try:
    demo, checkpoint = load_demo(_WORKDIR.value, _DATA["dataset"].value,
                                 _DATA["data_dir"].value, _SEED.value,
                                 _DATA["heldout_fraction"].value, _BATCH_SIZE.value)
    print(f"model {demo.config} from {checkpoint}")
    paths, check = write_pngs(demo, output_dir, _COLUMNS.value)
  except InputError as problem:
    sys.exit(f"train.latents: error: {problem}")
  for path in paths:
    print(f"wrote {path}")
  print(check.report())
  if not check.passed:
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
