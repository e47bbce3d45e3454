"""Offline velocity decoding of real monkey M1 data: R² of every decoder.

Protocols (../shared/data/README.md):

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
  set as one sequence, for comparison. Nothing from the test set reaches the
  fit.

The reference is the Wiener filter with 10 bins of history (the README's
"ridge on 10 bins of history"). The GRU's configuration is chosen among a
small grid by its own validation loss (the last 15 % of the *training* bins),
never by test R². The aim is that the best decoder removes at least 40 % of
the Wiener filter's unexplained variance, 1 - R² (mean over vx, vy).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.io
from sklearn.metrics import r2_score
from threadpoolctl import threadpool_limits

from benchmarks._common import console, shared_data, table
from neurolace.decode import GRUDecoder, KalmanFilter, WienerFilter

GRU_GRID = (
    {},
    {"hidden_size": 128, "dropout": 0.4},
    {"window_bins": 31, "burn_in_bins": 4},
)


TRIAL_BINS = 31


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


def _decoders(quick: bool) -> list[tuple[str, object]]:
    decoders = [
        ("Wiener, 10 lags (reference)", WienerFilter(n_lags=10)),
        ("ridge, 1 bin", WienerFilter(n_lags=1)),
        ("Wiener, 10 lags, sqrt counts", WienerFilter(n_lags=10, feature_transform="sqrt")),
        ("Kalman", KalmanFilter()),
        ("Kalman, 100 ms lead", KalmanFilter(lag_bins=2)),
    ]
    if not quick:
        decoders.insert(3, ("Wiener, 20 lags", WienerFilter(n_lags=20)))
    return decoders


def _score(decoder, X_train, y_train, X_test, y_test, starts_train, starts_test) -> dict:
    start = time.perf_counter()
    decoder.fit(X_train, y_train, segment_starts=starts_train)
    fit_s = time.perf_counter() - start
    decoded, report = decoder.predict_with_status(X_test, segment_starts=starts_test)
    r2 = r2_score(y_test, decoded, multioutput="raw_values")
    return {
        "r2_vx": float(r2[0]),
        "r2_vy": float(r2[1]),
        "r2_mean": float(r2.mean()),
        "fit_s": fit_s,
        "held_bins": int(report.held.sum()),
    }


def run(quick: bool = False) -> dict:
    """Run on one core: torch and BLAS single-threaded."""
    import torch

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return _run(quick)


def _run(quick: bool) -> dict:
    results: dict = {"datasets": {}}
    for dataset in ("stevenson2011", "chewie", "chewie-stacked"):
        data = _load(dataset)
        rows: dict[str, dict] = {}
        for label, decoder in _decoders(quick):
            rows[label] = _score(decoder, *data)
        grid = GRU_GRID[:1] if quick else GRU_GRID
        candidates = []
        for config in grid:
            params = {**config, "max_epochs": 10} if quick else config
            decoder = GRUDecoder(**params)
            scores = _score(decoder, *data)
            scores["validation_loss"] = float(decoder.validation_loss_[decoder.best_epoch_])
            scores["epochs"] = decoder.n_epochs_
            scores["config"] = params
            candidates.append(scores)
            rows[f"GRU {params or 'default'}"] = scores
        chosen = min(candidates, key=lambda scores: scores["validation_loss"])
        rows["GRU, chosen on validation loss"] = dict(chosen)
        reference = rows["Wiener, 10 lags (reference)"]
        best_label = max(
            (label for label in rows if not label.startswith("GRU {")),
            key=lambda label: rows[label]["r2_mean"],
        )
        best = rows[best_label]
        removed = 1.0 - (1.0 - best["r2_mean"]) / (1.0 - reference["r2_mean"])
        table(
            f"{dataset}: test R² (fit on train only)",
            ["decoder", "R² vx", "R² vy", "R² mean", "fit s", "held bins"],
            [
                [label, s["r2_vx"], s["r2_vy"], s["r2_mean"], s["fit_s"], s["held_bins"]]
                for label, s in rows.items()
            ],
        )
        console.print(
            f"{dataset}: best = {best_label} (R² {best['r2_mean']:.3f}); Wiener reference R² "
            f"{reference['r2_mean']:.3f}; unexplained variance removed: {100 * removed:.1f} % (aim >= 40 %)"
        )
        results["datasets"][dataset] = {
            "decoders": rows,
            "best": best_label,
            "unexplained_variance_removed_vs_wiener": removed,
            "n_train_bins": int(data[0].shape[0]),
            "n_test_bins": int(data[2].shape[0]),
            "n_train_segments": 1 if data[4] is None else int(data[4].size + 1),
        }
    return results
