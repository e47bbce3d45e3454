"""The insertion plan: sites, depths, order, timing and risk in one object, and plan.json.

:func:`plan_insertions` runs the whole planner on a vessel map: site selection
(:mod:`~neurolace.surgery.sites`), depth (:mod:`~neurolace.surgery.depth`), order
(:mod:`~neurolace.surgery.ordering`), quiet-phase timing (:mod:`~neurolace.surgery.motion`)
and the Monte-Carlo hit probability (:mod:`~neurolace.surgery.montecarlo`). :class:`Plan`
writes plan.json atomically (:func:`neurolace.io.atomic.atomic_output`) and draws the overlay.

plan.json (``format`` "neurolace.surgery.plan", ``version`` 1)
---------------------------------------------------------------
- ``sites``: one object per site, in insertion order, with ``x_um`` and ``y_um`` (from the
  image's top-left corner, x to the right, y down; a pixel's centre is at
  ``(col + 0.5, row + 0.5) * um_per_px``), ``order`` (1 = inserted first), ``depth_um``
  (deepest electrode below the pia), ``margin_um`` (distance to the nearest vessel or the
  image's edge beyond the clearance, >= 0), ``hit_probability`` (Monte-Carlo), and
  ``vessel_distance_um``, ``start_s`` (position fix of the insertion), ``exit_x_um`` /
  ``exit_y_um`` (where its thread leaves the implant).
- ``clearance_um`` and its terms ``clearance`` (margins are measured on the cautious planning
  map of :func:`neurolace.surgery.sites.planning_map`, ``planning_map``); ``min_spacing_um``; ``min_margin_um``
  (``null`` for an empty plan); ``estimated_duration_s``.
- ``requested_sites``, ``n_sites`` and ``reasons`` (why fewer sites than asked; empty if none);
  ``notes`` (what was adjusted, e.g. a target disc clipped by the image's edge).
- ``image`` (``width_px``, ``height_px``, ``um_per_px``, and ``path`` when the CLI read one),
  ``region``, ``coverage``, ``travel_mm``, ``placement_error_um``, ``depth``, ``motion``,
  ``robot``, ``ordering``, ``seed`` and ``neurolace_version``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurolace.core.checks import check_int
from neurolace.surgery.depth import CorticalLayers, ThreadDepth, insertion_depths
from neurolace.surgery.montecarlo import PlacementEstimate, estimate_placement
from neurolace.surgery.motion import BrainMotion, InsertionSchedule, RobotTiming, schedule_insertions
from neurolace.surgery.ordering import DEFAULT_EXIT_RADIUS_UM, InsertionOrder, order_insertions
from neurolace.surgery.sites import (
    DEFAULT_CLOSE_GAP_UM,
    DEFAULT_MIN_SPACING_UM,
    Clearance,
    Region,
    SiteSelection,
    coverage,
    planning_map,
    select_sites,
    target_region,
)

__all__ = ["PLAN_FORMAT", "PLAN_VERSION", "Plan", "plan_insertions", "plan_overlay"]

PLAN_FORMAT = "neurolace.surgery.plan"
PLAN_VERSION = 1


@dataclass(frozen=True, eq=False)
class Plan:
    """A complete insertion plan (see the module docstring for its JSON form).

    Attributes
    ----------
    selection : SiteSelection
    depth : ThreadDepth
    ordering : InsertionOrder
    schedule : InsertionSchedule
    placement : PlacementEstimate
    coverage : dict
        From :func:`neurolace.surgery.sites.coverage`.
    shape : (int, int)
        ``(H, W)`` of the planning image.
    um_per_px : float
    motion : BrainMotion
    robot : RobotTiming
    layers : CorticalLayers
    seed : int
    image_path : str or None
    planning_map : VesselMap or None
        The cautious map the sites keep clear of (:func:`neurolace.surgery.sites.planning_map`).
    """

    selection: SiteSelection
    depth: ThreadDepth
    ordering: InsertionOrder
    schedule: InsertionSchedule
    placement: PlacementEstimate
    coverage: dict
    shape: tuple[int, int]
    um_per_px: float
    motion: BrainMotion
    robot: RobotTiming
    layers: CorticalLayers
    seed: int
    image_path: str | None = None
    planning_map: object = None

    @property
    def n_sites(self) -> int:
        return self.selection.n_sites

    @property
    def sites_xy_um(self) -> np.ndarray:
        return self.selection.xy_um

    @property
    def clearance_um(self) -> float:
        return self.selection.clearance_um

    @property
    def min_margin_um(self) -> float | None:
        return self.selection.min_margin_um

    @property
    def estimated_duration_s(self) -> float:
        return self.schedule.duration_s

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.selection.reasons

    @property
    def complete(self) -> bool:
        """All requested sites were placed."""
        return self.n_sites == self.selection.requested

    def with_image_path(self, path: str | os.PathLike) -> "Plan":
        """This plan, recording the image file it was made from."""
        from dataclasses import replace

        return replace(self, image_path=str(path))

    def to_dict(self) -> dict:
        """The JSON-ready plan (module docstring); finite numbers only."""
        from neurolace import __version__

        selection, ordering = self.selection, self.ordering
        rank = ordering.rank
        sites = []
        for index in ordering.order:
            x_um, y_um = selection.xy_um[index]
            sites.append({
                "order": int(rank[index]),
                "x_um": round(float(x_um), 3),
                "y_um": round(float(y_um), 3),
                "depth_um": round(float(self.depth.depth_um[index]), 3),
                "margin_um": round(float(selection.margin_um[index]), 3),
                "vessel_distance_um": round(float(selection.vessel_distance_um[index]), 3),
                "hit_probability": float(self.placement.hit_probability[index]),
                "start_s": round(float(self.schedule.start_s[index]), 4),
                "exit_x_um": round(float(ordering.exit_xy_um[index, 0]), 3),
                "exit_y_um": round(float(ordering.exit_xy_um[index, 1]), 3),
            })
        height, width = self.shape
        image = {"width_px": int(width), "height_px": int(height), "um_per_px": self.um_per_px}
        if self.image_path is not None:
            image["path"] = self.image_path
        smallest = selection.smallest_spacing_um
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "neurolace_version": __version__,
            "image": image,
            "coordinates": "x_um, y_um from the image's top-left corner; x to the right, y down",
            "region": selection.region.to_dict(),
            "requested_sites": selection.requested,
            "n_sites": self.n_sites,
            "reasons": list(selection.reasons),
            "notes": list(selection.region.notes),
            "sites": sites,
            "clearance_um": selection.clearance_um,
            "clearance": selection.clearance.to_dict(),
            "min_spacing_um": selection.min_spacing_um,
            "smallest_spacing_um": smallest,
            "min_margin_um": self.min_margin_um,
            "estimated_duration_s": round(self.estimated_duration_s, 3),
            "travel_mm": round(ordering.travel_mm, 4),
            "coverage": self.coverage,
            "feasible_area_mm2": selection.feasible_area_mm2,
            "placement_error_um": self.placement.to_dict(),
            "depth": {
                **self.layers.to_dict(),
                "electrodes_per_thread": self.depth.n_electrodes,
                "electrode_pitch_um": self.depth.pitch_um,
                "electrode_span_um": self.depth.electrode_span_um,
            },
            "motion": self.motion.to_dict(),
            "robot": self.robot.to_dict(),
            "ordering": {
                "implant_x_um": float(ordering.implant_xy_um[0]),
                "implant_y_um": float(ordering.implant_xy_um[1]),
                "precedence_constraints": ordering.n_constraints,
                "unmet_constraints": ordering.unmet_constraints,
                "insertions_without_quiet_phase": int((~self.schedule.quiet).sum()),
            },
            "seed": self.seed,
            "planning_map": None if self.planning_map is None else {
                "vessel_fraction": float(np.asarray(self.planning_map.mask).mean()),
                "close_gap_um": DEFAULT_CLOSE_GAP_UM,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    def write_json(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write plan.json atomically (an error leaves no partial file); return the path."""
        from neurolace.io.atomic import atomic_output

        text = self.to_json()  # serialise first: a failure here touches no file
        with atomic_output(path, overwrite=overwrite) as temporary:
            temporary.write_text(text + "\n", encoding="utf-8")
        return Path(path)

    def __repr__(self) -> str:
        margin = "-" if self.min_margin_um is None else f"{self.min_margin_um:.1f} µm"
        return (
            f"Plan({self.n_sites} of {self.selection.requested} sites, clearance {self.clearance_um:g} µm, "
            f"min margin {margin}, {self.estimated_duration_s / 60:.1f} min, travel {self.ordering.travel_mm:.1f} mm)"
        )


