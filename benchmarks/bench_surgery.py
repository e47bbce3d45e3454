"""Surgery: vessel segmentation on synthetic vasculature (this part) and insertion planning (below).

Segmentation (:func:`segmentation`): for each vessel density and seed,
:func:`neurolace.surgery.synthetic_vasculature` draws an exposed cortex with its ground-truth mask
and :func:`neurolace.surgery.segment_vessels` segments it with each vesselness filter (Frangi, Sato,
Meijering) at default settings. Reported per method and density: Dice against the ground truth
(mean and worst over seeds), the segmented and true vessel fractions, and the segmentation's wall
time (one call, one process).

Planning (:func:`planning`): for each density and seed, the Frangi segmentation of the same
images is planned on (:func:`neurolace.surgery.plan.plan_insertions`, 64 sites in a centred disc
of radius 2 mm, 1.2 mm when quick), beside a regular square grid and a random (dart-throwing)
placement that skip vessels by the planner's own cautious map with the same clearance and
spacing. Reported: sites placed; *violations*, sites closer than the clearance to a TRUE vessel
(ground-truth mask; segmentation errors cause them), also counted against the clearance without
its segmentation-error term (needle, robot, registration and margin only); *true hits*, sites closer than the needle
radius to one; the smallest true margin; the Monte-Carlo hit probability against the TRUE
vessels (max over sites; every placement ordered and timed in quiet phases the same way); *coverage*, the fraction of the region within ``sqrt(area / (pi N))``
of a site (N the planner's count, the same radius for all three) and the mean distance from a
region point to its nearest site; and the planner's wall time for the whole plan (sites, depth,
order, timing, Monte-Carlo), median of 3, with BLAS and OpenMP pools held to one thread, as
wall time and as CPU time (the one-core work, less sensitive to other load on the machine).

Run: ``python -m benchmarks surgery [--quick]`` (quick: 512 x 512 px instead of 1024 x 1024).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks._common import console, table
from neurolace.surgery import METHODS, dice, segment_vessels, synthetic_vasculature

UM_PER_PX = 10.0
DENSITIES = (0.5, 1.0, 2.0)
SEEDS = (0, 1, 2)


def segmentation(quick: bool = False) -> dict:
    """Dice, vessel fractions and time of each method over densities and seeds."""
    side_px = 512 if quick else 1024
    runs = []
    for density in DENSITIES:
        for seed in SEEDS:
            cortex = synthetic_vasculature((side_px, side_px), UM_PER_PX, density=density, seed=seed)
            for method in METHODS:
                start = time.perf_counter()
                found = segment_vessels(cortex.image, cortex.um_per_px, method=method)
                elapsed_s = time.perf_counter() - start
                runs.append({"method": method, "density": density, "seed": seed,
                             "dice": dice(found.mask, cortex.mask),
                             "true_fraction": cortex.vessel_fraction,
                             "found_fraction": found.vessel_fraction,
                             "time_s": elapsed_s})
    rows, summary = [], []
    for method in METHODS:
        for density in DENSITIES:
            chosen = [r for r in runs if r["method"] == method and r["density"] == density]
            scores = np.array([r["dice"] for r in chosen])
            entry = {"method": method, "density": density,
                     "dice_mean": float(scores.mean()), "dice_min": float(scores.min()),
                     "true_fraction_mean": float(np.mean([r["true_fraction"] for r in chosen])),
                     "found_fraction_mean": float(np.mean([r["found_fraction"] for r in chosen])),
                     "time_s_median": float(np.median([r["time_s"] for r in chosen]))}
            summary.append(entry)
            rows.append([method, f"{density:g}", entry["dice_mean"], entry["dice_min"],
                         entry["true_fraction_mean"], entry["found_fraction_mean"], entry["time_s_median"]])
    table(f"Vessel segmentation, synthetic cortex {side_px} x {side_px} px at {UM_PER_PX:g} µm/px, "
          f"seeds {', '.join(map(str, SEEDS))}",
          ["method", "density", "Dice mean", "Dice worst", "true fraction", "found fraction", "time s"], rows)
    return {"side_px": side_px, "um_per_px": UM_PER_PX, "densities": list(DENSITIES), "seeds": list(SEEDS),
            "summary": summary, "runs": runs}


# --- planning: sites, violations, coverage, planning time (the planning part appends here) -----------


#: Target disc of the planning rows: centred, radius 2 mm (1.2 mm on the quick 5.12 mm field).
PLANNING_RADIUS_UM = {False: 2000.0, True: 1200.0}
PLANNING_SITES = 64
PLANNING_DENSITIES = (0.5, 1.0, 2.0)


def _feasible_points(vessel_map, region, clearance_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of the region clear of ``vessel_map``'s vessels by the clearance, and that mask."""
    from neurolace.surgery.sites import pixel_centres_um, safe_distance_um

    _, safe_um = safe_distance_um(vessel_map)
    feasible = region.mask & (safe_um >= clearance_um)
    rows, cols = np.nonzero(feasible)
    return pixel_centres_um(rows, cols, vessel_map.um_per_px), feasible


