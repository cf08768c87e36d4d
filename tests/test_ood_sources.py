"""The generated sources of `train.ood_sources`: shapes, seeds, and what makes each one what
it says, measured against the bundled MNIST digits of `tiny_mnist`."""

import numpy as np
import PIL.Image
import pytest

from train import ood_sources

# Transforms of each held-out image that draw nothing at random.
_SEEDLESS = {"shrunk", "flipped", "inverted"}


@pytest.fixture(scope="module")
def digits(tiny_mnist):
  """All 64 digits of `tiny_mnist` (uint8 [64, 28, 28, 1]) and their labels."""
  return (np.concatenate([tiny_mnist.train_images, tiny_mnist.heldout_images]),
          np.concatenate([tiny_mnist.train_labels, tiny_mnist.heldout_labels]))


def _generate(name, digits, seed=0, labels=True):
  images, classes = digits
  return ood_sources.generate(name, images, np.random.default_rng(seed),
                              classes if labels else None)


def _ink(images):
  return images.reshape(len(images), -1).astype(np.float64).sum(axis=1)


def _centre_distance(images):
  mass = images[..., 0].astype(np.float64)
  rows, columns = np.indices(mass.shape[1:]) + 0.5
  total = mass.sum(axis=(1, 2))
  return np.hypot((mass * rows).sum(axis=(1, 2)) / total - mass.shape[1] / 2,
                  (mass * columns).sum(axis=(1, 2)) / total - mass.shape[2] / 2)


def test_the_groups_hold_every_generated_source_once():
  grouped = [name for names in ood_sources.GROUPS.values() for name in names]
  assert sorted(grouped) == sorted(ood_sources.GENERATED) and len(set(grouped)) == len(grouped)
  assert ood_sources.group("pair") == "near-OOD"
  assert ood_sources.group("rotated") == "perturbed"
  assert ood_sources.group("folder:images") == "dataset"


@pytest.mark.parametrize("name", ood_sources.GENERATED)
def test_each_source_gives_uint8_images_of_the_heldout_shape(name, digits):
  images = _generate(name, digits)
  assert images.dtype == np.uint8 and images.shape == digits[0].shape


def test_sources_take_other_image_shapes():
  heldout = np.random.default_rng(0).integers(0, 256, (5, 24, 16, 2)).astype(np.uint8)
  for name in ood_sources.GENERATED:
    images = ood_sources.generate(name, heldout, np.random.default_rng(0), np.arange(5))
    assert images.shape == heldout.shape and images.dtype == np.uint8, name


@pytest.mark.parametrize("name", ood_sources.GENERATED)
def test_each_source_is_the_same_for_a_seed_and_differs_for_another(name, digits):
  np.testing.assert_array_equal(_generate(name, digits, 0), _generate(name, digits, 0))
  if name not in _SEEDLESS:
    assert (_generate(name, digits, 0) != _generate(name, digits, 1)).any()


def test_unknown_sources_are_refused(digits):
  with pytest.raises(ValueError, match="Unknown generated source"):
    _generate("doodle", digits)


def test_pair_has_ink_in_both_halves(digits):
  images = _generate("pair", digits)
  half = images.shape[2] // 2
  left, right = _ink(images[:, :, :half]), _ink(images[:, :, half:])
  assert (left > 0.15 * (left + right)).all() and (right > 0.15 * (left + right)).all()


@pytest.mark.parametrize("labels", [True, False])
def test_pair_puts_each_digit_beside_another(digits, labels):
  images, classes = digits
  pairs = _generate("pair", digits, labels=labels)
  for i in range(0, len(images), 8):
    partners = [j for j in range(len(images)) if np.array_equal(
        pairs[i], ood_sources._side_by_side(images[i], images[j]))]
    assert partners and partners[0] != i, i
    if labels:
      assert classes[partners[0]] != classes[i]


def test_pair_fills_the_box_mnist_fills(digits):
  pairs = _generate("pair", digits)
  for pair in pairs:  # 20 px high, at most 20 wide, as MNIST scales its digits.
    rows, columns = np.flatnonzero(pair.any(axis=(1, 2))), np.flatnonzero(pair.any(axis=(0, 2)))
    assert rows[-1] - rows[0] + 1 == 20 and 10 <= columns[-1] - columns[0] + 1 <= 20
  assert (_centre_distance(pairs) < 1.5).all()


@pytest.mark.parametrize("labels", [True, False])
def test_overlay_is_the_max_of_a_digit_and_another(digits, labels):
  images, classes = digits
  overlays = _generate("overlay", digits, labels=labels)
  for i, overlay in enumerate(overlays):
    partners = [j for j in range(len(images)) if j != i and np.array_equal(
        overlay, np.maximum(images[i], images[j]))]
    assert partners, i
    assert _ink(overlay[None]) >= max(_ink(images[[i, partners[0]]]))
    if labels:
      assert classes[partners[0]] != classes[i]


@pytest.mark.parametrize("labels", [True, False])
def test_chimera_joins_the_top_of_a_digit_to_the_bottom_of_another(digits, labels):
  images, classes = digits
  chimeras = _generate("chimera", digits, labels=labels)
  half = images.shape[1] // 2
  np.testing.assert_array_equal(chimeras[:, :half], images[:, :half])
  for i, chimera in enumerate(chimeras):
    partners = [j for j in range(len(images))
                if j != i and np.array_equal(chimera[half:], images[j, half:])]
    assert partners, i
    if labels:
      assert any(classes[j] != classes[i] for j in partners)


def test_fragment_is_no_input_digit_and_has_ink(digits):
  fragments = _generate("fragment", digits)
  for fragment in fragments:
    assert not (fragment == digits[0]).all(axis=(1, 2, 3)).any()
  assert (fragments.max(axis=(1, 2, 3)) > 127).all()


def test_off_centre_moves_the_centre_of_mass_at_least_6_px(digits):
  assert (_centre_distance(digits[0]) < 2).all()
  moved = _generate("off_centre", digits)
  assert (_ink(moved) > 0).all()
  assert (_centre_distance(moved) >= 6).all()
  assert (_ink(moved) < _ink(digits[0])).any()  # Some are cut off by the border.


def test_scribbles_have_the_ink_and_stroke_grey_of_real_digits(digits):
  def ink_fraction(images):
    return (images > 0).mean(axis=(1, 2, 3))

  def stroke_intensity(images):
    return np.array([image[image > 0].mean() for image in images])

  scribbles = _generate("scribble", digits)
  for measure in (ink_fraction, stroke_intensity):
    real, drawn = measure(digits[0]), measure(scribbles)
    assert real.min() <= drawn.min() and drawn.max() <= real.max(), measure.__name__
  assert len({image.tobytes() for image in scribbles}) == len(scribbles)
  assert (_centre_distance(scribbles) < 1.5).all()


@pytest.mark.parametrize("name", ood_sources.PERTURBED)
def test_perturbed_digits_keep_their_ink_within_30_percent(name, digits):
  images = _generate(name, digits)
  ratio = _ink(images) / _ink(digits[0])
  assert ((0.7 <= ratio) & (ratio <= 1.3)).all(), (ratio.min(), ratio.max())
  assert not (images == digits[0]).all(axis=(1, 2, 3)).any()


def test_the_montage_has_a_row_per_source_and_one_of_the_digits(digits, tmp_path):
  path = tmp_path / "sources.png"
  ood_sources.write_montage(path, *digits, sources=("black", "pair"))
  small = PIL.Image.open(path).size
  ood_sources.write_montage(path, *digits, sources=ood_sources.NEAR_OOD)
  assert PIL.Image.open(path).size[1] > small[1]
