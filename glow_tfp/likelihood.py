"""The probability of a discrete image: importance-weighted uniform dequantisation.

A Glow model is a density p over model space. An image with `n_bits` bits per channel is a
bin B = x0 + [0, 2**-n_bits)**D of model space, of volume V = 2**(-n_bits * D), and its
probability is the density's mass in that bin:

  P(img) = integral of p over B = V * E_u[p(x0 + u)],   u ~ Uniform[0, 2**-n_bits)**D.

With K independent draws u_1..u_K the estimate reported and served everywhere is

  log P_K(img) = log(1/K * sum_k p(x0 + u_k)) + log V,   bits/dim = -log2 P_K(img) / D.

By Jensen's inequality E[log P_K] <= log P: in expectation it is a lower bound on the
log-likelihood (an upper bound on the code length), it rises with K and converges to log P
(Burda et al., 2016, "Importance Weighted Autoencoders", Theorem 1). K = 1 is the dequantised
bound the Glow paper reports. Because P(img) <= 1, an estimate above 0 is certainly too high
and is clipped to 0, which keeps the bound.

The density at the bin centre times V is not a probability (a peaked density exceeds 1/V at
a point, so "log P" > 0); `Glow.log_prob` gives densities, this module gives probabilities.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from glow_tfp import execution
from glow_tfp import model_space


def log_likelihood(model, images, labels=None, num_draws=1, seed=0, noise=None, batch_parts=1):
  """Estimated log-probability log P_K [N] of uint8 `images` [N, H, W, C], in nats.

  Args:
    model: a `glow_tfp.Glow`.
    images: uint8 images of the model's image shape.
    labels: int [N] classes of a class-conditional model, else None.
    num_draws: K, the number of uniform dequantisation draws per image (>= 1).
    seed: an int or a shape-[2] int tensor: the draws are a pure function of the seed and
      of each image's position in the batch. Ignored with `noise`.
    noise: instead of seeded draws, fixed draws [K, H, W, C] in [0, 1) shared by every image,
      so an image gets the same estimate in any batch (what an export serves).
    batch_parts: evaluate the K * N densities in this many parts side by side
      (`glow_tfp.execution.map_parts`); the draws are made for the whole batch first, so the
      estimate does not depend on it.
  """
  log_density = _at_draws(model, model.log_prob, images, labels, num_draws, seed, noise,
                          batch_parts)
  return _estimate(log_density, model.config)


def class_log_likelihood(model, images, num_draws=1, seed=0, noise=None, batch_parts=1):
  """log P_K(images | y) [N, num_classes] in nats of a class-conditional model, for every
  class y: column y is `log_likelihood` with labels y, from the same draws, with one pass
  through the flow per draw (`Glow.class_log_probs`). Arguments as in `log_likelihood`."""
  log_densities = _at_draws(model, lambda x, _: model.class_log_probs(x), images, None,
                            num_draws, seed, noise, batch_parts)
  return _estimate(log_densities, model.config)


def class_mixture(per_class):
  """log mean_y exp(per_class[:, y]) [N] of log-values [N, K]: the mixture over K equally
  likely classes, of densities or of probabilities."""
  num_classes = tf.cast(tf.shape(per_class)[1], per_class.dtype)
  return tf.reduce_logsumexp(per_class, axis=1) - tf.math.log(num_classes)


def given_or_mixture(class_log_likelihoods, labels):
  """log P(x | y) [N] of each image's label y in `class_log_likelihoods` [N, K] (of
  `class_log_likelihood`), or where y = -1 (class unknown) log P(x) = log mean_y P(x | y):
  `log_likelihood` without labels, unless a class's estimate was clipped at 0."""
  mixture = class_mixture(class_log_likelihoods)
  given = tf.gather(class_log_likelihoods, tf.maximum(labels, 0), axis=1, batch_dims=1)
  return tf.where(labels < 0, mixture, given)


def level_log_likelihood(model, images, labels=None, num_draws=1, seed=0, noise=None,
                         batch_parts=1, class_positions=False, top_latent=False):
  """(log P_K [N], level terms [N, L, 2]) of uint8 `images`: `log_likelihood`'s estimate
  from the same draws, and `Glow.level_log_probs` averaged over the draws (nats).

  From the same passes, `class_positions=True` (a class-conditional model without labels)
  adds `Glow.level_log_probs`'s log p(top latent at each position | y) [N, K, h, w],
  averaged over the draws, and `top_latent=True` adds, last, the top level's latent before
  its prior at each draw [K_draws, N, h, w, c]."""
  values = _at_draws(model, lambda x, y: model.level_log_probs(x, y, class_positions,
                                                               top_latent),
                     images, labels, num_draws, seed, noise, batch_parts)
  terms, *extras = values if class_positions or top_latent else (values,)
  estimate = (_estimate(tf.reduce_sum(terms, axis=[-2, -1]), model.config),
              tf.reduce_mean(terms, axis=0))
  if class_positions:
    estimate += (tf.reduce_mean(extras.pop(0), axis=0),)
  return estimate + tuple(extras)