def grid_placement(vessel_map, region, n_sites: int, clearance_um: float, spacing_um: float) -> np.ndarray:
    """Baseline: a square grid over the region, skipping points ``vessel_map`` puts within the clearance.

    The pitch is the largest (from the hexagonal-lattice spacing of ``n_sites`` on the region's
    area down to ``spacing_um``, in 2 % steps) that leaves ``n_sites`` feasible grid points; the
    ``n_sites`` nearest the region's centroid are kept.
    """
    from neurolace.surgery.sites import safe_distance_um

    um_per_px = vessel_map.um_per_px
    _, safe_um = safe_distance_um(vessel_map)
    rows, cols = np.nonzero(region.mask)
    centre = np.array([(cols.mean() + 0.5) * um_per_px, (rows.mean() + 0.5) * um_per_px])
    lattice = max(spacing_um, float(np.sqrt(2.0 * region.area_mm2 * 1e6 / (np.sqrt(3.0) * n_sites))))
    best = np.zeros((0, 2))
    for pitch in lattice * 0.98 ** np.arange(200):
        if pitch < spacing_um:
            break
        span = np.arange(-20000.0, 20000.0, pitch)
        points = (centre + np.stack(np.meshgrid(span, span), axis=-1).reshape(-1, 2))
        col = np.floor(points[:, 0] / um_per_px).astype(np.intp)
        row = np.floor(points[:, 1] / um_per_px).astype(np.intp)
        inside = (col >= 0) & (col < region.mask.shape[1]) & (row >= 0) & (row < region.mask.shape[0])
        points, col, row = points[inside], col[inside], row[inside]
        keep = region.mask[row, col] & (safe_um[row, col] >= clearance_um)
        points = points[keep]
        if points.shape[0] > best.shape[0]:
            best = points
        if points.shape[0] >= n_sites:
            break
    order = np.argsort(np.hypot(*(best - centre).T), kind="stable")
    return best[order[:n_sites]]


def random_placement(vessel_map, region, n_sites: int, clearance_um: float, spacing_um: float, seed: int) -> np.ndarray:
    """Baseline: dart throwing on the region's pixels ``vessel_map`` leaves feasible, ``spacing_um`` apart."""
    candidates, _ = _feasible_points(vessel_map, region, clearance_um)
    rng = np.random.default_rng(seed)
    chosen = []
    for index in rng.permutation(candidates.shape[0])[:20000]:
        point = candidates[index]
        if all(np.hypot(*(point - other)) >= spacing_um for other in chosen):
            chosen.append(point)
            if len(chosen) == n_sites:
                break
    return np.asarray(chosen).reshape(-1, 2)


