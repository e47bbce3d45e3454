"""Offline velocity decoding of real monkey M1 data: every decoder at its defaults vs a cross-validated ridge.

Data and protocols (../shared/data/README.md); the only real M1 sets there with
a velocity target (``hatsopoulos2004-centerout`` holds one rate vector and a
reach direction per trial, no kinematics, so it is left out):

- ``stevenson2011-m1-reaching``: 196 units, 50 ms bins, 13 min continuous.
  Fit on the first 70 % of bins, score R² of (vx, vy) on the last 30 %; no
  shuffling; causal features only.
- ``dad-chewie-m1``: 71 units; fit on ``Ytr`` -> ``Xtr``, score on ``Yte`` ->
  ``Xte``. Bins of different trials are stacked. The file does not mark the
  trials, but every change of the target label ``Ttr``/``Tte`` falls on a
  fixed 31-bin grid (phase 0 in the training set, 20 in the test set), so the
  trial starts are that grid; they come from the task labels, never from the
  kinematics. ``chewie`` passes them as ``segment_starts`` so no history
  (lags, filter or GRU state) crosses a trial; ``chewie-stacked`` treats each
  set as one sequence, for comparison.

The reference is a cross-validated ridge, as scikit-learn's ``RidgeCV`` with
contiguous folds: :func:`neurolace.decode.ridge.ridge_cv` chooses the penalty
and the history length (1 to 20 bins) by 5 contiguous folds of the training
part, then refits on all of it (``WienerFilter(cv_folds=5, guard=None)``).
Every decoder runs at its defaults, so every setting it has is chosen on the
training part only (the Wiener filter's penalty and history, the Kalman
filter's lag and covariance shrinkage, the GRU's size and dropout by its own
validation loss); the test part is used once, to score. The GRU is trained
with several seeds and its median is reported (``GRU() x3``). The settings
column lists what each decoder chose: n_lags, alpha (Wiener); lag_bins,
q_shrinkage (Kalman); hidden_size, dropout per seed (GRU). Aims (issue 9):
the best decoder removes at least 40 % of the reference's unexplained
variance, 1 - R² (mean over vx, vy), and no decoder is worse than the reference.

A last table times a default fit at 1024 features (120 s of 20 ms bins of
synthetic counts), the size of a closed-loop session's open-loop block.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import scipy.io
from sklearn.metrics import r2_score
from threadpoolctl import threadpool_limits

from benchmarks._common import console, shared_data, table
from neurolace.decode import GRUDecoder, KalmanFilter, ReFITKalmanFilter, WienerFilter, make_decoding_data

TRIAL_BINS = 31
REFERENCE = "reference ridge (5-fold CV)"
SETTINGS = ("n_lags_", "alpha_", "lag_bins_", "q_shrinkage_", "hidden_size_", "dropout_")


def _trial_starts(targets: np.ndarray) -> np.ndarray:
    """Trial starts of the stacked chewie bins: the 31-bin grid that every target change falls on."""
    changes = np.flatnonzero(np.diff(targets)) + 1
    phase = int(changes[0] % TRIAL_BINS)
    if np.any(changes % TRIAL_BINS != phase):
        raise SystemExit(
            "chewie target changes are not on a 31-bin grid; the trial length assumption is wrong"
        )
    return np.arange(phase if phase else TRIAL_BINS, targets.size, TRIAL_BINS)


def _load(name: str) -> tuple:
    """Train features, train velocity, test features, test velocity, train and test segment starts."""
    if name == "stevenson2011":
        data = scipy.io.loadmat(shared_data("stevenson2011-m1-reaching", "StevensonV2.mat"))
        counts = data["spikes"].T.astype(np.float64)
        velocity = data["handVel"][:2].T
        split = int(0.7 * counts.shape[0])
        return counts[:split], velocity[:split], counts[split:], velocity[split:], None, None
    data = scipy.io.loadmat(shared_data("dad-chewie-m1", "chewie_demo.mat"))
    starts_train = _trial_starts(data["Ttr"].ravel()) if name == "chewie" else None
    starts_test = _trial_starts(data["Tte"].ravel()) if name == "chewie" else None
    return (
        data["Ytr"].astype(np.float64),
        data["Xtr"],
        data["Yte"].astype(np.float64),
        data["Xte"],
        starts_train,
        starts_test,
    )


def _score(decoder, X_train, y_train, X_test, y_test, starts_train, starts_test) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    decoder.fit(X_train, y_train, segment_starts=starts_train)
    fit_s, fit_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    decoded, report = decoder.predict_with_status(X_test, segment_starts=starts_test)
    r2 = r2_score(y_test, decoded, multioutput="raw_values")
    return {
        "r2_vx": float(r2[0]),
        "r2_vy": float(r2[1]),
        "r2_mean": float(r2.mean()),
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu_s,
        "held_bins": int(report.held.sum()),
        "settings": {name: _plain(getattr(decoder, name)) for name in SETTINGS if hasattr(decoder, name)},
    }


def _plain(value):
    return float(value) if isinstance(value, float | np.floating) else int(value)


def _median_over_seeds(runs: list[dict]) -> dict:
    """Median R² over seeds (per component and mean), with every run kept."""
    median = {key: statistics.median(run[key] for run in runs) for key in ("r2_vx", "r2_vy", "r2_mean")}
    return {
        **median,
        "fit_s": statistics.median(run["fit_s"] for run in runs),
        "fit_cpu_s": statistics.median(run["fit_cpu_s"] for run in runs),
        "held_bins": max(run["held_bins"] for run in runs),
        "settings": {"per_seed": [run["settings"] for run in runs]},
        "r2_mean_per_seed": [run["r2_mean"] for run in runs],
    }


def _removed(r2: float, reference: float) -> float:
    """Fraction of the reference's unexplained variance (1 - R²) that a decoder removes."""
    return 1.0 - (1.0 - r2) / (1.0 - reference)


