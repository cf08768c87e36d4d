"""train.engine.loop.run: outputs in the workdir, exact resume, the non-finite guard, bad input."""

import errno
import json
import os
import shutil

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import glow_tfp
from glow_tfp import workdir as workdir_lib
from train.engine import checkpointing
from train.data import datasets as data_lib
from train.engine import loop
from train import plot
from train.errors import CheckpointSaveError
from train.errors import InputError
from tests.checks import assert_close, needs_compute_dtype

_CONFIG = glow_tfp.GlowConfig(image_shape=(28, 28, 1), levels=2, steps_per_level=1,
                              hidden_channels=8)


def _options(workdir, **changes):
  base = dict(workdir=str(workdir), steps=6, batch_size=8, warmup_steps=2, eval_every=3,
              sample_every=3, checkpoint_every=3, log_every=2, num_samples=4,
              eval_batch_size=8, jit_compile=False)
  base.update(changes)
  return loop.Options(**base)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_mnist):
  """A 6-step run, checkpointed at steps 0, 3 and 6: (workdir, results)."""
  workdir = tmp_path_factory.mktemp("finished")
  return workdir, loop.run(_CONFIG, tiny_mnist, _options(workdir))


def test_run_leaves_checkpoints_logs_samples_and_results(finished_run, tiny_mnist):
  workdir, results = finished_run
  assert results["steps"] == 6 and results["resumed_from"] is None
  history = [bits for _, bits in results["train_history"]]
  assert len(history) == 6 and history[-1] < history[0]
  assert [step for step, _ in results["eval_history"]] == [3, 6]
  assert "heldout_bits_per_dim_unlabelled" not in results  # only conditional models have it
  with open(workdir / "results.json") as f:
    assert json.load(f)["heldout_bits_per_dim"] == pytest.approx(results["heldout_bits_per_dim"])
  assert workdir_lib.load_config(str(workdir)) == _CONFIG
  samples = sorted(os.listdir(workdir / "samples"))
  assert samples[-4:] == [f"step000006_temperature{t}.png" for t in ("0.0", "0.5", "0.7", "1.0")]
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir / "logs"))
  model, path = workdir_lib.restore_model(str(workdir))
  assert path.endswith("ckpt-6")
  assert results["likelihood_draws"] == 1 and results["heldout_images"] == 16
  # The reported figure is the bound of train.engine.evaluation's seeded draws: other draws of the
  # same estimator agree within a few standard errors.
  again = glow_tfp.bits_per_dim(model.log_likelihood(tiny_mnist.heldout_images, seed=99),
                                model.config.num_dims).numpy()
  assert abs(again.mean() - results["heldout_bits_per_dim"]) < (
      5 * results["heldout_bits_per_dim_stderr"])


class _RecordedData:
  """`data`, noting the `perturb_fraction` of each training pipeline built from it."""

  def __init__(self, data):
    self._data, self.fractions = data, []

  def __getattr__(self, name):
    return getattr(self._data, name)

  def training_dataset_fn(self, *args, perturb_fraction=0.0):
    self.fractions.append(perturb_fraction)
    return self._data.training_dataset_fn(*args, perturb_fraction=perturb_fraction)


def test_a_background_model_trains_on_perturbed_batches_and_records_it(tmp_path, finished_run,
                                                                     tiny_mnist):
  data = _RecordedData(tiny_mnist)
  results = loop.run(_CONFIG, data, _options(tmp_path, steps=2, perturb_fraction=0.3))
  assert data.fractions and set(data.fractions) == {0.3}
  assert results["perturb_fraction"] == 0.3
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["perturb_fraction"] == 0.3
  # Uniform noise on the black background of the digits costs bits: the first batch has a
  # higher loss than the clean one of the same seed (8.52 against 8.33 bits/dim).
  _, clean = finished_run
  assert clean["perturb_fraction"] == 0.0
  assert results["train_history"][0][1] > clean["train_history"][0][1] + 0.05


