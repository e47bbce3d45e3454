"""Insertion sites: where on the imaged cortex the robot may put each thread.

This module owns the target region, the clearance a site keeps from every vessel, and the
choice of N sites inside the region that keep that clearance and a minimum spacing from one
another while covering the region evenly and staying as far from vessels as they can.

Coordinates
-----------
Every position is ``(x_um, y_um)`` from the image's top-left corner, x to the right and y
down (the orientation of the image array: x is the column, y the row). The centre of pixel
``(row, col)`` is at ``((col + 0.5) * um_per_px, (row + 0.5) * um_per_px)``.

Clearance
---------
A site is feasible when its distance to the nearest vessel, and to the image's edge (what lies
beyond the picture is unknown, so it counts as vessel), is at least the clearance. The default
(:class:`Clearance`) is a sum of four terms, each with its source:

- ``needle_radius_um = 12``: the insertion needle is tungsten-rhenium wire etched to about
  24 µm diameter along the inserted length (Musk & Neuralink 2019, "An integrated
  brain-machine interface platform with thousands of channels", J Med Internet Res
  21(10):e16194). The thread itself (4-6 µm thick) rides on the needle and adds nothing wider.
- ``robot_error_um = 10``: the insertion head sits on a stage the same paper calls "10 µm
  globally accurate".
- ``registration_error_um = max(10, um_per_px)``: mapping a point of the planning image to the
  robot's frame. The robot images the cortex with its own calibrated cameras; a feature is
  located to about one pixel, so the term is one pixel of the planning image, and never less
  than the stage accuracy it is measured with (10 µm).
- ``segmentation_error_um = max(10, um_per_px)``: the segmented mask's edge lies inside the
  true vessel wall (vesselness filters peak on the centre line; on the synthetic benchmark the
  segmented vessel fraction is about 3/4 of the true one). One pixel, chosen on held-out
  synthetic seeds (10-13 at densities 0.5, 1 and 2, 512 x 512 px; not the benchmark's seeds
  0-2): with it and the planning map below, 0 of 655 sites came within 42 µm (the other four
  terms) of a true vessel and 9 within the full 52 µm; without either, 46 of 729 came within
  42 µm.
- ``safety_margin_um = 10``: what the other terms leave out, first the residual brain motion
  during an insertion in a quiet phase (at most ``RobotTiming.quiet_residual_um`` = 5 µm, see
  :mod:`neurolace.surgery.motion`).

The default is therefore 52 µm at 10 µm per pixel. The Monte-Carlo of
:mod:`neurolace.surgery.montecarlo` turns the error terms into a hit probability per site.

The planning map (:func:`planning_map`)
---------------------------------------
The planner keeps clear of a cautious version of the segmentation, not of the mask alone:

1. every pixel whose vesselness reaches the *low* hysteresis threshold counts as vessel (not
   only those connected to a strong response);
2. gaps narrower than ``close_gap_um = 200`` µm between vessel pixels are closed (a
   morphological closing by a disc of that diameter);
3. regions enclosed by vessel (the image's outside counting as vessel) whose inscribed circle
   is under ``hole_radius_um = 150`` µm in radius are filled.

Steps 2 and 3 fill the hollow centre the vesselness filter leaves in the widest vessels and
where two wide vessels overlap (it responds to their two edges: seen on the synthetic cortex,
where sites were otherwise placed inside 250-280 µm vessels). They cost little: a site in a
gap under 200 µm would be under 100 µm from two vessels, and an island under 300 µm across
holds a site only in its middle. All three were chosen on held-out synthetic seeds (see
``segmentation_error_um``).

Distances are measured to the near edge of the nearest vessel pixel: the vessel map's
centre-to-centre distance minus half a pixel.

Spacing
-------
``min_spacing_um = 250`` (default). The simulated implant places the units a thread records
within 120 µm of it (``placement_radius_um`` of :mod:`neurolace.sim.implant`); threads at least
twice that apart record different neurons, and the tissue each needle displaces does not merge.
The N1 grid of :meth:`neurolace.core.geometry.ElectrodeGeometry.threads` uses 400 µm.

Selection (:func:`select_sites`)
--------------------------------
1. Candidates: feasible pixels on a grid of ``min_spacing_um / 8``.
2. Greedy margin-weighted farthest-point packing. With ``D`` the spacing of a hexagonal lattice
   of N points on the region's area (never below ``min_spacing_um``), each step adds the
   candidate maximising ``min(d, D) + u(m)``, where ``d`` is its distance to the sites already
   chosen (it must be at least ``min_spacing_um``), ``m`` its margin and
   ``u(m) = D / 2 * (1 - exp(-m / clearance))`` a concave worth of margin (the first tens of µm
   count most: a site just outside the clearance is the one a segmentation error endangers). The safest
   spots are taken first while sites stay ``D`` apart; then the largest holes are filled
   (farthest-point sampling, the 2-approximation of the k-centre problem; Gonzalez 1985,
   Theor Comput Sci 38:293).
3. If fewer than N fit, tight packings (each step the eligible candidate *nearest* the sites
   so far, which packs nearly hexagonally where space is short), grown from the safest
   candidate and from the region's four extreme corners, are tried, and the largest set kept.
4. Three passes of a Lloyd-like relaxation (Lloyd 1982, IEEE Trans Inf Theory 28:129): each
   site moves to the feasible candidate within ``D / 2`` of the centroid of its Voronoi cell in
   the region that maximises ``u(m) - distance to the centroid``, keeping the spacing; when
   sites are missing, a tight packing then fills whatever room the relaxation opened.
5. A last pass moves each site, within one candidate step, to the full-resolution pixel of
   largest margin that keeps the spacing.

``coverage`` is the fraction of the region within ``coverage_radius_um`` of a site, by
default ``sqrt(area / (pi * N))``: the radius of N equal discs with the region's total area,
so only an even spread comes near 1 and a clumped one scores low.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError

__all__ = [
    "Clearance",
    "Region",
    "SiteSelection",
    "DEFAULT_MIN_SPACING_UM",
    "DEFAULT_CLOSE_GAP_UM",
    "coverage",
    "pixel_centres_um",
    "planning_map",
    "safe_distance_um",
    "select_sites",
    "target_region",
]

#: Default minimum distance between two threads' insertion points (see the module docstring).
DEFAULT_MIN_SPACING_UM = 250.0
#: Gaps between vessel pixels narrower than this are closed in the planning map (module docstring).
DEFAULT_CLOSE_GAP_UM = 200.0
#: Enclosed regions narrower than twice this are filled in the planning map (module docstring).
DEFAULT_HOLE_RADIUS_UM = 150.0
#: Candidate grid step as a fraction of the minimum spacing.
CANDIDATE_STEP_FRACTION = 1.0 / 8.0
#: Relaxation passes after the greedy packing.
LLOYD_PASSES = 3
#: The most region points used to estimate coverage and centroids (a grid subsample beyond it).
MAX_REGION_SAMPLES = 200_000


@dataclass(frozen=True)
class Clearance:
    """The distance every site keeps from every vessel, as the sum of its sources (µm).

    See the module docstring for the source of each default. ``registration_error_um=None``
    means one pixel of the planning image, at least 10 µm (:meth:`for_scale` fills it in).
    """

    needle_radius_um: float = 12.0
    robot_error_um: float = 10.0
    registration_error_um: float | None = None
    segmentation_error_um: float | None = None
    safety_margin_um: float = 10.0

    def __post_init__(self) -> None:
        for name in ("needle_radius_um", "robot_error_um", "safety_margin_um"):
            object.__setattr__(self, name, check_nonnegative(getattr(self, name), name))
        for name in ("registration_error_um", "segmentation_error_um"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_nonnegative(getattr(self, name), name))

    def for_scale(self, um_per_px: float) -> "Clearance":
        """This clearance with the per-pixel terms filled in for an image of ``um_per_px``."""
        from dataclasses import replace

        pixel_um = max(10.0, float(um_per_px))
        return replace(
            self,
            registration_error_um=pixel_um if self.registration_error_um is None else self.registration_error_um,
            segmentation_error_um=pixel_um if self.segmentation_error_um is None else self.segmentation_error_um,
        )

    @property
    def total_um(self) -> float:
        """The clearance in µm (raises if a per-pixel term is still unset)."""
        if self.registration_error_um is None or self.segmentation_error_um is None:
            raise InvalidInputError("Clearance has per-pixel terms unset: call for_scale(um_per_px) first")
        return (self.needle_radius_um + self.robot_error_um + self.registration_error_um
                + self.segmentation_error_um + self.safety_margin_um)

    def to_dict(self) -> dict:
        return {
            "needle_radius_um": self.needle_radius_um,
            "robot_error_um": self.robot_error_um,
            "registration_error_um": self.registration_error_um,
            "segmentation_error_um": self.segmentation_error_um,
            "safety_margin_um": self.safety_margin_um,
            "total_um": self.total_um,
        }


@dataclass(frozen=True, eq=False)
class Region:
    """The part of the image where threads may go.

    Attributes
    ----------
    mask : ndarray of bool, shape (H, W)
        Region pixels.
    um_per_px : float
        Scale of the image.
    description : dict
        JSON-ready: ``kind`` ("image", "disc" or "mask") and, for a disc, ``centre_x_um``,
        ``centre_y_um``, ``radius_um``.
    notes : list of str
        What was adjusted (a disc clipped by the image's edge).
    """

    mask: np.ndarray
    um_per_px: float
    description: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def area_mm2(self) -> float:
        return float(self.mask.sum()) * self.um_per_px**2 / 1e6

    def to_dict(self) -> dict:
        return {**self.description, "area_mm2": self.area_mm2}


def pixel_centres_um(rows: np.ndarray, cols: np.ndarray, um_per_px: float) -> np.ndarray:
    """``(x_um, y_um)`` of pixel centres, shape (n, 2), from row and column indices."""
    return np.column_stack([(np.asarray(cols) + 0.5) * um_per_px, (np.asarray(rows) + 0.5) * um_per_px])


def target_region(
    shape: tuple[int, int],
    um_per_px: float,
    *,
    mask=None,
    centre_um: tuple[float, float] | None = None,
    radius_um: float | None = None,
) -> Region:
    """The target region: the whole image, a disc (centre and radius in µm) or a mask.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the image.
    um_per_px : float
        Image scale, > 0.
    mask : array-like of bool, shape (H, W), optional
        Region pixels. Exclusive with ``centre_um`` / ``radius_um``.
    centre_um : (float, float), optional
        ``(x_um, y_um)`` of the disc's centre from the image's top-left corner; with ``radius_um``.
    radius_um : float, optional
        Disc radius in µm, > 0.

    Returns
    -------
    Region

    Raises
    ------
    InvalidInputError
        A mask of the wrong shape or with no pixel; a disc whose centre is outside the image or
        that holds no pixel centre. A disc partly outside the image is clipped (noted).
    """
    um_per_px = check_positive(um_per_px, "um_per_px")
    height, width = (check_int(n, "shape", minimum=1) for n in shape)
    if mask is not None:
        if centre_um is not None or radius_um is not None:
            raise InvalidInputError("give the target region as a mask or as centre_um and radius_um, not both")
        region = check_array(mask, "region mask", ndim=2)
        if region.shape != (height, width):
            raise InvalidInputError(f"region mask must have the image's shape {(height, width)}, got {region.shape}")
        region = region.astype(bool)
        if not region.any():
            raise InvalidInputError("region mask selects no pixel")
        return Region(region, um_per_px, {"kind": "mask"})
    if centre_um is None and radius_um is None:
        return Region(np.ones((height, width), dtype=bool), um_per_px, {"kind": "image"})
    if centre_um is None or radius_um is None:
        raise InvalidInputError("a disc target region needs both centre_um and radius_um")
    centre = check_array(centre_um, "centre_um", ndim=1, shape=(2,), dtype=np.float64)
    radius = check_positive(radius_um, "radius_um")
    width_um, height_um = width * um_per_px, height * um_per_px
    if not (0 <= centre[0] <= width_um and 0 <= centre[1] <= height_um):
        raise InvalidInputError(
            f"target centre ({centre[0]:g}, {centre[1]:g}) µm is outside the image "
            f"(0-{width_um:g} x 0-{height_um:g} µm)"
        )
    y_um = (np.arange(height) + 0.5) * um_per_px
    x_um = (np.arange(width) + 0.5) * um_per_px
    region = (x_um[None, :] - centre[0]) ** 2 + (y_um[:, None] - centre[1]) ** 2 <= radius**2
    if not region.any():
        raise InvalidInputError(f"target disc of radius {radius:g} µm holds no pixel centre (pixels are {um_per_px:g} µm)")
    notes = []
    inside = (
        centre[0] - radius >= 0 and centre[1] - radius >= 0
        and centre[0] + radius <= width_um and centre[1] + radius <= height_um
    )
    if not inside:
        notes.append("the target disc extends beyond the image and was clipped to it")
    description = {"kind": "disc", "centre_x_um": float(centre[0]), "centre_y_um": float(centre[1]), "radius_um": radius}
    return Region(region, um_per_px, description, tuple(notes))


@dataclass(frozen=True, eq=False)
class SiteSelection:
    """Sites chosen by :func:`select_sites`.

    Attributes
    ----------
    xy_um : ndarray, shape (n_sites, 2)
        ``(x_um, y_um)`` of each site (module docstring for the frame).
    vessel_distance_um : ndarray, shape (n_sites,)
        Distance from each site to the near edge of the nearest vessel pixel.
    margin_um : ndarray, shape (n_sites,)
        ``min(vessel distance, distance to the image's edge) - clearance_um`` (>= 0).
    clearance_um, min_spacing_um : float
    clearance : Clearance
        The terms of ``clearance_um``.
    requested : int
        Sites asked for.
    region : Region
    feasible_area_mm2 : float
        Area of the region at least ``clearance_um`` from vessels and the image edge.
    reasons : tuple of str
        Why fewer than ``requested`` sites were placed (empty when all were).
    """

    xy_um: np.ndarray
    vessel_distance_um: np.ndarray
    margin_um: np.ndarray
    clearance_um: float
    min_spacing_um: float
    clearance: Clearance
    requested: int
    region: Region
    feasible_area_mm2: float
    reasons: tuple[str, ...] = ()

    @property
    def n_sites(self) -> int:
        return int(self.xy_um.shape[0])

    @property
    def min_margin_um(self) -> float | None:
        """The smallest margin over the sites (None for no site)."""
        return float(self.margin_um.min()) if self.n_sites else None

    @property
    def smallest_spacing_um(self) -> float | None:
        """The smallest distance between two sites (None for fewer than two)."""
        if self.n_sites < 2:
            return None
        from scipy.spatial import cKDTree

        distance, _ = cKDTree(self.xy_um).query(self.xy_um, k=2)
        return float(distance[:, 1].min())

    def __repr__(self) -> str:
        margin = "-" if self.min_margin_um is None else f"{self.min_margin_um:.1f}"
        return (
            f"SiteSelection(n_sites={self.n_sites} of {self.requested}, clearance_um={self.clearance_um:g}, "
            f"min_spacing_um={self.min_spacing_um:g}, min_margin_um={margin})"
        )


def planning_map(
    vessel_map,
    *,
    close_gap_um: float = DEFAULT_CLOSE_GAP_UM,
    hole_radius_um: float = DEFAULT_HOLE_RADIUS_UM,
    include_low: bool = True,
):
    """The cautious vessel map the planner keeps clear of (module docstring).

    Parameters
    ----------
    vessel_map : VesselMap
        A segmentation (a dataclass with ``mask``, ``distance_um``, ``um_per_px`` and, for
        ``include_low``, ``vesselness`` and ``low``).
    close_gap_um : float
        Gaps narrower than this are closed; 0 closes none.
    hole_radius_um : float
        Regions enclosed by vessel (the image's outside counts as vessel) whose inscribed
        circle has a radius below this are filled; 0 fills none.
    include_low : bool
        Count every pixel whose vesselness reaches the low hysteresis threshold as vessel.

    Returns
    -------
    VesselMap
        The same map with a mask that contains the original one, and its distance map.
    """
    from dataclasses import replace

    from scipy import ndimage

    from neurolace.surgery.vessels import distance_map_um

    close_gap_um = check_nonnegative(close_gap_um, "close_gap_um")
    um_per_px = float(vessel_map.um_per_px)
    mask = np.asarray(vessel_map.mask, dtype=bool).copy()
    low = getattr(vessel_map, "low", float("nan"))
    if include_low and getattr(vessel_map, "vesselness", None) is not None and np.isfinite(low):
        mask |= np.asarray(vessel_map.vesselness) >= low
    radius_um = close_gap_um / 2.0
    if radius_um > 0 and mask.any():
        # closing by a disc, with two distance transforms: dilate, then erode (the image's
        # outside counts as vessel-filled while eroding, so borders are not eaten away)
        pad = int(np.ceil(radius_um / um_per_px)) + 1
        dilated = ndimage.distance_transform_edt(~mask, sampling=um_per_px) <= radius_um
        padded = np.pad(dilated, pad, mode="edge")
        closed = ndimage.distance_transform_edt(padded, sampling=um_per_px)[pad:-pad, pad:-pad] > radius_um
        mask |= closed
    hole_radius_um = check_nonnegative(hole_radius_um, "hole_radius_um")
    if hole_radius_um > 0 and mask.any():
        framed = np.pad(mask, 1, constant_values=True)
        holes = (ndimage.binary_fill_holes(framed) & ~framed)[1:-1, 1:-1]
        labels, count = ndimage.label(holes)
        if count:
            inscribed_um = ndimage.maximum(
                ndimage.distance_transform_edt(holes, sampling=um_per_px), labels, np.arange(1, count + 1)
            )
            narrow = np.flatnonzero(np.asarray(inscribed_um) < hole_radius_um) + 1
            mask |= np.isin(labels, narrow)
    return replace(vessel_map, mask=mask, distance_um=distance_map_um(mask, um_per_px))


def safe_distance_um(vessel_map) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, µm: distance to the near edge of the nearest vessel pixel, and the smaller of
    that and the distance to the image's edge (what a site's clearance is checked against).

    Returns
    -------
    vessel_um, safe_um : ndarray, shape (H, W)
    """
    um_per_px = float(vessel_map.um_per_px)
    vessel = np.maximum(np.asarray(vessel_map.distance_um, dtype=np.float64) - 0.5 * um_per_px, 0.0)
    vessel[np.asarray(vessel_map.mask, dtype=bool)] = 0.0
    height, width = vessel.shape
    rows = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)
    to_edge_rows = np.minimum(rows + 0.5, height - rows - 0.5) * um_per_px
    to_edge_cols = np.minimum(cols + 0.5, width - cols - 0.5) * um_per_px
    edge = np.minimum(to_edge_rows[:, None], to_edge_cols[None, :])
    return vessel, np.minimum(vessel, edge)


def _region_samples(region_mask: np.ndarray, um_per_px: float) -> np.ndarray:
    """Region pixel centres (µm), on a subsampling grid when the region is large."""
    stride = max(1, int(np.ceil(np.sqrt(region_mask.sum() / MAX_REGION_SAMPLES))))
    sub = region_mask[::stride, ::stride]
    rows, cols = np.nonzero(sub)
    return pixel_centres_um(rows * stride, cols * stride, um_per_px)


def coverage(xy_um, region: Region, radius_um: float | None = None) -> dict:
    """How evenly sites cover a region.

    Parameters
    ----------
    xy_um : array-like, shape (n_sites, 2)
    region : Region
    radius_um : float, optional
        Coverage radius; default ``sqrt(region area / (pi * n_sites))`` (module docstring).

    Returns
    -------
    dict
        ``fraction`` (region within ``radius_um`` of a site, in [0, 1]), ``radius_um``,
        ``mean_distance_um`` (region point to its nearest site) and ``max_distance_um``
        (the covering radius), estimated on at most ``MAX_REGION_SAMPLES`` region pixels.
    """
    from scipy.spatial import cKDTree

    xy = check_array(xy_um, "xy_um", ndim=2, dtype=np.float64)
    samples = _region_samples(region.mask, region.um_per_px)
    area_um2 = region.area_mm2 * 1e6
    if xy.shape[0] == 0:
        return {"fraction": 0.0, "radius_um": radius_um, "mean_distance_um": None, "max_distance_um": None}
    radius = float(np.sqrt(area_um2 / (np.pi * xy.shape[0]))) if radius_um is None else check_positive(radius_um, "radius_um")
    distance, _ = cKDTree(xy).query(samples)
    return {
        "fraction": float(np.mean(distance <= radius)),
        "radius_um": radius,
        "mean_distance_um": float(distance.mean()),
        "max_distance_um": float(distance.max()),
    }


def _pairwise_min(points: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest of ``chosen`` (inf when none)."""
    if chosen.shape[0] == 0:
        return np.full(points.shape[0], np.inf)
    difference = points[:, None, :] - chosen[None, :, :]
    return np.sqrt((difference**2).sum(axis=2)).min(axis=1)


def _margin_utility(margin_um: np.ndarray, lattice_um: float, clearance_um: float) -> np.ndarray:
    """Worth of a margin in µm of spacing: ``lattice / 2 * (1 - exp(-margin / clearance))``.

    Concave, so the first tens of µm of margin count most (a site just outside the clearance is
    the one a segmentation error endangers) and a large margin stops mattering.
    """
    return lattice_um / 2.0 * -np.expm1(-np.maximum(margin_um, 0.0) / clearance_um)


def _greedy(
    candidates: np.ndarray,
    margin_term: np.ndarray,
    n_sites: int,
    spacing: float,
    lattice: float,
    *,
    tight: bool,
    initial: np.ndarray | None = None,
    first: int | None = None,
) -> np.ndarray:
    """Indices of candidates added by the greedy packing (module docstring, steps 2 and 3).

    ``initial`` holds sites already placed (the packing adds to them); ``first`` forces the
    first pick of a tight packing (which corner it grows from).
    """
    nearest = np.full(candidates.shape[0], np.inf) if initial is None else _pairwise_min(candidates, initial)
    chosen: list[int] = []
    for _ in range(n_sites):
        eligible = nearest >= spacing
        if not eligible.any():
            break
        if tight and first is not None and not chosen:
            index = first
        elif tight:  # nearest eligible candidate to the sites so far; the safest one first
            score = np.where(np.isinf(nearest), -margin_term, nearest - 1e-3 * margin_term)
            score = np.where(eligible, score, np.inf)
            index = int(np.argmin(score))
        else:
            score = np.where(eligible, np.minimum(nearest, lattice) + margin_term, -np.inf)
            index = int(np.argmax(score))
        chosen.append(index)
        step = candidates - candidates[index]
        nearest = np.minimum(nearest, np.sqrt((step**2).sum(axis=1)))
    return np.asarray(chosen, dtype=np.intp)


def _tightest(candidates: np.ndarray, margin_term: np.ndarray, n_sites: int, spacing: float, lattice: float) -> np.ndarray:
    """The largest of the tight packings grown from the safest candidate and from four extremes."""
    starts = [None] + [int(np.argmin(candidates @ direction)) for direction in
                       (np.array([1.0, 1.0]), np.array([-1.0, 1.0]), np.array([1.0, -1.0]), np.array([-1.0, -1.0]))]
    best = np.zeros(0, dtype=np.intp)
    for start in starts:
        packing = _greedy(candidates, margin_term, n_sites, spacing, lattice, tight=True, first=start)
        if packing.size > best.size:
            best = packing
        if best.size == n_sites:
            break
    return best


def _relax(sites, candidates, margin_term, candidate_tree, samples, spacing, lattice):
    """One Lloyd-like pass (module docstring, step 4); returns the moved sites."""
    from scipy.spatial import cKDTree

    sites = sites.copy()
    _, owner = cKDTree(sites).query(samples)
    counts = np.bincount(owner, minlength=sites.shape[0])
    centroid = np.column_stack([
        np.bincount(owner, weights=samples[:, 0], minlength=sites.shape[0]),
        np.bincount(owner, weights=samples[:, 1], minlength=sites.shape[0]),
    ])
    has_cell = counts > 0
    centroid[has_cell] /= counts[has_cell, None]
    for index in np.flatnonzero(has_cell):
        nearby = np.asarray(candidate_tree.query_ball_point(centroid[index], lattice / 2.0), dtype=np.intp)
        if nearby.size == 0:
            continue
        others = np.delete(sites, index, axis=0)
        reach = lattice / 2.0 + spacing  # only sites this close to the centroid can conflict
        others = others[((others - centroid[index]) ** 2).sum(axis=1) < reach**2]
        options = candidates[nearby]
        keeps_spacing = _pairwise_min(options, others) >= spacing
        if not keeps_spacing.any():
            continue
        options, option_margin = options[keeps_spacing], margin_term[nearby][keeps_spacing]
        score = option_margin - np.sqrt(((options - centroid[index]) ** 2).sum(axis=1))
        current = candidate_tree.query(sites[index])[1]  # sites sit on candidates during relaxation
        current_score = margin_term[current] - float(np.hypot(*(sites[index] - centroid[index])))
        best = int(np.argmax(score))
        if score[best] > current_score:
            sites[index] = options[best]
    return sites


def _polish(sites, safe_um, clearance_um, um_per_px, window_px, spacing, region_mask):
    """Move each site to the best full-resolution pixel within ``window_px`` (step 5)."""
    height, width = safe_um.shape
    sites = sites.copy()
    offsets = np.arange(-window_px, window_px + 1)
    for index in range(sites.shape[0]):
        col = int(sites[index, 0] / um_per_px)
        row = int(sites[index, 1] / um_per_px)
        rows = np.clip(row + offsets, 0, height - 1)
        cols = np.clip(col + offsets, 0, width - 1)
        patch = safe_um[np.ix_(rows, cols)]
        allowed = region_mask[np.ix_(rows, cols)] & (patch >= clearance_um)
        if not allowed.any():
            continue
        grid_rows, grid_cols = np.nonzero(allowed)
        options = pixel_centres_um(rows[grid_rows], cols[grid_cols], um_per_px)
        keeps = _pairwise_min(options, np.delete(sites, index, axis=0)) >= spacing
        if not keeps.any():
            continue
        values = patch[grid_rows, grid_cols][keeps]
        best = int(np.argmax(values))
        if values[best] > safe_um[row, col] or safe_um[row, col] < clearance_um:
            sites[index] = options[keeps][best]
    return sites


def select_sites(
    vessel_map,
    n_sites: int = 64,
    *,
    region: Region | None = None,
    clearance: Clearance | float | None = None,
    min_spacing_um: float = DEFAULT_MIN_SPACING_UM,
) -> SiteSelection:
    """Choose up to ``n_sites`` insertion sites clear of vessels, spaced, covering the region.

    Parameters
    ----------
    vessel_map : VesselMap
        From :func:`neurolace.surgery.vessels.segment_vessels` (``mask``, ``distance_um``,
        ``um_per_px``); any object with those attributes.
    n_sites : int
        Sites wanted, >= 1 (default 64, the N1's threads).
    region : Region, optional
        From :func:`target_region`; default the whole image.
    clearance : Clearance or float, optional
        The distance to keep from vessels, as a :class:`Clearance` or in µm; default
        ``Clearance()`` for the map's scale (52 µm at 10 µm per pixel).
    min_spacing_um : float
        Smallest distance between two sites, > 0 (default 250 µm).

    Returns
    -------
    SiteSelection
        Every site at least the clearance from each vessel and from the image's edge, and at
        least ``min_spacing_um`` from every other site; fewer sites than asked, with the
        reason, when the region cannot hold them; none when no point is feasible.

    Notes
    -----
    Deterministic: the same map and parameters give the same sites. The algorithm is in the
    module docstring; it runs in well under a second for 64 sites on a 1024 x 1024 map.
    """
    from scipy.spatial import cKDTree

    n_sites = check_int(n_sites, "n_sites", minimum=1, maximum=100_000)
    min_spacing_um = check_positive(min_spacing_um, "min_spacing_um")
    um_per_px = check_positive(float(vessel_map.um_per_px), "um_per_px")
    shape = tuple(np.asarray(vessel_map.mask).shape)
    region = target_region(shape, um_per_px) if region is None else region
    if region.mask.shape != shape:
        raise InvalidInputError(f"region has shape {region.mask.shape} but the vessel map has {shape}")
    if clearance is None:
        clearance = Clearance()
    if isinstance(clearance, Clearance):
        terms = clearance.for_scale(um_per_px)
    else:
        total = check_positive(clearance, "clearance_um")
        terms = Clearance(0.0, 0.0, 0.0, 0.0, total)  # given as one number: no breakdown
    clearance_um = terms.total_um
    vessel_um, safe_um = safe_distance_um(vessel_map)
    feasible = region.mask & (safe_um >= clearance_um)
    feasible_area_mm2 = float(feasible.sum()) * um_per_px**2 / 1e6

    def result(xy: np.ndarray, reasons: list[str]) -> SiteSelection:
        cols = np.clip((xy[:, 0] / um_per_px).astype(np.intp), 0, shape[1] - 1)
        rows = np.clip((xy[:, 1] / um_per_px).astype(np.intp), 0, shape[0] - 1)
        return SiteSelection(
            xy_um=xy, vessel_distance_um=vessel_um[rows, cols], margin_um=safe_um[rows, cols] - clearance_um,
            clearance_um=clearance_um, min_spacing_um=min_spacing_um, clearance=terms, requested=n_sites,
            region=region, feasible_area_mm2=feasible_area_mm2, reasons=tuple(reasons),
        )

    if not feasible.any():
        return result(np.zeros((0, 2)), [
            f"no point of the target region ({region.area_mm2:.3g} mm²) is {clearance_um:g} µm from every vessel "
            "and from the image's edge: the region is covered by vessels or too close to the edge"
        ])
    step_px = max(1, int(round(min_spacing_um * CANDIDATE_STEP_FRACTION / um_per_px)))
    grid = np.zeros(shape, dtype=bool)
    grid[step_px // 2::step_px, step_px // 2::step_px] = True
    rows, cols = np.nonzero(feasible & grid)
    if rows.size == 0:
        rows, cols = np.nonzero(feasible)
    candidates = pixel_centres_um(rows, cols, um_per_px)
    margin = safe_um[rows, cols] - clearance_um
    lattice = max(min_spacing_um, float(np.sqrt(2.0 * region.area_mm2 * 1e6 / (np.sqrt(3.0) * n_sites))))
    margin_term = _margin_utility(margin, lattice, clearance_um)
    chosen = _greedy(candidates, margin_term, n_sites, min_spacing_um, lattice, tight=False)
    if chosen.size < n_sites:
        tight = _tightest(candidates, margin_term, n_sites, min_spacing_um, lattice)
        if tight.size > chosen.size:
            chosen = tight
    sites = candidates[chosen]
    if sites.shape[0] > 1:
        samples = _region_samples(region.mask, um_per_px)
        candidate_tree = cKDTree(candidates)
        for _ in range(LLOYD_PASSES):
            sites = _relax(sites, candidates, margin_term, candidate_tree, samples, min_spacing_um, lattice)
            if sites.shape[0] < n_sites:  # relaxation can open room: fill it
                extra = _greedy(candidates, margin_term, n_sites - sites.shape[0], min_spacing_um, lattice,
                                tight=True, initial=sites)
                sites = np.vstack([sites, candidates[extra]])
    sites = _polish(sites, safe_um, clearance_um, um_per_px, step_px, min_spacing_um, region.mask)
    reasons = []
    if sites.shape[0] < n_sites:
        reasons.append(
            f"only {sites.shape[0]} of {n_sites} sites fit in the target region at {min_spacing_um:g} µm spacing: "
            f"{feasible_area_mm2:.3g} mm² of its {region.area_mm2:.3g} mm² is {clearance_um:g} µm clear of vessels "
            "and of the image's edge"
        )
    return result(sites, reasons)
