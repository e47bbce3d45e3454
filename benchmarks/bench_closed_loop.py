"""Closed-loop Webgrid 30 x 30: every decoder and policy, the perfect decoder as ceiling, both feature paths.

For each seed, the default 1024-channel participant runs the calibration
blocks of :func:`neurolace.runtime.closed_loop.run_calibration_session`
once per decoder (:func:`~neurolace.runtime.closed_loop.calibrate_session`:
observation, first decoder, closed-loop block, ReFIT, ReFIT check block);
the same decoders then play the session's Webgrid blocks (same targets and
noise seeds) under each loop policy (:func:`~neurolace.runtime.closed_loop.run_webgrid`):

- ``old``: the previous default, linear gain 0.5/s, hard click speed limit;
- ``tuned``: the loop defaults (gain, speed-gain exponent, speed-dependent
  click threshold of :mod:`neurolace.runtime.loop`, chosen on seeds 10 and 11);
- ``tuned + recal``: the same with bias correction and continuous
  recalibration from retrospectively inferred targets (:mod:`neurolace.decode.adapt`).

Each decoder is used as first fitted and after ReFIT ("+ ReFIT"; the
Kalman filter after ReFIT is the registry's ``refit-kalman``, the ReFIT-KF).
In the same run: the perfect decoder (cursor = intention) on the same
participants and blocks, at the tuned gain and at 4/s (its best gain,
docs/participant.md); the implant path (:class:`neurolace.sim.neural_source.ImplantFeatureSource`,
threshold crossings at 1024 channels) for the Kalman filter and the best
counts-path decoder, on fewer seeds (it is slower; its real-time factor is
reported); a second participant family (:meth:`SimulatedParticipant.from_population`)
for the ordering check; and drift: day-0 decoders on the participant 14 days
later, with and without the recalibration.

Medians and spreads (min-max across seeds) are reported; BPS pools each
seed's Webgrid blocks.

It also measures the participant's calibration: ridge R² of the simulated
participant with the real-data protocol, next to the same ridge on the real
Stevenson M1 data, at matched population size and bin width (a random 196 of
the participant's channels, 50 ms bins, as long as the real recording);
the full 1024 channels at 20 ms are listed for information.

Run: ``python -m benchmarks closed_loop [--quick]``.

``python -m benchmarks.bench_closed_loop --loss 0,0.05,0.1,0.2 [--quick]`` runs only the
lossy-link sweep instead (:func:`run_loss`): the demo-like counts-path session with the
Kalman filter, its bins dropped by the link's Gilbert-Elliott radio in bursts of 100 ms
on average (:class:`neurolace.runtime.loss.ChannelDrops`) through the whole session, lost
bins decoded as missing bins; it writes bench-results/closed_loop_loss.json.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from benchmarks._common import console, shared_data, table
from neurolace.decode.registry import DECODERS
from neurolace.runtime.closed_loop import calibrate_session, ideal_webgrid_bps, run_webgrid
from neurolace.runtime.loop import LoopSettings
from neurolace.sim.participant import SimulatedParticipant

GRID_SIDE = 30
#: The perfect decoder's best Webgrid gain on the default participant (docs/participant.md).
IDEAL_BEST_GAIN_PER_S = 4.0
#: The previous loop default (linear gain 0.5/s, hard click speed limit only).
OLD_SETTINGS = LoopSettings(cursor_gain_per_s=0.5, speed_gain_exponent=1.0, click_speed_scale=None)
DRIFT_DAYS = 14.0
#: Units in the real Stevenson recording, and its length in seconds (15,535 bins of 50 ms).
REAL_UNITS = 196
REAL_DURATION_S = 777.0


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _config(quick: bool) -> dict:
    if quick:
        return {"seeds": [0], "implant_seeds": [0], "family_seeds": [0], "drift_seeds": [0],
                "decoders": ["wiener", "kalman"],
                "session": {"grid_side": GRID_SIDE, "webgrid_seconds": 30.0, "n_webgrid_blocks": 1,
                            "open_loop_seconds": 60.0, "closed_loop_seconds": 60.0}}
    decoders = [d for d in DECODERS if d != "refit-kalman" and (d != "gru" or _torch_available())]
    return {"seeds": [0, 1, 2, 3, 4], "implant_seeds": [0, 1], "family_seeds": [0, 1, 2, 3, 4],
            "drift_seeds": [0, 1, 2], "decoders": decoders,
            "session": {"grid_side": GRID_SIDE, "webgrid_seconds": 60.0, "n_webgrid_blocks": 2,
                        "open_loop_seconds": 120.0, "closed_loop_seconds": 120.0}}


def _label(decoder: str, driver: str) -> str:
    if decoder == "kalman":
        return "refit-kalman (ReFIT-KF)" if driver == "refit" else "kalman (velocity KF)"
    return f"{decoder} + ReFIT" if driver == "refit" else decoder


def run(quick: bool = False) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # several BLAS threads per process on a shared 2-core machine slowed fits ~10x
        return _run(quick)


def _run(quick: bool) -> dict:
    config = _config(quick)
    session = config["session"]
    tuned = LoopSettings()
    recalibration = _recalibration_settings()
    rows: dict[str, dict[str, list]] = {}
    wall: dict[str, float] = {}

    def add(label: str, policy: str, value: float) -> None:
        rows.setdefault(label, {}).setdefault(policy, []).append(value)

    calibrations: dict[tuple, Any] = {}
    start_all = time.perf_counter()
    for seed in config["seeds"]:
        participant = SimulatedParticipant(seed=seed)
        ideal_kwargs = dict(seed=seed, n_channels=8, grid_side=GRID_SIDE, webgrid_seconds=session["webgrid_seconds"],
                            n_webgrid_blocks=session["n_webgrid_blocks"])
        add("perfect decoder (cursor = intention)", "tuned",
            ideal_webgrid_bps(cursor_gain_per_s=tuned.cursor_gain_per_s, **ideal_kwargs))
        add("perfect decoder (cursor = intention)", "old", ideal_webgrid_bps(cursor_gain_per_s=0.5, **ideal_kwargs))
        add("perfect decoder at 4/s (its best gain)", "tuned",
            ideal_webgrid_bps(cursor_gain_per_s=IDEAL_BEST_GAIN_PER_S, **ideal_kwargs))
        for decoder in config["decoders"]:
            started = time.perf_counter()
            calibration = calibrate_session(participant=participant, seed=seed, decoder=decoder, **session)
            calibrations[(seed, decoder)] = calibration
            wall[f"calibrate {decoder}"] = wall.get(f"calibrate {decoder}", 0.0) + time.perf_counter() - started
            for driver in ("first", "refit"):
                label = _label(decoder, driver)
                for policy, settings, recal in (("old", OLD_SETTINGS, None), ("tuned", tuned, None),
                                                ("tuned + recal", tuned, recalibration)):
                    result = run_webgrid(calibration, participant, settings=settings, driver=driver,
                                         recalibration=recal)
                    add(label, policy, result.bps)
                console.print(f"seed {seed} {label}: " + ", ".join(
                    f"{policy} {values[-1]:.2f}" for policy, values in rows[label].items()) + " BPS")
    counts_wall_s = time.perf_counter() - start_all

    policies = ["old", "tuned", "tuned + recal"]
    minutes = session["webgrid_seconds"] * session["n_webgrid_blocks"] / 60
    table(f"Closed-loop Webgrid {GRID_SIDE}x{GRID_SIDE}, counts path, {minutes:g} min of Webgrid per seed, "
          f"seeds {config['seeds']}: BPS median [min-max]; tuned = gain {tuned.cursor_gain_per_s:g}/s, "
          f"exponent {tuned.speed_gain_exponent:g}, click speed scale {tuned.click_speed_scale}",
          ["decoder", *policies], [[label, *[_spread(r.get(p, [])) for p in policies]] for label, r in rows.items()])

    real = {label: r for label, r in rows.items() if not label.startswith("perfect")}
    best_label, best_policy = max(((label, policy) for label, r in real.items() for policy in r),
                                  key=lambda key: _median(real[key[0]][key[1]]))
    best_bps = _median(real[best_label][best_policy])
    kalman_bps = _median(real["kalman (velocity KF)"]["old"])
    kalman_tuned = _median(real["kalman (velocity KF)"]["tuned"])
    ideal_bps = _median(rows["perfect decoder at 4/s (its best gain)"]["tuned"])
    aims = {
        "perfect decoder in 10-12 BPS": 10.0 <= ideal_bps <= 12.0,
        "best real decoder >= 10 BPS": best_bps >= 10.0,
        "best >= 1.5x plain velocity KF (old policy)": best_bps >= 1.5 * kalman_bps,
        "best >= 1.5x plain velocity KF (tuned policy)": best_bps >= 1.5 * kalman_tuned,
    }
    console.print(f"best: {best_label} / {best_policy} {best_bps:.2f} BPS; plain velocity KF {kalman_bps:.2f} "
                  f"(old policy), {kalman_tuned:.2f} (tuned); perfect decoder at 4/s {ideal_bps:.2f}")

    # -- the implant path on fewer seeds --------------------------------------------------------
    from neurolace.sim.neural_source import ImplantFeatureSource

    implant_rows: dict[str, dict[str, list]] = {}
    implant_decoders = sorted({"kalman", best_label.split(" ")[0]} & set(config["decoders"]))
    simulated_s, implant_wall_s = 0.0, 0.0
    for seed in config["implant_seeds"]:
        participant = SimulatedParticipant(seed=seed)
        for decoder in implant_decoders:
            source = ImplantFeatureSource(participant)
            started = time.perf_counter()
            calibration = calibrate_session(participant=participant, source=source, seed=seed, decoder=decoder,
                                            **session)
            for driver in ("first", "refit"):
                result = run_webgrid(calibration, participant, source=source, settings=tuned, driver=driver)
                label = _label(decoder, driver)
                implant_rows.setdefault(label, {"implant": [], "counts": []})["implant"].append(result.bps)
                implant_rows[label]["counts"].append(rows[label]["tuned"][config["seeds"].index(seed)])
            implant_wall_s += time.perf_counter() - started
            simulated_s += (session["open_loop_seconds"] + 2 * session["closed_loop_seconds"]
                            + 2 * session["webgrid_seconds"] * session["n_webgrid_blocks"])
    realtime_factor = simulated_s / implant_wall_s if implant_wall_s else float("nan")
    table(f"Implant path (crossings, 1024 channels) against counts path, tuned policy, seeds {config['implant_seeds']}"
          f" (BPS per seed); implant path {realtime_factor:.2f}x real time including fits, on this shared machine",
          ["decoder", "implant", "counts"],
          [[label, ", ".join(f"{v:.2f}" for v in r["implant"]), ", ".join(f"{v:.2f}" for v in r["counts"])]
           for label, r in implant_rows.items()])

    # -- the second participant family: same ordering? --------------------------------------------
    family_rows: dict[str, list] = {}
    for seed in config["family_seeds"]:
        participant = SimulatedParticipant.from_population(seed)
        family_rows.setdefault("perfect decoder (cursor = intention)", []).append(ideal_webgrid_bps(
            seed=seed, n_channels=1024, participant=participant, grid_side=GRID_SIDE,
            webgrid_seconds=session["webgrid_seconds"], n_webgrid_blocks=session["n_webgrid_blocks"],
            cursor_gain_per_s=tuned.cursor_gain_per_s))
        for decoder in config["decoders"]:
            calibration = calibrate_session(participant=participant, seed=seed, decoder=decoder, **session)
            for driver in ("first", "refit"):
                result = run_webgrid(calibration, participant, settings=tuned, driver=driver)
                family_rows.setdefault(_label(decoder, driver), []).append(result.bps)
    order_default = sorted(real, key=lambda label: -_median(real[label]["tuned"]))
    order_family = sorted((label for label in family_rows if not label.startswith("perfect")),
                          key=lambda label: -_median(family_rows[label]))
    table(f"Second participant family (from_population), tuned policy, seeds {config['family_seeds']}",
          ["decoder", "BPS median [min-max]", "default family (tuned)"],
          [[label, _spread(values), _spread(rows.get(label, {}).get("tuned", []))]
           for label, values in family_rows.items()])
    same_order = order_default == order_family
    console.print(f"ordering, default family: {order_default}; second family: {order_family}; same: {same_order}")

    # -- drift: day-0 decoders 14 days later, with and without the recalibration ---------------------
    drift_rows: dict[str, list] = {}
    drift_decoder = "kalman"
    for seed in config["drift_seeds"]:
        participant = SimulatedParticipant(seed=seed)  # day 0 runs start from the calibration's own copy
        calibration = calibrations.get((seed, drift_decoder)) or calibrate_session(
            participant=participant, seed=seed, decoder=drift_decoder, **session)
        later = participant.drifted(days=DRIFT_DAYS, seed=seed + 1000)
        for name, who, recal in (("day 0", None, None), ("day 0 + recal", None, recalibration),
                                 (f"day {DRIFT_DAYS:g}", later, None),
                                 (f"day {DRIFT_DAYS:g} + recal", later, recalibration)):
            drift_rows.setdefault(name, []).append(
                run_webgrid(calibration, who, settings=tuned, driver="refit", recalibration=recal).bps)
    table(f"Drift: ReFIT-KF calibrated on day 0, tuned policy, seeds {config['drift_seeds']}",
          ["condition", "BPS median [min-max]"], [[name, _spread(values)] for name, values in drift_rows.items()])
    calibration_result = _participant_calibration(quick)
    aims["same ordering on the second family"] = same_order
    for aim, met in aims.items():
        console.print(f"aim {aim}: {'met' if met else 'NOT met'}")
    return {
        "grid_side": GRID_SIDE, "session": session, "config": {k: v for k, v in config.items() if k != "session"},
        "tuned_settings": {"cursor_gain_per_s": tuned.cursor_gain_per_s,
                           "speed_gain_exponent": tuned.speed_gain_exponent,
                           "click_speed_scale": tuned.click_speed_scale},
        "recalibration": recalibration.__dict__,
        "counts_path": rows, "best": {"decoder": best_label, "policy": best_policy, "bps_median": best_bps},
        "kalman_old_bps_median": kalman_bps, "kalman_tuned_bps_median": kalman_tuned,
        "ideal_best_gain_bps_median": ideal_bps,
        "implant_path": implant_rows, "implant_realtime_factor": realtime_factor,
        "second_family": family_rows, "ordering": {"default": order_default, "second_family": order_family},
        "drift": drift_rows, "drift_days": DRIFT_DAYS, "aims": aims, "calibration": calibration_result,
        "wall_s": {"counts_path": counts_wall_s, "implant_path": implant_wall_s, **wall},
    }


def _recalibration_settings() -> Any:
    from neurolace.decode.adapt import RecalibrationSettings

    return RecalibrationSettings()


def _participant_calibration(quick: bool) -> dict:
    """Ridge R² of simulated channels against the real Stevenson M1 units (module docstring)."""
    import scipy.io

    from neurolace.decode.ridge import ridge_decodability
    from neurolace.runtime.reaching import offline_decodability

    data = scipy.io.loadmat(shared_data("stevenson2011-m1-reaching", "StevensonV2.mat"))
    real = ridge_decodability(data["spikes"].T.astype(np.float64), data["handVel"][:2].T)
    seeds = [0] if quick else [0, 1, 2]
    duration_s = 300.0 if quick else REAL_DURATION_S
    matched = [offline_decodability(seed=s, duration_s=duration_s, bin_s=0.05, n_subset_channels=REAL_UNITS)
               for s in seeds]
    full = [offline_decodability(seed=s, duration_s=120.0) for s in seeds]

    def row(label: str, bin_label: str, result: dict) -> list:
        return [label, bin_label, *[f"{v:.3f}" for v in result["r2"]], f"{result['r2_mean']:.3f}",
                result["n_train_bins"], result["n_features"]]

    table("Calibration: ridge R² (sqrt counts, 10 bins of history, first 70 % fit, last 30 % scored)",
          ["data", "bin", "R² vx", "R² vy", "R² mean", "train bins", "features"],
          [row(f"Stevenson 2011 M1 (real, {REAL_UNITS} units)", "50 ms", real)]
          + [row(f"simulated seed {s}, {REAL_UNITS} of 1024 ch, {duration_s:g} s", "50 ms", r)
             for s, r in zip(seeds, matched)]
          + [row(f"simulated seed {s}, all 1024 ch, 120 s (information)", "20 ms", r) for s, r in zip(seeds, full)])
    return {"real": real, "matched_subset": matched, "full_1024_20ms": full}


def run_loss(loss_fractions: list[float], quick: bool = False) -> dict:
    """Webgrid BPS of a short demo-like session (counts path, Kalman + ReFIT) at each bursty bin-loss fraction.

    Same participant, tasks and noise at every fraction (the lost bins are
    still simulated, then dropped), so the rows differ by the losses only.
    """
    from threadpoolctl import threadpool_limits

    from neurolace.runtime.closed_loop import run_calibration_session
    from neurolace.runtime.loop import CountsSource
    from neurolace.runtime.loss import ChannelDrops, LossySource

    seeds = [0] if quick else [0, 1, 2]
    session = {"n_channels": 1024, "decoder": "kalman", "grid_side": GRID_SIDE, "webgrid_seconds": 60.0,
               "n_webgrid_blocks": 1, "open_loop_seconds": 60.0, "closed_loop_seconds": 60.0}
    rows: dict[float, list] = {}
    started = time.perf_counter()
    with threadpool_limits(1):
        for fraction in loss_fractions:
            for seed in seeds:
                participant = SimulatedParticipant(seed=seed)
                source = LossySource(CountsSource(participant), ChannelDrops.for_loss(fraction, burst_bins=5))
                result = run_calibration_session(seed=seed, participant=participant, source=source, **session)
                webgrid = result.webgrid_blocks
                rows.setdefault(fraction, []).append({
                    "seed": seed, "bps": result.bps, "correct": sum(b.correct for b in webgrid),
                    "incorrect": sum(b.incorrect for b in webgrid), "missing_bins": source.n_lost,
                    "bins": source.n_bins, "webgrid_missing_bins": sum(b.missing_bins for b in webgrid)})
                console.print(f"loss {fraction:.0%} seed {seed}: {result.bps:.2f} BPS, "
                              f"{source.n_lost} of {source.n_bins} bins lost")
    table(f"Lossy link: Webgrid {GRID_SIDE}x{GRID_SIDE} BPS, counts path 1024 ch, Kalman + ReFIT, open/closed loop "
          f"60 s, 1 x 60 s Webgrid, bins lost by Gilbert-Elliott loss in 100 ms bursts on average through the "
          f"whole session, seeds {seeds}",
          ["bins lost", "BPS median [min-max]", "correct / incorrect per seed", "bins lost (measured)"],
          [[f"{fraction:.0%}", _spread([r["bps"] for r in runs]),
            ", ".join(f"{r['correct']}/{r['incorrect']}" for r in runs),
            f"{sum(r['missing_bins'] for r in runs) / max(sum(r['bins'] for r in runs), 1):.1%}"]
           for fraction, runs in rows.items()])
    return {"session": session, "seeds": seeds, "mean_burst_bins": 5, "loss": {str(k): v for k, v in rows.items()},
            "wall_s": time.perf_counter() - started}


if __name__ == "__main__":
    import argparse

    from benchmarks._common import write_result

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_closed_loop")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--loss", type=lambda text: [float(v) for v in text.split(",")], default=None,
                        help="comma-separated fractions of bins lost (e.g. 0,0.05,0.1,0.2): "
                             "run the lossy-link sweep only")
    arguments = parser.parse_args()
    if arguments.loss is None:
        console.print(f"wrote {write_result('closed_loop', run(quick=arguments.quick))}")
    else:
        console.print(f"wrote {write_result('closed_loop_loss', run_loss(arguments.loss, quick=arguments.quick))}")