def _at_draws(model, fn, images, labels, num_draws, seed, noise, batch_parts):
  """`fn` at the K dequantised copies of `images`: [K, N, ...] (see `log_likelihood`); each
  tensor of a nest that `fn` returns."""
  num_draws = check_num_draws(num_draws if noise is None else noise.shape[0])
  images = tf.convert_to_tensor(images)
  batch = tf.shape(images)[0]
  if noise is None:
    noise = tf.random.stateless_uniform(tf.concat([[num_draws], tf.shape(images)], 0),
                                        model_space.as_seed(seed))
  else:
    noise = tf.broadcast_to(tf.convert_to_tensor(noise, tf.float32)[:, tf.newaxis],
                            tf.concat([[num_draws], tf.shape(images)], 0))
  repeated = _repeat(images, num_draws)
  x = model_space.to_model_space(repeated, model.config.n_bits, noise=_merge_draws(noise))
  values = execution.map_parts(
      fn, (tf.cast(x, model.dtype), None if labels is None else _repeat(labels, num_draws)),
      batch_parts, differentiable=False)
  return tf.nest.map_structure(
      lambda v: tf.reshape(v, tf.concat([[num_draws, batch], tf.shape(v)[1:]], 0)), values)


def _estimate(log_density, config):
  """log P_K [N] from the densities [K, N] at the K draws."""
  num_draws = tf.cast(tf.shape(log_density)[0], log_density.dtype)
  estimate = (tf.reduce_logsumexp(log_density, axis=0) - tf.math.log(num_draws)
              + log_bin_volume(config))
  return tf.minimum(estimate, 0.0)


def bits_per_dim(log_likelihood_nats, num_dims):
  """Bits per dimension -log2 P / D of log-probabilities in nats."""
  return -log_likelihood_nats / (num_dims * math.log(2.0))


def log_bin_volume(config):
  """log V = -n_bits * D * log 2, the log-volume of one image's bin in model space."""
  return -config.n_bits * config.num_dims * math.log(2.0)


def dequantized_bits_per_dim(log_density, config):
  """Bits/dim of one draw: -log2(p(x0 + u) * V) / D at a dequantised point x0 + u.

  Its mean over images and draws is the K = 1 bound, the training loss. At a point that is
  not uniformly drawn from its bin (a bin centre) it is a density, not a bound.
  """
  return bits_per_dim(log_density + log_bin_volume(config), config.num_dims)


def check_num_draws(num_draws):
  if not isinstance(num_draws, int) or isinstance(num_draws, bool) or num_draws < 1:
    raise ValueError(f"`num_draws` must be an integer >= 1; instead, it is {num_draws!r}.")
  return num_draws


def fixed_draws(num_draws, image_shape, seed=0):
  """K uniform draws [K, H, W, C] in [0, 1), a pure function of `seed` (for exports)."""
  shape = (check_num_draws(num_draws),) + tuple(image_shape)
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


def default_draws(config):
  """The one fixed draw of seed 0: what exports, `GlowModel` and `glow_tfp.ood` use unless
  told otherwise."""
  return fixed_draws(1, config.image_shape, 0)


@dataclasses.dataclass(frozen=True)
class Estimate:
  """The mean bits/dim of a set of images and its standard error over the images.

  `num_draws` is K of the estimator; the standard error is the spread over images divided
  by sqrt(N), the error of the mean as an estimate of the expected code length.
  """
  bits_per_dim: float
  standard_error: float
  num_draws: int
  num_images: int

  @classmethod
  def of(cls, log_likelihoods, num_dims, num_draws):
    """The estimate from the per-image log P_K (nats) of the set."""
    bits = bits_per_dim(np.asarray(log_likelihoods, np.float64), num_dims)
    error = bits.std(ddof=1) / math.sqrt(bits.size) if bits.size > 1 else float("nan")
    return cls(float(bits.mean()), float(error), num_draws, int(bits.size))

  def __str__(self):
    return (f"{self.bits_per_dim:.4f} +- {self.standard_error:.4f} bits/dim "
            f"(K={self.num_draws} dequantisation bound, {self.num_images} images)")


def _repeat(tensor, num_draws):
  """[N, ...] -> [K * N, ...], draw-major: the K copies of the batch one after another."""
  tensor = tf.convert_to_tensor(tensor)
  return tf.reshape(tf.repeat(tensor[tf.newaxis], num_draws, axis=0),
                    tf.concat([[-1], tf.shape(tensor)[1:]], 0))


def _merge_draws(noise):
  return tf.reshape(noise, tf.concat([[-1], tf.shape(noise)[2:]], 0))
