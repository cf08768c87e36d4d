"""train.plot: where the curve goes. (Drawing it: tests/test_train_loop.py.)"""

from train import plot


def test_curve_goes_next_to_the_results_by_default():
  assert plot.curve_path("runs/a/results.json") == "runs/a/bits_per_dim.png"


def test_explicit_curve_path_is_kept():
  assert plot.curve_path("runs/a/results.json", "elsewhere/curve.png") == "elsewhere/curve.png"