def run(quick: bool = False) -> dict:
    """Run on one core: torch and BLAS single-threaded."""
    import torch

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return _run(quick)


def _run(quick: bool) -> dict:
    seeds = (0,) if quick else (0, 1, 2)
    gru_params = {"max_epochs": 10} if quick else {}
    results: dict = {"datasets": {}, "gru_seeds": list(seeds), "quick": quick}
    for dataset in ("stevenson2011", "chewie", "chewie-stacked"):
        data = _load(dataset)
        rows: dict[str, dict] = {REFERENCE: _score(WienerFilter(cv_folds=5, guard=None), *data)}
        rows["Wiener()"] = _score(WienerFilter(), *data)
        rows["Kalman()"] = _score(KalmanFilter(), *data)
        rows["ReFIT-KF()"] = _score(ReFITKalmanFilter(), *data)  # offline, ReFIT is its Kalman fit
        label = f"GRU() x{len(seeds)}"
        runs = [_score(GRUDecoder(seed=seed, **gru_params), *data) for seed in seeds]
        rows[label] = _median_over_seeds(runs)
        reference = rows[REFERENCE]["r2_mean"]
        for scores in rows.values():
            scores["removed_vs_reference"] = _removed(scores["r2_mean"], reference)
        decoders = [name for name in rows if name != REFERENCE]
        best = max(decoders, key=lambda name: rows[name]["r2_mean"])
        worse = [name for name in decoders if rows[name]["r2_mean"] < reference]
        table(
            f"{dataset}: test R² (every setting chosen on the training part)",
            ["decoder", "R² vx", "R² vy", "mean", "removed", "fit s", "CPU s", "settings"],
            [
                [
                    name,
                    s["r2_vx"],
                    s["r2_vy"],
                    s["r2_mean"],
                    f"{100 * s['removed_vs_reference']:.1f}%",
                    s["fit_s"],
                    s["fit_cpu_s"],
                    _settings_text(s["settings"]),
                ]
                for name, s in rows.items()
            ],
        )
        console.print(
            f"{dataset}: best = {best} (R² {rows[best]['r2_mean']:.3f}) removes "
            f"{100 * rows[best]['removed_vs_reference']:.1f} % of the reference's unexplained variance "
            f"(reference R² {reference:.3f}; aim >= 40 %); worse than the reference: {worse or 'none'}"
        )
        results["datasets"][dataset] = {
            "decoders": rows,
            "reference": REFERENCE,
            "best": best,
            "best_removed_vs_reference": rows[best]["removed_vs_reference"],
            "worse_than_reference": worse,
            "n_train_bins": int(data[0].shape[0]),
            "n_test_bins": int(data[2].shape[0]),
            "n_train_segments": 1 if data[4] is None else int(data[4].size + 1),
        }
    results["fit_time_1024_features"] = _fit_times(quick)
    return results


def _settings_text(settings: dict) -> str:
    if "per_seed" in settings:
        return "; ".join(",".join(f"{v:g}" for v in seed.values()) for seed in settings["per_seed"])
    return ",".join(f"{value:.3g}" for value in settings.values())


def _fit_times(quick: bool) -> dict:
    """Default fit time at 1024 features x 6000 bins (120 s of 20 ms bins), synthetic counts."""
    n_bins = 3000 if quick else 6000
    X, y = make_decoding_data(n_bins=n_bins, n_features=1024, seed=0)
    rows = {}
    for name, decoder in (("WienerFilter()", WienerFilter()), ("KalmanFilter()", KalmanFilter())):
        wall, cpu = time.perf_counter(), time.process_time()
        decoder.fit(X, y)
        rows[name] = {
            "fit_s": time.perf_counter() - wall,
            "fit_cpu_s": time.process_time() - cpu,
            "settings": {k: _plain(getattr(decoder, k)) for k in SETTINGS if hasattr(decoder, k)},
        }
    table(
        f"default fit at 1024 features x {n_bins} bins (synthetic counts, one thread)",
        ["decoder", "fit s", "fit CPU s", "settings"],
        [[name, r["fit_s"], r["fit_cpu_s"], _settings_text(r["settings"])] for name, r in rows.items()],
    )
    return {"n_bins": n_bins, "n_features": 1024, "decoders": rows}
