"""A PyTorch Glow timed beside glow_tfp: the child process that
`benchmarks.speed.torch_client` runs.

Runs under a separate Python that has torch (not the project's environment, which has
neither torch nor absl, hence argparse), as a script:

  /path/to/torch/python benchmarks/speed/torch_peer.py --glow_dir=DIR --config='<GlowConfig JSON>'

It imports `model.py` from --glow_dir (a checkout of rosinality/glow-pytorch: eager
PyTorch, affine coupling, LU 1x1 convolution, ActNorm, learned split priors), builds its
Glow at the architecture of --config, initialises the ActNorms on one batch, and then
serves `benchmarks.speed.peer_protocol`; its first line is {"parameters", "torch", "threads"}.
"""

import argparse
import functools
import importlib.util
import json
import os

import numpy as np
import peer_protocol  # benchmarks/speed/peer_protocol.py: this script's directory is on the path.
import torch


def _load_model_module(glow_dir):
  path = os.path.join(glow_dir, "model.py")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--glow_dir must hold rosinality/glow-pytorch's model.py; "
                            f"there is no {path}.")
  spec = importlib.util.spec_from_file_location("glow_pytorch_model", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def build(model_module, config):
  """The peer's Glow at `config` (a GlowConfig as a dict): L blocks of K flows, our width."""
  if config["coupling"] != "affine" or config["permutation"] not in ("lu", "conv"):
    raise ValueError("The PyTorch peer has affine coupling with an LU or plain 1x1 "
                     f"convolution only; got coupling={config['coupling']!r}, "
                     f"permutation={config['permutation']!r}.")
  # Its Flow builds AffineCoupling with the default width (512) and offers no argument to
  # change it: hand Flow a coupling with our width bound while the model is built.
  coupling = model_module.AffineCoupling
  model_module.AffineCoupling = functools.partial(coupling,
                                                  filter_size=config["hidden_channels"])
  try:
    return model_module.Glow(config["image_shape"][2], config["steps_per_level"],
                             config["levels"], affine=True,
                             conv_lu=config["permutation"] == "lu")
  finally:
    model_module.AffineCoupling = coupling


def parameter_count(net):
  """Trainable numbers, less the LU factors' entries that the peer masks out.

  Its LU convolution keeps full C x C matrices for L and U and multiplies them by
  triangular masks, so half of each is a parameter that never changes; counting it would
  make the peer look twice the size of the same architecture elsewhere.
  """
  total = sum(p.numel() for p in net.parameters())
  for module in net.modules():
    if hasattr(module, "l_mask") and hasattr(module, "u_mask"):
      total -= module.l_mask.numel() - int(module.l_mask.sum())
      total -= module.u_mask.numel() - int(module.u_mask.sum())
  return total


def images(batch, config, seed):
  """Model-space images in [-0.5, 0.5), channels first as the peer expects."""
  height, width, channels = config["image_shape"]
  generator = torch.Generator().manual_seed(seed)
  return torch.rand(batch, channels, height, width, generator=generator) - 0.5


def log_prob(net, x):
  log_p, log_det, _ = net(x)
  return log_p + log_det


class Workloads:
  """The three workloads over fixed inputs, as glow_tfp's are (benchmarks.common.workloads)."""

  def __init__(self, net, config, batches, learning_rate):
    self._net = net
    self._train_x = images(batches["train"], config, seed=1)
    self._log_prob_x = images(batches["log_prob"], config, seed=2)
    self._optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    with torch.no_grad():  # the peer's ActNorms initialise on their first batch.
      _, _, latents = net(images(batches["train"], config, seed=0))
    self._latent_shapes = [(batches["sample"],) + tuple(z.shape[1:]) for z in latents]

  def train(self):
    loss = -log_prob(self._net, self._train_x).mean()
    self._optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self._optimizer.step()

  def log_prob(self):
    with torch.no_grad():
      log_prob(self._net, self._log_prob_x)

  def sample(self):
    with torch.no_grad():
      self._net.reverse([torch.randn(shape) for shape in self._latent_shapes])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--glow_dir", required=True, help="Checkout holding model.py.")
  parser.add_argument("--config", required=True, help="The GlowConfig, as JSON.")
  parser.add_argument("--batches", required=True,
                      help='JSON {"train": N, "log_prob": N, "sample": N}.')
  parser.add_argument("--learning_rate", type=float, required=True)
  parser.add_argument("--threads", type=int, required=True)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  peer_protocol.run_child(functools.partial(start, args))


def start(args):
  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  model_module = _load_model_module(args.glow_dir)
  np.random.seed(args.seed)  # its LU convolutions draw their start from numpy.
  config = json.loads(args.config)
  net = build(model_module, config)
  workloads = Workloads(net, config, json.loads(args.batches), args.learning_rate)
  return ({"parameters": parameter_count(net), "torch": torch.__version__,
           "threads": torch.get_num_threads()}, workloads)


if __name__ == "__main__":
  main()
