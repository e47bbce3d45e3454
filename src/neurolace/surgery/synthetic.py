"""Synthetic images of the exposed cortex: branching surface vessels with a ground-truth mask.

The test bed for vessel segmentation and insertion planning: a seeded generator draws trees of
surface (pial) vessels on a cortical background and returns the image with the exact mask of
the pixels the vessels cover, so Dice and clearance violations are measured, not judged by eye.

The model
---------
*Calibre.* Surface vessels of the exposed human cortex run from the distributing arteries
(about 200 µm) through precortical arteries (about 60 µm) to cortical arteries of 30-40 µm that
dive into the cortex (Nonaka et al. 2003, Neuropathology 23:129, "Microvasculature of the human
cerebral meninges"; pial and penetrating vessels: Duvernoy et al. 1981, Brain Res Bull 7:519).
Veins are of similar or larger calibre. Root vessels here have diameters drawn log-uniformly in
:data:`ROOT_DIAMETER_UM` (80-300 µm); a branch thinner than :data:`MIN_DIAMETER_UM` (30 µm)
is taken to dive into the cortex and is not drawn, so every drawn vessel is 30-300 µm wide.

*Branching.* Each root enters from a random edge, heading inwards. A segment runs for
``U(10, 25)`` of its own diameters, then splits in two. Diameters follow Murray's law
``d**3 = d1**3 + d2**3`` (Murray 1926, PNAS 12:207) with the ratio ``d2 / d1`` drawn from
``U(0.4, 1)``; the branch angles are Murray's minimum-work angles
``cos(theta1) = (d**4 + d1**4 - d2**4) / (2 d**2 d1**2)`` (and symmetrically for ``theta2``;
Murray 1926, J Gen Physiol 9:835; Zamir 1978, J Gen Physiol 72:837), so the thinner branch
leaves at the larger angle.

*Curvature.* Along a segment the heading is a random walk with angular diffusion
``step / persistence``; the persistence length is 20 diameters, so large vessels are straighter.

*Density.* Trees are added until their nominal area (length x diameter, before overlaps) reaches
``NOMINAL_VESSEL_FRACTION * density`` of the field; the mask's fraction is a little lower where
vessels overlap or leave the field. ``density=1`` (about 12 %) is a modelling choice close to
photographs of exposed cortex, not a published figure.

*Image.* The grey level is the green channel of a photograph: a background of about 0.75 times
an illumination gradient (+-25 % across the field, random direction) and vignetting (-20 % at the
edge centres, -40 % in the corners; a surgical microscope's light falls off), plus a smooth tissue texture (Gaussian-filtered noise, about
150 µm correlation) and, through each vessel, Beer-Lambert darkening ``exp(-mu * chord_um)``
where ``chord_um`` is the path length through a cylinder of the vessel's diameter (so big
vessels are darker and every vessel's profile is rounded), ``mu`` = :data:`ABSORPTION_PER_UM`
times a per-tree factor in [0.7, 1.3] (arteries and veins differ). A Gaussian point-spread
function (0.7 px) blurs it and white sensor noise (sd 0.015) is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng

__all__ = [
    "ABSORPTION_PER_UM",
    "MIN_DIAMETER_UM",
    "NOMINAL_VESSEL_FRACTION",
    "ROOT_DIAMETER_UM",
    "SyntheticCortex",
    "synthetic_vasculature",
]

#: Diameters of the root vessels entering the field, µm (log-uniform between the two).
ROOT_DIAMETER_UM = (80.0, 300.0)
#: Branches thinner than this dive into the cortex and are not drawn, µm.
MIN_DIAMETER_UM = 30.0
#: Nominal vessel area fraction at ``density=1``.
NOMINAL_VESSEL_FRACTION = 0.12
#: Green-light attenuation through blood per µm of path (a 100 µm vessel halves the light).
ABSORPTION_PER_UM = np.log(2.0) / 100.0
#: Segment length between branch points, in diameters.
SEGMENT_LENGTH_DIAMETERS = (10.0, 25.0)
#: Persistence length of the heading's random walk, in diameters.
PERSISTENCE_DIAMETERS = 20.0
#: Ratio of the thinner to the thicker child's diameter at a branch point.
BRANCH_RATIO = (0.4, 1.0)
#: Safety cap on the number of segments drawn (a dense 4k image stays well below it).
MAX_SEGMENTS = 200_000


@dataclass(frozen=True)
class SyntheticCortex:
    """A synthetic photograph of the exposed cortex and its ground truth.

    Attributes
    ----------
    image : ndarray, shape (H, W), float64
        Grey level (green channel) in [0, 1]; vessels are dark.
    mask : ndarray, shape (H, W), bool
        True on every pixel whose centre lies inside a vessel.
    um_per_px : float
        Pixel size, µm.
    diameters : ndarray, shape (H, W), float64
        Diameter, µm, of the widest vessel covering each pixel; 0 off the vessels.
    """

    image: np.ndarray
    mask: np.ndarray
    um_per_px: float
    diameters: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return self.image.shape

    @property
    def vessel_fraction(self) -> float:
        """Fraction of the pixels on a vessel."""
        return float(self.mask.mean())

    def __repr__(self) -> str:
        height, width = self.shape
        return (
            f"SyntheticCortex({height} x {width} px, {self.um_per_px:g} µm/px, "
            f"vessel fraction {self.vessel_fraction:.3f})"
        )


def _murray_children(diameter_um: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Two child diameters by Murray's law and their minimum-work branch angles (rad)."""
    ratio = rng.uniform(*BRANCH_RATIO)
    thick = diameter_um / (1.0 + ratio**3) ** (1.0 / 3.0)
    thin = ratio * thick
    d2, t2, n2 = diameter_um**2, thick**2, thin**2
    cos_thick = (d2**2 + t2**2 - n2**2) / (2.0 * d2 * t2)
    cos_thin = (d2**2 + n2**2 - t2**2) / (2.0 * d2 * n2)
    angle_thick = float(np.arccos(np.clip(cos_thick, -1.0, 1.0)))
    angle_thin = float(np.arccos(np.clip(cos_thin, -1.0, 1.0)))
    return thick, thin, angle_thick, angle_thin


