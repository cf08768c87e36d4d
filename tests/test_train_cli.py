"""`python -m train`: flag validation, one-line errors before training, and a run killed
with SIGKILL that the same command resumes with the losses of an uninterrupted run.
(A workdir of another config is refused in tests/test_train_loop.py.)"""

import json
import os
import re
import signal
import subprocess
import sys
import time

from absl import flags
from absl.testing import flagsaver
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import workdir as workdir_lib
from train import cli
from train.data import datasets as data_lib
from train.data import images
from train.engine import loop
from train.engine import preemption
from train.errors import InputError
from tests.checks import assert_close, needs_compute_dtype

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Unconditional at loop.Options' learning rate, as the in-process runs compared with them.
_TINY = ["--levels=2", "--steps_per_level=1", "--hidden_channels=4", "--batch_size=8",
         "--nojit_compile", "--num_samples=4", "--temperatures=1.0", "--eval_every=1000",
         "--sample_every=1000", "--log_every=50", "--warmup_steps=10", "--noconditional",
         "--learning_rate=1e-3"]


@pytest.mark.parametrize("argv, flag", [
    (["--strategy=gpu"], "strategy"),
    (["--coupling=spline"], "coupling"),
    (["--dataset=cifar10"], "dataset"),
    (["--dataset=folder:"], "dataset"),
    (["--temperatures=0.5,hot"], "temperatures"),
    (["--learning_rate=0"], "learning_rate"),
    (["--n_bits=9"], "n_bits"),
    (["--heldout_fraction=1.5"], "heldout_fraction"),
    (["--dataset=tfrecord:"], "dataset"),
    (["--heldout_dataset=mnist"], "heldout_dataset"),
    (["--eval_examples=0"], "eval_examples"),
    (["--compute_dtype=float64"], "compute_dtype"),
    (["--ema_decay=1.0"], "ema_decay"),
    (["--eval_weights=best"], "eval_weights"),
    (["--steps_per_loop=0"], "steps_per_loop"),
    (["--intra_op_threads=-1"], "intra_op_threads"),
    (["--inter_op_threads=-2"], "inter_op_threads"),
    (["--quality_samples=1"], "quality_samples"),
    (["--perturb_fraction=-0.1"], "perturb_fraction"),
    (["--perturb_fraction=1.0"], "perturb_fraction"),
    (["--coupling_log_scale_bound=0"], "coupling_log_scale_bound"),
    (["--coupling_log_scale_bound=-1"], "coupling_log_scale_bound"),
    (["--coupling_log_scale_bound=inf"], "coupling_log_scale_bound"),
])
def test_bad_flag_values_are_rejected_when_parsed(argv, flag):
  with flagsaver.flagsaver():
    with pytest.raises(flags.IllegalFlagValueError, match=flag):
      flags.FLAGS(["train", *argv])


@pytest.mark.parametrize("value", ["-0.1", "1.0"])
def test_perturb_fraction_outside_0_to_1_is_refused_with_its_range(value):
  with flagsaver.flagsaver():
    with pytest.raises(flags.IllegalFlagValueError,
                       match=rf"--perturb_fraction={re.escape(value)}: perturb_fraction must "
                             r"be in \[0, 1\)"):
      flags.FLAGS(["train", f"--perturb_fraction={value}"])
  with pytest.raises(InputError, match=r"perturb_fraction must be in \[0, 1\)"):
    loop.Options(workdir="somewhere", perturb_fraction=float(value))


def test_model_flags_override_the_preset_and_the_data_fix_shape_and_classes():
  with flagsaver.flagsaver():
    flags.FLAGS(["train", "--preset=cifar10", "--levels=2", "--coupling=additive",
                 "--conditional"])
    config = cli.for_data(cli.model_config(), (16, 16, 3), num_classes=5)
  assert config == glow_tfp.GlowConfig.preset("cifar10").replace(
      image_shape=(16, 16, 3), levels=2, coupling="additive", num_classes=5)


def test_the_log_scale_bound_flag_overrides_the_preset_and_is_left_alone_without_it():
  with flagsaver.flagsaver():
    flags.FLAGS(["train", "--coupling_log_scale_bound=0.75"])
    assert cli.model_config().coupling_log_scale_bound == 0.75
  with flagsaver.flagsaver():
    flags.FLAGS(["train"])
    assert (cli.model_config().coupling_log_scale_bound
            == glow_tfp.GlowConfig.preset("mnist").coupling_log_scale_bound)


def test_the_model_config_comes_first_with_the_presets_images_padded_to_its_levels():
  with flagsaver.flagsaver():
    flags.FLAGS(["train", "--levels=3"])
    config = cli.model_config()
  assert config == glow_tfp.GlowConfig.preset("mnist").replace(image_shape=(32, 32, 1),
                                                                levels=3)


