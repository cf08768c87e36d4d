"""The benchmarked architectures: a `GlowConfig` and the batch size of each workload."""

import dataclasses

import glow_tfp


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A model to benchmark and the batch sizes of its three workloads."""

  config: glow_tfp.GlowConfig
  train_batch: int
  log_prob_batch: int = 256
  sample_batch: int = 64

  def replace(self, **config_changes):
    """A copy whose config has `config_changes` applied."""
    return dataclasses.replace(self, config=self.config.replace(**config_changes))


# The two architectures the speed comparison with TFP's Glow times: CIFAR-10-sized and
# MNIST-sized.
ARCHITECTURES = {
    "32x32x3": Architecture(glow_tfp.GlowConfig(image_shape=(32, 32, 3), levels=3,
                                                steps_per_level=8, hidden_channels=256),
                            train_batch=16),
    "28x28x1": Architecture(glow_tfp.GlowConfig(image_shape=(28, 28, 1), levels=2,
                                                steps_per_level=4, hidden_channels=128),
                            train_batch=64),
}
