"""Closed-loop Webgrid bits per second of every decoder on the same simulated participants.

For each seed, one default participant (1024 channels, calibrated to real M1
decodability) runs the automated session of :func:`neurolace.runtime.run_refit_comparison`
once per decoder: open-loop observation, first decoder, closed-loop block,
then Webgrid on 30 x 30 both without and with ReFIT recalibration (paired:
same calibration blocks and target sequences). Baselines measured in the
same run: the velocity Kalman filter (the reference the aim is stated
against) and the "ideal decoder" (the cursor follows the participant's
intention exactly), which is the participant model's own ceiling.

It also measures the calibration: ridge R² of the simulated participant with
the real-data protocol, next to the same ridge on the real Stevenson M1 data.
The comparison is at matched population size and bin width: a random subset
of 196 of the participant's channels (the real recording has 196 units), 50 ms
bins, as long as the real recording (777 s); the full 1024 channels at the
closed loop's 20 ms bins are listed for information.

Run: ``python -m benchmarks closed_loop [--quick]``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import scipy.io

from benchmarks._common import console, shared_data, table
from neurolace.runtime import run_block, run_refit_comparison
from neurolace.runtime.closed_loop import DEFAULT_CURSOR_GAIN_PER_S
from neurolace.decode.ridge import ridge_decodability
from neurolace.runtime.reaching import offline_decodability
from neurolace.sim.participant import SimulatedParticipant
from neurolace.tasks import WebgridTask

GRID_SIDE = 30

#: Units in the real Stevenson recording, and its length in seconds (15,535 bins of 50 ms).
REAL_UNITS = 196
REAL_DURATION_S = 777.0


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def run(quick: bool = False) -> dict:
    seeds = [0, 1] if quick else [0, 1, 2, 3, 4]
    session = {
        "grid_side": GRID_SIDE,
        "webgrid_seconds": 30.0 if quick else 60.0,
        "n_webgrid_blocks": 1 if quick else 2,
        "open_loop_seconds": 60.0 if quick else 120.0,
        "closed_loop_seconds": 60.0 if quick else 120.0,
    }
    decoders = ["wiener", "kalman"] + (["gru"] if _torch_available() and not quick else [])
    rows: dict[str, dict] = {}

    def record(label: str, result, wall_s: float) -> None:
        entry = rows.setdefault(label, {"bps": [], "ntpm": [], "success_rate": [], "correct": [], "incorrect": [],
                                        "wall_s": []})
        entry["bps"].append(result.bps)
        entry["ntpm"].append(result.ntpm)
        entry["success_rate"].append(result.success_rate)
        entry["correct"].append(sum(b.correct for b in result.webgrid_blocks))
        entry["incorrect"].append(sum(b.incorrect for b in result.webgrid_blocks))
        entry["wall_s"].append(wall_s)

    for seed in seeds:
        participant = SimulatedParticipant(seed=seed)
        ideal = run_block(participant, WebgridTask(grid_side=GRID_SIDE, seed=seed), seed=seed,
                          cursor_gain_per_s=DEFAULT_CURSOR_GAIN_PER_S,
                          observation="intention",
                          duration_s=session["webgrid_seconds"] * session["n_webgrid_blocks"])
        summary = ideal.summary
        rows.setdefault("ideal decoder (intention)", {"bps": [], "ntpm": [], "success_rate": [], "correct": [],
                                                      "incorrect": [], "wall_s": []})
        entry = rows["ideal decoder (intention)"]
        entry["bps"].append(summary.bps)
        entry["ntpm"].append(summary.ntpm)
        entry["success_rate"].append(summary.success_rate)
        entry["correct"].append(summary.correct)
        entry["incorrect"].append(summary.incorrect)
        entry["wall_s"].append(0.0)
        for decoder in decoders:
            start = time.perf_counter()
            without, with_refit = run_refit_comparison(seed=seed, decoder=decoder, **session)
            wall_s = (time.perf_counter() - start) / 2
            if decoder == "kalman":
                record("kalman (velocity KF)", without, wall_s)
                record("refit-kalman (ReFIT-KF)", with_refit, wall_s)
            else:
                record(decoder, without, wall_s)
                record(f"{decoder} + ReFIT", with_refit, wall_s)
            console.print(f"seed {seed} {decoder}: {without.bps:.2f} BPS without ReFIT, "
                          f"{with_refit.bps:.2f} with")

    session_minutes = session["webgrid_seconds"] * session["n_webgrid_blocks"] / 60
    table_rows = []
    for label, entry in rows.items():
        table_rows.append([
            label, _mean_sd(entry["bps"]), f"{statistics.median(entry['bps']):.2f}", _mean_sd(entry["ntpm"]),
            _mean_sd([v for v in entry["success_rate"] if np.isfinite(v)] or [float("nan")]),
            f"{sum(entry['correct'])}/{sum(entry['incorrect'])}", len(entry["bps"]),
        ])
    table(
        f"Closed-loop Webgrid {GRID_SIDE}x{GRID_SIDE}, {session_minutes:g} min of Webgrid per seed, "
        f"1024-channel simulated participants, cursor gain {DEFAULT_CURSOR_GAIN_PER_S:g}/s",
        ["decoder", "BPS mean ± sd", "BPS median", "NTPM", "success rate", "correct/incorrect", "seeds"],
        table_rows,
    )
    kalman_bps = statistics.mean(rows["kalman (velocity KF)"]["bps"])
    decoded = {k: statistics.mean(v["bps"]) for k, v in rows.items() if not k.startswith("ideal")}
    best = max(decoded, key=decoded.get)
    ratio = decoded[best] / kalman_bps if kalman_bps > 0 else float("inf")
    console.print(f"best decoder: {best} at {decoded[best]:.2f} BPS; velocity KF {kalman_bps:.2f} BPS; "
                  f"ratio {ratio:.2f} (aim >= 1.5); aim for the default participant: > 10 BPS")

    # calibration: the simulated participant's offline decodability against the real M1 data
    data = scipy.io.loadmat(shared_data("stevenson2011-m1-reaching", "StevensonV2.mat"))
    real = ridge_decodability(data["spikes"].T.astype(np.float64), data["handVel"][:2].T)
    calibration_seeds = [0] if quick else [0, 1, 2]
    subset_duration_s = 300.0 if quick else REAL_DURATION_S
    matched = [offline_decodability(seed=s, duration_s=subset_duration_s, bin_s=0.05, n_subset_channels=REAL_UNITS)
               for s in calibration_seeds]
    full = [offline_decodability(seed=s, duration_s=120.0) for s in calibration_seeds]

    def row(label: str, bin_label: str, result: dict) -> list:
        return [label, bin_label, *[f"{v:.3f}" for v in result["r2"]], f"{result['r2_mean']:.3f}",
                result["n_train_bins"], result["n_features"]]

    table(
        "Calibration: ridge R² (sqrt counts, 10 bins of history, first 70 % fit, last 30 % scored)",
        ["data", "bin", "R² vx", "R² vy", "R² mean", "train bins", "features"],
        [row(f"Stevenson 2011 M1 (real, {REAL_UNITS} units)", "50 ms", real)]
        + [row(f"simulated seed {s}, {REAL_UNITS} of 1024 ch, {subset_duration_s:g} s", "50 ms", r)
           for s, r in zip(calibration_seeds, matched)]
        + [row(f"simulated seed {s}, all 1024 ch, 120 s (information)", "20 ms", r)
           for s, r in zip(calibration_seeds, full)],
    )
    console.print(f"matched-size simulated R² mean {statistics.mean(r['r2_mean'] for r in matched):.3f} "
                  f"vs real {real['r2_mean']:.3f}")
    return {
        "grid_side": GRID_SIDE,
        "session": session,
        "seeds": seeds,
        "rows": rows,
        "best_decoder": best,
        "best_over_kalman": ratio,
        "cursor_gain_per_s": DEFAULT_CURSOR_GAIN_PER_S,
        "calibration": {"real": real, "matched_subset": matched, "full_1024_20ms": full},
    }
