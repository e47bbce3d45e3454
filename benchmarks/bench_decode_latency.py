"""Real-time decode cost: ``step()`` time per bin at 1024 features, per decoder.

Each decoder is fitted on seeded synthetic counts (1024 features, 2-D
velocity; the clicks are 2 classes), reset, then stepped through bins one at
a time; every call is timed with ``perf_counter_ns``. The baselines, measured
in the same run, are the bare numpy matrix-vector products the linear
decoders cannot avoid: ``x @ W`` with W of shape (1024, 2) and, for the
10-lag Wiener filter, (10240, 2). The aim is p99 < 1 ms per bin
(a 50 ms bin leaves the rest for features, the bus and the effector).
torch runs single-threaded (``torch.set_num_threads(1)``); the GRU decodes
with numpy. Wall-clock percentiles include any time the OS gave the core to
another process; the thread-CPU p99 beside them does not, which tells
preemption on a shared machine apart from the decoder's own cost. Each
timing runs in three passes (from ``reset()``) and the pass with the lowest
wall p99 is reported, the usual best-of-n defence against a busy machine;
all passes' p99 are kept in the JSON.
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks._common import table
from neurolace.decode import ClickDecoder, GRUDecoder, KalmanFilter, ReFITKalmanFilter, WienerFilter
from neurolace.decode.checks import make_decoding_data

N_FEATURES = 1024


def _time_calls(function, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wall and thread-CPU time of each call, in µs."""
    wall = np.empty(inputs.shape[0])
    cpu = np.empty(inputs.shape[0])
    for index in range(inputs.shape[0]):
        cpu_start = time.thread_time_ns()
        start = time.perf_counter_ns()
        function(inputs[index])
        wall[index] = time.perf_counter_ns() - start
        cpu[index] = time.thread_time_ns() - cpu_start
    return wall / 1e3, cpu / 1e3


def _best_pass(function, inputs: np.ndarray, reset, n_passes: int) -> dict:
    """Time ``n_passes`` passes over ``inputs``; keep the pass with the lowest wall p99."""
    summaries = []
    for _ in range(n_passes):
        reset()
        summaries.append(_summary(_time_calls(function, inputs)))
    best = min(summaries, key=lambda summary: summary["p99_us"])
    best["p99_us_all_passes"] = [summary["p99_us"] for summary in summaries]
    return best


def _summary(times: tuple[np.ndarray, np.ndarray]) -> dict:
    wall, cpu = times
    return {
        "p50_us": float(np.percentile(wall, 50)),
        "p99_us": float(np.percentile(wall, 99)),
        "max_us": float(wall.max()),
        "cpu_p99_us": float(np.percentile(cpu, 99)),
    }


def run(quick: bool = False) -> dict:
    """Run on one core: torch and BLAS single-threaded."""
    import torch

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return _run(quick)


def _run(quick: bool) -> dict:
    n_train, n_steps, n_passes = (1500, 300, 1) if quick else (3000, 2000, 3)
    X, y = make_decoding_data(n_train + n_steps, N_FEATURES, seed=0)
    X_train, y_train, stream = X[:n_train], y[:n_train], X[n_train:]
    _, labels = make_decoding_data(n_train, N_FEATURES, seed=1, n_classes=2)
    decoders = [
        ("Wiener 10 lags", WienerFilter(n_lags=10, alpha=1.0), y_train),
        ("Wiener, guard off", WienerFilter(n_lags=10, alpha=1.0, guard=None), y_train),
        ("Kalman", KalmanFilter(), y_train),
        ("ReFIT-KF", ReFITKalmanFilter(), y_train),
        ("GRU 96", GRUDecoder(hidden_size=96, dropout=0.25, max_epochs=2), y_train),
        ("GRU 128", GRUDecoder(hidden_size=128, dropout=0.4, max_epochs=2), y_train),
        ("click LDA", ClickDecoder(), labels),
    ]
    rng = np.random.default_rng(2)
    weights_1 = rng.normal(size=(N_FEATURES, 2))
    weights_10 = rng.normal(size=(10 * N_FEATURES, 2))
    lagged = np.tile(stream, (1, 10))
    rows, results = [], {"n_features": N_FEATURES, "n_steps": n_steps, "decoders": {}, "baselines": {}}
    for label, weights, inputs in (
        ("numpy 1024x2", weights_1, stream),
        ("numpy 10240x2", weights_10, lagged),
    ):
        summary = _best_pass(lambda x, w=weights: x @ w, inputs, lambda: None, n_passes)
        results["baselines"][label] = summary
        rows.append(
            [label, summary["p50_us"], summary["p99_us"], summary["cpu_p99_us"], summary["max_us"], "", ""]
        )
    for label, decoder, targets in decoders:
        start = time.perf_counter()
        decoder.fit(X_train, targets)
        fit_s = time.perf_counter() - start
        summary = _best_pass(decoder.step, stream, decoder.reset, n_passes)
        summary["fit_s"] = fit_s
        summary["meets_1ms_p99"] = summary["p99_us"] < 1000.0
        results["decoders"][label] = summary
        rows.append(
            [
                label,
                summary["p50_us"],
                summary["p99_us"],
                summary["cpu_p99_us"],
                summary["max_us"],
                fit_s,
                "yes" if summary["meets_1ms_p99"] else "NO",
            ]
        )
    table(
        f"step() per bin at {N_FEATURES} features ({n_steps} bins)",
        ["decoder", "p50 µs", "p99 µs", "CPU p99", "max µs", "fit s", "<1 ms"],
        rows,
    )
    return results
