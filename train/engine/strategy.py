"""The `--strategy` choices and which worker of a cluster writes the shared outputs."""

import tensorflow as tf

NAMES = ("default", "mirrored", "multi_worker", "tpu")


def make(name, tpu_address=""):
  """A `tf.distribute.Strategy` by name.

  default: the current (single-device) strategy; mirrored: all local GPUs (or all logical
  CPU devices when there is no GPU); multi_worker: `MultiWorkerMirroredStrategy`, cluster
  from `TF_CONFIG`; tpu: `TPUStrategy` on `tpu_address` ("" = the local or `TPU_NAME` TPU).
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(_local_devices())
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f"Unknown strategy {name!r}; choose from {NAMES}.")


def _local_devices():
  """All local GPUs; without GPUs, all logical CPU devices (MirroredStrategy's own default
  would take a single CPU)."""
  devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
  return [device.name for device in devices]


def is_chief(strategy):
  """Whether this process writes checkpoints, summaries and samples (one per cluster)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and not has_chief


def num_workers(strategy):
  """The worker processes of the strategy's cluster (1 without a cluster)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return 1
  spec = resolver.cluster_spec().as_dict()
  return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))


def task_name(strategy):
  """"chief", or "<task_type>_<task_id>" for the other workers."""
  if is_chief(strategy):
    return "chief"
  resolver = strategy.cluster_resolver
  return f"{resolver.task_type}_{resolver.task_id}"


def chief_decision(strategy, value):
  """The chief's boolean `value`, on every worker of the cluster.

  It is also a barrier: no worker gets past it before every worker has reached it, so all
  of them read the workdir before the chief starts writing to it, and all of them then
  agree on whether to resume.
  """
  vote = tf.constant(1 if value and is_chief(strategy) else 0)

  @tf.function
  def gather_votes():
    return strategy.run(tf.identity, args=(vote,))

  return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, gather_votes(), axis=None) > 0)
