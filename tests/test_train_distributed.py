"""Distributed training equals single-device training: MirroredStrategy on the two logical
CPU devices of tests/conftest.py, and MultiWorkerMirroredStrategy with two local worker
processes on 127.0.0.1 (TF_CONFIG), both through the same `train.engine.loop.run`; the two workers
read disjoint examples that together cover an epoch once."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import workdir as workdir_lib
from train.data import datasets as data_lib
from train.engine import loop
from train.engine import preemption
from tests.checks import assert_close

_CONFIG = glow_tfp.GlowConfig(image_shape=(28, 28, 1), levels=2, steps_per_level=1,
                              hidden_channels=8)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two steps per device loop, and the EMA weights (on by default) in the comparisons.
_TRAINING = dict(steps=4, batch_size=8, learning_rate=1e-3, warmup_steps=2, seed=0,
                 steps_per_loop=2)


def _options(workdir, **changes):
  return loop.Options(workdir=str(workdir), eval_every=100, sample_every=100,
                      checkpoint_every=100, log_every=2, num_samples=4, temperatures=(1.0,),
                      eval_batch_size=16, jit_compile=False, **_TRAINING, **changes)


def _assert_same_training(results, reference):
  assert_close(results["train_history"], reference["train_history"], rtol=1e-5)
  assert results["heldout_bits_per_dim"] == pytest.approx(reference["heldout_bits_per_dim"],
                                                          rel=1e-5)


def _assert_same_weights(workdir, reference_workdir):
  # Adam's first updates are about lr * sign(g): a gradient component that is zero up to
  # rounding (ActNorm biases right after data-dependent init) can flip sign when the batch is
  # summed in another order, moving its weight by up to 2 * lr. Every other difference is
  # rounding; the loss histories above agree to 1e-5.
  model, _ = workdir_lib.restore_model(str(workdir))
  reference, _ = workdir_lib.restore_model(str(reference_workdir))
  path = tf.train.latest_checkpoint(workdir_lib.checkpoint_dir(str(workdir)))
  assert any(name.startswith("ema_model/") for name, _ in tf.train.list_variables(path))
  tolerance = 2 * _TRAINING["learning_rate"] * _TRAINING["steps"]
  for ours, theirs in zip(model.trainable_variables, reference.trainable_variables):
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0, atol=tolerance)
  assert model.initialized


@pytest.fixture(scope="module")
def single_device(tmp_path_factory, tiny_mnist):
  workdir = tmp_path_factory.mktemp("single")
  return workdir, loop.run(_CONFIG, tiny_mnist, _options(workdir))


def test_mirrored_on_two_devices_equals_single_device(tmp_path, tiny_mnist, single_device):
  assert len(tf.config.list_logical_devices("CPU")) == 2
  results = loop.run(_CONFIG, tiny_mnist, _options(tmp_path, strategy="mirrored"))
  _assert_same_training(results, single_device[1])
  _assert_same_weights(tmp_path, single_device[0])


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _write_folder(directory, data):
  images = np.concatenate([data.train_images, data.heldout_images])
  for i, image in enumerate(images):
    PIL.Image.fromarray(image[..., 0]).save(os.path.join(directory, f"{i:03d}.png"))


def _hashes(images):
  return [hashlib.sha1(image.tobytes()).hexdigest() for image in images]


def test_multi_worker_with_two_local_workers_equals_single_device(tmp_path, tiny_mnist):
  """Also: the workers read disjoint examples that together cover the first epoch once."""
  images = tmp_path / "images"
  images.mkdir()
  _write_folder(str(images), tiny_mnist)
  data = data_lib.load(f"folder:{images}", levels=2, seed=0, heldout_fraction=0.25)
  reference = loop.run(_CONFIG, data, _options(tmp_path / "single"))
  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  flags = [f"--dataset=folder:{images}", "--heldout_fraction=0.25", "--levels=2",
           "--steps_per_level=1", "--hidden_channels=8", "--strategy=multi_worker",
           f"--workdir={tmp_path / 'cluster'}", "--nojit_compile", "--num_samples=4",
           "--temperatures=1.0", "--eval_every=100", "--sample_every=100",
           "--checkpoint_every=100", "--log_every=2"]
  flags += [f"--{name}={value}" for name, value in _TRAINING.items()]
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=_ROOT, TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    processes.append(subprocess.Popen(
        [sys.executable, os.path.join(_ROOT, "tests", "multi_worker_train.py"), *flags,
         f"--shard_file={tmp_path / f'shard{index}.txt'}"], cwd=_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  shards = [(tmp_path / f"shard{index}.txt").read_text().split() for index in range(2)]
  assert len(shards[0]) == len(shards[1]) == data.num_train // 2
  assert sorted(shards[0] + shards[1]) == sorted(_hashes(data_lib.in_memory(data).train_images))
  with open(tmp_path / "cluster" / "results.json") as f:
    results = json.load(f)
  _assert_same_training(results, reference)
  _assert_same_weights(tmp_path / "cluster", tmp_path / "single")


def _start_workers(flags, log_dir):
  """Starts `python -m train` on two local workers; their output goes to
  `log_dir/worker<index>.log`."""
  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=_ROOT, TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    with open(log_dir / f"worker{index}.log", "w") as log:
      processes.append(subprocess.Popen([sys.executable, "-m", "train", *flags], cwd=_ROOT,
                                        env=env, stdout=log, stderr=subprocess.STDOUT))
  return processes


def _wait_for(processes, log_dir, returncode):
  for index, process in enumerate(processes):
    process.wait(timeout=240)
    log = (log_dir / f"worker{index}.log").read_text()
    assert process.returncode == returncode, log[-3000:]


def _results(workdir):
  with open(workdir / "results.json") as f:
    return json.load(f)


def _logged_steps(path):
  return [int(n) for n in re.findall(r"step (\d+)/\d+ +train", path.read_text())]


def test_sigterm_to_one_of_two_workers_stops_both_at_one_saved_step_and_they_resume(
    tmp_path, tiny_mnist):
  """The resumed cluster ends as an uninterrupted cluster run: the single-device run drifts
  from either over more than a few steps (see `_assert_same_weights`)."""
  images = tmp_path / "images"
  images.mkdir()
  _write_folder(str(images), tiny_mnist)
  training = dict(_TRAINING, steps=12, steps_per_loop=1)
  flags = [f"--dataset=folder:{images}", "--heldout_fraction=0.25", "--levels=2",
           "--steps_per_level=1", "--hidden_channels=8", "--strategy=multi_worker",
           "--nojit_compile", "--num_samples=4", "--temperatures=1.0", "--eval_every=100",
           "--sample_every=100", "--checkpoint_every=100", "--log_every=1"]
  flags += [f"--{name}={value}" for name, value in training.items()]
  (tmp_path / "straight").mkdir()
  _wait_for(_start_workers([*flags, f"--workdir={tmp_path / 'straight'}"],
                           tmp_path / "straight"), tmp_path / "straight", 0)
  workdir = tmp_path / "cluster"
  flags.append(f"--workdir={workdir}")
  processes = _start_workers(flags, tmp_path)
  chief_log = tmp_path / "worker0.log"
  deadline = time.time() + 240
  while all(p.poll() is None for p in processes) and time.time() < deadline:
    if (_logged_steps(chief_log) or [0])[-1] >= 3:
      break
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGTERM)
  _wait_for(processes, tmp_path, preemption.EXIT_CODE)
  stopped_at = _logged_steps(chief_log)[-1]
  assert 3 <= stopped_at < training["steps"]
  path = tf.train.latest_checkpoint(workdir_lib.checkpoint_dir(str(workdir)))
  assert path.endswith(f"ckpt-{stopped_at}")
  _wait_for(_start_workers(flags, tmp_path), tmp_path, 0)
  results, straight = (_results(w) for w in (workdir, tmp_path / "straight"))
  assert results["resumed_from"].endswith(f"ckpt-{stopped_at}")
  assert_close(results["train_history"], straight["train_history"][stopped_at:], rtol=1e-6)
  ours, theirs = (workdir_lib.restore_model(str(w)).model
                  for w in (workdir, tmp_path / "straight"))
  for variable, expected in zip(ours.variables, theirs.variables):
    expected = expected.numpy()
    np.testing.assert_allclose(variable.numpy(), expected, rtol=0,
                               atol=1e-6 * np.abs(expected).max())
