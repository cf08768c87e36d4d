"""Small convolutional networks that tell training images from other images: the
discriminative peers of `glow_tfp.ood`'s score (`python -m benchmarks.ood.separability`).

`PEERS`, each scored by its logit on held-out images and on each source of
`train.ood_sources`:
  supervised        one network per source, trained against that source generated afresh
                    from the training images;
  outlier_exposure  one network for every source, trained against `glow_tfp.negatives`
                    (Hendrycks et al., ICLR 2019), never a source.
"""

import numpy as np
import tf_keras

from benchmarks.common import report
from glow_tfp import negatives
from glow_tfp import ood
from train.ood_sources import generate, group

PEERS = ("supervised", "outlier_exposure")


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


def measure(data, names, epochs, seed):
  """{source: {"group": name, "auroc": {peer: value}}}: each `PEERS` network's AUROC of the
  source against the second half of `data`'s held-out images, the sources `names` drawn as
  train.ood draws them with `seed`."""
  train_images, train_labels = data.train_images, data.train_labels
  half = len(data.heldout_images) // 2
  inliers, labels = data.heldout_images[half:], data.heldout_labels[half:]
  rng = np.random.default_rng(seed)
  sources = {name: generate(name, inliers, rng, labels) for name in names}
  junk = negatives.draw(train_images, len(train_images), np.random.default_rng(seed + 1))
  exposed = fit(train_images, junk, epochs, seed)
  exposed_inliers = logits(exposed, inliers)
  results = {}
  for name, images in sources.items():
    made = generate(name, train_images, np.random.default_rng(seed + 2), train_labels)
    supervised = fit(train_images, made, epochs, seed)
    results[name] = {"group": group(name), "auroc": {
        "supervised": ood.auroc(logits(supervised, inliers), logits(supervised, images)),
        "outlier_exposure": ood.auroc(exposed_inliers, logits(exposed, images))}}
    print(f"{name}: " + ", ".join(f"{peer} {value:.3f}"
                                  for peer, value in results[name]["auroc"].items()),
          flush=True)
  return results


def markdown(results, env, count):
  lines = report.environment_lines(env) + [
      "", f"AUROC of each peer's logit on a source against {count} held-out images "
      "(`python -m train.ood`'s in-distribution side).", ""]
  rows = [[name, values["group"]] + [f"{values['auroc'][peer]:.3f}" for peer in PEERS]
          for name, values in results.items()]
  return lines + report.table(["source", "group", *PEERS], rows)
