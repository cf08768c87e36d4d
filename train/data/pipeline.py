"""tf.data input pipelines whose batch at each step is a pure function of (seed, step).

The training batch of step s is fixed by the seed alone: epoch e = s // steps_per_epoch
reads the training images in the order of a stateless permutation seeded by (seed, e),
dropping the remainder; the training step dequantises the batch with noise seeded by
(seed, s) (glow_tfp/training/step.py). So a resumed run starts its pipeline at the restored
step and sees exactly the batches an uninterrupted run would have seen, and every
distribution strategy sees the same global batch: each replica gets its own contiguous
slice of it.
"""

import tensorflow as tf


PERMUTATION_STREAM = 0


def steps_per_epoch(num_images, global_batch_size):
  return num_images // global_batch_size


def global_batch(images, labels, step, global_batch_size, seed):
  """The uint8 images [B, H, W, C] and labels [B] of training `step`."""
  step = tf.cast(step, tf.int64)
  per_epoch = steps_per_epoch(images.shape[0], global_batch_size)
  epoch, position = step // per_epoch, step % per_epoch
  order = tf.argsort(tf.random.stateless_uniform(
      [images.shape[0]], stream_seed(seed, PERMUTATION_STREAM, epoch)))
  indices = order[position * global_batch_size:(position + 1) * global_batch_size]
  return tf.gather(images, indices), tf.gather(labels, indices)


def stream_seed(seed, stream, counter):
  """The stateless seed of `counter` (a step, an epoch) in random stream `stream` of `seed`."""
  base = tf.constant([seed, stream], tf.int64)
  return tf.random.experimental.stateless_fold_in(base, counter)


def training_dataset_fn(images, labels, global_batch_size, seed, start_step, end_step):
  """A `dataset_fn` for `strategy.distribute_datasets_from_function`.

  Input pipeline p yields, for each step in [start_step, end_step), the per-replica slices
  of the global batch for the replicas it feeds, in replica order.
  """
  images = tf.constant(images)
  labels = tf.constant(labels, tf.int32)

  def dataset_fn(context):
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local
    per_replica = global_batch_size // replicas

    def local_slices(step):
      x, y = global_batch(images, labels, step, global_batch_size, seed)
      x = tf.reshape(x[first * per_replica:(first + local) * per_replica],
                     [local, per_replica] + images.shape[1:].as_list())
      return x, tf.reshape(y[first * per_replica:(first + local) * per_replica],
                           [local, per_replica])

    steps = tf.data.Dataset.range(start_step, end_step)
    slices = steps.map(local_slices, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # tf.data's autotuning thread made dropping a partly read iterator (the end of every
    # training segment) stall for 30-60 s; a fixed prefetch depth costs nothing here.
    options = tf.data.Options()
    options.autotune.enabled = False
    return slices.unbatch().prefetch(2).with_options(options)

  return dataset_fn


def heldout_dataset(images, labels, batch_size):
  """Held-out uint8 images with their labels, in batches numbered from 0 (the number seeds
  the batch's dequantisation draws, `train.evaluation`)."""
  examples = tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))
  return heldout_batches(examples, batch_size)


def heldout_batches(examples, batch_size):
  """`heldout_dataset` of a dataset of single (uint8 image, int32 label) examples."""
  return examples.batch(batch_size).enumerate().prefetch(tf.data.AUTOTUNE)
