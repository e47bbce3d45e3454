"""Closed-loop Webgrid BPS on the two feature paths: through the implant, and the counts fast mode.

The same participants, seeds, schedule and decoder on both paths
(:func:`neurolace.runtime.run_calibration_session`, the schedule of ``neurolace
demo``); only what the decoder sees differs: on the ``implant`` path each
intention drives the implant simulator's units, spike waveforms at 19.5 kHz go
through the on-implant chain and each 20 ms bin holds every channel's threshold
crossings and spike-band power; on the ``counts`` path the decoder sees the
participant's Poisson counts. The participant's intentions, the Webgrid targets
and the perfect decoder's ceiling are the same on both paths (the source has
its own seed, :func:`neurolace.runtime.closed_loop.block_seeds`).

Reported per seed and path: pooled Webgrid BPS, each Webgrid block's BPS, and
the ceiling. Agreement: the mean paired difference (implant - counts) and its
standard error over seeds, against the block-to-block spread (the pooled
within-session standard deviation of one Webgrid block's BPS).

Sizes: the implant path runs at about 3x real time at 1024 channels on one core
(docs/simulator.md), so 3 seeds x 2 paths of a full session at 1024 channels
cost ~15 CPU minutes; this benchmark uses ``N_CHANNELS`` channels (the table
says how many). Run: ``python -m benchmarks paths [--quick]``.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks._common import console, table

N_CHANNELS = 256
SEEDS = [0, 1, 2]


def _session(path: str, seed: int, *, n_channels: int, sizes: dict) -> dict:
    from neurolace.runtime.closed_loop import run_calibration_session
    from neurolace.runtime.nodes.sources import build_feature_source
    from neurolace.sim.participant import SimulatedParticipant

    participant = SimulatedParticipant(n_channels=n_channels, seed=seed)
    source = build_feature_source(participant, path)
    started = time.process_time()
    result = run_calibration_session(seed=seed, n_channels=n_channels, decoder="kalman", participant=participant,
                                     source=source, **sizes)
    return {
        "path": path,
        "seed": seed,
        "bps": result.bps,
        "block_bps": [b.bps for b in result.webgrid_blocks],
        "success_rate": result.success_rate,
        "cpu_s": time.process_time() - started,
    }


def run(quick: bool = False) -> dict:
    from neurolace.runtime.closed_loop import ideal_webgrid_bps

    n_channels = 64 if quick else N_CHANNELS
    sizes = ({"open_loop_seconds": 30.0, "closed_loop_seconds": 20.0, "webgrid_seconds": 30.0, "n_webgrid_blocks": 2}
             if quick else
             {"open_loop_seconds": 60.0, "closed_loop_seconds": 40.0, "webgrid_seconds": 60.0, "n_webgrid_blocks": 2})
    rows, sessions = [], []
    for seed in SEEDS:
        ideal = ideal_webgrid_bps(seed=seed, n_channels=n_channels, webgrid_seconds=sizes["webgrid_seconds"],
                                  n_webgrid_blocks=sizes["n_webgrid_blocks"])
        for path in ("implant", "counts"):
            session = {**_session(path, seed, n_channels=n_channels, sizes=sizes), "ideal_bps": ideal}
            sessions.append(session)
            rows.append([seed, path, f"{session['bps']:.2f}", " / ".join(f"{b:.2f}" for b in session["block_bps"]),
                         f"{session['success_rate']:.2f}", f"{ideal:.2f}", f"{session['cpu_s']:.0f}"])
    table(f"Webgrid 30x30, Kalman, {n_channels} channels, both paths", ["seed", "path", "BPS", "blocks BPS",
          "success", "ideal BPS", "CPU s"], rows)
    by = {(s["path"], s["seed"]): s for s in sessions}
    differences = [by[("implant", seed)]["bps"] - by[("counts", seed)]["bps"] for seed in SEEDS]
    # pooled within-session standard deviation of one block's BPS (each session's mean estimated once)
    deviations = [b - s["bps"] for s in sessions for b in s["block_bps"]]
    degrees = len(deviations) - len(sessions)
    spread = float(np.sqrt(np.sum(np.square(deviations)) / degrees)) if degrees > 0 else float("nan")
    standard_error = float(np.std(differences, ddof=1) / np.sqrt(len(differences)))
    mean = {path: float(np.mean([by[(path, seed)]["bps"] for seed in SEEDS])) for path in ("implant", "counts")}
    console.print(
        f"mean BPS implant {mean['implant']:.2f}, counts {mean['counts']:.2f}; paired difference (implant - counts) "
        f"{np.mean(differences):+.2f} +- {standard_error:.2f} (standard error; per seed "
        f"{', '.join(f'{d:+.2f}' for d in differences)}); block-to-block spread (pooled within-session SD of "
        f"one block's BPS) {spread:.2f}"
    )
    return {"n_channels": n_channels, "sizes": sizes, "seeds": SEEDS, "sessions": sessions, "mean_bps": mean,
            "paired_difference_bps": differences, "paired_difference_standard_error_bps": standard_error,
            "block_spread_bps": spread}
