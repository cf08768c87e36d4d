"""A batch cut into parts that run side by side: how a Glow keeps several CPU cores busy.

A Glow's coupling networks begin and end with convolutions of only 2 to 48 channels, which
one operation spreads poorly over several cores. Cutting the batch into one part per core,
with TensorFlow running one thread per operation (`intra_op` 1) and one operation per core
at once (`inter_op` = cores), lets each core run whole convolutions of its own part instead.
A large batch gets more parts than cores (at most `PART_SIZE` images each), so that one
part's activations stay in the CPU's caches and a core that finishes early takes the next
part. The parts are consecutive and their results are concatenated in order, so the values
are those of the whole batch (up to the rounding of a kernel at another batch size),
gradients included.

Inside a graph, the parts call one `tf.function` of `fn` traced for any batch size: the
model is traced (and differentiated) once however many parts there are, which keeps the
first step of a training run as quick to build as with whole batches. The calls are not
inlined into the caller's graph: the function body is optimised once instead of once per
part, which shortens the first call (`benchmarks.sharding_speed`).
"""

import os

import tensorflow as tf

# The most images one part holds when a graph cuts a batch (`part_count`); measured on a
# 2-core AVX2 CPU with `benchmarks.sharding_speed` (docs/performance.md).
PART_SIZE = 32
# The part counts, in multiples of `shards`, that a batch of unknown size can get.
_UNKNOWN_BATCH_MULTIPLES = (1, 2, 4, 8)
# The parts' calls stay calls (see the module docstring); a benchmark compares them inlined.
_CALL_ATTRIBUTES = {"_noinline": True}


def default_shards():
  """One part per CPU core this process may use, or 1 where a GPU will run the model."""
  if tf.config.list_physical_devices("GPU"):
    return 1
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_shards(shards):
  """Raises ValueError unless `shards` is an integer >= 1; returns it."""
  if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
    raise ValueError(f"`batch_shards` must be an integer >= 1; instead, it is {shards!r}.")
  return shards


def map_shards(fn, tensors, shards):
  """`fn(*parts)` on consecutive parts of `tensors`, concatenated along axis 0.

  Args:
    fn: maps tensors of one part to one tensor whose axis 0 is the part's batch.
    tensors: tensors with the same batch size on axis 0, or None (passed to every part).
    shards: the parts that run side by side; parts differ in size by at most one. In a
      graph, a batch larger than `shards * PART_SIZE` gets more parts, a multiple of
      `shards` (`part_count`). A batch smaller than `shards` gets one part per example
      when its size is known and runs whole when it is not (oneDNN's convolutions reject
      empty parts).
  """
  if shards == 1:
    return fn(*tensors)
  batch = next(t for t in tensors if t is not None)
  n = batch.shape[0]
  eager = tf.executing_eagerly()
  fn = _traced_once(fn, tensors)
  if n is not None:
    count = min(shards, max(n, 1)) if eager else part_count(n, shards)
    result = _concat_parts(fn, tensors, part_sizes(n, count))
    result.set_shape(tf.TensorShape([n]).concatenate(result.shape[1:]))
    return result
  n = tf.shape(batch, out_type=tf.int32)[0]
  counts = [shards * multiple for multiple in _UNKNOWN_BATCH_MULTIPLES]
  # Branch 0 runs the batch whole; branch i cuts it into counts[i - 1] parts.
  more_parts = tf.reduce_sum(tf.cast(n > tf.constant(counts[:-1]) * PART_SIZE, tf.int32))
  branch = tf.where(n < shards, 0, 1 + more_parts)
  return tf.switch_case(branch, [lambda: fn(*tensors)] + [
      lambda count=count: _concat_parts(fn, tensors, part_sizes(n, count))
      for count in counts])


def part_count(n, shards):
  """The parts a known batch of `n` gets in a graph: `shards`, more past `PART_SIZE` each.

  The smallest multiple of `shards` whose parts hold at most `PART_SIZE` images; `n` parts
  of one image when `n` < `shards`.
  """
  if n < shards:
    return max(n, 1)
  return shards * -(-n // (shards * PART_SIZE))


def part_sizes(n, shards):
  """The sizes of `shards` near-equal parts of `n` (an int, or a scalar tensor)."""
  if isinstance(n, int):
    return [n // shards + (i < n % shards) for i in range(shards)]
  return n // shards + tf.cast(tf.range(shards) < n % shards, tf.int32)


def _concat_parts(fn, tensors, sizes):
  count = len(sizes) if isinstance(sizes, list) else int(sizes.shape[0])
  if count == 1:
    return fn(*tensors)
  parts = [tf.split(t, sizes, num=count, axis=0) if t is not None else [None] * count
           for t in tensors]
  return tf.concat([fn(*part) for part in zip(*parts)], axis=0)


def _traced_once(fn, tensors):
  """`fn` as one function for any batch size of `tensors` when building a graph, else `fn`.

  Eagerly the parts run one after another anyway, and compiling them would change what an
  eager call means; the None entries of `tensors` stay None in every call.
  """
  if tf.executing_eagerly():
    return fn
  given = [t is not None for t in tensors]
  specs = [tf.TensorSpec(tf.TensorShape([None]).concatenate(t.shape[1:])
                         if t.shape.rank is not None else None, t.dtype)
           for t in tensors if t is not None]

  @tf.function(input_signature=specs, experimental_attributes=_CALL_ATTRIBUTES)
  def traced(*args):
    args = iter(args)
    return fn(*(next(args) if g else None for g in given))

  return lambda *parts: traced(*(t for t in parts if t is not None))
