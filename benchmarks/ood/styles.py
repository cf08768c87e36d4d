"""Style classes: each class's images split into k-means clusters of a model's top latents.

A digit comes in styles (a 7 with and without a bar, a slanted or an upright 1). Class
M * y + k is style k of class y: the k-th of M k-means clusters of class y's top latents
(`glow_tfp.ood.top_latents`, `glow_tfp.ood.class_clusters`), as the templates of
`glow_tfp.ood.fit_templates` are. A model trained conditional on the style classes
(`benchmarks.ood.style_classes`) has a top prior with M components per class, each fitted
to its own images.
"""

import numpy as np

from glow_tfp import ood


class StyleClasses:
  """The k-means clusters of each class's latents, `per_class` of them (fewer where a class
  has fewer images); `labels` maps latents of known class to their style classes."""

  def __init__(self, latents, labels, per_class, seed=0):
    if per_class < 1:
      raise ValueError(f"per_class must be >= 1; instead, it is {per_class}.")
    labels = np.asarray(labels)
    if len(latents) != len(labels):
      raise ValueError(f"{len(latents)} latents but {len(labels)} labels.")
    self.per_class = per_class
    self._clusters = ood.class_clusters(np.asarray(latents, np.float64), labels, per_class,
                                        seed)

  @property
  def num_classes(self):
    """The number of style classes: per_class for each class up to the largest seen."""
    return self.per_class * (max(self._clusters) + 1)

  def labels(self, latents, labels):
    """int32 [N]: style class per_class * y + k of each latent of class y, k its nearest
    cluster centre of class y."""
    labels = np.asarray(labels)
    unseen = sorted(set(labels.tolist()) - set(self._clusters))
    if unseen:
      raise ValueError(f"No clusters for classes {unseen}: no training latent had them.")
    styles = np.empty(len(labels), np.int32)
    for label, clusters in self._clusters.items():
      members = labels == label
      if members.any():
        styles[members] = self.per_class * label + clusters.predict(_flat(latents[members]))
    return styles


def _flat(latents):
  return np.asarray(latents, np.float64).reshape(len(latents), -1)