def planning(quick: bool = False) -> dict:
    """Planner against grid and random placement: true-vessel violations, coverage, planning time."""
    from threadpoolctl import threadpool_limits

    from neurolace.surgery import distance_map_um
    from neurolace.surgery.montecarlo import estimate_placement
    from neurolace.surgery.motion import schedule_insertions
    from neurolace.surgery.ordering import order_insertions
    from neurolace.surgery.plan import plan_insertions
    from neurolace.surgery.sites import coverage, safe_distance_um, target_region
    from neurolace.surgery.vessels import VesselMap

    side_px = 512 if quick else 1024
    radius_um = PLANNING_RADIUS_UM[quick]
    repeats = 1 if quick else 3
    runs = []
    for density in PLANNING_DENSITIES:
        for seed in SEEDS:
            cortex = synthetic_vasculature((side_px, side_px), UM_PER_PX, density=density, seed=seed)
            segmented = segment_vessels(cortex.image, cortex.um_per_px)
            truth = VesselMap(mask=cortex.mask, distance_um=distance_map_um(cortex.mask, UM_PER_PX),
                              um_per_px=UM_PER_PX, vesselness=cortex.mask.astype(float))
            centre_um = (side_px * UM_PER_PX / 2.0, side_px * UM_PER_PX / 2.0)
            region = target_region(cortex.mask.shape, UM_PER_PX, centre_um=centre_um, radius_um=radius_um)
            times, cpu_times = [], []
            with threadpool_limits(1):  # one core, as the aim says
                for _ in range(repeats):
                    start, cpu_start = time.perf_counter(), time.process_time()
                    plan = plan_insertions(segmented, PLANNING_SITES, region=region, seed=seed)
                    times.append(time.perf_counter() - start)
                    cpu_times.append(time.process_time() - cpu_start)
            clearance_um, spacing_um = plan.clearance_um, plan.selection.min_spacing_um
            placements = {  # the baselines skip vessels by the planner's own (cautious) map
                "planner": plan.sites_xy_um,
                "grid": grid_placement(plan.planning_map, region, PLANNING_SITES, clearance_um, spacing_um),
                "random": random_placement(plan.planning_map, region, PLANNING_SITES, clearance_um, spacing_um, seed),
            }
            _, true_safe_um = safe_distance_um(truth)
            for method, xy_um in placements.items():
                cols = np.clip((xy_um[:, 0] / UM_PER_PX).astype(np.intp), 0, side_px - 1)
                rows = np.clip((xy_um[:, 1] / UM_PER_PX).astype(np.intp), 0, side_px - 1)
                true_safe = true_safe_um[rows, cols]  # to the TRUE vessels' near edge, or the image's edge
                if method == "planner":
                    start_s = plan.schedule.start_s
                else:  # the baselines are ordered and timed in quiet phases the same way
                    ordering = order_insertions(xy_um, thread_clearance_um=clearance_um)
                    start_s = schedule_insertions(xy_um, ordering.order, home_xy_um=ordering.implant_xy_um).start_s
                risk = estimate_placement(truth, xy_um, n_samples=1000, seed=seed, insertion_start_s=start_s)
                cover = coverage(xy_um, region, radius_um=coverage(plan.sites_xy_um, region)["radius_um"]
                                 if plan.n_sites else None)
                runs.append({
                    "method": method, "density": density, "seed": seed, "n_sites": int(xy_um.shape[0]),
                    "violations": int((true_safe < clearance_um).sum()),
                    "violations_without_segmentation_term": int(
                        (true_safe < clearance_um - plan.selection.clearance.segmentation_error_um).sum()),
                    "true_hits": int((true_safe < plan.selection.clearance.needle_radius_um).sum()),
                    "min_true_margin_um": float((true_safe - clearance_um).min()) if xy_um.size else None,
                    "mean_true_hit_probability": float(risk.hit_probability.mean()) if xy_um.size else None,
                    "max_true_hit_probability": float(risk.hit_probability.max()) if xy_um.size else None,
                    "coverage": cover["fraction"], "mean_distance_um": cover["mean_distance_um"],
                    "planning_s": float(np.median(times)) if method == "planner" else None,
                    "planning_s_all": times if method == "planner" else None,
                    "planning_cpu_s": float(np.median(cpu_times)) if method == "planner" else None,
                    "estimated_duration_s": plan.estimated_duration_s if method == "planner" else None,
                    "dice": dice(segmented.mask, cortex.mask),
                })
    rows, summary = [], []
    for density in PLANNING_DENSITIES:
        for method in ("planner", "grid", "random"):
            chosen = [r for r in runs if r["method"] == method and r["density"] == density]
            margins = [r["min_true_margin_um"] for r in chosen if r["min_true_margin_um"] is not None]
            entry = {
                "method": method, "density": density,
                "sites_mean": float(np.mean([r["n_sites"] for r in chosen])),
                "violations_total": int(sum(r["violations"] for r in chosen)),
                "violations_without_segmentation_term_total": int(
                    sum(r["violations_without_segmentation_term"] for r in chosen)),
                "true_hits_total": int(sum(r["true_hits"] for r in chosen)),
                "images_with_violations": int(sum(r["violations"] > 0 for r in chosen)),
                "min_true_margin_um": float(min(margins)) if margins else None,
                "max_true_hit_probability": float(max(r["max_true_hit_probability"] or 0.0 for r in chosen)),
                "coverage_mean": float(np.mean([r["coverage"] for r in chosen])),
                "mean_distance_um": float(np.mean([r["mean_distance_um"] or np.nan for r in chosen])),
                "planning_s_median": (float(np.median([r["planning_s"] for r in chosen]))
                                      if method == "planner" else None),
                "planning_cpu_s_median": (float(np.median([r["planning_cpu_s"] for r in chosen]))
                                          if method == "planner" else None),
            }
            summary.append(entry)
            rows.append([f"{density:g}", method, entry["sites_mean"], entry["violations_total"],
                         entry["images_with_violations"], entry["violations_without_segmentation_term_total"],
                         entry["true_hits_total"],
                         "-" if entry["min_true_margin_um"] is None else entry["min_true_margin_um"],
                         entry["max_true_hit_probability"], entry["coverage_mean"], entry["mean_distance_um"],
                         "-" if entry["planning_s_median"] is None else entry["planning_s_median"],
                         "-" if entry["planning_cpu_s_median"] is None else entry["planning_cpu_s_median"]])
    table(f"Insertion planning: {PLANNING_SITES} sites in a {radius_um / 1000:g} mm disc, synthetic cortex "
          f"{side_px} x {side_px} px at {UM_PER_PX:g} µm/px, Frangi segmentation, seeds {', '.join(map(str, SEEDS))}; "
          "violations against the TRUE vessels (aim: 0; 64 sites planned < 2 s on one core)",
          ["density", "placement", "sites", "violations", "images w/ viol.", "viol. w/o seg. term", "true hits",
           "min true margin µm",
           "max true P(hit)", "coverage", "mean dist µm", "plan wall s", "plan CPU s"], rows)
    return {"side_px": side_px, "um_per_px": UM_PER_PX, "region_radius_um": radius_um, "n_sites": PLANNING_SITES,
            "densities": list(PLANNING_DENSITIES), "seeds": list(SEEDS), "repeats": repeats,
            "summary": summary, "runs": runs}


def run(quick: bool = False) -> dict:
    """Every part of this benchmark; each returns its own section of the JSON."""
    started = time.perf_counter()
    result = {"quick": quick, "segmentation": segmentation(quick)}
    result["planning"] = planning(quick)
    result["wall_s"] = time.perf_counter() - started
    return result


if __name__ == "__main__":
    import argparse

    from benchmarks._common import write_result

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_surgery")
    parser.add_argument("--quick", action="store_true", help="512 x 512 px images")
    console.print(f"wrote {write_result('surgery', run(quick=parser.parse_args().quick))}")
