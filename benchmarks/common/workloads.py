"""The three measured workloads, as `tf.function`s: training step, log_prob, sampling.

Each factory returns a zero-argument callable over fixed inputs, so the timing loop measures
the model and nothing else. Both families get the same code, the same optimizer (Keras 2
Adam, which updates plain `tf.Variable`s) and the same synthetic data.
"""

import tensorflow as tf
import tf_keras

WORKLOADS = ("train", "log_prob", "sample")
LEARNING_RATE = 1e-4


def synthetic_images(batch_size, image_shape, seed=0):
  """Model-space images, uniform in [-0.5, 0.5): what dequantised data look like."""
  shape = (batch_size,) + tuple(image_shape)
  return tf.random.stateless_uniform(shape, [seed, 0]) - 0.5


def train_step(model, x, jit_compile):
  """One Adam step on the mean negative log-likelihood of `x`; returns the loss."""
  optimizer = tf_keras.optimizers.Adam(LEARNING_RATE)
  variables = model.trainable_variables

  @tf.function(jit_compile=jit_compile)
  def step(x):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.log_prob(x))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return lambda: step(x)


def log_prob(model, x, jit_compile):
  fn = tf.function(model.log_prob, jit_compile=jit_compile)
  return lambda: fn(x)


def sample(model, batch_size, jit_compile):
  return tf.function(lambda: model.sample(batch_size), jit_compile=jit_compile)


def batch_size(workload, arch):
  """The batch size of `workload` at `arch` (an `architectures.Architecture`)."""
  return {"train": arch.train_batch, "log_prob": arch.log_prob_batch,
          "sample": arch.sample_batch}[workload]


def make(workload, arch, model, jit_compile):
  """The callable of `workload` ("train", "log_prob" or "sample") for `model` at `arch`.

  Its data differ from the initialisation batch (other seeds), as real batches would.
  """
  if workload == "train":
    x = synthetic_images(arch.train_batch, arch.config.image_shape, seed=1)
    return train_step(model, x, jit_compile)
  if workload == "log_prob":
    return log_prob(model, synthetic_images(arch.log_prob_batch, arch.config.image_shape,
                                            seed=2), jit_compile)
  return sample(model, arch.sample_batch, jit_compile)
