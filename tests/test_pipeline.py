"""train.data.pipeline: batches fixed by (seed, step), resumable, split evenly over replicas."""

import numpy as np
import pytest
import tensorflow as tf

from train.data import pipeline
from train.errors import InputError

_IMAGES = np.arange(10 * 4 * 4 * 1, dtype=np.uint8).reshape(10, 4, 4, 1)
_LABELS = np.arange(10, dtype=np.int32)


def _batch(step, seed=0):
  x, y = pipeline.global_batch(tf.constant(_IMAGES), tf.constant(_LABELS), step, 4, seed)
  return x.numpy(), y.numpy()


def test_each_epoch_visits_distinct_images_in_a_seeded_order():
  # 10 images, batch 4: two batches per epoch, the remainder of 2 dropped.
  epoch0 = np.concatenate([_batch(0)[1], _batch(1)[1]])
  epoch1 = np.concatenate([_batch(2)[1], _batch(3)[1]])
  assert len(set(epoch0)) == 8 and len(set(epoch1)) == 8
  assert not np.array_equal(epoch0, epoch1)
  np.testing.assert_array_equal(_batch(1)[0], _batch(1)[0])
  assert not np.array_equal(_batch(0, seed=1)[1], _batch(0, seed=0)[1])


def test_batch_holds_the_uint8_images_of_its_labels():
  # The training step dequantises them (tests/test_training_step.py).
  x, y = _batch(0)
  assert x.dtype == np.uint8
  np.testing.assert_array_equal(x, _IMAGES[y])


def _elements(start, end, replicas=1, pipelines=1, pipeline_id=0):
  context = tf.distribute.InputContext(num_input_pipelines=pipelines,
                                       input_pipeline_id=pipeline_id,
                                       num_replicas_in_sync=replicas)
  fn = pipeline.training_dataset_fn(_IMAGES, _LABELS, 4, 0, start, end)
  return [(x.numpy(), y.numpy()) for x, y in fn(context)]


def test_dataset_started_at_a_step_equals_the_tail_of_a_full_run():
  full = _elements(0, 6)
  resumed = _elements(3, 6)
  assert len(full) == 6 and len(resumed) == 3
  for (x, y), (rx, ry) in zip(full[3:], resumed):
    np.testing.assert_array_equal(x, rx)
    np.testing.assert_array_equal(y, ry)


def test_replicas_receive_consecutive_slices_of_the_global_batch():
  single = _elements(0, 2)
  two_replicas = _elements(0, 2, replicas=2)
  two_workers = [_elements(0, 2, replicas=2, pipelines=2, pipeline_id=i) for i in (0, 1)]
  for step, (x, y) in enumerate(single):
    halves = two_replicas[2 * step:2 * step + 2]
    np.testing.assert_array_equal(np.concatenate([h[0] for h in halves]), x)
    per_worker = [worker[step] for worker in two_workers]
    np.testing.assert_array_equal(np.concatenate([w[1] for w in per_worker]), y)


def test_heldout_dataset_gives_numbered_uint8_batches_in_order():
  batches = list(pipeline.heldout_dataset(_IMAGES, _LABELS, 4))
  assert [int(index) for index, _ in batches] == [0, 1, 2]
  images = np.concatenate([b[0].numpy() for _, b in batches])
  assert images.dtype == np.uint8
  np.testing.assert_array_equal(images, _IMAGES)
  np.testing.assert_array_equal(np.concatenate([b[1].numpy() for _, b in batches]), _LABELS)


# Background models (Ren et al., 2019): training images with values replaced by uniform noise.

def _perturbed_elements(images, start, end, fraction, seed=0, batch=4, replicas=1,
                        pipelines=1, pipeline_id=0):
  context = tf.distribute.InputContext(num_input_pipelines=pipelines,
                                       input_pipeline_id=pipeline_id,
                                       num_replicas_in_sync=replicas)
  fn = pipeline.training_dataset_fn(images, np.zeros(len(images), np.int32), batch, seed,
                                    start, end, perturb_fraction=fraction)
  return [x.numpy() for x, _ in fn(context)]


