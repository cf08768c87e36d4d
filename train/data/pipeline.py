"""tf.data input pipelines whose batch at each step is a pure function of (seed, step).

The training batch of step s is fixed by the seed alone: epoch e = s // steps_per_epoch
reads the training images in the order of a stateless permutation seeded by (seed, e),
dropping the remainder; the training step dequantises the batch with noise seeded by
(seed, s) (glow_tfp/training/step.py). So a resumed run starts its pipeline at the restored
step and sees exactly the batches an uninterrupted run would have seen, and every
distribution strategy sees the same global batch: each replica gets its own contiguous
slice of it.

A background model (Ren et al., NeurIPS 2019, docs/ood.md) trains on perturbed images:
with `perturb_fraction` mu > 0, each uint8 value of a training image is, independently
with probability mu, replaced by a uniform draw from 0..255 (`perturb`), before the
training step dequantises it. The draws of the image at position p of the global batch of
step s are seeded by (seed, s, p), so they too are a pure function of (seed, step), the
same under every strategy and in a resumed run. Held-out batches are never perturbed.
"""

import tensorflow as tf

from ..errors import InputError


PERMUTATION_STREAM = 0
# Apart from the training noise (glow_tfp.training.step.NOISE_STREAM = 1), the held-out
# draws (train.engine.evaluation.EVAL_STREAM = 2) and the sample-quality draws (3).
PERTURBATION_STREAM = 4


def steps_per_epoch(num_images, global_batch_size):
  return num_images // global_batch_size


def global_batch(images, labels, step, global_batch_size, seed, perturb_fraction=0.0):
  """The uint8 images [B, H, W, C] and labels [B] of training `step`, each image
  `perturb`ed with `perturb_fraction` (0: as they are)."""
  step = tf.cast(step, tf.int64)
  per_epoch = steps_per_epoch(images.shape[0], global_batch_size)
  epoch, position = step // per_epoch, step % per_epoch
  order = tf.argsort(tf.random.stateless_uniform(
      [images.shape[0]], stream_seed(seed, PERMUTATION_STREAM, epoch)))
  indices = order[position * global_batch_size:(position + 1) * global_batch_size]
  x = tf.gather(images, indices)
  if perturb_fraction:
    x = tf.map_fn(lambda args: perturb(args[0], perturb_fraction, seed, step, args[1]),
                  (x, tf.range(global_batch_size, dtype=tf.int64)),
                  fn_output_signature=images.dtype)
  return x, tf.gather(labels, indices)


def check_perturb_fraction(fraction):
  """Raises `InputError` unless 0 <= `fraction` < 1."""
  if not 0.0 <= fraction < 1.0:
    raise InputError(f"perturb_fraction must be in [0, 1) (the probability that a training "
                     f"pixel is replaced by uniform noise); got {fraction}.")


def perturb(image, fraction, seed, step, position):
  """uint8 `image` with each value, independently with probability `fraction`, replaced by
  a uniform draw from 0..255 (which may equal the value it replaces), seeded by
  (`seed`, `step`, `position`): the image at `position` of the global batch of `step`.
  `fraction` 0 returns `image` itself."""
  if not fraction:
    return image
  position_seed = tf.random.experimental.stateless_fold_in(
      stream_seed(seed, PERTURBATION_STREAM, tf.cast(step, tf.int64)),
      tf.cast(position, tf.int64))
  mask_seed, value_seed = tf.unstack(tf.random.experimental.stateless_split(position_seed, 2))
  shape = tf.shape(image)
  replaced = tf.random.stateless_uniform(shape, mask_seed) < fraction
  values = tf.random.stateless_uniform(shape, value_seed, minval=0, maxval=256,
                                       dtype=tf.int32)
  return tf.where(replaced, tf.cast(values, image.dtype), image)


def stream_seed(seed, stream, counter):
  """The stateless seed of `counter` (a step, an epoch) in random stream `stream` of `seed`."""
  base = tf.constant([seed, stream], tf.int64)
  return tf.random.experimental.stateless_fold_in(base, counter)


def training_dataset_fn(images, labels, global_batch_size, seed, start_step, end_step,
                        perturb_fraction=0.0):
  """A `dataset_fn` for `strategy.distribute_datasets_from_function`.

  Input pipeline p yields, for each step in [start_step, end_step), the per-replica slices
  of the global batch for the replicas it feeds, in replica order; with
  `perturb_fraction` > 0, of the perturbed global batch (`perturb`).
  """
  check_perturb_fraction(perturb_fraction)
  images = tf.constant(images)
  labels = tf.constant(labels, tf.int32)

  def dataset_fn(context):
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local
    per_replica = global_batch_size // replicas

    def local_slices(step):
      x, y = global_batch(images, labels, step, global_batch_size, seed, perturb_fraction)
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