@pytest.mark.parametrize("argv, image_shape, num_classes, message", [
    (["--conditional"], (28, 28, 1), 0, "--conditional needs labelled data"),
    (["--levels=3"], (28, 28, 1), 0, "divisible by 2\\*\\*levels = 8"),
])
def test_flags_that_do_not_fit_the_data_are_input_errors(argv, image_shape, num_classes,
                                                         message):
  with flagsaver.flagsaver():
    flags.FLAGS(["train", *argv])
    with pytest.raises(InputError, match=message):
      cli.for_data(cli.model_config(), image_shape, num_classes)


@pytest.mark.parametrize("argv, num_classes, expected", [
    ([], 10, 10),
    ([], 0, 0),
    (["--noconditional"], 10, 0),
    (["--conditional"], 10, 10),
    (["--perturb_fraction=0.2"], 10, 0),
    (["--perturb_fraction=0.2", "--conditional"], 10, 10),
], ids=["labelled", "unlabelled", "off", "on", "background", "background-asked"])
def test_the_model_is_conditional_by_default_on_labelled_data_unless_a_background(
    argv, num_classes, expected):
  with flagsaver.flagsaver():
    flags.FLAGS(["train", *argv])
    config = cli.for_data(cli.model_config(), (28, 28, 1), num_classes)
  assert config.num_classes == expected


def test_the_default_run_is_2500_steps_at_learning_rate_2e_3():
  with flagsaver.flagsaver():
    flags.FLAGS(["train"])
    options = cli.training_options(num_train_images=4500)
  assert (options.steps, options.learning_rate, options.batch_size) == (2500, 2e-3, 64)


def test_epochs_are_converted_to_steps():
  with flagsaver.flagsaver():
    flags.FLAGS(["train", "--epochs=3", "--batch_size=8", "--workdir=somewhere"])
    options = cli.training_options(num_train_images=50)
  assert options.steps == 3 * (50 // 8) and options.workdir == "somewhere"


@needs_compute_dtype("bfloat16")
def test_precision_and_memory_flags_reach_the_training_options():
  with flagsaver.flagsaver():
    flags.FLAGS(["train", "--compute_dtype=bfloat16", "--reversible_gradients"])
    options = cli.training_options(num_train_images=50)
  assert options.compute_dtype == "bfloat16" and options.reversible_gradients


def test_batch_parts_reach_the_training_options(tmp_path):
  with flagsaver.flagsaver():
    flags.FLAGS(["train"])
    options = cli.training_options(num_train_images=50, batch_parts=3)
  assert options.batch_parts == 3
  with pytest.raises(InputError, match="batch_parts"):
    loop.Options(workdir=str(tmp_path), batch_parts=0)


@needs_compute_dtype("float16")
def test_engine_flags_reach_the_training_options():
  with flagsaver.flagsaver():
    flags.FLAGS(["train", "--compute_dtype=float16", "--ema_decay=0", "--eval_weights=raw",
                 "--steps_per_loop=50"])
    options = cli.training_options(num_train_images=50)
  assert options.compute_dtype == "float16" and options.ema_decay == 0
  assert options.eval_weights == "raw" and options.steps_per_loop == 50


def test_perturb_fraction_reaches_the_training_options():
  with flagsaver.flagsaver():
    flags.FLAGS(["train"])
    assert cli.training_options(num_train_images=50).perturb_fraction == 0.0
    flags.FLAGS(["train", "--perturb_fraction=0.2"])
    assert cli.training_options(num_train_images=50).perturb_fraction == 0.2


def _train(*argv, timeout=300, **environ):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **environ)
  return subprocess.run([sys.executable, "-m", "train", *argv], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_missing_folder_stops_with_one_line_before_creating_the_workdir(tmp_path):
  result = _train(f"--dataset=folder:{tmp_path / 'nowhere'}", f"--workdir={tmp_path / 'wd'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"train: error: Image folder {str(tmp_path / 'nowhere')!r} does not exist or is not a "
      "directory.")
  assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "wd")


def test_a_bad_image_found_in_training_stops_with_one_line_naming_it(tmp_path, write_png,
                                                                    truncated_image):
  # Every image outside the sample checked up front is truncated, so the first batch meets
  # one; the scan after the error names the first by index.
  count = 2 * images.CHECK_SAMPLE
  checked = set(images.sample(count))
  for i in range(count):
    path = tmp_path / "images" / f"{i:03d}.png"
    if i in checked:
      write_png(str(path), (4, 4, 1))
    else:
      path.write_bytes(truncated_image("png"))
  first_bad = tmp_path / "images" / f"{min(set(range(count)) - checked):03d}.png"
  result = _train(*_TINY, "--steps=2", f"--dataset=folder:{tmp_path / 'images'}",
                  f"--workdir={tmp_path / 'wd'}")
  assert result.returncode == 1
  assert re.fullmatch(rf"train: error: Cannot read image {re.escape(repr(str(first_bad)))}: "
                      r"(?i:.*truncated.*)", result.stderr.strip().splitlines()[-1])
  assert "Traceback" not in result.stderr