def _segment(start, heading, diameter_um, step_um, rng):
    """Centre-line points of one segment and its final heading."""
    length_um = diameter_um * rng.uniform(*SEGMENT_LENGTH_DIAMETERS)
    n_steps = max(int(np.ceil(length_um / step_um)), 1)
    spread = np.sqrt(step_um / (PERSISTENCE_DIAMETERS * diameter_um))
    headings = heading + np.cumsum(rng.normal(0.0, spread, n_steps))
    points = np.asarray(start) + np.cumsum(
        step_um * np.column_stack([np.cos(headings), np.sin(headings)]), axis=0
    )
    return points, float(headings[-1])


def _grow_tree(field_um, step_um, rng, points, radii, absorption):
    """Grow one tree from a random edge; append its centre line; return its nominal area (µm²)."""
    width_um, height_um = field_um
    edge = rng.integers(4)
    along = rng.uniform(0.1, 0.9)
    starts = {0: (along * width_um, 0.0), 1: (width_um, along * height_um),
              2: (along * width_um, height_um), 3: (0.0, along * height_um)}
    inward = {0: np.pi / 2, 1: np.pi, 2: -np.pi / 2, 3: 0.0}
    stack = [(np.array(starts[int(edge)]), inward[int(edge)] + rng.uniform(-0.6, 0.6),
              float(np.exp(rng.uniform(*np.log(ROOT_DIAMETER_UM)))))]
    factor = rng.uniform(0.7, 1.3)
    margin_um = ROOT_DIAMETER_UM[1]
    area_um2 = 0.0
    while stack and len(points) < MAX_SEGMENTS:
        start, heading, diameter_um = stack.pop()
        line, end_heading = _segment(start, heading, diameter_um, step_um, rng)
        inside = ((line[:, 0] > -margin_um) & (line[:, 0] < width_um + margin_um)
                  & (line[:, 1] > -margin_um) & (line[:, 1] < height_um + margin_um))
        if not inside.all():  # the vessel leaves the field: draw up to the edge, no children
            line = line[: int(np.argmin(inside))]
        if len(line) == 0:
            continue
        points.append(line)
        radii.append(np.full(len(line), diameter_um / 2.0))
        absorption.append(np.full(len(line), ABSORPTION_PER_UM * factor))
        area_um2 += len(line) * step_um * diameter_um
        if len(line) < len(inside):
            continue
        thick, thin, angle_thick, angle_thin = _murray_children(diameter_um, rng)
        side = 1.0 if rng.random() < 0.5 else -1.0
        for child_diameter, angle in ((thick, side * angle_thick), (thin, -side * angle_thin)):
            if child_diameter >= MIN_DIAMETER_UM:
                stack.append((line[-1], end_heading + angle, child_diameter))
    return area_um2


