"""Which reduced-precision compute dtypes this machine's TensorFlow can run.

TensorFlow sends bfloat16 and float16 convolutions on a CPU to oneDNN when the CPU's own
flags say it has the instructions (AVX-512 BF16/FP16, AMX). Capped below them
(`ONEDNN_MAX_CPU_ISA=AVX2`), oneDNN has no kernel and every such convolution fails at run
time with an AbortedError. One small convolution, run once per dtype and process, tells
before a model is built.
"""

import functools
import os

import tensorflow as tf

REDUCED = ("bfloat16", "float16")


@functools.lru_cache(maxsize=None)
def unsupported_reason(dtype):
  """None when a `dtype` convolution runs here, else why not (a sentence)."""
  if dtype not in REDUCED:
    return None
  try:
    with tf.init_scope():
      x = tf.ones([1, 3, 3, 2], dtype)
      tf.nn.conv2d(x, tf.ones([3, 3, 2, 2], dtype), 1, "SAME").numpy()
  except (tf.errors.AbortedError, tf.errors.InternalError, tf.errors.UnimplementedError,
          tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as error:
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    where = f"oneDNN capped at ONEDNN_MAX_CPU_ISA={cap}" if cap else "this CPU"
    detail = ("oneDNN has no such convolution kernel" if "primitive descriptor" in str(error)
              else str(error).strip().splitlines()[0][:200])
    return (f"TensorFlow cannot run {dtype} convolutions on {where} "
            f"({type(error).__name__}: {detail})")
  return None


def check_compute_dtype(dtype):
  """Raises ValueError naming the reason when `dtype` cannot run here."""
  reason = unsupported_reason(dtype)
  if reason:
    raise ValueError(f"compute dtype {dtype!r} is not available: {reason}. Use float32.")
