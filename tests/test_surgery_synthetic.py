"""Synthetic vasculature: seeded, calibre in range, Murray's law, a mask that matches the image."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.surgery import SyntheticCortex, synthetic_vasculature
from neurolace.surgery.synthetic import MIN_DIAMETER_UM, ROOT_DIAMETER_UM, _murray_children


@pytest.fixture(scope="module")
def cortex() -> SyntheticCortex:
    return synthetic_vasculature((256, 320), 10.0, seed=4)


def test_shapes_types_and_range(cortex):
    assert cortex.shape == (256, 320)
    assert cortex.image.dtype == np.float64 and cortex.mask.dtype == bool
    assert cortex.diameters.shape == cortex.mask.shape
    assert 0.0 <= cortex.image.min() and cortex.image.max() <= 1.0
    assert "256 x 320 px" in repr(cortex)


def test_same_seed_same_image_other_seed_other_image():
    first = synthetic_vasculature((128, 128), seed=7)
    again = synthetic_vasculature((128, 128), seed=7)
    other = synthetic_vasculature((128, 128), seed=8)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.mask, again.mask)
    assert not np.array_equal(first.mask, other.mask)


def test_diameters_cover_exactly_the_mask_and_lie_in_the_published_range(cortex):
    # every drawn vessel is 30-300 µm: cortical to distributing arteries (Nonaka et al. 2003)
    np.testing.assert_array_equal(cortex.diameters > 0, cortex.mask)
    on = cortex.diameters[cortex.mask]
    assert on.min() >= MIN_DIAMETER_UM - 1e-9
    assert on.max() <= ROOT_DIAMETER_UM[1] + 1e-9


def test_vessels_are_darker_than_the_tissue(cortex):
    assert cortex.image[cortex.mask].mean() < cortex.image[~cortex.mask].mean() - 0.1
    # wide vessels are darker than thin ones (Beer-Lambert through a longer chord)
    median_um = np.median(cortex.diameters[cortex.mask])
    wide = cortex.image[cortex.diameters >= median_um].mean()
    thin = cortex.image[cortex.mask & (cortex.diameters < median_um)].mean()
    assert wide < thin


def test_a_denser_field_keeps_every_vessel_of_a_sparser_one():
    # trees are drawn from the same stream in the same order; density only adds trees
    sparse = synthetic_vasculature((192, 192), density=0.5, seed=3)
    dense = synthetic_vasculature((192, 192), density=2.0, seed=3)
    assert np.all(dense.mask[sparse.mask])
    assert dense.vessel_fraction > 1.5 * sparse.vessel_fraction


class _FixedRatio:
    """A stand-in generator whose uniform draw is a chosen branch ratio."""

    def __init__(self, ratio):
        self.ratio = ratio

    def uniform(self, *_):
        return self.ratio


@pytest.mark.parametrize("ratio", [0.4, 0.7, 1.0])
def test_branching_follows_murrays_law(ratio):
    thick, thin, angle_thick, angle_thin = _murray_children(100.0, _FixedRatio(ratio))
    assert thick**3 + thin**3 == pytest.approx(100.0**3)
    assert thin / thick == pytest.approx(ratio)
    assert angle_thin >= angle_thick - 1e-12  # the thinner branch leaves at the larger angle


def test_symmetric_branch_angle_is_murrays_37_5_degrees():
    # d1 = d2 = d 2^(-1/3): cos(theta) = 2^(-1/3), theta = 37.47° (Murray 1926, J Gen Physiol 9:835)
    _, _, angle_thick, angle_thin = _murray_children(80.0, _FixedRatio(1.0))
    assert np.degrees(angle_thick) == pytest.approx(37.47, abs=0.01)
    assert angle_thin == pytest.approx(angle_thick)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shape_px": (8, 64)}, r"shape_px\[0\] must be >= 16"),
        ({"shape_px": (64,)}, "shape_px must be"),
        ({"um_per_px": 0.0}, "um_per_px must be a positive"),
        ({"um_per_px": float("nan")}, "um_per_px must be a positive"),
        ({"density": -1.0}, "density must be a positive"),
        ({"seed": -3}, "seed must be a non-negative"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        synthetic_vasculature(**{"shape_px": (32, 32), **kwargs})
