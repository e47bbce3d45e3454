"""Monte-Carlo placement error and the probability of hitting a vessel, per site.

For each site, ``n_samples`` landing points are drawn as the planned site plus three
independent errors:

- robot error: isotropic Gaussian, ``robot_error_um`` per axis (the stage's stated 10 µm
  global accuracy taken as one standard deviation, which is conservative if it is a bound);
- registration error: isotropic Gaussian, ``registration_error_um`` per axis;
- residual brain motion: ``d(t + latency) - d(t)`` along the motion's direction, at
  ``t`` = the scheduled insertion time plus a Gaussian timing jitter (``RobotTiming``), from
  :class:`neurolace.surgery.motion.BrainMotion`.

A sample *hits* a vessel when the needle's cross-section reaches the vessel mask: the vessel
map's distance at the landing point (bilinear, to the near edge of the vessel pixel) is below
``needle_radius_um``, or the point falls off the image (unknown tissue counts as a hit). The
hit probability is the fraction of hits; with ``n`` samples its standard error is at most
``0.5 / sqrt(n)`` (0.011 for the default 2000). Seeded with ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative
from neurolace.surgery.motion import BrainMotion, RobotTiming

__all__ = ["PlacementEstimate", "estimate_placement"]


@dataclass(frozen=True, eq=False)
class PlacementEstimate:
    """Result of :func:`estimate_placement`.

    Attributes
    ----------
    hit_probability : ndarray, shape (n_sites,)
        Fraction of samples whose needle reaches a vessel.
    error_mean_um, error_p95_um, error_max_um : float
        Radial placement error over all samples.
    n_samples : int
        Samples per site.
    """

    hit_probability: np.ndarray
    error_mean_um: float
    error_p95_um: float
    error_max_um: float
    n_samples: int

    def to_dict(self) -> dict:
        return {
            "samples_per_site": self.n_samples,
            "error_mean_um": self.error_mean_um,
            "error_p95_um": self.error_p95_um,
            "error_max_um": self.error_max_um,
            "max_hit_probability": float(self.hit_probability.max()) if self.hit_probability.size else None,
        }


def estimate_placement(
    vessel_map,
    sites_xy_um,
    *,
    insertion_start_s=None,
    robot_error_um: float = 10.0,
    registration_error_um: float = 10.0,
    needle_radius_um: float = 12.0,
    motion: BrainMotion | None = None,
    robot: RobotTiming | None = None,
    n_samples: int = 2000,
    seed: int = 0,
) -> PlacementEstimate:
    """Sample where each needle lands and how often it reaches a vessel (module docstring).

    Parameters
    ----------
    vessel_map : VesselMap
        The map to test against (``distance_um``, ``um_per_px``); pass the ground truth to
        measure real risk, the segmented map to estimate it.
    sites_xy_um : array-like, shape (n_sites, 2)
    insertion_start_s : array-like, shape (n_sites,), optional
        Scheduled position-fix times (:attr:`InsertionSchedule.start_s`); default 0 for all.
    robot_error_um, registration_error_um : float
        Per-axis standard deviations, µm.
    needle_radius_um : float
    motion : BrainMotion, optional
        Default :meth:`BrainMotion.human`; :meth:`BrainMotion.still` for none.
    robot : RobotTiming, optional
        Latency and jitter of the insertion; default ``RobotTiming()``.
    n_samples : int
        Samples per site, >= 1.
    seed : int
        Seed of the generator.

    Returns
    -------
    PlacementEstimate
    """
    from scipy.ndimage import map_coordinates

    sites = check_array(sites_xy_um, "sites_xy_um", ndim=2, dtype=np.float64)
    n_sites = sites.shape[0]
    n_samples = check_int(n_samples, "n_samples", minimum=1, maximum=10_000_000)
    robot_error_um = check_nonnegative(robot_error_um, "robot_error_um")
    registration_error_um = check_nonnegative(registration_error_um, "registration_error_um")
    needle_radius_um = check_nonnegative(needle_radius_um, "needle_radius_um")
    motion = BrainMotion.human() if motion is None else motion
    robot = RobotTiming() if robot is None else robot
    start = np.zeros(n_sites) if insertion_start_s is None else check_array(
        insertion_start_s, "insertion_start_s", shape=(n_sites,), dtype=np.float64
    )
    if n_sites == 0:
        return PlacementEstimate(np.zeros(0), 0.0, 0.0, 0.0, n_samples)
    rng = np.random.default_rng(seed)
    sigma = float(np.hypot(robot_error_um, registration_error_um))  # two independent Gaussians add in quadrature
    error = rng.normal(0.0, 1.0, size=(n_sites, n_samples, 2)) * sigma
    fix_s = start[:, None] + rng.normal(0.0, robot.timing_jitter_s, size=(n_sites, n_samples))
    residual = motion.displacement_um(fix_s + robot.latency_s) - motion.displacement_um(fix_s)
    error += residual[..., None] * np.asarray(motion.direction_xy)
    landing = sites[:, None, :] + error
    um_per_px = float(vessel_map.um_per_px)
    distance = np.asarray(vessel_map.distance_um, dtype=np.float64)
    if not np.isfinite(distance).all():  # no vessel at all: inf, which bilinear weights would turn into NaN
        distance = np.minimum(distance, np.float64(1e12))
    height, width = distance.shape
    col = landing[..., 0] / um_per_px - 0.5
    row = landing[..., 1] / um_per_px - 0.5
    inside = (col >= -0.5) & (col <= width - 0.5) & (row >= -0.5) & (row <= height - 0.5)
    at_landing = map_coordinates(distance, [row.ravel(), col.ravel()], order=1, mode="nearest").reshape(row.shape)
    on_vessel = np.asarray(vessel_map.mask, dtype=bool)[
        np.clip(np.round(row).astype(np.intp), 0, height - 1), np.clip(np.round(col).astype(np.intp), 0, width - 1)
    ]
    hit = ~inside | on_vessel | (at_landing - 0.5 * um_per_px < needle_radius_um)
    radial = np.hypot(error[..., 0], error[..., 1])
    return PlacementEstimate(
        hit_probability=hit.mean(axis=1),
        error_mean_um=float(radial.mean()),
        error_p95_um=float(np.percentile(radial, 95)),
        error_max_um=float(radial.max()),
        n_samples=n_samples,
    )
