import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import sharding
from tests.checks import assert_close, part_size_of_each_row, perturb, random_images
from tests.test_flow import SHAPE, tiny_config


def twin_models(shards, **config_changes):
  """The same initialised, perturbed model twice: whole batches, and `shards` parts."""
  config = tiny_config(**config_changes)
  labels = tf.range(4) % config.num_classes if config.num_classes else None
  models = []
  for batch_shards in (1, shards):
    model = glow_tfp.Glow(config, seed=3, batch_shards=batch_shards)
    model.initialize(random_images((4,) + SHAPE, seed=0), labels)
    perturb(model, scale=0.05, seed=0)
    models.append(model)
  return models


@pytest.mark.parametrize("batch, shards, sizes", [
    (7, 3, [3, 2, 2]), (6, 2, [3, 3]), (2, 4, [1, 1]), (1, 2, [1]), (5, 1, [5])])
def test_known_batches_split_into_near_equal_nonempty_parts(batch, shards, sizes):
  x = tf.reshape(tf.range(2.0 * batch), [batch, 2])
  seen = []

  def fn(part, nothing):
    seen.append((part.shape[0], nothing))
    return part * 2.0

  np.testing.assert_array_equal(sharding.map_shards(fn, (x, None), shards), x * 2.0)
  assert seen == [(size, None) for size in sizes]


@pytest.mark.parametrize("batch, shards, count", [
    (0, 2, 1), (1, 2, 1), (3, 4, 3), (64, 2, 2), (65, 2, 4), (256, 2, 8), (257, 2, 10),
    (100, 3, 6), (100, 1, 4)])
def test_part_count_keeps_parts_within_part_size_in_multiples_of_shards(batch, shards, count):
  assert sharding.part_count(batch, shards) == count


@pytest.mark.parametrize("batch, sizes", [
    (1, [1]), (3, [2, 1]), (64, [32, 32]), (65, [17, 16, 16, 16]), (200, [25] * 8)])
@pytest.mark.parametrize("known", [True, False])
def test_graphs_cut_large_batches_into_parts_of_at_most_part_size(batch, sizes, known):
  # An unknown batch gets such parts in forward-only graphs (a SavedModel's signatures).
  signature = [tf.TensorSpec([batch if known else None, 3])]
  cut = tf.function(lambda x: sharding.map_shards(part_size_of_each_row, (x, None), 2),
                    input_signature=signature)
  with sharding.forward_only():
    rows = cut(tf.zeros([batch, 3])).numpy()
  np.testing.assert_array_equal(rows, np.repeat(sizes, sizes))


@pytest.mark.parametrize("batch, sizes", [
    (0, []), (1, [1]), (2, [1, 1]), (3, [1, 1, 1]), (5, [2, 2, 1]), (200, [67, 67, 66])])
def test_unknown_batches_get_one_part_per_shard_padded_to_one_row_each(batch, sizes):
  cut = tf.function(lambda x: sharding.map_shards(part_size_of_each_row, (x, None), 3),
                    input_signature=[tf.TensorSpec([None, 3])])
  np.testing.assert_array_equal(cut(tf.zeros([batch, 3])), np.repeat(sizes, sizes))


@pytest.mark.parametrize("forward_only, control_flow", [(False, set()), (True, {"Case"})])
def test_only_forward_only_graphs_branch_on_an_unknown_batch(forward_only, control_flow):
  traced = tf.function(lambda x: sharding.map_shards(lambda part: part * 2.0, (x,), 2),
                       input_signature=[tf.TensorSpec([None, 3])])
  with sharding.forward_only() if forward_only else contextlib.nullcontext():
    graph = traced.get_concrete_function().graph
  branching = {"Case", "StatelessCase", "If", "StatelessIf"}
  found = {op.type for op in graph.get_operations()} & branching
  assert {"Case" if t.endswith("Case") else t for t in found} == control_flow


def test_unknown_batches_past_the_largest_count_get_larger_parts():
  cut = tf.function(lambda x: sharding.map_shards(part_size_of_each_row, (x, None), 2),
                    input_signature=[tf.TensorSpec([None, 3])])
  largest = 2 * sharding._UNKNOWN_BATCH_MULTIPLES[-1]
  with sharding.forward_only():
    rows = cut(tf.zeros([largest * sharding.PART_SIZE + largest, 3])).numpy()
  np.testing.assert_array_equal(rows, sharding.PART_SIZE + 1)


def test_unknown_batch_sizes_are_near_equal():
  np.testing.assert_array_equal(sharding.part_sizes(tf.constant(7), 3), [3, 2, 2])


@pytest.mark.parametrize("batch", [0, 1, 2, 5])
def test_unknown_batches_split_inside_a_function(batch):
  fn = tf.function(lambda x: sharding.map_shards(lambda part: part + 1.0, (x,), 3),
                   input_signature=[tf.TensorSpec([None, 2])])
  x = tf.reshape(tf.range(2.0 * batch), [batch, 2])
  np.testing.assert_array_equal(fn(x), x + 1.0)