def test_resumed_run_continues_with_the_losses_of_an_uninterrupted_run(tmp_path, finished_run,
                                                                        tiny_mnist):
  _, straight = finished_run
  quiet = dict(eval_every=100, sample_every=100, temperatures=(1.0,))
  first = loop.run(_CONFIG, tiny_mnist, _options(tmp_path, steps=3, **quiet))
  resumed = loop.run(_CONFIG, tiny_mnist, _options(tmp_path, **quiet))
  assert resumed["resumed_from"].endswith("ckpt-3")
  assert_close(first["train_history"] + resumed["train_history"], straight["train_history"],
               rtol=1e-6)
  assert resumed["heldout_bits_per_dim"] == pytest.approx(straight["heldout_bits_per_dim"],
                                                          rel=1e-6)


def _truncate_data(checkpoint_path):
  """Cuts the data file of a checkpoint to half its size, as a crash mid-write leaves it."""
  (data,) = tf.io.gfile.glob(checkpoint_path + ".data-*")
  os.truncate(data, os.path.getsize(data) // 2)


def test_a_truncated_newest_checkpoint_is_named_and_the_run_resumes_from_the_one_before(
    tmp_path, finished_run, tiny_mnist, caplog):
  workdir, straight = finished_run
  shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
  broken = os.path.join(workdir_lib.checkpoint_dir(str(tmp_path)), "ckpt-6")
  _truncate_data(broken)
  resumed = loop.run(_CONFIG, tiny_mnist, _options(tmp_path))
  assert resumed["resumed_from"].endswith("ckpt-3")
  assert (f"Skipping checkpoint {broken} does not read back: Read less bytes than requested (a "
          "data file is shorter than its index says); trying the next older") in caplog.text
  assert resumed["train_history"] == straight["train_history"][3:]
  assert resumed["heldout_bits_per_dim"] == straight["heldout_bits_per_dim"]
  for use_ema in (False, True):
    for ours, theirs in zip(_weights(tmp_path, use_ema), _weights(workdir, use_ema)):
      np.testing.assert_array_equal(ours, theirs)


def test_a_workdir_whose_checkpoints_all_fail_to_read_stops_with_one_error_naming_them(
    tmp_path, finished_run, tiny_mnist):
  workdir, _ = finished_run
  shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
  directory = workdir_lib.checkpoint_dir(str(tmp_path))
  for name in ("ckpt-3", "ckpt-6"):
    _truncate_data(os.path.join(directory, name))
  os.remove(os.path.join(directory, "ckpt-0.index"))
  with pytest.raises(InputError, match=(
      f"No checkpoint in {directory} reads back; tried 3: checkpoint {directory}/ckpt-6 .*; "
      f"checkpoint {directory}/ckpt-3 .*; checkpoint {directory}/ckpt-0 .*Failed to find any "
      "matching files")):
    loop.run(_CONFIG, tiny_mnist, _options(tmp_path))


def _full_disk(write, checkpoint, prefix, options):
  """Writes part of the checkpoint's data file, then fails as a full disk does."""
  del write, checkpoint, options  # nothing more gets written
  with open(prefix + ".data-00000-of-00001", "wb") as f:
    f.write(b"\0" * 100)
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), prefix + ".data-00000-of-00001")


def _short_write(write, checkpoint, prefix, options):
  """Writes the whole checkpoint, but its data file comes out cut short and no error says
  so, as on a filesystem that acknowledges writes it then loses."""
  options.experimental_write_callbacks.insert(0, _truncate_data)
  return write(checkpoint, prefix, options=options)


