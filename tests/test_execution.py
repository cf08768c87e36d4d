import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import glow_tfp
from glow_tfp import execution
from tests.checks import assert_close, part_size_of_each_row, perturb, random_images
from tests.test_flow import SHAPE, tiny_config


def perturbed_model(**config_changes):
  """An initialised model moved off its initial values."""
  config = tiny_config(**config_changes)
  labels = tf.range(4) % config.num_classes if config.num_classes else None
  model = glow_tfp.Glow(config, seed=3)
  model.initialize(random_images((4,) + SHAPE, seed=0), labels)
  perturb(model, scale=0.05, seed=0)
  return model


@pytest.mark.parametrize("batch, parts, sizes", [
    (7, 3, [3, 2, 2]), (6, 2, [3, 3]), (2, 4, [1, 1]), (1, 2, [1]), (5, 1, [5])])
def test_known_batches_split_into_near_equal_nonempty_parts(batch, parts, sizes):
  x = tf.reshape(tf.range(2.0 * batch), [batch, 2])
  seen = []

  def fn(part, nothing):
    seen.append((part.shape[0], nothing))
    return part * 2.0

  np.testing.assert_array_equal(execution.map_parts(fn, (x, None), parts), x * 2.0)
  assert seen == [(size, None) for size in sizes]


@pytest.mark.parametrize("batch, parts, count", [
    (0, 2, 1), (1, 2, 1), (3, 4, 3), (64, 2, 2), (65, 2, 4), (256, 2, 8), (257, 2, 10),
    (100, 3, 6), (100, 1, 4)])
def test_part_count_keeps_parts_within_part_size_in_multiples_of_parts(batch, parts, count):
  assert execution.part_count(batch, parts) == count


@pytest.mark.parametrize("batch, sizes", [
    (1, [1]), (3, [2, 1]), (64, [32, 32]), (65, [17, 16, 16, 16]), (200, [25] * 8)])
@pytest.mark.parametrize("known", [True, False])
def test_graphs_cut_large_batches_into_parts_of_at_most_part_size(batch, sizes, known):
  # An unknown batch gets such parts in graphs never differentiated (a SavedModel's signatures).
  signature = [tf.TensorSpec([batch if known else None, 3])]
  cut = tf.function(lambda x: execution.map_parts(part_size_of_each_row, (x, None), 2,
                                                  differentiable=False),
                    input_signature=signature)
  rows = cut(tf.zeros([batch, 3])).numpy()
  np.testing.assert_array_equal(rows, np.repeat(sizes, sizes))


@pytest.mark.parametrize("batch, sizes", [
    (0, []), (1, [1]), (2, [1, 1]), (3, [1, 1, 1]), (5, [2, 2, 1]), (200, [67, 67, 66])])
def test_unknown_batches_get_exactly_their_parts_padded_to_one_row_each(batch, sizes):
  cut = tf.function(lambda x: execution.map_parts(part_size_of_each_row, (x, None), 3),
                    input_signature=[tf.TensorSpec([None, 3])])
  np.testing.assert_array_equal(cut(tf.zeros([batch, 3])), np.repeat(sizes, sizes))


@pytest.mark.parametrize("differentiable, control_flow", [(True, set()), (False, {"Case"})])
def test_only_graphs_never_differentiated_branch_on_an_unknown_batch(differentiable,
                                                                    control_flow):
  traced = tf.function(lambda x: execution.map_parts(lambda part: part * 2.0, (x,), 2,
                                                     differentiable=differentiable),
                       input_signature=[tf.TensorSpec([None, 3])])
  graph = traced.get_concrete_function().graph
  branching = {"Case", "StatelessCase", "If", "StatelessIf"}
  found = {op.type for op in graph.get_operations()} & branching
  assert {"Case" if t.endswith("Case") else t for t in found} == control_flow


def test_unknown_batches_past_the_largest_count_get_larger_parts():
  cut = tf.function(lambda x: execution.map_parts(part_size_of_each_row, (x, None), 2,
                                                  differentiable=False),
                    input_signature=[tf.TensorSpec([None, 3])])
  largest = 2 * execution._UNKNOWN_BATCH_MULTIPLES[-1]
  rows = cut(tf.zeros([largest * execution.PART_SIZE + largest, 3])).numpy()
  np.testing.assert_array_equal(rows, execution.PART_SIZE + 1)


def test_unknown_batch_sizes_are_near_equal():
  np.testing.assert_array_equal(execution.part_sizes(tf.constant(7), 3), [3, 2, 2])


@pytest.mark.parametrize("batch", [0, 1, 2, 5])
def test_unknown_batches_split_inside_a_function(batch):
  fn = tf.function(lambda x: execution.map_parts(lambda part: part + 1.0, (x,), 3),
                   input_signature=[tf.TensorSpec([None, 2])])
  x = tf.reshape(tf.range(2.0 * batch), [batch, 2])
  np.testing.assert_array_equal(fn(x), x + 1.0)


@pytest.mark.parametrize("parts", [0, -1, 1.5, True, "2"])
def test_bad_part_counts_are_rejected(parts):
  with pytest.raises(ValueError, match="`batch_parts` must be an integer >= 1"):
    execution.check_batch_parts(parts)


