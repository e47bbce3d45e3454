"""Surgery: vessel segmentation on synthetic vasculature (this part) and insertion planning (below).

Segmentation (:func:`segmentation`): for each vessel density and seed,
:func:`neurolace.surgery.synthetic_vasculature` draws an exposed cortex with its ground-truth mask
and :func:`neurolace.surgery.segment_vessels` segments it with each vesselness filter (Frangi, Sato,
Meijering) at default settings. Reported per method and density: Dice against the ground truth
(mean and worst over seeds), the segmented and true vessel fractions, and the segmentation's wall
time (one call, one process).

Planning (:func:`planning`): sites, clearance violations, coverage and planning time; its own
function and table, appended by the planning part of the surgery package.

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


def run(quick: bool = False) -> dict:
    """Every part of this benchmark; each returns its own section of the JSON."""
    started = time.perf_counter()
    result = {"quick": quick, "segmentation": segmentation(quick)}
    result["wall_s"] = time.perf_counter() - started
    return result


if __name__ == "__main__":
    import argparse

    from benchmarks._common import write_result

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_surgery")
    parser.add_argument("--quick", action="store_true", help="512 x 512 px images")
    console.print(f"wrote {write_result('surgery', run(quick=parser.parse_args().quick))}")