@pytest.mark.parametrize("failure, reason", [
    (_full_disk, r"\[Errno 28\] No space left on device"),
    (_short_write, "checkpoint .*/ckpt-6 does not read back: Read less bytes than requested"),
], ids=["enospc", "short_write"])
def test_a_failed_save_stops_the_run_naming_it_and_leaves_the_last_good_checkpoint(
    tmp_path, finished_run, tiny_mnist, monkeypatch, failure, reason):
  workdir, straight = finished_run
  directory = workdir_lib.checkpoint_dir(str(tmp_path))
  write = tf.train.Checkpoint._write  # pylint: disable=protected-access

  def fail_at_step_6(checkpoint, prefix, options=None):
    if prefix.endswith("ckpt-6"):
      return failure(write, checkpoint, prefix, options)
    return write(checkpoint, prefix, options=options)

  # The manager's save goes through Checkpoint._write, which runs the write callbacks.
  monkeypatch.setattr(tf.train.Checkpoint, "_write", fail_at_step_6)
  with pytest.raises(CheckpointSaveError, match=(
      f"Could not save checkpoint {directory}/ckpt-6: {reason}.*The run stops; the last good "
      f"checkpoint, {directory}/ckpt-3, is left as it was")):
    loop.run(_CONFIG, tiny_mnist, _options(tmp_path, keep_checkpoints=1))
  monkeypatch.undo()
  assert tf.train.latest_checkpoint(directory) == os.path.join(directory, "ckpt-3")
  assert sorted(os.listdir(directory)) == ["checkpoint", "ckpt-3.data-00000-of-00001",
                                           "ckpt-3.index"]
  resumed = loop.run(_CONFIG, tiny_mnist, _options(tmp_path))
  assert resumed["resumed_from"].endswith("ckpt-3")
  assert resumed["train_history"] == straight["train_history"][3:]
  for ours, theirs in zip(_weights(tmp_path, True), _weights(workdir, True)):
    np.testing.assert_array_equal(ours, theirs)


def _corrupt(trainer):
  """Sets one coupling kernel to NaN; returns the variable."""
  variable = next(v for v in trainer.model.trainable_variables if "kernel" in v.name)
  variable.assign(tf.fill(variable.shape, np.nan))
  return variable


def _values(variables):
  return [v.numpy().copy() for v in variables]


def test_non_finite_steps_are_skipped_then_the_checkpoint_is_restored(tmp_path, tiny_mnist,
                                                                      caplog):
  options = _options(tmp_path, steps=8, max_bad_steps=3, restore_lr_factor=0.5)
  trainer = loop.Trainer(_CONFIG, tiny_mnist, options, tf.distribute.get_strategy())
  trainer.restore_or_initialize(resume=False)
  saved = _values(trainer.model.trainable_variables)
  corrupted = _corrupt(trainer)
  assert trainer.train_segment(0, []) == 0  # back at the restored checkpoint's step
  assert trainer.guard.skipped == 3 and trainer.guard.restores == 1
  assert float(trainer.update.learning_rate.scale.numpy()) == 0.5
  assert "update skipped (3 in a row, 3 in all)" in caplog.text
  assert "learning rate scale now 0.5" in caplog.text
  for variable, value in zip(trainer.model.trainable_variables, saved):
    np.testing.assert_array_equal(variable.numpy(), value)
  assert np.all(np.isfinite(corrupted.numpy()))
  history = []
  assert trainer.train_segment(0, history) == 8 and len(history) == 8
  assert trainer.update.learning_rate(7) == pytest.approx(0.5 * options.learning_rate)


def test_non_finite_steps_change_nothing_and_the_guard_gives_up(tmp_path, tiny_mnist):
  options = _options(tmp_path, max_bad_steps=2, max_restores=0)
  trainer = loop.Trainer(_CONFIG, tiny_mnist, options, tf.distribute.get_strategy())
  trainer.restore_or_initialize(resume=False)
  corrupted = _corrupt(trainer)
  state = trainer.model.trainable_variables + tuple(trainer.update.optimizer.first_moments)
  before = _values(state)
  with pytest.raises(RuntimeError, match="Training diverged: 2 non-finite steps in a row"):
    trainer.train_segment(0, [])
  for variable, value in zip(state, before):
    np.testing.assert_array_equal(variable.numpy(), value)
  assert int(trainer.update.optimizer.iterations.numpy()) == 0
  assert trainer.guard.skipped == 2
  assert np.isnan(corrupted.numpy()).all()


def _checkpoint_files(workdir):
  directory = workdir_lib.checkpoint_dir(str(workdir))
  return {name: os.path.getmtime(os.path.join(directory, name))
          for name in os.listdir(directory)}


