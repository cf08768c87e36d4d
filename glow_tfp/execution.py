"""How a computation runs on this machine: thread pools, a batch in parts, oneDNN.

The model (`glow_tfp.Glow`) holds weights and math only; the applications (the training
step, `GlowModel`'s steps, the exported signatures) decide how its methods run here, with
this module: `configure_threads` sizes TensorFlow's thread pools, `map_parts` cuts a batch
into parts that run side by side, and `prefer_onednn` chooses oneDNN's convolutions before
TensorFlow loads. Each function that needs TensorFlow imports it when it runs, not this module when it loads:
an entry point calls `prefer_onednn` before TensorFlow loads, and the model-agnostic server
(`serving.server`) shares the thread defaults without loading the library.

Why parts: a Glow's coupling networks begin and end with convolutions of only 2 to 48
channels, which one operation spreads poorly over several cores. Cutting the batch into one
part per core, with TensorFlow running one thread per operation (`intra_op` 1) and one
operation per core at once (`inter_op` = cores), lets each core run whole convolutions of
its own part instead. A large batch gets more parts than cores (at most `PART_SIZE` images
each), so that one part's activations stay in the CPU's caches and a core that finishes
early takes the next part. The parts are consecutive and their results are concatenated in
order, so the values are those of the whole batch (up to the rounding of a kernel at another
batch size), gradients included.

One default serves every application: `default_batch_parts()`, one part per CPU core this
process may use, 1 where a GPU runs the model. Parts cut the batch one replica computes: a
`tf.distribute` strategy first splits the global batch between its replicas, and each
replica cuts its own share. On CPUs a strategy runs one replica per process (one worker per
machine), so one part per core of the process is one per core of the replica; a process
with several replicas has GPUs, and their default is 1, so the default never cuts a batch
twice.

Inside a graph, the parts call one `tf.function` of `fn` traced for any batch size: the
model is traced (and differentiated) once however many parts there are, which keeps the
first step of a training run as quick to build as with whole batches. The calls are not
inlined into the caller's graph: the function body is optimised once instead of once per
part, which shortens the first call (docs/performance.md, "One part of the batch per
core"). A batch whose size the graph does not know gets exactly `parts` parts and no control flow, which a training step
differentiates cheaply; graphs that are never differentiated (`differentiable=False`, a
SavedModel's signatures) choose their parts when they run instead.
"""

import os

# The most images one part holds when a graph cuts a batch (`part_count`); the figures that
# chose it are in docs/performance.md, "One part of the batch per core".
PART_SIZE = 32
# The part counts, in multiples of `parts`, that a batch of unknown size can get in graphs
# that are never differentiated.
_UNKNOWN_BATCH_MULTIPLES = (1, 2, 4, 8)
# The attributes of the one function the parts call: `_noinline` keeps each part a call
# rather than a copy inlined into the caller's graph (see the module docstring). Read when a
# graph is traced; `{}` inlines the parts, as `benchmarks.cpu.parts_speed` times for comparison.
PART_CALL_ATTRIBUTES = {"_noinline": True}
# TensorFlow reads it as it loads (`prefer_onednn`).
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn():
  """Asks TensorFlow for oneDNN's fused convolutions, unless the environment already says.

  TensorFlow enables them by default only on CPUs with AVX-512; on AVX2-only CPUs they
  trained the default model about 1.6x faster (docs/training.md, "Speed on a CPU"). It reads
  `TF_ENABLE_ONEDNN_OPTS` once, as it loads, so an application's entry point calls this
  before anything imports TensorFlow; a value the user set (0 included) wins, and child
  processes inherit the choice. The library itself never calls it.
  """
  os.environ.setdefault(ONEDNN_VARIABLE, "1")


