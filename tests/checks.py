"""The property checks every bijector and the model must pass, and their helpers."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tfp import precision

# Of the magnitude compared (`assert_close`): model-space images lie in [-0.5, 0.5).
ROUND_TRIP_RTOL = 2e-4
LOG_DET_RTOL = 1e-3
# Every tolerance of the checks is multiplied by this factor of the dtype they run in, so a
# float64 check holds the log-dets to 1e-9 of the brute-force Jacobian's.
TOLERANCE_FACTOR = {tf.float32: 1.0, tf.float64: 1e-6}


def assert_close(actual, expected, rtol, scale=None, err_msg=""):
  """`actual` equals `expected` to `rtol` of the magnitude compared.

  Each element may differ by rtol * (|its expected value| + scale), `scale` defaulting to
  the largest finite |expected|. Another CPU (AVX2, AVX-512, AMX) or kernel sums in another
  order, which moves every element of a result by rounding errors of the size of the terms
  summed, not of the element itself: an element near zero inside a tensor of magnitude 1e3
  differs by about 1e3 * eps. A bare absolute tolerance fails there, or passes anything on
  tensors far smaller than it.
  """
  expected = np.asarray(expected, np.float64)
  if scale is None:
    finite = np.abs(expected[np.isfinite(expected)])
    scale = finite.max() if finite.size else 0.0
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                             atol=rtol * scale, err_msg=err_msg)


def needs_compute_dtype(dtype):
  """A mark that skips a test of `dtype` compute where this machine cannot run it: a CPU
  whose oneDNN is capped below its bfloat16/float16 instructions (`glow_tfp.precision`)."""
  reason = precision.unsupported_reason(dtype)
  return pytest.mark.skipif(reason is not None, reason=str(reason))


def random_images(shape, seed=0, dtype=tf.float32):
  """Model-space values in [-0.5, 0.5)."""
  return tf.constant(np.random.default_rng(seed).uniform(-0.5, 0.5, shape), dtype)


def special_images(shape):
  """uint8 [5, *shape]: all-black, all-white, mid-grey, uniform noise and a bright square,
  inputs whose density at the bin centre times the bin volume can exceed 1."""
  square = np.zeros(shape, np.uint8)
  square[shape[0] // 4:-(shape[0] // 4), shape[1] // 4:-(shape[1] // 4)] = 255
  noise = np.random.default_rng(5).integers(0, 256, shape).astype(np.uint8)
  return np.stack([np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8),
                   np.full(shape, 128, np.uint8), noise, square])


def perturb(module, scale=0.1, seed=0):
  """Moves every trainable variable of `module` off its initial value, in place."""
  rng = np.random.default_rng(seed)
  for variable in module.trainable_variables:
    noise = rng.normal(0.0, scale, variable.shape)
    variable.assign_add(tf.constant(noise, variable.dtype))


def brute_force_log_det(fn, x):
  """log|det J| of `fn` at each example of `x`, from the full Jacobian (float64 slogdet)."""
  batch = x.shape[0]
  flat = tf.reshape(x, [batch, -1])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    out = tf.reshape(fn(tf.reshape(flat, x.shape)), [batch, -1])
  jacobian = tape.batch_jacobian(out, flat)
  return tf.linalg.slogdet(tf.cast(jacobian, tf.float64))[1].numpy()


def assert_log_det_close(analytic, brute_force, rtol=LOG_DET_RTOL):
  assert_close(analytic, brute_force, rtol, scale=max(1.0, np.abs(brute_force).max()))


def check_bijector(bijector, x, labels=None, identity_allowed=False):
  """The properties every bijector must have, at the model-space point `x`.

  Round trip x -> inverse -> forward; the analytic inverse and forward log-dets against a
  brute-force Jacobian; fldj(z) == -ildj(forward(z)); the fused methods against TFP's public
  ones; the same values under `tf.function` with a dynamic batch and under XLA; and, unless
  `identity_allowed`, that the map is not secretly the identity. The tolerances are those
  of float32 times `TOLERANCE_FACTOR` of the dtype of `x`.
  """
  f = TOLERANCE_FACTOR[x.dtype]
  kwargs = {} if labels is None else {"labels": labels}
  z, ildj = bijector.inverse_and_log_det(x, **kwargs)
  x_back, fldj = bijector.forward_and_log_det(z, **kwargs)
  assert z.dtype == x.dtype and ildj.dtype == x.dtype
  assert np.all(np.isfinite(z.numpy())) and np.all(np.isfinite(ildj.numpy()))
  assert_close(x_back, x, f * ROUND_TRIP_RTOL)
  assert ildj.shape == x.shape[:1] and fldj.shape == x.shape[:1]

  inverse = lambda t: bijector.inverse_and_log_det(t, **kwargs)[0]
  forward = lambda t: bijector.forward_and_log_det(t, **kwargs)[0]
  assert_log_det_close(ildj.numpy(), brute_force_log_det(inverse, x), f * LOG_DET_RTOL)
  assert_log_det_close(fldj.numpy(), brute_force_log_det(forward, z), f * LOG_DET_RTOL)
  assert_close(fldj, -bijector.inverse_and_log_det(x_back, **kwargs)[1], f * 1e-5)

  assert_close(bijector.inverse(x, **kwargs), z, f * 1e-6)
  assert_close(bijector.inverse_log_det_jacobian(x, **kwargs), ildj, f * 1e-6)
  assert_close(bijector.forward_log_det_jacobian(z, **kwargs), fldj, f * 1e-6)
  assert_graph_and_xla_agree(bijector, x, labels, z, ildj)
  if not identity_allowed and z.shape == x.shape:
    assert np.abs(z.numpy() - x.numpy()).max() > 1e-3, "the bijector acts as the identity"


def assert_graph_and_xla_agree(bijector, x, labels, z, ildj):
  """The normalising pass under tf.function (batch dimension None) and XLA, vs eager."""
  specs = [tf.TensorSpec([None] + x.shape[1:].as_list(), x.dtype)]
  args = [x]
  if labels is not None:
    specs.append(tf.TensorSpec([None], labels.dtype))
    args.append(labels)
  run = lambda t, *rest: bijector.inverse_and_log_det(t, *rest)
  graph = tf.function(run, input_signature=specs)
  xla = tf.function(run, jit_compile=True)
  f = TOLERANCE_FACTOR[x.dtype]
  for compiled, rtol in ((graph, f * 1e-6), (xla, f * 1e-5)):
    z_c, ildj_c = compiled(*args)
    assert_close(z_c, z, rtol)
    assert_close(ildj_c, ildj, rtol)
  first = [a[:1] for a in args]
  assert_close(graph(*first)[1], ildj[:1], f * 1e-5)


def part_size_of_each_row(part, unused=None):
  """[n]: every row of a part of `glow_tfp.execution.map_parts` holds its part's size."""
  return tf.fill(tf.shape(part)[:1], tf.shape(part)[0])