def _rasterise(shape, um_per_px, centres_um, radii_um, absorption_per_um):
    """Mask, diameter map and optical density of discs swept along the centre lines.

    Points are grouped by radius (to 1/8 px) so each group paints one precomputed disc with
    vectorised index arithmetic; ``np.maximum.at`` keeps the widest vessel and the longest chord.
    """
    height, width = shape
    mask = np.zeros(height * width, dtype=bool)
    diameter_um = np.zeros(height * width)
    density = np.zeros(height * width)
    centres_px = centres_um / um_per_px - 0.5  # pixel (row, col) has its centre at ((col+.5)s, (row+.5)s)
    radius_px = radii_um / um_per_px
    key = np.round(radius_px * 8.0).astype(np.int64)
    for value in np.unique(key):
        chosen = key == value
        radius = radius_px[chosen][0]
        reach = int(np.ceil(radius)) + 1
        dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
        centre_col = np.round(centres_px[chosen, 0]).astype(np.int64)
        centre_row = np.round(centres_px[chosen, 1]).astype(np.int64)
        frac_col = centres_px[chosen, 0] - centre_col
        frac_row = centres_px[chosen, 1] - centre_row
        cols = centre_col[:, None] + dx.ravel()[None, :]
        rows = centre_row[:, None] + dy.ravel()[None, :]
        squared = (dx.ravel()[None, :] - frac_col[:, None]) ** 2 + (dy.ravel()[None, :] - frac_row[:, None]) ** 2
        keep = (squared <= radius**2) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
        flat = (rows * width + cols)[keep]
        mask[flat] = True
        np.maximum.at(diameter_um, flat, 2.0 * radius * um_per_px)
        chord_um = 2.0 * np.sqrt(np.maximum(radius**2 - squared, 0.0)) * um_per_px
        np.maximum.at(density, flat, (chord_um * absorption_per_um[chosen][:, None])[keep])
    return mask.reshape(shape), diameter_um.reshape(shape), density.reshape(shape)


def _background(shape, um_per_px, rng) -> np.ndarray:
    """Tissue brightness: level, illumination gradient, vignetting and smooth texture."""
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width]
    y, x = (rows + 0.5) / height - 0.5, (cols + 0.5) / width - 0.5
    direction = rng.uniform(0.0, 2.0 * np.pi)
    gradient = 0.5 * (x * np.cos(direction) + y * np.sin(direction))
    vignette = -0.8 * (x**2 + y**2)
    texture_px = max(150.0 / um_per_px, 1.0)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), texture_px, mode="wrap")
    texture *= 0.05 / max(float(texture.std()), 1e-12)
    return 0.75 * (1.0 + gradient + vignette) + texture


def synthetic_vasculature(
    shape_px: tuple[int, int] = (1024, 1024),
    um_per_px: float = 10.0,
    *,
    density: float = 1.0,
    seed: SeedLike = 0,
) -> SyntheticCortex:
    """Draw a synthetic photograph of the exposed cortex with its vessel mask.

    Parameters
    ----------
    shape_px : (int, int)
        ``(H, W)`` in pixels, each at least 16.
    um_per_px : float
        Pixel size, µm (> 0). The default 10 µm/px gives a 10.24 mm field.
    density : float
        Vessel density, > 0: trees are added until their nominal area is
        ``NOMINAL_VESSEL_FRACTION * density`` of the field (module docstring).
    seed : int, Generator or None
        Seed of the generator; the same seed gives the same image.

    Returns
    -------
    SyntheticCortex
        ``image`` (H, W) float in [0, 1], ``mask`` (H, W) bool, ``um_per_px``, ``diameters`` (H, W) µm.

    Notes
    -----
    The model (calibre, Murray branching, curvature, background, optics) and its sources are
    in the module docstring.
    """
    if not isinstance(shape_px, (tuple, list)) or len(shape_px) != 2:
        raise InvalidInputError(f"shape_px must be (height, width), got {shape_px!r}")
    height = check_int(shape_px[0], "shape_px[0]", minimum=16)
    width = check_int(shape_px[1], "shape_px[1]", minimum=16)
    um_per_px = check_positive(um_per_px, "um_per_px")
    density = check_positive(density, "density")
    rng = check_rng(seed)
    field_um = (width * um_per_px, height * um_per_px)
    step_um = min(um_per_px / 2.0, MIN_DIAMETER_UM / 4.0)
    target_um2 = NOMINAL_VESSEL_FRACTION * density * field_um[0] * field_um[1]
    points, radii, absorption = [], [], []
    area_um2 = 0.0
    while area_um2 < target_um2 and len(points) < MAX_SEGMENTS:
        area_um2 += _grow_tree(field_um, step_um, rng, points, radii, absorption)
    centres = np.concatenate(points) if points else np.zeros((0, 2))
    mask, diameters, optical_density = _rasterise(
        (height, width), um_per_px, centres,
        np.concatenate(radii) if radii else np.zeros(0),
        np.concatenate(absorption) if absorption else np.zeros(0),
    )
    image = _background((height, width), um_per_px, rng) * np.exp(-optical_density)
    image = ndimage.gaussian_filter(image, 0.7)
    image += rng.normal(0.0, 0.015, image.shape)
    return SyntheticCortex(image=np.clip(image, 0.0, 1.0), mask=mask, um_per_px=um_per_px, diameters=diameters)