def cpu_cores():
  """The CPU cores this process may use."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def default_batch_parts():
  """The parts of every application's batches: one per CPU core this process may use, or 1
  where a GPU runs the model (see the module docstring for replicas)."""
  import tensorflow as tf
  if tf.config.list_physical_devices("GPU"):
    return 1
  return cpu_cores()


def cpu_plan(intra_op, inter_op, batch_parts, cores):
  """(intra-op threads, inter-op threads, parts) for a model on `cores` CPU cores (1 where a
  GPU runs it), from the values given, None where unset: what trained fastest in
  docs/training.md, "Speed on a CPU": a part per core, one thread per operation, one
  operation per part; whole batches keep TensorFlow's own thread choice (0)."""
  batch_parts = batch_parts or cores
  if intra_op is None:
    intra_op = 1 if batch_parts > 1 else 0
  if inter_op is None:
    inter_op = batch_parts if batch_parts > 1 else 0
  return intra_op, inter_op, batch_parts


def configure_threads(intra_op=None, inter_op=None, batch_parts=None):
  """Sizes TensorFlow's thread pools for batches cut into parts; returns `cpu_plan`'s triple.

  Unset values come from `cpu_plan` on `default_batch_parts()` cores, so a notebook runs as
  the training CLI does:

    intra_op, inter_op, batch_parts = execution.configure_threads()
    model.compile(optimizer="adam", batch_parts=batch_parts)

  TensorFlow fixes its pools when the first operation runs; call this before then.
  """
  import tensorflow as tf
  intra_op, inter_op, batch_parts = cpu_plan(intra_op, inter_op, batch_parts,
                                             default_batch_parts())
  try:
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
  except RuntimeError as error:
    raise RuntimeError(
        f"TensorFlow's thread pools are already fixed ({error}): call configure_threads "
        "before the first TensorFlow operation runs, e.g. first in a fresh notebook kernel."
    ) from error
  return intra_op, inter_op, batch_parts


def check_batch_parts(batch_parts):
  """Raises ValueError unless `batch_parts` is an integer >= 1; returns it."""
  if isinstance(batch_parts, bool) or not isinstance(batch_parts, int) or batch_parts < 1:
    raise ValueError(f"`batch_parts` must be an integer >= 1; instead, it is {batch_parts!r}.")
  return batch_parts


def resolve_batch_parts(batch_parts):
  """`batch_parts` checked, or `default_batch_parts()` for None."""
  return default_batch_parts() if batch_parts is None else check_batch_parts(batch_parts)


def map_parts(fn, tensors, parts, differentiable=True):
  """`fn(*part)` on consecutive parts of `tensors`, concatenated along axis 0.

  Args:
    fn: maps tensors of one part to a tensor, or a nest of tensors, whose axis 0 is the
      part's batch.
    tensors: tensors with the same batch size on axis 0, or None (passed to every part).
    parts: the parts that run side by side; parts differ in size by at most one. In a graph,
      a batch larger than `parts * PART_SIZE` gets more parts, a multiple of `parts`
      (`part_count`). A batch smaller than `parts` gets one part per example when its size
      is known (oneDNN's convolutions reject empty parts). A batch of unknown size gets
      `parts` parts, zero rows padding it to one row per part and their results dropped.
    differentiable: False for graphs that are never differentiated, such as a SavedModel's
      signatures: a batch of unknown size then picks its parts when it runs. A batch
      smaller than `parts` runs whole, and one larger than `parts * PART_SIZE` gets `parts`
      times 2, 4 or 8 parts of at most `PART_SIZE` (past that, larger parts), chosen by a
      `tf.switch_case` whose branches call the one traced function, so the graph stays as
      small as one part's; the gradient of the switch is slow to build and to run.
  """
  import tensorflow as tf
  if parts == 1:
    return fn(*tensors)
  tensors = _same_batch_size([None if t is None else tf.convert_to_tensor(t) for t in tensors])
  batch = next(t for t in tensors if t is not None)
  n = batch.shape[0]
  eager = tf.executing_eagerly()
  fn = _traced_once(fn, tensors)
  if n is not None:
    count = min(parts, max(n, 1)) if eager else part_count(n, parts)
    result = _concat_parts(fn, tensors, part_sizes(n, count))
    return tf.nest.map_structure(lambda r: _with_batch_size(r, n), result)
  n = tf.shape(batch, out_type=tf.int32)[0]
  if not differentiable:
    return _parts_chosen_when_run(fn, tensors, n, parts)
  # No tf.cond on the size here: differentiating one, as Keras `fit` does, made its first
  # step 10x longer and its steps 0.6x as fast (docs/performance.md).
  padding = tf.maximum(parts - n, 0)
  padded = [None if t is None else _pad_rows(t, padding) for t in tensors]
  result = _concat_parts(fn, padded, part_sizes(n + padding, parts))
  return tf.nest.map_structure(lambda r: r[:n], result)


