"""Timing of the 1x1 convolution in LU form against the plain matrix, alternating the two.

- log-det: log|det W| and its gradient, one `tf.function` call (O(C) in LU form; a QR
  decomposition, O(C^3), for the plain matrix);
- step: an Adam training step of one step of flow (ActNorm -> 1x1 conv -> affine coupling)
  on a [batch, spatial, spatial, C] input.
"""

import tensorflow as tf
import tf_keras

from benchmarks.common import report
from benchmarks.common import timing
from glow_tfp import bijectors

# A log-det call takes microseconds: many calls per repeat keep the clock's resolution and
# the scheduler's jitter small against it.
_LOG_DET_CALLS = 200
_STEP_CALLS = 3
_FORMS = {"lu": True, "conv": False}


def log_det_fn(conv):
  """log|det W| and its gradient with respect to the convolution's variables."""
  variables = conv.trainable_variables

  @tf.function
  def fn():
    with tf.GradientTape() as tape:
      log_det = conv.log_abs_det_weight()
    return log_det, tape.gradient(log_det, variables)

  return fn


def flow_step_fn(channels, lu, hidden_channels, x):
  """An Adam step on -mean(log N(z; 0, 1) + log-det) through one step of flow."""
  flow = bijectors.Sequential([
      bijectors.ActNorm(channels),
      bijectors.Invertible1x1Conv(channels, lu=lu, seed=0),
      bijectors.Coupling(channels, hidden_channels, seed=1)])
  flow.initialize_inverse(x)
  optimizer = tf_keras.optimizers.Adam(1e-4)
  variables = flow.trainable_variables

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      z, log_det = flow.inverse_and_log_det(x)
      loss = tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(z), axis=[1, 2, 3]) - log_det)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return step


def measure(channels, hidden_channels, batch_size, spatial, repeats):
  """{C: {"log_det_us": {form: median}, "step_ms": {form: median}, ratios plain / LU}}.

  "log_det_us" also holds "call_overhead", an empty `tf.function` timed alongside.
  """
  results = {}
  for c in channels:
    x = tf.random.stateless_normal([batch_size, spatial, spatial, c], [c, 0])
    log_dets = {form: log_det_fn(bijectors.Invertible1x1Conv(c, lu=lu, seed=0))
                for form, lu in _FORMS.items()}
    log_dets["call_overhead"] = tf.function(lambda: tf.constant(0.0))
    steps = {form: flow_step_fn(c, lu, hidden_channels, x) for form, lu in _FORMS.items()}
    for fn in list(log_dets.values()) + list(steps.values()):
      fn()  # trace outside the timed rounds
    log_det_s = timing.alternate(log_dets, repeats, _LOG_DET_CALLS)
    step_s = timing.alternate(steps, repeats, _STEP_CALLS)
    results[c] = {
        "log_det_us": {f: 1e6 * timing.median(s) for f, s in log_det_s.items()},
        "step_ms": {f: 1e3 * timing.median(s) for f, s in step_s.items()},
        "log_det_conv_over_lu": timing.paired_ratio(log_det_s["conv"], log_det_s["lu"]),
        "step_conv_over_lu": timing.paired_ratio(step_s["conv"], step_s["lu"]),
    }
  return results


def markdown(results):
  """The Markdown report of `measure`'s results (under "channels") with their context."""
  lines = ["# 1x1 convolution: LU form vs plain matrix", ""] + report.environment_lines(
      results["environment"])
  lines += ["", _settings_text(results), ""]
  rows = [[c, f"{r['log_det_us']['lu']:.0f}", f"{r['log_det_us']['conv']:.0f}",
           f"{r['log_det_conv_over_lu']:.2f}x", f"{r['step_ms']['lu']:.1f}",
           f"{r['step_ms']['conv']:.1f}", f"{r['step_conv_over_lu']:.2f}x"]
          for c, r in results["channels"].items()]
  return lines + report.table(["C", "log-det LU (us)", "log-det plain (us)", "plain / LU",
                               "step LU (ms)", "step plain (ms)", "plain / LU"], rows)


def _settings_text(results):
  s = results["settings"]
  overhead = max(r["log_det_us"]["call_overhead"] for r in results["channels"].values())
  return (f"log-det: log|det W| and its gradient, one `tf.function` call (an empty "
          f"`tf.function` call takes up to {overhead:.0f} us here). Step: Adam step of "
          f"ActNorm -> 1x1 conv -> affine coupling (width {s['hidden_channels']}) on "
          f"[{s['batch_size']}, {s['spatial']}, {s['spatial']}, C]. Medians of "
          f"{s['repeats']} alternating repeats; ratios are medians of per-repeat ratios.")
