"""The systems compared: glow_tfp and TFP's own `tfb.Glow`, at one matched architecture.

A `System` names a model family, whether its functions are XLA-compiled, keyword options
for the glow_tfp model (`reversible_gradients`, `compute_dtype`, and, apart, `batch_parts`) and, for a
system that needs its own TensorFlow thread settings, those settings: such a system runs in
a child process (`benchmarks.speed.tf_peer`), as thread pools are per process.
`build(system, config)` returns an object with `log_prob(x)`, `sample(n)`, `initialize(x)` and
`trainable_variables`, whichever the family.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

import glow_tfp
from glow_tfp import execution
from benchmarks.common import workloads

tfb = tfp.bijectors
tfd = tfp.distributions

FAMILIES = ("glow_tfp", "tfp")
CORES = os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class System:
  """One way of running a model: `family` ("glow_tfp" or "tfp"), XLA or not, options."""

  name: str
  family: str
  jit_compile: bool = False
  options: tuple = ()  # (keyword, value) pairs passed to glow_tfp.Glow
  batch_parts: int = 1  # parts of each batch run side by side (glow_tfp.execution)
  threads: tuple = ()  # (intra_op, inter_op) threads of its own process; () for the parent's

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"System.family must be one of {FAMILIES}; got {self.family!r}.")
    if self.options and self.family != "glow_tfp":
      raise ValueError(f"System {self.name!r}: options apply to glow_tfp only; "
                       f"got {self.options!r}.")


SYSTEMS = {s.name: s for s in (
    System("glow_tfp", "glow_tfp"),
    System("glow_tfp_xla", "glow_tfp", jit_compile=True),
    System("tfp", "tfp"),
    System("tfp_xla", "tfp", jit_compile=True),
    System("glow_tfp_reversible", "glow_tfp", options=(("reversible_gradients", True),)),
    System("glow_tfp_bf16", "glow_tfp", options=(("compute_dtype", "bfloat16"),)),
    # One part of each batch per core, one thread per op, one op per core at once: the
    # narrow convolutions of the coupling networks keep every core busy this way.
    System("glow_tfp_cores", "glow_tfp", batch_parts=CORES, threads=(1, CORES)),
)}


class TfpGlow(tf.Module):
  """TFP's `tfb.Glow` at the architecture of a `glow_tfp.GlowConfig`, under N(0, 1).

  Same image shape, levels L, steps per level K, coupling-network width and coupling kind;
  TFP's own default networks (`GlowDefaultNetwork`: conv3x3 -> ReLU -> conv1x1 -> ReLU ->
  zero conv3x3, with biases; `GlowDefaultExitNetwork` at each split) and its LU 1x1
  convolution and ActNorm. TFP has no learned top prior and no ActNorm inside the network
  (biases instead), so the parameter counts differ by about 1%; the benchmark prints both.

  Args:
    config: `glow_tfp.GlowConfig` with permutation "lu" and num_classes 0 (what TFP offers).
    seed: integer seed of TFP's 1x1 convolutions.
  """

  def __init__(self, config, seed=0, name=None):
    super().__init__(name=name or "tfp_glow")
    if config.permutation != "lu" or config.num_classes:
      raise ValueError("TFP's Glow has only the LU 1x1 convolution and no classes; got "
                       f"permutation={config.permutation!r}, num_classes={config.num_classes}.")
    width = config.hidden_channels
    networks = {"affine": lambda shape: tfb.GlowDefaultNetwork(shape, num_hidden=width),
                "additive": lambda shape: _additive_network(shape, width)}
    self.bijector = tfb.Glow(
        output_shape=config.image_shape, num_glow_blocks=config.levels,
        num_steps_per_block=config.steps_per_level,
        coupling_bijector_fn=networks[config.coupling],
        exit_bijector_fn=tfb.GlowDefaultExitNetwork, seed=seed)
    base_shape = self.bijector.inverse_event_shape(config.image_shape)
    self.distribution = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(0.0, 1.0), base_shape), self.bijector)

  def initialize(self, x):
    """TFP's ActNorms initialise themselves from the first batch they see: show them `x`."""
    self.distribution.log_prob(x)

  def log_prob(self, x):
    return self.distribution.log_prob(x)

  def sample(self, n):
    return self.distribution.sample(n)


def _additive_network(input_shape, width):
  """`GlowDefaultNetwork` with C outputs instead of 2C, which TFP's Glow reads as additive."""
  zeros = tf_keras.initializers.zeros()
  return tf_keras.Sequential([
      tf_keras.layers.Input(shape=input_shape),
      tf_keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                             kernel_initializer=tf_keras.initializers.he_normal()),
      tf_keras.layers.Conv2D(width, 1, padding="same", activation="relu",
                             kernel_initializer=tf_keras.initializers.he_normal()),
      tf_keras.layers.Conv2D(input_shape[-1], 3, padding="same", kernel_initializer=zeros,
                             bias_initializer=zeros),
  ])


def build(system, config, seed=0):
  """The model of `system` at `config`: a `glow_tfp.Glow` or a `TfpGlow`."""
  if system.family == "tfp":
    return TfpGlow(config, seed=seed)
  model = glow_tfp.Glow(config, seed=seed, **dict(system.options))
  return InParts(model, system.batch_parts) if system.batch_parts > 1 else model


class InParts:
  """A `glow_tfp.Glow` whose workloads cut each batch into `parts` parts run side by side,
  as the training step and the export do (`glow_tfp.execution`); the rest is the model's."""

  def __init__(self, model, parts):
    self.model, self.parts = model, parts

  def __getattr__(self, name):
    return getattr(self.model, name)

  def log_prob(self, x):
    return execution.map_parts(self.model.log_prob, (x, None), self.parts)

  def sample(self, n):
    z = self.model.sample_base(n)
    return execution.map_parts(self.model.generate, (z, None), self.parts)


def build_initialized(system, arch):
  """`build` at `arch`'s config, its ActNorms initialised on a synthetic training batch."""
  model = build(system, arch.config)
  model.initialize(workloads.synthetic_images(arch.train_batch, arch.config.image_shape))
  return model


def parameter_count(model):
  return int(sum(np.prod(v.shape) for v in model.trainable_variables))