def test_workdir_of_a_different_config_is_refused_and_left_untouched(finished_run,
                                                                      tiny_mnist):
  workdir, _ = finished_run
  before = _checkpoint_files(workdir)
  wider = _CONFIG.replace(hidden_channels=16)
  with pytest.raises(InputError, match="different model config.*hidden_channels: 8 there, "
                     "16 requested"):
    loop.run(wider, tiny_mnist, _options(workdir, steps=9))
  assert _checkpoint_files(workdir) == before
  assert workdir_lib.load_config(str(workdir)) == _CONFIG


def test_checkpoints_without_a_config_are_refused(tmp_path, finished_run):
  workdir, _ = finished_run
  shutil.copytree(workdir_lib.checkpoint_dir(str(workdir)),
                  workdir_lib.checkpoint_dir(str(tmp_path)))
  with pytest.raises(InputError, match="holds checkpoints but no config.json"):
    checkpointing.check_workdir(str(tmp_path), _CONFIG)


@pytest.mark.parametrize("config, options, message", [
    (_CONFIG.replace(image_shape=(32, 32, 1)), {}, r"image_shape \(32, 32, 1\) differs"),
    (_CONFIG.replace(num_classes=3), {}, "needs labelled data with 3 classes"),
    (_CONFIG, {"batch_size": 64}, "exceeds the 48 training images"),
])
def test_data_that_cannot_train_the_model_is_refused(tmp_path, tiny_mnist, config, options,
                                                      message):
  with pytest.raises(InputError, match=message):
    loop.run(config, tiny_mnist, _options(tmp_path, **options))
  assert not os.path.exists(tmp_path / "config.json")


@pytest.mark.parametrize("changes, message", [
    ({"steps": 0}, "steps must be a number >= 1"),
    ({"optimizer": "sgd"}, "optimizer must be one of"),
    ({"strategy": "gpu"}, "strategy must be one of"),
    ({"restore_lr_factor": 1.5}, r"restore_lr_factor must be in \(0, 1\)"),
    ({"temperatures": (-1.0,)}, "temperatures must be non-negative"),
    ({"perturb_fraction": 1.0}, r"perturb_fraction must be in \[0, 1\)"),
    ({"perturb_fraction": -0.1}, r"perturb_fraction must be in \[0, 1\)"),
    ({"lr_decay": "step"}, r"lr_decay must be one of \('none', 'cosine'\)"),
    ({"lr_decay": "cosine", "steps": 100, "warmup_steps": 200},
     r"--lr_decay=cosine needs --steps \(100\) above --warmup_steps \(200\)"),
])
def test_bad_options_are_refused(changes, message):
  with pytest.raises(InputError, match=message):
    _options("wd", **changes)


def test_bits_per_dim_curve_is_plotted_from_the_results(tmp_path, finished_run):
  _, results = finished_run
  output = tmp_path / "curve.png"
  plot.plot(results, str(output), smoothing=2)
  with PIL.Image.open(output) as image:
    assert image.format == "PNG" and image.size == (600, 400)


def test_class_conditional_model_trains_on_a_tfds_dataset(tmp_path):
  with tfds.testing.mock_data(num_examples=24):
    source = data_lib.load("tfds:mnist", levels=2, seed=0, heldout_fraction=0.25)
  config = _CONFIG.replace(num_classes=source.num_classes)
  results = loop.run(config, source, _options(tmp_path, steps=2, eval_every=100,
                                              sample_every=100, temperatures=(0.7,)))
  assert config.num_classes == 10 and results["steps"] == 2
  assert np.isfinite(results["heldout_bits_per_dim"])
  # P(x) = mean_y P(x | y) >= P(x | y_true) / 10 image by image, from the same draws.
  unlabelled = results["heldout_bits_per_dim_unlabelled"]
  bound = results["heldout_bits_per_dim"] + np.log2(10) / np.prod(source.image_shape)
  assert np.isfinite(unlabelled) and unlabelled <= bound * (1 + 1e-6)
  assert all(np.isfinite(bits) for _, bits in results["train_history"])
  assert os.path.exists(tmp_path / "samples" / "step000002_temperature0.7.png")


