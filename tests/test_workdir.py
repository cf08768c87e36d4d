import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import workdir
from tests.checks import perturb, random_images

CONFIG = glow_tfp.GlowConfig(image_shape=(8, 8, 1), levels=2, steps_per_level=1,
                             hidden_channels=4)


def save_run(directory, **objects):
  workdir.save_config(str(directory), CONFIG)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(**objects),
                                       workdir.checkpoint_dir(str(directory)), max_to_keep=1)
  return manager.save()


def save_two(directory, model):
  """Saves `model`, perturbs it, saves again; returns the two checkpoint paths."""
  workdir.save_config(str(directory), CONFIG)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       workdir.checkpoint_dir(str(directory)), max_to_keep=2)
  first = manager.save()
  perturb(model, seed=3)
  return first, manager.save()


def test_restore_model_returns_the_saved_weights(tmp_path):
  model = glow_tfp.Glow(CONFIG)
  perturb(model)
  save_run(tmp_path, model=model)
  restored, path = workdir.restore_model(str(tmp_path))
  assert path.startswith(workdir.checkpoint_dir(str(tmp_path)))
  x = random_images([2, 8, 8, 1])
  np.testing.assert_array_equal(restored.log_prob(x).numpy(), model.log_prob(x).numpy())


def test_restore_model_names_the_model_and_its_checkpoint(tmp_path):
  model = glow_tfp.Glow(CONFIG)
  saved_path = save_run(tmp_path, model=model)
  restored = workdir.restore_model(str(tmp_path))
  assert isinstance(restored, workdir.Restored)
  assert restored.checkpoint_path == saved_path
  assert isinstance(restored.model, glow_tfp.Glow)
  assert tuple(restored) == (restored.model, restored.checkpoint_path)


def test_import_glow_tfp_exports_workdir_and_grid_but_not_the_keras_wrapper():
  script = ("import sys, glow_tfp; "
            "assert glow_tfp.workdir.restore_model and glow_tfp.grid.image_grid; "
            "assert 'glow_tfp.keras' not in sys.modules")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]


def test_restore_model_prefers_ema_weights_when_present(tmp_path):
  model, ema = glow_tfp.Glow(CONFIG), glow_tfp.Glow(CONFIG)
  perturb(model, seed=1)
  perturb(ema, seed=2)
  save_run(tmp_path, model=model, ema_model=ema)
  x = random_images([2, 8, 8, 1])
  restored, _ = workdir.restore_model(str(tmp_path))
  np.testing.assert_array_equal(restored.log_prob(x).numpy(), ema.log_prob(x).numpy())
  raw, _ = workdir.restore_model(str(tmp_path), use_ema=False)
  np.testing.assert_array_equal(raw.log_prob(x).numpy(), model.log_prob(x).numpy())


def test_missing_config_or_checkpoint_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="No model config at .*config.json"):
    workdir.restore_model(str(tmp_path))
  workdir.save_config(str(tmp_path), CONFIG)
  with pytest.raises(FileNotFoundError, match="No checkpoint in .*checkpoints"):
    workdir.restore_model(str(tmp_path))


def test_restore_model_passes_over_a_damaged_newest_checkpoint_and_names_it(tmp_path, caplog):
  model = glow_tfp.Glow(CONFIG)
  perturb(model)
  x = random_images([2, 8, 8, 1])
  expected = model.log_prob(x).numpy()
  older, newest = save_two(tmp_path, model)
  (data,) = tf.io.gfile.glob(newest + ".data-*")
  with open(data, "r+b") as f:  # one flipped byte: the checksum no longer matches
    f.seek(8)
    byte = f.read(1)
    f.seek(8)
    f.write(bytes([byte[0] ^ 0xFF]))
  restored, path = workdir.restore_model(str(tmp_path))
  assert path == older
  np.testing.assert_array_equal(restored.log_prob(x).numpy(), expected)
  assert re.search(f"Skipping checkpoint {newest} does not read back: TensorBundle at "
                   f"{newest} .*Checksum does not match", caplog.text)


def test_restore_model_with_no_readable_checkpoint_names_the_directory_and_each_try(tmp_path):
  older, newest = save_two(tmp_path, glow_tfp.Glow(CONFIG))
  os.remove(newest + ".index")
  with open(older + ".index", "wb") as f:
    f.write(b"not a table")
  directory = workdir.checkpoint_dir(str(tmp_path))
  with pytest.raises(FileNotFoundError, match=(
      f"No checkpoint in {directory} reads back; tried 2: checkpoint {newest} does not read "
      f"back: .*Failed to find any matching files for {newest}; checkpoint {older} does not "
      "read back: file is too short to be an sstable.")):
    workdir.restore_model(str(tmp_path))


@pytest.mark.parametrize("state", ["not a state file {", 'all_model_checkpoint_paths: "ckpt-1"'],
                         ids=["does_not_parse", "names_no_latest"])
def test_checkpoints_are_found_by_their_index_when_the_state_file_is_unusable(tmp_path, state):
  older, newest = save_two(tmp_path, glow_tfp.Glow(CONFIG))
  directory = workdir.checkpoint_dir(str(tmp_path))
  with open(os.path.join(directory, "checkpoint"), "w") as f:
    f.write(state)
  assert workdir.checkpoint_paths(directory) == [newest, older]
  assert workdir.restore_model(str(tmp_path)).checkpoint_path == newest


def test_reference_images_are_written_once_and_read_back(tmp_path):
  images = np.arange(2 * 4 * 4).reshape(2, 4, 4, 1).astype(np.uint8)
  path = workdir.save_reference_images(str(tmp_path), images, [3, 1])
  assert path == workdir.reference_path(str(tmp_path))
  workdir.save_reference_images(str(tmp_path), images[::-1], [0, 0])
  loaded, labels = workdir.load_reference_images(path)
  np.testing.assert_array_equal(loaded, images)
  assert labels.tolist() == [3, 1] and labels.dtype == np.int32


def test_training_images_are_capped_written_once_and_absent_as_none(tmp_path, monkeypatch):
  assert workdir.load_training_images(str(tmp_path)) is None
  monkeypatch.setattr(workdir, "MAX_TRAIN_REFERENCE_IMAGES", 2)
  images = np.arange(3 * 4 * 4).reshape(3, 4, 4, 1).astype(np.uint8)
  path = workdir.save_training_images(str(tmp_path), images, [3, 1, 2])
  assert path == workdir.train_reference_path(str(tmp_path))
  workdir.save_training_images(str(tmp_path), images[::-1], [0, 0, 0])
  loaded, labels = workdir.load_training_images(str(tmp_path))
  np.testing.assert_array_equal(loaded, images[:2])
  assert labels.tolist() == [3, 1] and labels.dtype == np.int32


def test_missing_reference_images_name_the_file_and_how_to_create_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="heldout_reference.npz.*python -m train"):
    workdir.load_reference_images(workdir.reference_path(str(tmp_path)))
