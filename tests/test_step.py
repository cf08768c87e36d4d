"""train.engine.step: where the loss and gradients are compiled with XLA. (The step itself trains in
tests/test_train_loop.py and tests/test_train_distributed.py.)"""

import pytest
import tensorflow as tf

from train.engine import step


@pytest.mark.parametrize("explicit", [True, False])
def test_explicit_jit_compile_is_kept(explicit):
  assert step.resolve_jit_compile(explicit) is explicit


@pytest.mark.skipif(bool(tf.config.list_logical_devices("GPU")), reason="a GPU is visible")
def test_unset_jit_compile_is_off_on_a_cpu_only_machine():
  assert step.resolve_jit_compile(None) is False
