"""Copy-typing in the closed loop: ccpm and error rates with and without word prediction, every decoder, same seeds.

For each seed the default 1024-channel participant runs the demo's
calibration (:func:`neurolace.runtime.closed_loop.calibrate_session`:
observation, first decoder, closed-loop block, ReFIT, check block) once per
decoder of the registry (:data:`neurolace.decode.registry.DECODERS`, the
demo's ``--decoder`` choices; ``gru`` only with torch), then copy-types the
held-out phrases on the QWERTY keyboard for one block each of
(:func:`neurolace.runtime.typing.compare_typing`, same phrases and noise seeds):

- no prediction (every letter typed);
- prediction (three suggestion keys from the package's language model; the
  typist takes the intended word when offered and pays the suggestion-row
  reading time, :data:`~neurolace.runtime.typing.DEFAULT_SUGGESTION_SEARCH_S`);
- prediction + assistance (semantic pointing over likely keys, reported separately).

The perfect decoder (cursor = intention) gives the participant model's own
ceiling, and for the Kalman filter the gain from prediction is also measured
at reading times of 0 and 0.6 s (how much the aim depends on that chosen value).
Medians and [min-max] over the seeds. Aims (issue 15): prediction adds at
least 30 % ccpm, and the default participant (the demo's default decoder,
the Kalman filter after ReFIT) types above 40 ccpm.

Run: ``python -m benchmarks typing [--quick]``.
"""

from __future__ import annotations

import statistics
import time

from benchmarks._common import console, table
from neurolace.decode.registry import DECODERS
from neurolace.runtime.closed_loop import calibrate_session
from neurolace.runtime.typing import KeyAssistance, TypistSettings, compare_typing, run_typing
from neurolace.sim.participant import SimulatedParticipant
from neurolace.tasks.language import LanguageModel

#: The demo's default decoder: the "default participant" of the aims types with it.
DEFAULT_DECODER = "kalman"
CONDITIONS = ("no prediction", "prediction", "prediction + assist")


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _config(quick: bool) -> dict:
    if quick:
        return {"seeds": [0], "decoders": ["kalman", "wiener"], "typing_seconds": 30.0,
                "session": {"open_loop_seconds": 60.0, "closed_loop_seconds": 30.0}}
    decoders = [d for d in DECODERS if d != "gru" or _torch_available()]
    return {"seeds": [0, 1, 2], "decoders": decoders, "typing_seconds": 60.0,
            "session": {"open_loop_seconds": 90.0, "closed_loop_seconds": 60.0}}


def _spread(values: list[float], percent: bool = False) -> str:
    if not values:
        return "-"
    scale, unit = (100.0, " %") if percent else (1.0, "")
    if len(values) == 1:
        return f"{scale * values[0]:.1f}{unit}"
    return f"{scale * statistics.median(values):.1f} [{scale * min(values):.1f}-{scale * max(values):.1f}]{unit}"


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def run(quick: bool = False) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # BLAS threads on a shared 2-core machine slow the fits
        return _run(quick)