def test_perturb_fraction_0_leaves_batches_bit_identical():
  plain = _elements(0, 6)
  fn = pipeline.training_dataset_fn(_IMAGES, _LABELS, 4, 0, 0, 6, perturb_fraction=0.0)
  zero = [(x.numpy(), y.numpy()) for x, y in fn(tf.distribute.InputContext())]
  for (x, y), (zx, zy) in zip(plain, zero, strict=True):
    assert zx.dtype == np.uint8
    np.testing.assert_array_equal(zx, x)
    np.testing.assert_array_equal(zy, y)
  images = tf.constant(_IMAGES)
  np.testing.assert_array_equal(
      pipeline.perturb(images, 0.0, 0, 3, 1).numpy(), _IMAGES)


def test_perturbation_changes_the_expected_fraction_of_values():
  mu = 0.3
  images = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 1), dtype=np.uint8)
  changed, total = 0, 0
  for step in range(8):
    clean, _ = pipeline.global_batch(tf.constant(images), tf.zeros([64], tf.int32), step, 32, 0)
    perturbed, _ = pipeline.global_batch(tf.constant(images), tf.zeros([64], tf.int32), step,
                                         32, 0, perturb_fraction=mu)
    changed += int(np.sum(clean.numpy() != perturbed.numpy()))
    total += clean.numpy().size
  # A replaced value is a uniform draw that equals the old one with probability 1/256.
  expected = mu * 255 / 256
  stderr = np.sqrt(expected * (1 - expected) / total)
  assert abs(changed / total - expected) < 4 * stderr, (changed / total, expected, stderr)


def test_replaced_values_are_uniform_over_0_to_255():
  # All-zero images: every changed value is a replacement, uniform over 1..255.
  batches = _perturbed_elements(np.zeros((64, 16, 16, 1), np.uint8), 0, 8, 0.3, batch=32)
  values = np.concatenate([x.ravel() for x in batches])
  replaced = values[values != 0]
  counts = np.bincount(replaced, minlength=256)[1:]
  expected = len(replaced) / 255
  chi_square = np.sum((counts - expected) ** 2 / expected)
  # 254 degrees of freedom: mean 254, standard deviation about 22.5.
  assert chi_square < 254 + 5 * 22.5, chi_square
  assert counts.min() > 0 and abs(replaced.mean() - 128) < 2


def test_perturbation_is_seeded_and_resumable():
  zeros = np.zeros((10, 4, 4, 1), np.uint8)  # the data order cannot show in the batches
  full = _perturbed_elements(zeros, 0, 6, 0.3)
  again = _perturbed_elements(zeros, 0, 6, 0.3)
  other_seed = _perturbed_elements(zeros, 0, 6, 0.3, seed=1)
  resumed = _perturbed_elements(zeros, 3, 6, 0.3)
  for x, y in zip(full, again, strict=True):
    np.testing.assert_array_equal(x, y)
  for x, y in zip(full[3:], resumed, strict=True):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(np.stack(full), np.stack(other_seed))
  assert not np.array_equal(full[0], full[1])  # each step draws its own noise


def test_perturbed_replicas_receive_consecutive_slices_of_the_perturbed_global_batch():
  single = _perturbed_elements(_IMAGES, 0, 2, 0.3)
  two_replicas = _perturbed_elements(_IMAGES, 0, 2, 0.3, replicas=2)
  two_workers = [_perturbed_elements(_IMAGES, 0, 2, 0.3, replicas=2, pipelines=2,
                                     pipeline_id=i) for i in (0, 1)]
  for step, x in enumerate(single):
    np.testing.assert_array_equal(np.concatenate(two_replicas[2 * step:2 * step + 2]), x)
    np.testing.assert_array_equal(np.concatenate([w[step] for w in two_workers]), x)


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_perturb_fractions_outside_0_to_1_are_refused(fraction):
  with pytest.raises(InputError, match=r"perturb_fraction must be in \[0, 1\)"):
    pipeline.training_dataset_fn(_IMAGES, _LABELS, 4, 0, 0, 1, perturb_fraction=fraction)
