"""The simulated participant with a perfect decoder, against human mouse users.

With the cursor moving exactly as the participant intends and clicking when
it intends (``run_block(..., observation="intention")``), the participant
model's own ceiling is measured on the two tasks human pointing performance
is published for:

- Webgrid 30 x 30 bits per second, against able-bodied mouse users: about
  10 BPS for Neuralink staff with a mouse and 11.77 BPS (72 NTPM) for a
  journalist (Neuralink's published Webgrid numbers, 2024; see
  :mod:`neurolace.tasks.metrics`); the time to enter the lit cell and from
  entry to the click are reported beside them;
- center-out ISO 9241-9 throughput (effective width, 3 distances x 3 widths),
  against the mouse range of ISO-conforming studies, 3.7-4.9 bits/s
  (Soukoreff & MacKenzie 2004, Int J Human-Computer Studies 61:751).

Each task is run over several seeds and a sweep of cursor gain; the best gain
(the highest median) is what a user would set. The default participant, its
second family (:meth:`SimulatedParticipant.from_population`, control drawn
from the cited ranges) and the two ends of the motor-noise range are run at
the best Webgrid gain. The perfect decoder never looks at the channels, and
the motor noise has its own random stream, so 8 channels give the same
movements as 1024 and keep this fast.

Run: ``python -m benchmarks participant [--quick]``.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import numpy as np

from benchmarks._common import console, table
from neurolace.runtime.closed_loop import run_block
from neurolace.sim.participant import CONTROL_PARAMETER_RANGES, ControlParameters, SimulatedParticipant
from neurolace.tasks import CenterOutTask, WebgridTask, iso_throughput

GRID_SIDE = 30
N_CHANNELS = 8  # the perfect decoder ignores the channels (module docstring)

#: Published able-bodied mouse Webgrid 30x30 scores (BPS): Neuralink staff ~10; a journalist 11.77.
MOUSE_WEBGRID_BPS = (10.0, 11.77)
#: Mouse ISO 9241-9 throughput across ISO-conforming studies, bits/s (Soukoreff & MacKenzie 2004).
MOUSE_ISO_THROUGHPUT_BPS = (3.7, 4.9)
#: Center-out conditions (radius, target width) in workspace units: nominal IDs 1.6-4.2 bits.
CENTER_OUT_CONDITIONS = [(r, w) for r in (0.15, 0.3, 0.45) for w in (0.025, 0.05, 0.1) if r + w / 2 <= 0.5]


def webgrid_ideal(participant: SimulatedParticipant, *, gain: float, seed: int, duration_s: float) -> dict:
    """One Webgrid block with the perfect decoder: BPS, times and errors."""
    summary = run_block(participant, WebgridTask(grid_side=GRID_SIDE, seed=seed), duration_s=duration_s,
                        observation="intention", cursor_gain_per_s=gain, seed=seed).summary
    return {"bps": summary.bps, "ntpm": summary.ntpm, "correct": summary.correct, "incorrect": summary.incorrect,
            "time_per_target_s": summary.mean_time_to_target_s,
            "time_to_entry_s": summary.mean_time_to_first_entry_s,
            "entry_to_click_s": summary.mean_dial_in_time_s}


def center_out_throughput(participant: SimulatedParticipant, *, gain: float, seed: int, block_s: float) -> dict:
    """ISO throughput over :data:`CENTER_OUT_CONDITIONS`, one block of ``block_s`` each, pooled."""
    trials, nominal, incorrect, clicks = [], [], 0, 0
    for radius, width in CENTER_OUT_CONDITIONS:
        task = CenterOutTask(radius=radius, target_width=width, seed=seed)
        run_block(participant, task, duration_s=block_s, observation="intention", cursor_gain_per_s=gain, seed=seed)
        done = [t for t in task.trials if t.success]
        trials += done
        nominal += [radius] * len(done)
        incorrect += task.incorrect
        clicks += task.incorrect + task.correct
    result = iso_throughput([t.start_xy for t in trials], [t.target.center_xy for t in trials],
                            [t.selection_xy for t in trials], [t.acquisition_time_s for t in trials],
                            [t.target.width for t in trials], nominal_distance=nominal)
    widths = [c.effective_width / c.width for c in result.conditions]
    return {"throughput_bps": result.throughput_bps, "error_rate": incorrect / clicks if clicks else float("nan"),
            "effective_over_nominal_width": float(np.median(widths)) if widths else float("nan"),
            "conditions": result.to_dict()["conditions"]}


def _median(entries: list[dict], key: str) -> float:
    values = [e[key] for e in entries if np.isfinite(e[key])]
    return float(statistics.median(values)) if values else float("nan")


def run(quick: bool = False) -> dict:
    seeds = [0, 1] if quick else [0, 1, 2, 3, 4]
    gains = [1.0, 2.0, 3.0] if quick else [1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    webgrid_s = 30.0 if quick else 60.0
    center_out_block_s = 10.0 if quick else 20.0

    sweep = []
    for gain in gains:
        webgrid = [webgrid_ideal(SimulatedParticipant(n_channels=N_CHANNELS, seed=s), gain=gain, seed=s,
                                 duration_s=webgrid_s) for s in seeds]
        center_out = [center_out_throughput(SimulatedParticipant(n_channels=N_CHANNELS, seed=s), gain=gain, seed=s,
                                            block_s=center_out_block_s) for s in seeds]
        sweep.append({"gain_per_s": gain, "webgrid": webgrid, "center_out": center_out})
    rows = [[f"{e['gain_per_s']:g}", _median(e["webgrid"], "bps"), _median(e["webgrid"], "time_per_target_s"),
             _median(e["webgrid"], "time_to_entry_s"), _median(e["webgrid"], "entry_to_click_s"),
             sum(w["incorrect"] for w in e["webgrid"]), _median(e["center_out"], "throughput_bps"),
             _median(e["center_out"], "effective_over_nominal_width"), _median(e["center_out"], "error_rate")]
            for e in sweep]
    table(f"Perfect decoder, default participant, {len(seeds)} seeds (medians): Webgrid {GRID_SIDE}x{GRID_SIDE} "
          f"{webgrid_s:g} s blocks; center-out ISO 9241-9 over {len(CENTER_OUT_CONDITIONS)} conditions",
          ["gain/s", "BPS", "s/tgt", "entry s", "click s", "miss", "TP", "We/W", "CO err"], rows)
    console.print("entry s: lit to first entry; click s: entry to click; miss: Webgrid misclicks (all seeds); "
                  "TP: ISO throughput bit/s; We/W: effective over nominal width; CO err: center-out misclicks")

    best = max(sweep, key=lambda e: _median(e["webgrid"], "bps"))
    best_center_out = max(sweep, key=lambda e: _median(e["center_out"], "throughput_bps"))
    best_gain = best["gain_per_s"]

    variants = {"default": lambda s: SimulatedParticipant(n_channels=N_CHANNELS, seed=s),
                "second family": lambda s: SimulatedParticipant.from_population(
                    s, n_channels=N_CHANNELS)}
    for cv in CONTROL_PARAMETER_RANGES["motor_noise_cv"]:
        variants[f"noise cv {cv:g}"] = lambda s, cv=cv: SimulatedParticipant(
            n_channels=N_CHANNELS, seed=s, control=replace(ControlParameters(), motor_noise_cv=cv))
    at_best = {}
    for label, make in variants.items():
        webgrid = (best["webgrid"] if label == "default" else
                   [webgrid_ideal(make(s), gain=best_gain, seed=s, duration_s=webgrid_s) for s in seeds])
        center_out = (best["center_out"] if label == "default" else
                      [center_out_throughput(make(s), gain=best_gain, seed=s, block_s=center_out_block_s)
                       for s in seeds])
        at_best[label] = {"webgrid": webgrid, "center_out": center_out}
    table(f"At the best Webgrid gain ({best_gain:g}/s), medians over {len(seeds)} seeds",
          ["participant", "BPS", "s/tgt", "entry s", "click s", "TP"],
          [[label, _median(v["webgrid"], "bps"), _median(v["webgrid"], "time_per_target_s"),
            _median(v["webgrid"], "time_to_entry_s"), _median(v["webgrid"], "entry_to_click_s"),
            _median(v["center_out"], "throughput_bps")] for label, v in at_best.items()])

    ideal_bps = _median(best["webgrid"], "bps")
    ideal_tp = _median(best_center_out["center_out"], "throughput_bps")
    published_s = [60.0 / (bps * 60.0 / np.log2(GRID_SIDE**2 - 1)) for bps in MOUSE_WEBGRID_BPS]
    console.print(
        f"ideal Webgrid {ideal_bps:.2f} BPS at gain {best_gain:g}/s (able-bodied mouse "
        f"{MOUSE_WEBGRID_BPS[0]:g}-{MOUSE_WEBGRID_BPS[1]:g} BPS = {published_s[0]:.2f}-{published_s[1]:.2f} s per "
        f"target; no published split into entry and click was found); ideal center-out ISO throughput "
        f"{ideal_tp:.2f} bit/s at gain {best_center_out['gain_per_s']:g}/s (mouse {MOUSE_ISO_THROUGHPUT_BPS[0]:g}-"
        f"{MOUSE_ISO_THROUGHPUT_BPS[1]:g} bit/s)")
    return {
        "grid_side": GRID_SIDE,
        "seeds": seeds,
        "webgrid_block_s": webgrid_s,
        "center_out_block_s": center_out_block_s,
        "center_out_conditions": CENTER_OUT_CONDITIONS,
        "control_defaults": ControlParameters().__dict__,
        "control_ranges": CONTROL_PARAMETER_RANGES,
        "sweep": sweep,
        "best_webgrid_gain_per_s": best_gain,
        "best_center_out_gain_per_s": best_center_out["gain_per_s"],
        "ideal_webgrid_bps_median": ideal_bps,
        "ideal_center_out_throughput_bps_median": ideal_tp,
        "at_best_gain": at_best,
        "reference": {"mouse_webgrid_bps": MOUSE_WEBGRID_BPS, "mouse_iso_throughput_bps": MOUSE_ISO_THROUGHPUT_BPS},
    }