def plan_insertions(
    vessel_map,
    n_sites: int = 64,
    *,
    region: Region | None = None,
    centre_um: tuple[float, float] | None = None,
    radius_um: float | None = None,
    clearance: Clearance | float | None = None,
    min_spacing_um: float = DEFAULT_MIN_SPACING_UM,
    layers: CorticalLayers | None = None,
    motion: BrainMotion | None = None,
    robot: RobotTiming | None = None,
    implant_xy_um=None,
    exit_radius_um: float = DEFAULT_EXIT_RADIUS_UM,
    n_samples: int = 2000,
    seed: int = 0,
    cautious: bool = True,
) -> Plan:
    """Plan ``n_sites`` thread insertions on a vessel map.

    Parameters
    ----------
    vessel_map : VesselMap
        From :func:`neurolace.surgery.vessels.segment_vessels`.
    n_sites : int
        Threads to place (default 64).
    region : Region, optional
        Target region; or give ``centre_um`` (x, y) and ``radius_um`` for a disc; default
        the whole image.
    clearance : Clearance or float, optional
        Default :class:`Clearance` for the map's scale (52 µm at 10 µm per pixel).
    min_spacing_um : float
        Default 250 µm.
    layers : CorticalLayers, optional
        Depth model (default human motor cortex, layers 2/3-5).
    motion : BrainMotion, optional
        Default :meth:`BrainMotion.human`.
    robot : RobotTiming, optional
        Default ``RobotTiming()``.
    implant_xy_um : array-like, shape (2,), optional
        Implant centre and robot home; default the sites' centroid.
    exit_radius_um : float
        Radius of the circle of thread exits around the implant centre.
    n_samples : int
        Monte-Carlo samples per site.
    seed : int
        Monte-Carlo seed (everything else is deterministic).
    cautious : bool
        Plan against :func:`neurolace.surgery.sites.planning_map` of ``vessel_map`` (vesselness
        above the low threshold counts as vessel, gaps under 200 µm closed); False plans
        against the mask as given (the Monte-Carlo then uses it too).

    Returns
    -------
    Plan
        Possibly with fewer sites than asked, and :attr:`Plan.reasons` saying why.
    """
    n_sites = check_int(n_sites, "n_sites", minimum=1, maximum=100_000)
    seed = check_int(seed, "seed", minimum=0)
    um_per_px = float(vessel_map.um_per_px)
    shape = tuple(np.asarray(vessel_map.mask).shape)
    if region is None:
        region = target_region(shape, um_per_px, centre_um=centre_um, radius_um=radius_um)
    layers = CorticalLayers() if layers is None else layers
    motion = BrainMotion.human() if motion is None else motion
    robot = RobotTiming() if robot is None else robot
    planned_on = planning_map(vessel_map) if cautious else vessel_map
    selection = select_sites(planned_on, n_sites, region=region, clearance=clearance, min_spacing_um=min_spacing_um)
    depth = insertion_depths(selection.n_sites, layers)
    ordering = order_insertions(
        selection.xy_um, implant_xy_um=implant_xy_um, exit_radius_um=exit_radius_um,
        thread_clearance_um=selection.clearance_um,
    )
    schedule = schedule_insertions(
        selection.xy_um, ordering.order, home_xy_um=ordering.implant_xy_um, motion=motion, robot=robot
    )
    terms = selection.clearance
    placement = estimate_placement(
        planned_on, selection.xy_um, insertion_start_s=schedule.start_s,
        robot_error_um=terms.robot_error_um, registration_error_um=terms.registration_error_um,
        needle_radius_um=terms.needle_radius_um, motion=motion, robot=robot, n_samples=n_samples, seed=seed,
    )
    return Plan(
        selection=selection, depth=depth, ordering=ordering, schedule=schedule, placement=placement,
        coverage=coverage(selection.xy_um, region), shape=shape, um_per_px=um_per_px, motion=motion,
        robot=robot, layers=layers, seed=seed, planning_map=planned_on,
    )


