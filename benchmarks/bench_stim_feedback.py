"""Closed-loop ICMS feedback: Webgrid BPS and time to target, vision alone vs vision + ICMS, same seeds.

For each seed the default participant runs the calibration blocks once
(:func:`~neurolace.runtime.closed_loop.calibrate_session`, ReFIT-KF), and the
same decoders play the session's Webgrid blocks (same targets, same noise
seeds) in :class:`~neurolace.runtime.loop.ClosedLoop` three ways:

- ``vision``: no feedback (the loop as it always was);
- ``vision + ICMS``: :class:`~neurolace.runtime.feedback.SensoryFeedback` with the
  default :class:`~neurolace.stim.feedback.FeedbackEncoder`, every train judged by
  the default safety envelope, the touch felt ``icms_delay_s`` (0.10 s) after
  delivery against vision's 0.12 s (:class:`~neurolace.sim.participant.ControlParameters`);
- ``vision + ICMS, no lead``: the same with ``icms_delay_s = visual_delay_s``,
  so the feedback brings no earlier percept (a control: what the path does by
  itself).

Medians over seeds and the median of the per-seed ratios to vision are
reported, with the trains delivered and refused.

Run: ``python -m benchmarks stim_feedback [--quick]``.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import replace

from benchmarks._common import console, table
from neurolace.runtime.closed_loop import calibrate_session, run_webgrid
from neurolace.runtime.feedback import SensoryFeedback
from neurolace.sim.participant import SimulatedParticipant

CONDITIONS = ("vision", "vision + ICMS", "vision + ICMS, no lead")


def _config(quick: bool) -> dict:
    if quick:
        return {"seeds": [0, 1, 2, 3], "n_channels": 192,
                "session": {"webgrid_seconds": 60.0, "n_webgrid_blocks": 1, "open_loop_seconds": 60.0,
                            "closed_loop_seconds": 30.0}}
    return {"seeds": [0, 1, 2, 3, 4, 5], "n_channels": 1024,
            "session": {"webgrid_seconds": 60.0, "n_webgrid_blocks": 2, "open_loop_seconds": 120.0,
                        "closed_loop_seconds": 120.0}}


def _time_to_target_s(result) -> float:
    values = [block.to_dict()["mean_time_to_target_s"] for block in result.blocks]
    values = [v for v in values if v is not None and v == v]
    return float(statistics.mean(values)) if values else float("nan")


def run(quick: bool = False) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _run(quick)


def _run(quick: bool) -> dict:
    config = _config(quick)
    started = time.perf_counter()
    per_seed = []
    for seed in config["seeds"]:
        participant = SimulatedParticipant(n_channels=config["n_channels"], seed=seed)
        calibration = calibrate_session(participant=participant, seed=seed, decoder="kalman",
                                        n_channels=config["n_channels"], **config["session"])
        row = {"seed": seed}
        for condition in CONDITIONS:
            who = copy.deepcopy(calibration.participant)
            feedback = None
            if condition != "vision":
                feedback = SensoryFeedback(loop_s=who.control.loop_s)
            if condition.endswith("no lead"):
                who.control = replace(who.control, icms_delay_s=who.control.visual_delay_s)
            result = run_webgrid(calibration, who, feedback=feedback)
            row[condition] = {"bps": result.bps, "time_to_target_s": _time_to_target_s(result),
                              "success_rate": result.success_rate}
            if feedback is not None:
                row[condition]["trains_delivered"] = dict(feedback.delivered)
                row[condition]["trains_refused"] = dict(feedback.refused)
        per_seed.append(row)
        console.print(f"seed {seed}: " + ", ".join(f"{c} {row[c]['bps']:.2f} BPS" for c in CONDITIONS))

    def median(condition: str, key: str) -> float:
        return float(statistics.median(row[condition][key] for row in per_seed))

    def ratio(condition: str, key: str) -> float:
        return float(statistics.median(row[condition][key] / row["vision"][key] for row in per_seed
                                       if row["vision"][key]))

    summary = {condition: {"median_bps": median(condition, "bps"),
                           "median_time_to_target_s": median(condition, "time_to_target_s"),
                           "median_success_rate": median(condition, "success_rate"),
                           "bps_ratio_to_vision": ratio(condition, "bps"),
                           "time_to_target_ratio_to_vision": ratio(condition, "time_to_target_s")}
               for condition in CONDITIONS}
    rows = [[condition, summary[condition]["median_bps"], summary[condition]["bps_ratio_to_vision"],
             summary[condition]["median_time_to_target_s"], summary[condition]["time_to_target_ratio_to_vision"],
             summary[condition]["median_success_rate"]] for condition in CONDITIONS]
    table(f"Webgrid 30 x 30, ReFIT-KF, {config['n_channels']} channels, seeds {config['seeds']}",
          ["feedback", "median BPS", "BPS / vision", "median time to target (s)", "time / vision",
           "median success"], rows)
    refused = sum(sum(row[c]["trains_refused"].values()) for row in per_seed for c in CONDITIONS[1:])
    delivered = sum(sum(row[c]["trains_delivered"].values()) for row in per_seed for c in CONDITIONS[1:])
    console.print(f"ICMS trains: {delivered} delivered, {refused} refused by the envelope")
    return {"quick": quick, "config": config, "summary": summary, "per_seed": per_seed,
            "trains_delivered": delivered, "trains_refused": refused, "wall_s": time.perf_counter() - started}


if __name__ == "__main__":
    import argparse

    from benchmarks._common import write_result

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_stim_feedback")
    parser.add_argument("--quick", action="store_true", help="4 seeds, 192 channels, one 60 s block each")
    console.print(f"wrote {write_result('stim_feedback', run(quick=parser.parse_args().quick))}")
