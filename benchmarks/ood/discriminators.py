"""Small convolutional networks that tell training images from other images: the
discriminative peers of `glow_tfp.ood`'s score (`python -m benchmarks.ood.separability`).

`PEERS`, each scored by its logit on held-out images and on each source of
`train.ood_sources`:
  supervised        one network per source, trained against that source generated afresh
                    from the training images;
  outlier_exposure  one network for every source, trained against `glow_tfp.negatives`
                    (Hendrycks et al., ICLR 2019), never a source;
  near_miss_exposure  outlier exposure with near misses: one network per near-OOD source,
                    trained against the other near-OOD sources made from the training
                    images and the generic negatives, never the source it is measured on
                    (one network, with every near-OOD source, for the other groups).
"""

import numpy as np
import tf_keras

from benchmarks.common import report
from glow_tfp import negatives
from glow_tfp import ood
from train.ood_sources import NEAR_OOD, generate, group

PEERS = ("supervised", "outlier_exposure", "near_miss_exposure")


def network(image_shape):
  """Two 3x3 convolutions, max pooling, a third convolution, pooling, a 128-unit hidden
  layer with dropout, one logit: log-odds that an image is not of the training data."""
  layers = tf_keras.layers
  return tf_keras.Sequential([
      tf_keras.Input(image_shape),
      layers.Conv2D(32, 3, activation="relu"), layers.Conv2D(64, 3, activation="relu"),
      layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
      layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
      layers.Dense(1)])


def fit(digits, others, epochs, seed):
  """A `network` trained for `epochs` with Adam to tell uint8 `digits` (0) from `others`
  (1), seeded by `seed`."""
  tf_keras.utils.set_random_seed(seed)
  model = network(digits.shape[1:])
  model.compile(tf_keras.optimizers.Adam(1e-3),
                tf_keras.losses.BinaryCrossentropy(from_logits=True))
  images = np.concatenate([digits, others]).astype(np.float32) / 255.0
  targets = np.concatenate([np.zeros(len(digits)), np.ones(len(others))]).astype(np.float32)
  model.fit(images, targets, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
  return model


def logits(model, images, batch_size=500):
  """The network's logit [N] of each uint8 image."""
  return np.concatenate([
      model(images[start:start + batch_size].astype(np.float32) / 255.0, training=False)
      .numpy()[:, 0] for start in range(0, len(images), batch_size)])


def near_misses(images, labels, families, rng):
  """As many negatives as uint8 `images` [N, H, W, C], in equal shares: each near-OOD source
  of `families` made from a draw of the `images` (`labels`: theirs), and
  `glow_tfp.negatives`' generic ones; drawn by the numpy Generator `rng`. `labels` may be
  None (then the two digits of a pair, overlay or chimera may be of one class)."""
  shares = np.bincount(np.arange(len(images)) % (len(families) + 1),
                       minlength=len(families) + 1)
  parts = []
  for family, count in zip(families, shares):
    chosen = rng.choice(len(images), count, replace=False)
    parts.append(generate(family, images[chosen], rng,
                          None if labels is None else labels[chosen]))
  parts.append(negatives.draw(images, int(shares[-1]), rng))
  return np.concatenate(parts)


def _negatives(peer, source, images, labels, seed):
  """(key, make): `make()` gives the negatives of `peer`'s network for `source`, trained on
  `images`; sources of one key share one network."""
  if peer == "supervised":
    return source, lambda: generate(source, images, np.random.default_rng(seed + 2), labels)
  if peer == "outlier_exposure":
    return (), lambda: negatives.draw(images, len(images), np.random.default_rng(seed + 1))
  families = tuple(name for name in NEAR_OOD if name != source)
  return families, lambda: near_misses(images, labels, families,
                                       np.random.default_rng(seed + 3))


def measure(data, names, epochs, seed, peers=PEERS):
  """{source: {"group": name, "auroc": {peer: value}}}: the AUROC of each network of `peers`
  (of `PEERS`) on the source against the second half of `data`'s held-out images, the sources
  `names` drawn as train.ood draws them with `seed`."""
  train_images, train_labels = data.train_images, data.train_labels
  half = len(data.heldout_images) // 2
  inliers, labels = data.heldout_images[half:], data.heldout_labels[half:]
  rng = np.random.default_rng(seed)
  sources = {name: generate(name, inliers, rng, labels) for name in names}
  networks = {}
  results = {}
  for name, images in sources.items():
    aurocs = {}
    for peer in peers:
      key, make = _negatives(peer, name, train_images, train_labels, seed)
      if (peer, key) not in networks:
        network = fit(train_images, make(), epochs, seed)
        networks[peer, key] = network, logits(network, inliers)
      network, inlier_logits = networks[peer, key]
      aurocs[peer] = ood.auroc(inlier_logits, logits(network, images))
    results[name] = {"group": group(name), "auroc": aurocs}
    print(f"{name}: " + ", ".join(f"{peer} {value:.3f}" for peer, value in aurocs.items()),
          flush=True)
  return results


def markdown(results, env, count):
  lines = report.environment_lines(env) + [
      "", f"AUROC of each peer's logit on a source against {count} held-out images "
      "(`python -m train.ood`'s in-distribution side).", ""]
  peers = [peer for peer in PEERS if peer in next(iter(results.values()))["auroc"]]
  rows = [[name, values["group"]] + [f"{values['auroc'][peer]:.3f}" for peer in peers]
          for name, values in results.items()]
  return lines + report.table(["source", "group", *peers], rows)
