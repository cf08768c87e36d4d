"""glow_tfp.training.optimizer: Adam/Adamax equal to the Keras updates, and a vetoed update
changes nothing."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from glow_tfp.training import optimizer as optimizer_lib
from tests.checks import assert_close

_GRADIENTS = [[0.3, -1.2, 0.05], [2.0, 0.0, -0.7], [-0.4, 0.9, 1.5]]


@pytest.mark.parametrize("kind, reference", [("adam", tf_keras.optimizers.Adam),
                                             ("adamax", tf_keras.optimizers.Adamax)])
def test_updates_equal_the_keras_optimizer(kind, reference):
  ours, theirs = tf.Variable([1.0, 2.0, 3.0]), tf.Variable([1.0, 2.0, 3.0])
  optimizer = optimizer_lib.Optimizer([ours], kind, epsilon=1e-7)
  keras_optimizer = reference(learning_rate=0.01, epsilon=1e-7)
  for gradient in _GRADIENTS:
    optimizer.apply([tf.constant(gradient)], 0.01)
    keras_optimizer.apply_gradients([(tf.constant(gradient), theirs)])
  assert_close(ours.numpy(), theirs.numpy(), rtol=1e-6)
  assert int(optimizer.iterations.numpy()) == len(_GRADIENTS)


def test_vetoed_update_leaves_variables_moments_and_count_unchanged():
  variable = tf.Variable([1.0, 2.0])
  optimizer = optimizer_lib.Optimizer([variable], "adam")
  optimizer.apply([tf.constant([0.5, -0.5])], 0.1)
  before = [v.numpy().copy() for v in (variable, *optimizer.first_moments,
                                       *optimizer.second_moments)]
  optimizer.apply([tf.constant([np.nan, np.inf])], 0.1, apply=tf.constant(False))
  after = [v.numpy() for v in (variable, *optimizer.first_moments, *optimizer.second_moments)]
  for b, a in zip(before, after):
    np.testing.assert_array_equal(a, b)
  assert int(optimizer.iterations.numpy()) == 1


def test_unknown_kind_is_rejected():
  with pytest.raises(ValueError, match="`kind` must be one of"):
    optimizer_lib.Optimizer([tf.Variable(1.0)], "sgd")
