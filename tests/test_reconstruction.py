"""train.reconstruction: the check passes exactly when every image round-trips as uint8."""

import numpy as np

from train import reconstruction


def test_every_image_identical_passes_whatever_the_float_error():
  images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
  check = reconstruction.Reconstruction(2.84e-4, 2, images, images.copy())
  assert check.passed
  assert check.report() == ("reconstruction check OK: 2/2 held-out images identical as uint8 "
                            "images after decode(encode(x)); max |decode(encode(x)) - x| = "
                            "0.000284 in model space")


def test_one_changed_pixel_fails():
  images = np.zeros((3, 4, 4, 1), np.uint8)
  rebuilt = images.copy()
  rebuilt[1, 2, 3, 0] = 1
  check = reconstruction.Reconstruction(4e-3, 2, images, rebuilt)
  assert not check.passed
  assert check.report().startswith("reconstruction check FAILED: 2/3 held-out images")
