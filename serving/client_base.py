"""What the REST and gRPC clients share: their error, and Glow's signatures over `predict`.

This module defines no flags, so the gRPC client can import it while `python -m
serving.client` runs without defining that program's flags a second time.
"""

import numpy as np


class ServingError(Exception):
  """An error answer from the server: `status` is the HTTP status or the gRPC code's name."""

  def __init__(self, status, message):
    super().__init__(f"{'HTTP ' if isinstance(status, int) else ''}{status}: {message}")
    self.status = status


class GlowSignatures:
  """Glow's log_prob, score and sample, for a client that has `predict(inputs,
  signature_name)`."""

  def log_prob(self, images, labels=None):
    """uint8 images [N, H, W, C] -> {"log_likelihood": nats [N], "bits_per_dim": [N]}."""
    return self.predict(_image_inputs(images, labels), "log_prob")

  def score(self, images):
    """uint8 images [N, H, W, C] -> the `score` signature's outputs by name: `is_ood` a bool
    array [N] (a JSON boolean over REST, DT_BOOL over gRPC), the others float32 [N]."""
    outputs = self.predict(_image_inputs(images, None), "score")
    return {name: np.asarray(value, bool if name == "is_ood" else np.float32)
            for name, value in outputs.items()}

  def sample(self, num_samples, temperature=1.0, seed=0, labels=None):
    """uint8 samples [num_samples, H, W, C], the same for the same seed."""
    inputs = {"num_samples": np.int32(num_samples), "temperature": np.float32(temperature),
              "seed": np.int64(seed)}
    if labels is not None:
      inputs["labels"] = np.asarray(labels, np.int32)
    (samples,) = self.predict(inputs, "sample").values()  # its one output, whatever named.
    return np.asarray(samples).astype(np.uint8)


def _image_inputs(images, labels):
  inputs = {"images": np.asarray(images, np.uint8)}
  if labels is not None:
    inputs["labels"] = np.asarray(labels, np.int32)
  return inputs