def _same_batch_size(tensors):
  """`tensors`, which raise an error when run unless they have the same batch size (split
  would fail with a message that does not say why)."""
  import tensorflow as tf
  given = [t for t in tensors if t is not None]
  checks = [tf.debugging.assert_equal(
      tf.shape(t)[0], tf.shape(given[0])[0],
      message="the tensors cut into parts have different batch sizes") for t in given[1:]]
  if not checks:
    return tensors
  with tf.control_dependencies(checks):
    return [None if t is None else tf.identity(t) for t in tensors]


def _with_batch_size(result, n):
  import tensorflow as tf
  result.set_shape(tf.TensorShape([n]).concatenate(result.shape[1:]))
  return result


def _parts_chosen_when_run(fn, tensors, n, parts):
  import tensorflow as tf
  counts = [parts * multiple for multiple in _UNKNOWN_BATCH_MULTIPLES]
  # Branch 0 runs the batch whole; branch i cuts it into counts[i - 1] parts.
  more_parts = tf.reduce_sum(tf.cast(n > tf.constant(counts[:-1]) * PART_SIZE, tf.int32))
  branch = tf.where(n < parts, 0, 1 + more_parts)
  return tf.switch_case(branch, [lambda: fn(*tensors)] + [
      lambda count=count: _concat_parts(fn, tensors, part_sizes(n, count))
      for count in counts])


def _pad_rows(t, count):
  """`t` with `count` rows of zeros appended on axis 0."""
  import tensorflow as tf
  paddings = tf.pad([[0, count]], [[0, tf.rank(t) - 1], [0, 0]])
  return tf.pad(t, paddings)


def part_count(n, parts):
  """The parts a known batch of `n` gets in a graph: `parts`, more past `PART_SIZE` each.

  The smallest multiple of `parts` whose parts hold at most `PART_SIZE` images; `n` parts
  of one image when `n` < `parts`.
  """
  if n < parts:
    return max(n, 1)
  return parts * -(-n // (parts * PART_SIZE))


def part_sizes(n, parts):
  """The sizes of `parts` near-equal parts of `n` (an int, or a scalar tensor)."""
  if isinstance(n, int):
    return [n // parts + (i < n % parts) for i in range(parts)]
  import tensorflow as tf
  return n // parts + tf.cast(tf.range(parts) < n % parts, tf.int32)


def _concat_parts(fn, tensors, sizes):
  import tensorflow as tf
  count = len(sizes) if isinstance(sizes, list) else int(sizes.shape[0])
  if count == 1:
    return fn(*tensors)
  cut = [tf.split(t, sizes, num=count, axis=0) if t is not None else [None] * count
         for t in tensors]
  results = [fn(*part) for part in zip(*cut)]
  return tf.nest.map_structure(lambda *r: tf.concat(r, axis=0), *results)


def _traced_once(fn, tensors):
  """`fn` as one function for any batch size of `tensors` when building a graph, else `fn`.

  Eagerly the parts run one after another anyway, and compiling them would change what an
  eager call means; the None entries of `tensors` stay None in every call.
  """
  import tensorflow as tf
  if tf.executing_eagerly():
    return fn
  given = [t is not None for t in tensors]
  specs = [tf.TensorSpec(tf.TensorShape([None]).concatenate(t.shape[1:])
                         if t.shape.rank is not None else None, t.dtype)
           for t in tensors if t is not None]

  @tf.function(input_signature=specs, experimental_attributes=PART_CALL_ATTRIBUTES)
  def traced(*args):
    args = iter(args)
    return fn(*(next(args) if g else None for g in given))

  return lambda *parts: traced(*(t for t in parts if t is not None))
