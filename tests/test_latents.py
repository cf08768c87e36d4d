"""`python -m train.latents` on tiny trained models: every PNG, its layout, and the checks.

The command runs as a subprocess (its absl flags share names with the training CLI's, which
other tests import into this process); the tiny models are trained here with `train.engine.loop`.
"""

import os
import re
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from glow_tfp import config as config_lib
from train.data import datasets as data_lib
from train.engine import loop

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SIDE, _COLUMNS = 8, 4
_TEMPERATURES = ["0", "0.5", "0.7", "0.85", "1.0"]
_STRENGTHS = ["-1", "0", "1", "2"]


def _write_folder(path, classes=2, per_class=20):
  """Class c: random 8x8 digits-like images, class 1 with more ink than class 0."""
  rng = np.random.default_rng(0)
  for c in range(classes):
    os.makedirs(path / f"class{c}")
    for i in range(per_class):
      image = rng.integers(0, 256, (_SIDE, _SIDE)) * (rng.random((_SIDE, _SIDE)) < 0.3 + 0.4 * c)
      PIL.Image.fromarray(image.astype(np.uint8)).save(path / f"class{c}" / f"{i:02d}.png")


def _train(images, workdir, num_classes):
  data = data_lib.in_memory(data_lib.load(f"folder:{images}", levels=2, seed=0,
                                          heldout_fraction=0.25))
  config = config_lib.GlowConfig(image_shape=data.image_shape, levels=2, steps_per_level=1,
                                 hidden_channels=4, num_classes=num_classes)
  loop.run(config, data, loop.Options(workdir=str(workdir), steps=3, batch_size=8,
                                      warmup_steps=1, eval_every=3, sample_every=3,
                                      checkpoint_every=3, num_samples=2, jit_compile=False))
  return data


def _latents(*argv):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "train.latents", *argv], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def _tiles(path):
  """The tiles of a grid PNG (image_grid, padding 1), as uint8 [rows, columns, H, W]."""
  with PIL.Image.open(path) as image:
    grid = np.asarray(image)
  rows, columns = (grid.shape[0] - 1) // (_SIDE + 1), (grid.shape[1] - 1) // (_SIDE + 1)
  assert grid.shape[:2] == (rows * (_SIDE + 1) + 1, columns * (_SIDE + 1) + 1)
  return np.array([[grid[1 + r * (_SIDE + 1):(r + 1) * (_SIDE + 1),
                         1 + c * (_SIDE + 1):(c + 1) * (_SIDE + 1)]
                    for c in range(columns)] for r in range(rows)])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("latents")
  _write_folder(tmp_path / "images")
  data = _train(tmp_path / "images", tmp_path / "unconditional", num_classes=0)
  _train(tmp_path / "images", tmp_path / "conditional", num_classes=2)
  return tmp_path, data


@pytest.fixture(scope="module")
def unconditional(models):
  tmp_path, data = models
  return (*_run(tmp_path, "unconditional"), data)


def _run(tmp_path, model, *extra):
  result = _latents(f"--workdir={tmp_path / model}", f"--dataset=folder:{tmp_path / 'images'}",
                    "--heldout_fraction=0.25", f"--columns={_COLUMNS}", "--pairs=2",
                    "--rows=2", f"--temperatures={','.join(_TEMPERATURES)}",
                    f"--strengths={','.join(_STRENGTHS)}", *extra)
  assert result.returncode == 0, result.stderr[-3000:]
  return result, tmp_path / model / "latents"


def _reconstruction_error(stdout, data):
  count = len(data.heldout_images)
  match = re.search(rf"reconstruction check OK: {count}/{count} held-out images identical as "
                    r"uint8 images .* max \|decode\(encode\(x\)\) - x\| = (\S+)", stdout)
  assert match, stdout
  return float(match.group(1))


def test_unconditional_model_writes_every_png_and_reconstructs(unconditional):
  result, out, data = unconditional
  assert sorted(os.listdir(out)) == ["attribute_thickness.png", "interpolation.png",
                                     "reconstruction.png", "temperatures.png"]
  assert _tiles(out / "temperatures.png").shape[:2] == (len(_TEMPERATURES), _COLUMNS)
  assert _reconstruction_error(result.stdout, data) < 1e-5
  reconstruction = _tiles(out / "reconstruction.png")
  np.testing.assert_array_equal(reconstruction[0], data.heldout_images[:_COLUMNS, ..., 0])
  np.testing.assert_array_equal(reconstruction[1], reconstruction[0])


def test_interpolation_starts_and_ends_at_the_real_images(unconditional):
  _, out, data = unconditional
  tiles = _tiles(out / "interpolation.png")
  heldout = data.heldout_images[..., 0]
  assert tiles.shape[:2] == (2, _COLUMNS)
  for row, (a, b) in enumerate([(0, 1), (2, 3)]):  # consecutive held-out pairs
    np.testing.assert_array_equal(tiles[row, 0], heldout[a])
    np.testing.assert_array_equal(tiles[row, -1], heldout[b])
    assert not np.array_equal(tiles[row, 1], heldout[a])


def test_thickness_direction_leaves_the_image_at_strength_zero(unconditional):
  result, out, data = unconditional
  assert "thick strokes" in result.stdout
  tiles = _tiles(out / "attribute_thickness.png")
  assert tiles.shape[:2] == (2, len(_STRENGTHS))
  ink = data.heldout_images.reshape(len(data.heldout_images), -1).mean(axis=1)
  thin_quartile = np.quantile(data.train_images.reshape(len(data.train_images), -1)
                              .mean(axis=1), 0.25)
  thin = data.heldout_images[ink <= thin_quartile][:2, ..., 0]
  np.testing.assert_array_equal(tiles[:, _STRENGTHS.index("0")], thin)
  # Positive strengths move towards the thick group: more ink than the original.
  assert tiles[:, _STRENGTHS.index("2")].mean() > thin.mean()


def test_conditional_model_writes_per_class_samples_and_a_class_direction(models):
  tmp_path, data = models
  result, out = _run(tmp_path, "conditional", "--attribute=classes", "--classes=0,1")
  assert "classes.png" in os.listdir(out)
  assert _tiles(out / "classes.png").shape[:2] == (2, _COLUMNS)
  assert "mean latent of class 1 minus that of class 0" in result.stdout
  tiles = _tiles(out / "attribute_class0_to_1.png")
  class0 = data.heldout_images[data.heldout_labels == 0][:2, ..., 0]
  np.testing.assert_array_equal(tiles[:, _STRENGTHS.index("0")], class0)
  assert _reconstruction_error(result.stdout, data) < 1e-5


@pytest.mark.parametrize("argv, message", [
    (["--workdir={tmp}/nowhere"], "No model config at .*nowhere"),
    (["--workdir={tmp}/unconditional", "--dataset=mnist"],
     r"is for images \(8, 8, 1\).*mnist has images \(28, 28, 1\)"),
    (["--workdir={tmp}/unconditional", "--pairs=50"], "Found 5 of the 50 held-out image pairs"),
])
def test_bad_input_stops_with_one_line(models, argv, message):
  tmp_path, _ = models
  result = _latents(f"--dataset=folder:{tmp_path / 'images'}", "--heldout_fraction=0.25",
                    *[a.format(tmp=tmp_path) for a in argv])
  assert result.returncode == 1
  assert re.search(message, result.stderr.strip().splitlines()[-1])
  assert "Traceback" not in result.stderr