def test_thread_flags_and_the_onednn_choice_are_applied_and_logged(tmp_path):
  result = _train("--intra_op_threads=1", "--inter_op_threads=2",
                  f"--dataset=folder:{tmp_path / 'nowhere'}", f"--workdir={tmp_path / 'wd'}",
                  TF_ENABLE_ONEDNN_OPTS="0")
  assert result.returncode == 1
  assert "CPU threads: intra-op 1, inter-op 2" in result.stderr
  assert "TF_ENABLE_ONEDNN_OPTS=0." in result.stderr


@pytest.mark.parametrize("given, expected", [(None, "1"), ("0", "0"), ("1", "1")])
def test_the_training_entry_point_turns_onednn_on_unless_told_otherwise(given, expected):
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if given is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = given
  result = subprocess.run(
      [sys.executable, "-c", "import os, train.__main__; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"],
      cwd=_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
  assert result.stdout.strip() == expected


def test_a_background_model_run_says_so_and_keeps_its_references_clean(tmp_path):
  workdir = tmp_path / "wd"
  result = _train(*_TINY, "--steps=2", "--quality_samples=0", "--batch_parts=1",
                  "--perturb_fraction=0.2", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert ("background model: training pixel values replaced by uniform noise with "
          "probability 0.2 (--perturb_fraction)") in result.stderr
  with open(workdir / "results.json") as f:
    assert json.load(f)["perturb_fraction"] == 0.2
  # Evaluation's held-out images, and the reference images kept for scoring, are clean.
  references, _ = workdir_lib.load_reference_images(workdir_lib.reference_path(str(workdir)))
  data = data_lib.load("mnist", levels=2)
  np.testing.assert_array_equal(references, data.heldout_arrays()[0][:len(references)])
  # So are the training images kept for the scores' style templates.
  training, labels = workdir_lib.load_training_images(str(workdir))
  assert len(training) == min(data.num_train, workdir_lib.MAX_TRAIN_REFERENCE_IMAGES)
  np.testing.assert_array_equal(training, data.train_images[:len(training)])
  np.testing.assert_array_equal(labels, data.train_labels[:len(training)])


def _latest_step(workdir):
  path = tf.train.latest_checkpoint(workdir_lib.checkpoint_dir(str(workdir)))
  return int(path.rsplit("-", 1)[1]) if path else -1


def _kill_after_checkpoint(command, workdir, step):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.Popen([sys.executable, "-m", "train", *command], cwd=_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while _latest_step(workdir) < step and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  still_running = process.poll() is None
  process.send_signal(signal.SIGKILL)
  process.wait()
  return still_running


@pytest.fixture(scope="module")
def straight_60(tmp_path_factory):
  """(workdir, results) of an uninterrupted in-process run of the 60-step commands below."""
  workdir = tmp_path_factory.mktemp("straight")
  config = glow_tfp.GlowConfig.preset("mnist", levels=2, steps_per_level=1, hidden_channels=4)
  options = loop.Options(workdir=str(workdir), steps=60, batch_size=8, jit_compile=False,
                         num_samples=4, temperatures=(1.0,), eval_every=1000,
                         sample_every=1000, checkpoint_every=1000, warmup_steps=10,
                         batch_parts=1)
  return workdir, loop.run(config, data_lib.load("mnist", levels=2), options)


def _terminate_after_logged_step(command, step, log_path):
  """Starts `python -m train`, sends SIGTERM once it has logged `step`; returns the process
  after it exits, its stderr in `log_path`."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  with open(log_path, "w") as log:
    process = subprocess.Popen([sys.executable, "-m", "train", *command], cwd=_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=log)
  deadline = time.time() + 240
  while process.poll() is None and time.time() < deadline:
    logged = _logged_steps(log_path)
    if logged and logged[-1] >= step:
      break
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  process.wait(timeout=120)
  return process


def _logged_steps(log_path):
  with open(log_path) as f:
    return [int(n) for n in re.findall(r"step (\d+)/\d+ +train", f.read())]


def test_sigterm_saves_the_step_reached_exits_with_its_code_and_resumes_exactly(tmp_path,
                                                                               straight_60):
  workdir = tmp_path / "wd"
  command = [*_TINY, "--steps=60", "--checkpoint_every=50", "--log_every=1",
             f"--workdir={workdir}", "--batch_parts=1"]
  process = _terminate_after_logged_step(command, 5, tmp_path / "log.txt")
  log = (tmp_path / "log.txt").read_text()
  assert process.returncode == preemption.EXIT_CODE, log[-3000:]
  stopped_at = _logged_steps(tmp_path / "log.txt")[-1]
  assert 5 <= stopped_at < 50 and _latest_step(workdir) == stopped_at
  assert f"Preempted at step {stopped_at}: saved " in log
  assert log.strip().splitlines()[-1] == (
      f"train: Preempted (SIGTERM): saved checkpoint {workdir}/checkpoints/ckpt-{stopped_at} "
      f"of step {stopped_at}; run the same command again to resume from it.")
  result = _train(*command)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resuming from {workdir}/checkpoints/ckpt-{stopped_at} at step {stopped_at}." in (
      result.stderr)
  straight_workdir, straight = straight_60
  with open(workdir / "results.json") as f:
    resumed = json.load(f)
  assert_close(resumed["train_history"], straight["train_history"][stopped_at:], rtol=1e-6)
  for ours, theirs in zip(workdir_lib.restore_model(str(workdir)).model.variables,
                          workdir_lib.restore_model(str(straight_workdir)).model.variables):
    expected = theirs.numpy()
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0,
                               atol=1e-6 * np.abs(expected).max())


def test_run_killed_three_times_then_given_a_truncated_checkpoint_ends_as_an_uninterrupted_one(
    tmp_path, straight_60):
  workdir = tmp_path / "wd"
  command = [*_TINY, "--steps=60", "--checkpoint_every=5", f"--workdir={workdir}",
             "--batch_parts=1"]
  for step in (10, 20, 30):
    assert _kill_after_checkpoint(command, workdir, step), "the run ended before it was killed"
  newest = _latest_step(workdir)
  broken = os.path.join(workdir_lib.checkpoint_dir(str(workdir)), f"ckpt-{newest}")
  (data,) = tf.io.gfile.glob(broken + ".data-*")
  os.truncate(data, os.path.getsize(data) // 2)
  result = _train(*command)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Skipping checkpoint {broken} does not read back: " in result.stderr
  assert f"Resuming from {workdir}/checkpoints/ckpt-{newest - 5} at step {newest - 5}." in (
      result.stderr)
  _, straight = straight_60
  with open(workdir / "results.json") as f:
    resumed = json.load(f)
  assert resumed["train_history"][0][0] > newest - 5
  tail = straight["train_history"][-len(resumed["train_history"]):]
  assert_close(resumed["train_history"], tail, rtol=1e-6)
  assert resumed["heldout_bits_per_dim"] == pytest.approx(straight["heldout_bits_per_dim"],
                                                          rel=1e-6)


@pytest.fixture
def digits_folder(tmp_path, tiny_mnist):
  """folder:PATH of the 64 digits of `tiny_mnist` as PNGs: a streaming source."""
  os.makedirs(tmp_path / "digits")
  images = np.concatenate([tiny_mnist.train_images, tiny_mnist.heldout_images])
  for i, image in enumerate(images):
    PIL.Image.fromarray(image[..., 0]).save(tmp_path / "digits" / f"{i:02d}.png")
  return f"folder:{tmp_path / 'digits'}"


def test_a_streaming_run_killed_with_sigkill_resumes_with_the_losses_of_an_uninterrupted_run(
    tmp_path, digits_folder):
  # The in-memory source's kills: the test above.
  dataset = digits_folder
  workdir = tmp_path / "wd"
  # Whole batches and TensorFlow's threads, as the uninterrupted run in this process has:
  # other thread counts round differently.
  command = [*_TINY, "--steps=100", "--checkpoint_every=5", f"--workdir={workdir}",
             f"--dataset={dataset}", "--batch_parts=1"]
  assert _kill_after_checkpoint(command, workdir, 10), "the run ended before it was killed"
  killed_at = _latest_step(workdir)
  result = _train(*command)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resuming from {workdir_lib.checkpoint_dir(str(workdir))}/ckpt-" in result.stderr
  with open(workdir / "results.json") as f:
    resumed = json.load(f)
  assert resumed["train_history"][0][0] > killed_at >= 10
  config = glow_tfp.GlowConfig.preset("mnist", levels=2, steps_per_level=1, hidden_channels=4)
  options = loop.Options(workdir=str(tmp_path / "straight"), steps=100, batch_size=8,
                         jit_compile=False, num_samples=4, temperatures=(1.0,),
                         eval_every=1000, sample_every=1000, checkpoint_every=1000,
                         warmup_steps=10, batch_parts=1)
  straight = loop.run(config, data_lib.load(dataset, levels=2), options)
  tail = straight["train_history"][-len(resumed["train_history"]):]
  assert_close(resumed["train_history"], tail, rtol=1e-6)
  assert resumed["heldout_bits_per_dim"] == pytest.approx(straight["heldout_bits_per_dim"],
                                                          rel=1e-6)
