"""train.data.pipeline: batches fixed by (seed, step), resumable, split evenly over replicas."""

import numpy as np
import tensorflow as tf

from train.data import pipeline

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
