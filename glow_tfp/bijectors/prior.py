"""The learned prior at the top of the multi-scale flow, optionally class-conditional."""

import math

import tensorflow as tf

from glow_tfp.bijectors import base


class TopPrior(base.FusedBijector):
  """Standardises the top-level latent [N, H, W, C] by a learned mean and log-std.

  Normalising direction (`inverse`): z' = (z - mean) * exp(-log_std), with
    (mean, log_std) = (bias + embedding[label]) split in two along the channels,
  log|det J| = -sum over (H, W, C) of log_std. Generative direction:
  z = z' * exp(log_std) + mean. A standard-normal z' thus means z ~ N(mean, exp(log_std)^2),
  the paper's learned top prior (`learn_top_prior`: a per-channel bias), with a
  class-dependent mean and scale when `num_classes > 0`, zero-initialised:
    class_shape = (1, 1): one per channel and class, the paper's class-conditional model (a
      linear map of the one-hot label), which tells only each class's average intensity
      per channel apart;
    class_shape = (H, W): one per position, channel and class, a latent template of each
      class, which places each class's strokes.
  With neither, the prior is the fixed N(0, 1) and the bijector is the identity.

  Args:
    channels: channels C of the top latent (> 0).
    learn_top_prior: learn the unconditional mean and log-std (zero-initialised).
    num_classes: number of classes; 0 for an unconditional prior.
    dtype: float dtype of the parameters.
    name: name scope.
    class_shape: (1, 1) or the latent's (H, W): the positions the class embedding tells
      apart.
  """

  def __init__(self, channels, learn_top_prior=True, num_classes=0, dtype=tf.float32,
               name=None, class_shape=(1, 1)):
    parameters = dict(locals())
    if channels < 1:
      raise ValueError(f"`channels` must be positive; instead, it is {channels}.")
    if num_classes < 0:
      raise ValueError(f"`num_classes` must be >= 0; instead, it is {num_classes}.")
    class_shape = tuple(class_shape)
    if len(class_shape) != 2 or not all(isinstance(d, int) and d > 0 for d in class_shape):
      raise ValueError("`class_shape` must be two positive integers (1, 1) or (H, W); "
                       f"instead, it is {class_shape}.")
    self.num_classes = num_classes
    with tf.name_scope(name or "top_prior") as scope:
      self.bias = tf.Variable(tf.zeros([2 * channels], dtype), trainable=learn_top_prior,
                              name="bias")
      if num_classes:
        self.embedding = tf.Variable(tf.zeros([num_classes, *class_shape, 2 * channels],
                                              dtype), name="embedding")
    super().__init__(parameters=parameters, name=scope.rstrip("/") or "top_prior",
                     dtype=dtype)

  def _prior(self, labels):
    """(mean, log_std), broadcastable to [N, H, W, C]."""
    params = self.bias[tf.newaxis, tf.newaxis, :]
    if self.num_classes:
      if labels is None:
        raise ValueError("`labels` are required: this prior is class-conditional "
                         f"({self.num_classes} classes).")
      params = params + tf.gather(self.embedding, labels)
    mean, log_std = tf.split(params, 2, axis=-1)
    return mean, log_std

  def standardise_each_class(self, y):
    """(z', log_det) of `y` [N, H, W, C] under each class k of a class-conditional prior:
    z' [N, K, H, W, C] as `inverse` gives with labels k, log_det [K] its log-det."""
    if not self.num_classes:
      raise ValueError("standardise_each_class needs a class-conditional prior.")
    mean, log_std = tf.split(self.bias + self.embedding, 2, axis=-1)
    return (y[:, tf.newaxis] - mean) * tf.exp(-log_std), self._log_dets(y, log_std)

  def class_position_log_probs(self, y):
    """log p(y at each position | class k) [N, K, H, W] of `y` [N, H, W, C] under each class
    k of a class-conditional prior: log N(y[h, w, c]; mean_k, std_k^2) summed over the
    channels c. Summed over the positions too, it is the log-density of the whole `y`
    under class k: log N(z'; 0, I) + log_det of `standardise_each_class`."""
    z, _ = self.standardise_each_class(y)
    log_std = tf.split(self.bias + self.embedding, 2, axis=-1)[1]
    return -tf.reduce_sum(0.5 * tf.square(z) + 0.5 * math.log(2.0 * math.pi) + log_std,
                          axis=-1)

  def _log_det(self, y, log_std):
    return tf.broadcast_to(self._log_dets(y, log_std), tf.shape(y)[:1])

  def _log_dets(self, y, log_std):
    """The log-det of standardising `y` by each of `log_std` [..., h, w, C]: shape [...]."""
    # A per-channel log_std holds once what H * W positions share: the sum of its channels
    # times their count (one position when it is per position).
    shared = (tf.reduce_prod(tf.shape(y)[-3:-1])
              // tf.reduce_prod(tf.shape(log_std)[-3:-1]))
    return -tf.cast(shared, y.dtype) * tf.reduce_sum(log_std, axis=[-3, -2, -1])

  def _inverse_and_log_det(self, y, labels=None):
    mean, log_std = self._prior(labels)
    return (y - mean) * tf.exp(-log_std), self._log_det(y, log_std)

  def _forward_and_log_det(self, x, labels=None):
    mean, log_std = self._prior(labels)
    return x * tf.exp(log_std) + mean, -self._log_det(x, log_std)