def plan_overlay(image, vessel_map, plan: Plan, path: str | os.PathLike, *, dpi: int = 100, overwrite: bool = True) -> Path:
    """Write a PNG of the plan: vessels, region, threads, and sites numbered in order.

    Segmented vessels are red, what the cautious planning map adds is orange, the region's
    outline cyan, threads (exit to site) yellow and sites green with their insertion number.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, 3)
        The planning image (shown in grey).
    vessel_map : VesselMap
        Its segmentation (vessels tinted red).
    plan : Plan
    path : str or path-like
        The PNG, written atomically.

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    from neurolace.io.atomic import atomic_output
    from neurolace.surgery.images import to_grey

    grey = to_grey(image)
    height, width = grey.shape
    scale_mm = plan.um_per_px / 1000.0
    extent = (0.0, width * scale_mm, height * scale_mm, 0.0)
    figure = Figure(figsize=(9, 9 * height / width + 0.5))
    axis = figure.subplots()
    axis.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent)
    tint = np.zeros((height, width, 4))
    if plan.planning_map is not None:  # what the cautious planning map adds, in orange
        tint[np.asarray(plan.planning_map.mask, dtype=bool)] = (1.0, 0.6, 0.0, 0.35)
    tint[np.asarray(vessel_map.mask, dtype=bool)] = (1.0, 0.1, 0.1, 0.5)
    axis.imshow(tint, extent=extent)
    region = plan.selection.region.mask
    if not region.all():
        axis.contour(
            (np.arange(width) + 0.5) * scale_mm, (np.arange(height) + 0.5) * scale_mm, region.astype(float),
            levels=[0.5], colors="cyan", linewidths=1.0,
        )
    xy_mm = plan.sites_xy_um / 1000.0
    exits_mm = plan.ordering.exit_xy_um / 1000.0
    for site in range(plan.n_sites):
        axis.plot([exits_mm[site, 0], xy_mm[site, 0]], [exits_mm[site, 1], xy_mm[site, 1]],
                  color="yellow", linewidth=0.4, alpha=0.7)
    if plan.n_sites:
        axis.scatter(xy_mm[:, 0], xy_mm[:, 1], s=14, facecolors="none", edgecolors="lime", linewidths=1.0)
        for site, number in enumerate(plan.ordering.rank):
            axis.annotate(str(number), xy_mm[site], xytext=(3, 3), textcoords="offset points", color="lime", fontsize=6)
    margin = "-" if plan.min_margin_um is None else f"{plan.min_margin_um:.0f} µm"
    axis.set_title(
        f"{plan.n_sites} of {plan.selection.requested} sites, clearance {plan.clearance_um:g} µm, "
        f"min margin {margin}, ~{plan.estimated_duration_s / 60:.1f} min"
    )
    axis.set_xlim(extent[0], extent[1])
    axis.set_ylim(extent[2], extent[3])
    axis.set_xlabel("x (mm)")
    axis.set_ylabel("y (mm)")
    with atomic_output(path, suffix=".png", overwrite=overwrite) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)
