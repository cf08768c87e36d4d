"""train.data.streaming: the order of a streaming source, its workers' shards, resume, the split."""

import numpy as np
import pytest
import tensorflow as tf

from train.data import streaming
from train.errors import InputError

_N = 22  # examples; batch 4 gives 5 steps an epoch, 2 examples dropped


def _catalog(size=_N):
  """Image i is filled with i % 256, label i: what a worker read is visible in its labels."""
  def read(index):
    return (tf.fill([2, 2, 1], tf.cast(index % 256, tf.uint8)), tf.cast(index, tf.int32))
  return streaming.Catalog("fake", np.arange(size).astype(bytes), (2, 2, 1), 0, lambda: read)


def _stream(size=_N):
  catalog = _catalog(size)
  return streaming.Stream("fake", catalog, np.arange(size), catalog, np.arange(0))


def _batches(start, end, pipelines=1, pipeline_id=0, replicas=1, seed=0, **kwargs):
  context = tf.distribute.InputContext(pipelines, pipeline_id, replicas)
  fn = _stream().training_dataset_fn(4, seed, start, end, **kwargs)
  return [(x.numpy(), y.numpy()) for x, y in fn(context)]


def _labels(batches):
  return np.concatenate([y for _, y in batches])


def test_two_workers_read_disjoint_examples_that_cover_each_epoch_once():
  workers = [_labels(_batches(0, 10, pipelines=2, pipeline_id=i, replicas=2)) for i in (0, 1)]
  for epoch in range(2):
    shards = [set(w[10 * epoch:10 * epoch + 10]) for w in workers]
    assert len(shards[0]) == len(shards[1]) == 10 and not shards[0] & shards[1]
    assert shards[0] | shards[1] <= set(range(_N))
  assert not np.array_equal(workers[0][:10], workers[0][10:])


def test_global_batch_does_not_depend_on_replicas_or_workers():
  single = _batches(0, 3)
  two_replicas = _batches(0, 3, replicas=2)
  workers = [_batches(0, 3, pipelines=2, pipeline_id=i, replicas=2) for i in (0, 1)]
  for step, (x, y) in enumerate(single):
    np.testing.assert_array_equal(np.concatenate([b[0] for b in two_replicas[2 * step:][:2]]),
                                  x)
    np.testing.assert_array_equal(np.concatenate([w[step][1] for w in workers]), y)


def test_pipeline_started_at_a_step_equals_the_tail_of_a_full_run():
  full, resumed = _batches(0, 8), _batches(6, 8)
  for (x, y), (rx, ry) in zip(full[6:], resumed):
    np.testing.assert_array_equal(x, rx)
    np.testing.assert_array_equal(y, ry)
  assert not np.array_equal(_labels(_batches(0, 2, seed=1)), _labels(full[:2]))


def test_batches_are_the_uint8_images_read_at_their_indices():
  # Dequantisation happens in the training step (glow_tfp.training.step), seeded by the step.
  x, y = _batches(0, 1)[0]
  assert x.dtype == np.uint8
  np.testing.assert_array_equal(x, np.broadcast_to((y % 256)[:, None, None, None], x.shape))


def test_perturb_fraction_0_leaves_batches_bit_identical():
  for (x, y), (zx, zy) in zip(_batches(0, 6), _batches(0, 6, perturb_fraction=0.0),
                              strict=True):
    np.testing.assert_array_equal(zx, x)
    np.testing.assert_array_equal(zy, y)


def test_perturbed_batches_are_seeded_resumable_and_the_same_for_any_workers():
  # Background models (train.data.pipeline.perturb): each value replaced with probability
  # 0.5 by uniform noise, seeded by (seed, step, position in the global batch).
  full = _batches(0, 8, perturb_fraction=0.5)
  clean = _batches(0, 8)
  for (x, y), (cx, cy) in zip(full, clean, strict=True):
    np.testing.assert_array_equal(y, cy)
    assert x.dtype == np.uint8
  changed = np.mean(np.concatenate([x for x, _ in full]) != np.concatenate(
      [x for x, _ in clean]))
  assert 0.35 < changed < 0.65
  for (x, _), (rx, _) in zip(full[6:], _batches(6, 8, perturb_fraction=0.5), strict=True):
    np.testing.assert_array_equal(x, rx)
  workers = [_batches(0, 3, pipelines=2, pipeline_id=i, replicas=2, perturb_fraction=0.5)
             for i in (0, 1)]
  for step, (x, _) in enumerate(full[:3]):
    np.testing.assert_array_equal(np.concatenate([w[step][0] for w in workers]), x)
  other_seed = _batches(0, 8, seed=1, perturb_fraction=0.5)
  assert not np.array_equal(np.concatenate([x for x, _ in other_seed]),
                            np.concatenate([x for x, _ in _batches(0, 8, seed=1)]))
  with pytest.raises(InputError, match=r"perturb_fraction must be in \[0, 1\)"):
    _batches(0, 1, perturb_fraction=1.0)


def test_split_holds_out_a_seeded_rule_per_key_and_evaluation_reads_a_bounded_part():
  catalog = _catalog(100)
  stream = streaming.Stream.split("fake", catalog, 0, 0.1)
  assert (stream.num_train, stream.num_heldout) == (90, 10)
  assert not set(stream.train_indices) & set(stream.heldout_indices)
  again = streaming.Stream.split("fake", catalog, 0, 0.1, eval_examples=4)
  np.testing.assert_array_equal(again.heldout_indices, stream.heldout_indices[:4])
  other = streaming.Stream.split("fake", catalog, 1, 0.1)
  assert set(other.heldout_indices) != set(stream.heldout_indices)
  grown = streaming.Stream.split("fake", _catalog(110), 0, 100 * 0.1 / 110)
  assert set(grown.heldout_indices) - set(stream.heldout_indices) <= set(range(100, 110))


def test_too_few_examples_to_split_are_an_input_error():
  with pytest.raises(InputError, match="needs at least 2"):
    streaming.Stream.split("fake", _catalog(1), 0, 0.1)


def test_an_example_that_fails_to_read_without_an_encoded_file_is_named_by_its_key():
  # Sources of decoded arrays (TFDS) have no file for the up-front check to describe.
  def read(index):
    check = tf.debugging.Assert(index != 7, ["bad example"])
    with tf.control_dependencies([check]):
      return tf.zeros([2, 2, 1], tf.uint8), tf.cast(index, tf.int32)
  catalog = streaming.Catalog("fake", np.arange(10).astype(bytes), (2, 2, 1), 0, lambda: read)
  assert catalog.unreadable() == "Cannot read image '7' of fake: assertion failed: [bad example]"
