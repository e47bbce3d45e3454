"""Vessel segmentation of a cortical-surface image: vesselness, hysteresis, a distance map in µm.

:func:`segment_vessels` turns a grey or RGB photograph with its scale (µm per pixel) into a
:class:`VesselMap`: the vessel mask, the distance from every pixel to the nearest vessel pixel
in µm (what an insertion planner needs), and the vesselness it was thresholded from.

Method
------
1. *Grey level*: the green channel of a colour image (:mod:`neurolace.surgery.images`).
2. *Multiscale vesselness*: scikit-image's Frangi (Frangi et al. 1998, MICCAI, LNCS 1496:130),
   Sato (Sato et al. 1998, Med Image Anal 2:143) or Meijering (Meijering et al. 2004, Cytometry A
   58:167) filter with ``black_ridges=True`` (vessels darker than the tissue: blood absorbs green
   light). Scales: ``sigma = radius`` in pixels, from ``min_diameter_um / 2`` to
   ``max_diameter_um / 2`` divided by ``um_per_px``, about 1.5 scales per octave, none below
   1 px. For a bar of width ``w``, the scale-normalised second derivative at its centre peaks at
   ``sigma = w / 2``: the vessel's radius.
3. *Hysteresis thresholding* (``skimage.filters.apply_hysteresis_threshold``): pixels above
   ``high`` seed vessels, which grow through connected pixels above ``low``. By default both come
   from the vesselness histogram: Li's minimum cross-entropy threshold (Li & Lee 1993, Pattern
   Recognit 26:617) and Otsu's threshold (Otsu 1979, IEEE Trans SMC 9:62), ``low`` the smaller
   and ``high`` the larger. Frangi's response spans orders of magnitude (it is a product of
   exponentials), so for Frangi the two are computed on its square root (and reported squared
   back). With ``field_of_view`` only the pixels inside count.
4. *Width*: the vesselness of the larger scales spreads past a vessel's edges, so a pixel stays a
   vessel pixel only where the image is at least :data:`EDGE_DEPTH_FRACTION` (a quarter) of the local
   vessel depth below the tissue. Depth is the black top-hat of the image (lightly smoothed,
   sigma 1 px): a grey closing with a square as wide as ``max_diameter_um`` (the tissue without
   its vessels) minus the image; the local depth is its maximum over the same square.
5. *Small objects*: connected components smaller than a vessel piece five minimum diameters
   long, ``5 * (min_diameter_um / um_per_px) ** 2`` pixels, are removed.
6. *Distance map*: ``scipy.ndimage.distance_transform_edt`` of the background with
   ``sampling=um_per_px``: the Euclidean distance, µm, from each pixel's centre to the nearest
   vessel pixel's centre (0 on vessels). The vessel's edge lies up to half a pixel nearer than
   the nearest vessel pixel's centre; a clearance should allow ``um_per_px / 2`` for it.

Coordinates: pixel ``(row, col)`` covers ``x_um`` in ``[col, col + 1) * um_per_px`` and
``y_um`` in ``[row, row + 1) * um_per_px``, measured from the image's top-left corner, x to
the right and y down.

Measured (benchmarks/bench_surgery.py, docs/surgery.md): Dice against the ground truth of
:func:`neurolace.surgery.synthetic.synthetic_vasculature` for each method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from neurolace.core.checks import check_array, check_in, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.surgery.images import to_grey

__all__ = ["METHODS", "VesselMap", "dice", "distance_map_um", "overlay", "segment_vessels", "vesselness_sigmas_px"]

#: The vesselness filters, by name (scikit-image function names).
METHODS = ("frangi", "sato", "meijering")
#: Default calibre range of surface vessels to find, µm (see neurolace.surgery.synthetic).
DEFAULT_MIN_DIAMETER_UM = 30.0
DEFAULT_MAX_DIAMETER_UM = 300.0
#: Scales per octave of the vesselness filter.
SCALES_PER_OCTAVE = 1.5
#: A vessel pixel is at least this fraction of the local vessel depth below the tissue.
EDGE_DEPTH_FRACTION = 0.25
#: Objects smaller than this many squared minimum diameters (in px) are removed.
MIN_OBJECT_DIAMETERS_SQUARED = 5.0


@dataclass(frozen=True)
class VesselMap:
    """Segmented vessels of one image, with the distance to them in µm.

    Attributes
    ----------
    mask : ndarray, shape (H, W), bool
        True on vessel pixels.
    distance_um : ndarray, shape (H, W), float64
        Distance, µm, from each pixel's centre to the nearest vessel pixel's centre; 0 on
        vessels, ``inf`` everywhere when no vessel was found.
    um_per_px : float
        Pixel size, µm.
    vesselness : ndarray, shape (H, W), float64
        The filter response that was thresholded (>= 0; 0 outside the field of view).
    method : str
        The vesselness filter used.
    low, high : float
        Hysteresis thresholds used, in vesselness units.
    sigmas_px : tuple of float
        Filter scales used, pixels.
    """

    mask: np.ndarray
    distance_um: np.ndarray
    um_per_px: float
    vesselness: np.ndarray
    method: str = "frangi"
    low: float = math.nan
    high: float = math.nan
    sigmas_px: tuple = field(default=())

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return self.mask.shape

    @property
    def vessel_fraction(self) -> float:
        """Fraction of the pixels on a vessel."""
        return float(self.mask.mean())

    def distance_at(self, x_um, y_um) -> np.ndarray:
        """Distance to the nearest vessel, µm, at points given in µm from the top-left corner.

        Parameters
        ----------
        x_um, y_um : float or array-like, same shape
            Positions, x to the right and y down; each must lie inside the image.

        Returns
        -------
        ndarray, same shape as ``x_um``
            ``distance_um`` of the pixel holding each point.
        """
        x = check_array(x_um, "x_um", dtype=np.float64)
        y = check_array(y_um, "y_um", dtype=np.float64)
        if x.shape != y.shape:
            raise InvalidInputError(f"x_um and y_um must have the same shape, got {x.shape} and {y.shape}")
        height, width = self.shape
        cols = np.floor(x / self.um_per_px).astype(np.int64)
        rows = np.floor(y / self.um_per_px).astype(np.int64)
        outside = (cols < 0) | (cols >= width) | (rows < 0) | (rows >= height)
        if outside.any():
            first = int(np.flatnonzero(outside.ravel())[0])
            raise InvalidInputError(
                f"point ({x.ravel()[first]:g}, {y.ravel()[first]:g}) µm lies outside the image "
                f"({width * self.um_per_px:g} x {height * self.um_per_px:g} µm)"
            )
        return self.distance_um[rows, cols]

    def __repr__(self) -> str:
        height, width = self.shape
        return (
            f"VesselMap({height} x {width} px, {self.um_per_px:g} µm/px, method={self.method!r}, "
            f"vessel fraction {self.vessel_fraction:.3f})"
        )


def vesselness_sigmas_px(min_diameter_um: float, max_diameter_um: float, um_per_px: float) -> np.ndarray:
    """Filter scales, px: ``sigma = radius`` over the diameter range, >= 1 px, ~1.5 per octave."""
    smallest = max(min_diameter_um / 2.0 / um_per_px, 1.0)
    largest = max(max_diameter_um / 2.0 / um_per_px, smallest)
    count = max(int(math.ceil(SCALES_PER_OCTAVE * math.log2(largest / smallest))) + 1, 1)
    return np.geomspace(smallest, largest, count)


def _vesselness(grey: np.ndarray, method: str, sigmas: np.ndarray) -> np.ndarray:
    from skimage import filters

    function = getattr(filters, method)
    response = function(grey, sigmas=sigmas, black_ridges=True, mode="reflect")
    return np.nan_to_num(np.maximum(response, 0.0), nan=0.0, posinf=0.0)


def _default_thresholds(values: np.ndarray, method: str) -> tuple[float, float]:
    """``(low, high)`` from the vesselness histogram: Li and Otsu (module docstring)."""
    from skimage import filters

    if values.size == 0 or float(values.max()) <= float(values.min()):
        return math.inf, math.inf  # a flat response: nothing stands out as a vessel
    domain = np.sqrt(values) if method == "frangi" else values
    first, second = filters.threshold_li(domain), filters.threshold_otsu(domain)
    low, high = min(first, second), max(first, second)
    if method == "frangi":
        low, high = low**2, high**2
    return float(low), float(high)


def _within_vessel_edges(grey: np.ndarray, max_diameter_px: float) -> np.ndarray:
    """Pixels at least EDGE_DEPTH_FRACTION of the local vessel depth below the tissue (step 4)."""
    width_px = int(math.ceil(max_diameter_px)) + 2
    smooth = ndimage.gaussian_filter(grey, 1.0)
    depth = ndimage.grey_closing(smooth, size=(width_px, width_px)) - smooth
    local_depth = ndimage.maximum_filter(depth, size=width_px)
    return depth >= EDGE_DEPTH_FRACTION * local_depth


def _remove_small_objects(mask: np.ndarray, min_size_px: int) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size_px
    keep[0] = False
    return keep[labels]


def segment_vessels(
    image,
    um_per_px: float,
    *,
    min_diameter_um: float = DEFAULT_MIN_DIAMETER_UM,
    max_diameter_um: float = DEFAULT_MAX_DIAMETER_UM,
    method: str = "frangi",
    low: float | None = None,
    high: float | None = None,
    field_of_view=None,
) -> VesselMap:
    """Segment dark vessels on a brighter background and measure the distance to them.

    Parameters
    ----------
    image : array-like, shape (H, W), (H, W, 3) or (H, W, 4)
        Grey, RGB or RGBA photograph (colour: the green channel is used); finite.
    um_per_px : float
        Pixel size, µm, > 0 and finite.
    min_diameter_um, max_diameter_um : float
        Calibre range of the vessels to find, µm (0 < min <= max). Defaults 30 and 300 µm:
        the surface vessels of the exposed cortex.
    method : {"frangi", "sato", "meijering"}
        Vesselness filter. Frangi is the default: it had the best and steadiest Dice on
        synthetic vasculature (benchmarks/bench_surgery.py; docs/surgery.md).
    low, high : float, optional
        Hysteresis thresholds in vesselness units; each one not given comes from the
        vesselness histogram (module docstring). ``low <= high``.
    field_of_view : array-like of bool, shape (H, W), optional
        Pixels that show tissue (e.g. the disc of a fundus photograph). Outside it the image is
        filled with the median inside before filtering (so its rim is no edge), vesselness is 0
        and nothing is a vessel; thresholds come from the pixels inside.

    Returns
    -------
    VesselMap
        ``mask``, ``distance_um``, ``um_per_px``, ``vesselness``, ``method``, ``low``, ``high``
        and ``sigmas_px``.

    Raises
    ------
    InvalidInputError
        A scale that is not a positive finite number, a diameter range that is not one, an
        unknown method, ``low > high``, a field of view of another shape.
    ImageError
        ``image`` is not 2-D grey, RGB or RGBA, or holds NaN or infinity.
    """
    um_per_px = check_positive(um_per_px, "um_per_px")
    min_diameter_um = check_positive(min_diameter_um, "min_diameter_um")
    max_diameter_um = check_positive(max_diameter_um, "max_diameter_um")
    if min_diameter_um > max_diameter_um:
        raise InvalidInputError(
            f"min_diameter_um ({min_diameter_um:g}) must be <= max_diameter_um ({max_diameter_um:g})"
        )
    check_in(method, "method", METHODS)
    grey = to_grey(image)
    inside = None
    if field_of_view is not None:
        inside = check_array(field_of_view, "field_of_view", shape=grey.shape).astype(bool)
        if not inside.any():
            raise InvalidInputError("field_of_view must hold at least one True pixel")
        grey = np.where(inside, grey, np.median(grey[inside]))
    sigmas = vesselness_sigmas_px(min_diameter_um, max_diameter_um, um_per_px)
    vesselness = _vesselness(grey, method, sigmas)
    if inside is not None:
        vesselness[~inside] = 0.0
    if low is None or high is None:
        default_low, default_high = _default_thresholds(
            vesselness[inside] if inside is not None else vesselness.ravel(), method
        )
        low = default_low if low is None else low
        high = default_high if high is None else high
    low = float(low)
    high = float(high)
    if math.isnan(low) or math.isnan(high) or low > high:
        raise InvalidInputError(f"low ({low:g}) must be <= high ({high:g}) and neither NaN")
    from skimage.filters import apply_hysteresis_threshold

    mask = apply_hysteresis_threshold(vesselness, low, high) if math.isfinite(high) else np.zeros(grey.shape, bool)
    mask &= _within_vessel_edges(grey, max_diameter_um / um_per_px)
    if inside is not None:
        mask &= inside
    min_size_px = max(int(round(MIN_OBJECT_DIAMETERS_SQUARED * (min_diameter_um / um_per_px) ** 2)), 1)
    mask = _remove_small_objects(mask, min_size_px)
    return VesselMap(
        mask=mask,
        distance_um=distance_map_um(mask, um_per_px),
        um_per_px=um_per_px,
        vesselness=vesselness,
        method=method,
        low=low,
        high=high,
        sigmas_px=tuple(float(s) for s in sigmas),
    )


def distance_map_um(mask: np.ndarray, um_per_px: float) -> np.ndarray:
    """Distance, µm, from each pixel's centre to the nearest True pixel's centre (``inf`` if none).

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
    um_per_px : float
        Pixel size, µm.

    Returns
    -------
    ndarray, shape (H, W), float64
    """
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=um_per_px)


def dice(mask_a, mask_b) -> float:
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of two masks of the same shape (1.0 if both empty).

    Parameters
    ----------
    mask_a, mask_b : array-like of bool, same shape
    """
    a = np.asarray(mask_a)
    b = np.asarray(mask_b)
    if a.shape != b.shape:
        raise InvalidInputError(f"mask_a and mask_b must have the same shape, got {a.shape} and {b.shape}")
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def overlay(image, vessel_map: VesselMap, path, *, title: str | None = None, dpi: int = 100):
    """Write a PNG of the image with the segmented vessels drawn over it.

    Parameters
    ----------
    image : array-like, shape (H, W), (H, W, 3) or (H, W, 4)
        The segmented image (colour is shown in colour).
    vessel_map : VesselMap
        Its segmentation; same ``(H, W)``.
    path : str or path-like
        The PNG to write (atomically: a failure leaves no partial file).
    title : str, optional
        Figure title; by default the method and vessel fraction.
    dpi : int
        Resolution of the figure.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    from neurolace.io.atomic import atomic_output

    if not isinstance(vessel_map, VesselMap):
        raise InvalidInputError(f"vessel_map must be a VesselMap, got {type(vessel_map).__name__}")
    shown = np.asarray(image)
    grey = to_grey(shown)
    if grey.shape != vessel_map.shape:
        raise InvalidInputError(f"image has shape {grey.shape} but vessel_map has {vessel_map.shape}")
    height, width = grey.shape
    extent = (0.0, width * vessel_map.um_per_px / 1000.0, height * vessel_map.um_per_px / 1000.0, 0.0)
    figure = Figure(figsize=(12, 6))
    left, right = figure.subplots(1, 2)
    if shown.ndim == 3:
        colour = shown[:, :, :3]
        left.imshow(colour if colour.dtype.kind in "iu" else np.clip(colour, 0, 1), extent=extent)
    else:
        left.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent)
    left.set_title("image")
    right.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent)
    tint = np.zeros((height, width, 4))
    tint[vessel_map.mask] = (1.0, 0.1, 0.1, 0.55)
    right.imshow(tint, extent=extent)
    right.set_title(title or f"{vessel_map.method}: vessel fraction {vessel_map.vessel_fraction:.1%}")
    for axis in (left, right):
        axis.set_xlabel("x (mm)")
        axis.set_ylabel("y (mm)")
    with atomic_output(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)
