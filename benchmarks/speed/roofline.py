"""How close each workload's convolutions come to the best convolution speed of this CPU.

The peak is measured, not taken from a data sheet: the fastest of a few calls of one large
3x3 convolution (batch 64, 28x28, 256 -> 256 channels, float32) after a warm-up call, in the
benchmark's own process and so under its oneDNN settings. A workload's convolution FLOPs
are counted from the architecture, the same for every system, so a system that runs a
network twice (as TFP's Glow does) gets no credit for the repeat:

  - a k x k convolution from a to b channels at h x w: 2 * h * w * k * k * a * b per image;
  - per step of flow at a level of h x w x c: the 1x1 invertible convolution (c -> c;
    none for a fixed permutation) and the coupling network, 3x3 (c - c//2 -> width),
    1x1 (width -> width), zero 3x3 (width -> 2 * (c//2) affine, c//2 additive);
  - per split: its prior's zero 3x3 (c - c//2 -> 2 * (c//2)); the top prior has no
    convolution;
  - log_prob and sampling run each convolution once; a training step counts 3x (the
    backward pass of a convolution costs about twice its forward: one product for the
    input gradient, one for the kernel gradient).

ActNorm, squeezes and the element-wise coupling are left out: they cost a few FLOPs per
element, where a convolution costs hundreds.
"""

import tensorflow as tf

from benchmarks.common import timing
from glow_tfp import layout

PEAK_BATCH = 64
PEAK_SIZE = 28
PEAK_CHANNELS = 256
PASSES = {"train": 3, "log_prob": 1, "sample": 1}


def conv_flops(height, width, kernel_size, in_channels, out_channels):
  """FLOPs of one stride-1 "SAME" convolution of one image (a multiply-add is 2)."""
  return 2 * height * width * kernel_size * kernel_size * in_channels * out_channels


def convolutions(config):
  """[(name, kernel_size, in_channels, out_channels, height, width, count)] of one pass,
  as counted above: per step of flow the channel mixing and the coupling network's three;
  per split its prior."""
  rows = []
  levels = layout.LatentLayout.from_config(config).levels
  for index, level in enumerate(levels):
    height, width, channels = level.shape
    kept, transformed = channels - channels // 2, channels // 2
    outputs = 2 * transformed if config.coupling == "affine" else transformed
    hidden = config.hidden_channels
    at_steps = (height, width, config.steps_per_level)
    if config.permutation in ("lu", "conv"):
      rows.append((f"level {index} mixing", 1, channels, channels) + at_steps)
    rows += [(f"level {index} coupling in", 3, kept, hidden) + at_steps,
             (f"level {index} coupling hidden", 1, hidden, hidden) + at_steps,
             (f"level {index} coupling out", 3, hidden, outputs) + at_steps]
    if index < len(levels) - 1:
      rows.append((f"level {index} split prior", 3, kept, 2 * transformed, height, width, 1))
  return rows


def forward_flops_per_image(config):
  """Convolution FLOPs of one pass through the flow for one image, as counted above."""
  return sum(count * conv_flops(height, width, size, a, b)
             for _, size, a, b, height, width, count in convolutions(config))


def workload_flops_per_image(config, workload):
  """Convolution FLOPs per image of one call of `workload` ("train", "log_prob", "sample")."""
  return PASSES[workload] * forward_flops_per_image(config)


def peak_conv_flops(batch=PEAK_BATCH, size=PEAK_SIZE, channels=PEAK_CHANNELS, calls=5):
  """FLOP/s of the fastest of `calls` calls of one large 3x3 convolution, after a warm-up."""
  x = tf.random.stateless_normal([batch, size, size, channels], [0, 0])
  kernel = tf.random.stateless_normal([3, 3, channels, channels], [0, 1]) * 0.05
  conv = tf.function(lambda: tf.nn.conv2d(x, kernel, strides=1, padding="SAME"))
  conv().numpy()  # oneDNN builds its kernel on the first call.
  seconds = min(timing.seconds_per_call(conv, 1) for _ in range(calls))
  return batch * conv_flops(size, size, 3, channels, channels) / seconds
