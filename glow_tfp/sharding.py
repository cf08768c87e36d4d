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
part, which shortens the first call (`benchmarks.sharding_speed`). A batch whose size the
graph does not know gets exactly `shards` parts and no control flow, which a training step
differentiates cheaply; graphs traced within `forward_only` (a SavedModel's signatures)
choose their parts when they run instead.
"""

import contextlib
import os

import tensorflow as tf

# The most images one part holds when a graph cuts a batch (`part_count`); measured on a
# 2-core AVX2 CPU with `benchmarks.sharding_speed` (docs/performance.md).
PART_SIZE = 32
# The part counts, in multiples of `shards`, that a batch of unknown size can get in
# `forward_only` graphs.
_UNKNOWN_BATCH_MULTIPLES = (1, 2, 4, 8)
# Whether graphs traced now may choose their parts when they run (`forward_only`).
_forward_only = False
# The parts' calls stay calls (see the module docstring); a benchmark compares them inlined.
_CALL_ATTRIBUTES = {"_noinline": True}


def default_shards():
  """One part per CPU core this process may use, or 1 where a GPU will run the model."""
  if tf.config.list_physical_devices("GPU"):
    return 1
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_plan(intra_op, inter_op, shards, cores):
  """(intra-op threads, inter-op threads, parts) for a model on `cores` CPU cores (1 where a
  GPU runs it), from the values given, None where unset: what trained fastest on a 2-core
  CPU (docs/training.md): a part per core, one thread per operation, one operation per part;
  whole batches keep TensorFlow's own thread choice (0)."""
  shards = shards or cores
  if intra_op is None:
    intra_op = 1 if shards > 1 else 0
  if inter_op is None:
    inter_op = shards if shards > 1 else 0
  return intra_op, inter_op, shards


def configure_threads(intra_op=None, inter_op=None, shards=None):
  """Sizes TensorFlow's thread pools for a model cut into parts; returns `cpu_plan`'s triple.

  Unset values come from `cpu_plan` on `default_shards()` cores, so on a machine without a
  GPU a notebook runs as the training CLI does:

    intra_op, inter_op, shards = sharding.configure_threads()
    model = glow_tfp.GlowModel(config, batch_shards=shards)

  TensorFlow fixes its pools when the first operation runs; call this before then.
  """
  intra_op, inter_op, shards = cpu_plan(intra_op, inter_op, shards, default_shards())
  try:
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
  except RuntimeError as error:
    raise RuntimeError(
        f"TensorFlow's thread pools are already fixed ({error}): call configure_threads "
        "before the first TensorFlow operation runs, e.g. first in a fresh notebook kernel."
    ) from error
  return intra_op, inter_op, shards


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
      when its size is known (oneDNN's convolutions reject empty parts). A batch of
      unknown size gets `shards` parts, zero rows padding it to one row per part and their
      results dropped; within `forward_only` it picks its parts when it runs instead.
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
  if _forward_only:
    return _parts_chosen_when_run(fn, tensors, n, shards)
  # No tf.cond on the size here: differentiating one, as Keras `fit` does, made its first
  # step 10x longer and its steps 0.6x as fast (docs/performance.md).
  padding = tf.maximum(shards - n, 0)
  padded = [None if t is None else _pad_rows(t, padding) for t in tensors]
  return _concat_parts(fn, padded, part_sizes(n + padding, shards))[:n]


@contextlib.contextmanager
def forward_only():
  """Within it, graphs for a batch of unknown size choose their parts when they run.

  For graphs that are never differentiated, such as a SavedModel's signatures: a batch
  smaller than `shards` runs whole, and a batch larger than `shards * PART_SIZE` gets
  `shards` times 2, 4 or 8 parts of at most `PART_SIZE` (past that, larger parts), picked
  by a `tf.switch_case`. Its branches call the one traced function, so the graph stays as
  small as one part's, but the gradient of the switch is slow to build and to run.
  """
  global _forward_only
  saved, _forward_only = _forward_only, True
  try:
    yield
  finally:
    _forward_only = saved


def _parts_chosen_when_run(fn, tensors, n, shards):
  counts = [shards * multiple for multiple in _UNKNOWN_BATCH_MULTIPLES]
  # Branch 0 runs the batch whole; branch i cuts it into counts[i - 1] parts.
  more_parts = tf.reduce_sum(tf.cast(n > tf.constant(counts[:-1]) * PART_SIZE, tf.int32))
  branch = tf.where(n < shards, 0, 1 + more_parts)
  return tf.switch_case(branch, [lambda: fn(*tensors)] + [
      lambda count=count: _concat_parts(fn, tensors, part_sizes(n, count))
      for count in counts])


def _pad_rows(t, count):
  """`t` with `count` rows of zeros appended on axis 0."""
  paddings = tf.pad([[0, count]], [[0, tf.rank(t) - 1], [0, 0]])
  return tf.pad(t, paddings)


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