@needs_compute_dtype("bfloat16")
def test_bfloat16_compute_and_reversible_gradients_train_like_float32(tmp_path, finished_run,
                                                                       tiny_mnist):
  _, straight = finished_run
  results = loop.run(_CONFIG, tiny_mnist, _options(tmp_path, compute_dtype="bfloat16",
                                                   reversible_gradients=True))
  ours, theirs = (np.array([b for _, b in r["train_history"]]) for r in (results, straight))
  assert_close(ours, theirs, rtol=2e-2)
  assert not np.array_equal(ours, theirs)  # bfloat16 arithmetic did run
  assert ours[-1] < ours[0]


def _weights(workdir, use_ema):
  model, _ = workdir_lib.restore_model(str(workdir), use_ema=use_ema)
  return [v.numpy() for v in model.variables]


def test_ten_steps_per_loop_give_the_weights_of_one_step_per_loop_and_resume_exactly(
    tmp_path, tiny_mnist):
  intervals = dict(log_every=10, eval_every=100, sample_every=100, checkpoint_every=10,
                   temperatures=(1.0,))
  one = loop.run(_CONFIG, tiny_mnist, _options(tmp_path / "one", steps=20, steps_per_loop=1,
                                               **intervals))
  loop.run(_CONFIG, tiny_mnist, _options(tmp_path / "ten", steps=10, steps_per_loop=10,
                                         **intervals))
  ten = loop.run(_CONFIG, tiny_mnist, _options(tmp_path / "ten", steps=20, steps_per_loop=10,
                                               **intervals))
  assert ten["resumed_from"].endswith("ckpt-10") and ten["steps_per_loop"] == 10
  assert one["train_history"][10:] == ten["train_history"]
  for use_ema in (False, True):
    for ours, theirs in zip(_weights(tmp_path / "ten", use_ema),
                            _weights(tmp_path / "one", use_ema)):
      np.testing.assert_array_equal(ours, theirs)


def test_ema_weights_are_checkpointed_and_evaluated_by_default(finished_run):
  workdir, results = finished_run
  names = {name for name, _ in tf.train.list_variables(
      tf.train.latest_checkpoint(workdir_lib.checkpoint_dir(str(workdir))))}
  assert any(name.startswith("ema_model/") for name in names)
  assert results["eval_weights"] == "ema" and results["ema_decay"] == 0.999
  assert results["heldout_bits_per_dim"] == results["heldout_bits_per_dim_ema"]
  assert results["heldout_bits_per_dim_raw"] != results["heldout_bits_per_dim_ema"]


@needs_compute_dtype("float16")
def test_float16_overflow_is_skipped_and_the_loss_scale_adapts(tmp_path, tiny_mnist):
  options = _options(tmp_path, steps=3, compute_dtype="float16", max_bad_steps=1,
                     max_restores=0)
  trainer = loop.Trainer(_CONFIG, tiny_mnist, options, tf.distribute.get_strategy())
  trainer.update.loss_scale.growth_interval = 2
  trainer.restore_or_initialize(resume=False)
  batches = iter(trainer._batches(0, 3))  # pylint: disable=protected-access
  trainer.update.loss_scale.scale.assign(2.0 ** 100)  # float16 gradients overflow
  records = trainer.train_step(batches, 1)
  assert records.overflow.tolist() == [True] and not trainer.guard.check()
  assert float(trainer.update.loss_scale.scale.numpy()) == 2.0 ** 99 and trainer.guard.skipped == 1
  trainer.update.loss_scale.scale.assign(2.0 ** 10)
  records = trainer.train_step(batches, 2)
  assert records.ok.tolist() == [True, True] and np.all(np.isfinite(records.loss))
  assert float(trainer.update.loss_scale.scale.numpy()) == 2.0 ** 11
  assert int(trainer.update.optimizer.iterations.numpy()) == 2


def test_steps_per_loop_must_divide_the_intervals():
  with pytest.raises(InputError, match="steps_per_loop=4 must divide"):
    _options("wd", steps_per_loop=4)


def test_cosine_lr_decay_ends_at_the_last_step():
  assert _options("wd", lr_decay="cosine").update_settings.decay_steps == 6
  assert _options("wd").update_settings.decay_steps == 0
