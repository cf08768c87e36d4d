"""The three measured workloads, as `tf.function`s: training step, log_prob, sampling.

Each factory returns a zero-argument callable over fixed inputs, so the timing loop measures
the model and nothing else. Both families get the same code, the same optimizer (Keras 2
Adam, which updates plain `tf.Variable`s) and the same synthetic data.
"""

import tensorflow as tf
import tf_keras

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
  fn = tf.function(lambda: model.sample(batch_size), jit_compile=jit_compile)
  return fn