def _run(quick: bool) -> dict:
    config = _config(quick)
    seconds = config["typing_seconds"]
    model = LanguageModel()
    rows: dict[str, dict[str, dict[str, list]]] = {}
    sensitivity: dict[str, list] = {}
    wall: dict[str, float] = {}

    def add(label: str, condition: str, result) -> None:
        cell = rows.setdefault(label, {}).setdefault(condition, {"ccpm": [], "error_rate": [],
                                                                  "corrected_error_rate": [], "kspc": []})
        summary = result.summary
        cell["ccpm"].append(summary.ccpm)
        cell["error_rate"].append(summary.uncorrected_error_rate)
        cell["corrected_error_rate"].append(summary.corrected_error_rate)
        cell["kspc"].append(summary.keystrokes_per_char)

    for seed in config["seeds"]:
        participant = SimulatedParticipant(seed=seed)
        perfect = compare_typing(participant=participant, language_model=model, duration_s=seconds, seed=seed)
        add("perfect decoder (cursor = intention)", "no prediction", perfect.without_prediction)
        add("perfect decoder (cursor = intention)", "prediction", perfect.with_prediction)
        for decoder in config["decoders"]:
            started = time.perf_counter()
            calibration = calibrate_session(participant=participant, seed=seed, decoder=decoder, **config["session"])
            wall[f"calibrate {decoder}"] = wall.get(f"calibrate {decoder}", 0.0) + time.perf_counter() - started
            started = time.perf_counter()
            comparison = compare_typing(calibration, language_model=model, assistance=KeyAssistance(),
                                        duration_s=seconds, seed=seed)
            wall[f"type {decoder}"] = wall.get(f"type {decoder}", 0.0) + time.perf_counter() - started
            label = f"{decoder} + ReFIT" if decoder != "kalman" else "kalman + ReFIT (ReFIT-KF)"
            for condition, result in zip(CONDITIONS, (comparison.without_prediction, comparison.with_prediction,
                                                      comparison.assisted)):
                add(label, condition, result)
            console.print(f"seed {seed} {label}: ccpm " + ", ".join(
                f"{c} {rows[label][c]['ccpm'][-1]:.0f}" for c in CONDITIONS))
            if decoder == DEFAULT_DECODER:
                for search_s in (0.0, 0.6):
                    result = run_typing(calibration, language_model=model, duration_s=seconds, seed=seed,
                                        typist=TypistSettings(suggestion_search_s=search_s))
                    sensitivity.setdefault(f"{search_s:g}", []).append(
                        result.summary.ccpm / comparison.without_prediction.summary.ccpm - 1.0)
                sensitivity.setdefault("0.3", []).append(comparison.prediction_gain)

    gains = {label: [with_ / without - 1.0 if without > 0 else float("nan") for with_, without in
                     zip(r["prediction"]["ccpm"], r["no prediction"]["ccpm"])] for label, r in rows.items()}
    table(f"Copy-typing, QWERTY + 3 suggestion keys, {seconds:g} s per block, seeds {config['seeds']}: "
          "ccpm median [min-max]",
          ["decoder", *CONDITIONS, "prediction gain", "assist gain"],
          [[label, *[_spread(r.get(c, {}).get("ccpm", [])) for c in CONDITIONS], _spread(gains[label], True),
            _spread([a / p - 1.0 for a, p in zip(r.get("prediction + assist", {}).get("ccpm", []),
                                                 r["prediction"]["ccpm"]) if p > 0], True)]
           for label, r in rows.items()])
    table("Error rates (uncorrected / corrected, Soukoreff & MacKenzie 2003) and keystrokes per character, medians",
          ["decoder", *[f"{c}: unc / corr / KSPC" for c in CONDITIONS]],
          [[label, *[(f"{100 * _median(r[c]['error_rate']):.1f} / {100 * _median(r[c]['corrected_error_rate']):.1f}"
                      f" % / {_median(r[c]['kspc']):.2f}") if c in r else "-" for c in CONDITIONS]]
           for label, r in rows.items()])
    table("Prediction gain of the Kalman filter (ReFIT-KF) against the suggestion-row reading time",
          ["reading time (s)", "gain median [min-max]"],
          [[search, _spread(values, True)] for search, values in sorted(sensitivity.items())])
    default_label = "kalman + ReFIT (ReFIT-KF)"
    real = [label for label in rows if not label.startswith("perfect")]
    aims = {
        "prediction adds >= 30 % ccpm (median, every decoder)": all(_median(gains[label]) >= 0.30 for label in real),
        f"default participant ({default_label}) > 40 ccpm with prediction":
            default_label in rows and _median(rows[default_label]["prediction"]["ccpm"]) > 40.0,
    }
    for aim, met in aims.items():
        console.print(f"aim {aim}: {'met' if met else 'NOT met'}")
    for label in real:
        console.print(f"  {label}: prediction gain median {100 * _median(gains[label]):.0f} %")
    return {"config": config, "ccpm": rows, "prediction_gain": gains, "search_sensitivity": sensitivity,
            "aims": aims, "wall_s": wall}