@pytest.mark.parametrize("shards", [0, -1, 1.5, True, "2"])
def test_bad_shard_counts_are_rejected(shards):
  with pytest.raises(ValueError, match="batch_shards"):
    glow_tfp.Glow(tiny_config(), batch_shards=shards)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_sharded_model_gives_the_whole_batch_log_prob_and_gradients(num_classes):
  whole, sharded = twin_models(3, num_classes=num_classes)
  x = random_images((7,) + SHAPE, seed=1)
  labels = tf.constant([0, 1, 2, 0, 1, 2, 0]) if num_classes else None
  values, gradients = [], []
  for model in (whole, sharded):
    with tf.GradientTape() as tape:
      log_prob = model.log_prob(x, labels)
      loss = -tf.reduce_mean(log_prob)
    values.append(log_prob)
    gradients.append(tape.gradient(loss, model.trainable_variables))
  assert_close(values[1], values[0], rtol=1e-6)
  assert len(gradients[0]) == len(gradients[1])
  for a, b in zip(*gradients):
    assert_close(tf.convert_to_tensor(b), tf.convert_to_tensor(a), rtol=1e-4)


def test_sharded_model_samples_encodes_and_decodes_like_the_whole_batch():
  whole, sharded = twin_models(2)
  assert_close(sharded.sample(5, seed=4), whole.sample(5, seed=4), rtol=1e-5)
  x = random_images((5,) + SHAPE, seed=2)
  for a, b in zip(whole.encode(x), sharded.encode(x)):
    assert_close(b, a, rtol=1e-5)
  assert_close(sharded.decode(whole.encode(x)), x, rtol=5e-4)


@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize("forward_only", [False, True])
def test_sharded_log_prob_takes_any_batch_in_a_function_with_unknown_batch(batch,
                                                                             forward_only):
  whole, sharded = twin_models(4)
  fn = tf.function(sharded.log_prob, input_signature=[tf.TensorSpec((None,) + SHAPE)])
  x = random_images((batch,) + SHAPE, seed=3)
  with sharding.forward_only() if forward_only else contextlib.nullcontext():
    fn.get_concrete_function()
  assert_close(fn(x), whole.log_prob(x), rtol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_padding_rows_of_an_unknown_batch_add_nothing_to_the_gradients(batch):
  x = random_images((batch,) + SHAPE, seed=5)
  gradients = []
  for model in twin_models(4):
    def gradients_of(x, model=model):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(model.log_prob(x))
      return tape.gradient(loss, model.trainable_variables)
    traced = tf.function(gradients_of, input_signature=[tf.TensorSpec((None,) + SHAPE)])
    gradients.append(traced(x))
  for a, b in zip(*gradients):
    a, b = tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy()
    # Kernels at other batch sizes round differently; a padding row would add a whole
    # image's gradient.
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_one_part_traces_the_function_once_even_for_an_unknown_batch():
  calls = []

  def fn(part):
    calls.append(part)
    return part

  traced = tf.function(lambda x: sharding.map_shards(fn, (x,), 1),
                       input_signature=[tf.TensorSpec([None, 2])])
  traced.get_concrete_function()
  assert len(calls) == 1


@pytest.mark.parametrize("batch", [None, 7])
def test_parts_share_one_trace_of_the_function_in_a_graph(batch):
  calls = []

  def fn(part, nothing):
    calls.append((part.shape.as_list(), nothing))
    return part * 2.0

  traced = tf.function(lambda x: sharding.map_shards(fn, (x, None), 3),
                       input_signature=[tf.TensorSpec([batch, 2])])
  result = traced.get_concrete_function().structured_outputs
  assert calls == [([None, 2], None)]
  assert result.shape.as_list() == [batch, 2]
  x = tf.reshape(tf.range(14.0), [7, 2])
  np.testing.assert_array_equal(traced(x), x * 2.0)


@pytest.mark.parametrize("given, cores, plan", [
    ((None, None, None), 2, (1, 2, 2)),    # a 2-core CPU: a part per core, a thread per op
    ((None, None, None), 1, (0, 0, 1)),    # a GPU (or one core): whole batches, TF's threads
    ((None, None, 1), 2, (0, 0, 1)),       # one part restores TensorFlow's choice
    ((2, None, None), 4, (2, 4, 4)),       # an explicit thread count wins over the plan
    ((None, 0, 3), 2, (1, 0, 3)),
])
def test_cpu_plan_cuts_batches_per_core_unless_told_otherwise(given, cores, plan):
  assert sharding.cpu_plan(*given, cores=cores) == plan


def test_configure_threads_sizes_the_pools_of_a_fresh_process():
  code = ("from glow_tfp import sharding; import tensorflow as tf; "
          "plan = sharding.configure_threads(shards=3); "
          "print(plan, tf.config.threading.get_intra_op_parallelism_threads(), "
          "tf.config.threading.get_inter_op_parallelism_threads())")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert result.stdout.split("\n")[-2] == "(1, 3, 3) 1 3"


def test_configure_threads_after_the_first_operation_names_the_fix():
  tf.constant(1.0) + 1.0  # the pools are fixed from here on
  taken = tf.config.threading.get_intra_op_parallelism_threads()
  with pytest.raises(RuntimeError, match="call configure_threads before the first"):
    sharding.configure_threads(intra_op=taken + 7)