def test_unset_part_counts_take_the_default():
  assert execution.resolve_batch_parts(None) == execution.default_batch_parts() >= 1
  assert execution.resolve_batch_parts(3) == 3


@pytest.mark.parametrize("num_classes", [0, 3])
def test_parts_give_the_whole_batch_log_prob_and_gradients(num_classes):
  model = perturbed_model(num_classes=num_classes)
  x = random_images((7,) + SHAPE, seed=1)
  labels = tf.constant([0, 1, 2, 0, 1, 2, 0]) if num_classes else None
  values, gradients = [], []
  for parts in (1, 3):
    with tf.GradientTape() as tape:
      log_prob = execution.map_parts(model.log_prob, (x, labels), parts)
      loss = -tf.reduce_mean(log_prob)
    values.append(log_prob)
    gradients.append(tape.gradient(loss, model.trainable_variables))
  assert_close(values[1], values[0], rtol=1e-6)
  assert len(gradients[0]) == len(gradients[1])
  for a, b in zip(*gradients):
    assert_close(tf.convert_to_tensor(b), tf.convert_to_tensor(a), rtol=1e-4)


@pytest.mark.parametrize("in_graph", [False, True])
def test_parts_sample_encode_and_decode_like_the_whole_batch(in_graph):
  model = perturbed_model()
  run = tf.function if in_graph else (lambda fn: fn)
  z = model.sample_base(5, seed=4)
  sample = run(lambda z: execution.map_parts(model.generate, (z, None), 2))
  assert_close(sample(z), model.sample(5, seed=4), rtol=1e-5)
  x = random_images((5,) + SHAPE, seed=2)
  latents = run(lambda x: execution.map_parts(model.encode, (x, None), 2))(x)
  for a, b in zip(model.encode(x), latents):
    assert_close(b, a, rtol=1e-5)
  decode = run(lambda *z: execution.map_parts(lambda *z: model.decode(z), z, 2))
  assert_close(decode(*model.encode(x)), x, rtol=5e-4)


@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize("differentiable", [True, False])
def test_log_prob_in_parts_takes_any_batch_in_a_function_with_unknown_batch(batch,
                                                                          differentiable):
  model = perturbed_model()
  fn = tf.function(lambda x: execution.map_parts(model.log_prob, (x, None), 4,
                                                 differentiable=differentiable),
                   input_signature=[tf.TensorSpec((None,) + SHAPE)])
  x = random_images((batch,) + SHAPE, seed=3)
  assert_close(fn(x), model.log_prob(x), rtol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_padding_rows_of_an_unknown_batch_add_nothing_to_the_gradients(batch):
  x = random_images((batch,) + SHAPE, seed=5)
  model = perturbed_model()
  gradients = []
  for parts in (1, 4):
    def gradients_of(x, parts=parts):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(execution.map_parts(model.log_prob, (x, None), parts))
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

  traced = tf.function(lambda x: execution.map_parts(fn, (x,), 1),
                       input_signature=[tf.TensorSpec([None, 2])])
  traced.get_concrete_function()
  assert len(calls) == 1


@pytest.mark.parametrize("batch", [None, 7])
def test_parts_share_one_trace_of_the_function_in_a_graph(batch):
  calls = []

  def fn(part, nothing):
    calls.append((part.shape.as_list(), nothing))
    return part * 2.0

  traced = tf.function(lambda x: execution.map_parts(fn, (x, None), 3),
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
  assert execution.cpu_plan(*given, cores=cores) == plan


def test_configure_threads_sizes_the_pools_of_a_fresh_process():
  code = ("from glow_tfp import execution; import tensorflow as tf; "
          "plan = execution.configure_threads(batch_parts=3); "
          "print(plan, tf.config.threading.get_intra_op_parallelism_threads(), "
          "tf.config.threading.get_inter_op_parallelism_threads())")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert result.stdout.split("\n")[-2] == "(1, 3, 3) 1 3"


def test_configure_threads_after_the_first_operation_names_the_fix():
  tf.constant(1.0) + 1.0  # the pools are fixed from here on
  taken = tf.config.threading.get_intra_op_parallelism_threads()
  with pytest.raises(RuntimeError, match="call configure_threads before the first"):
    execution.configure_threads(intra_op=taken + 7)


def _python(code, **environment):
  env = {k: v for k, v in os.environ.items() if k != execution.ONEDNN_VARIABLE}
  env.update(environment)
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        check=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_importing_the_library_sets_no_environment_and_loads_no_tensorflow():
  code = ("import os, sys; before = dict(os.environ); import glow_tfp; "
          "from glow_tfp import execution; "
          "print(dict(os.environ) == before, 'tensorflow' in sys.modules)")
  assert _python(code).stdout.split()[-2:] == ["True", "False"]


@pytest.mark.parametrize("given, expected", [(None, "1"), ("0", "0"), ("1", "1")])
def test_prefer_onednn_turns_onednn_on_unless_the_user_turned_it_off(given, expected):
  code = ("import os; from glow_tfp import execution; execution.prefer_onednn(); "
          "print(os.environ['TF_ENABLE_ONEDNN_OPTS'])")
  environment = {} if given is None else {execution.ONEDNN_VARIABLE: given}
  assert _python(code, **environment).stdout.split()[-1] == expected
