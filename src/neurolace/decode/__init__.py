"""Decoders: neural features in, cursor velocity (and clicks) out.

Every decoder is a scikit-learn estimator with a real-time ``step``::

    decoder = KalmanFilter()                 # keyword-only hyperparameters
    decoder.fit(X, y)                        # X (n_bins, n_features), y (n_bins, n_dims); returns self
    decoder.predict(X)                       # (n_bins, n_dims), from a fresh state; step state untouched
    decoder.reset()                          # start of a closed-loop block: clear lag buffer / filter state
    velocity = decoder.step(x)               # one bin (n_features,) -> (n_dims,), carries state
    decoder.last_status                      # StepStatus(held, reason, n_dead_channels, clipped)
    decoder.predict_with_status(X)           # (Y, GuardReport) with per-bin held / reason

``step`` over the rows of ``X`` after ``reset()`` equals ``predict(X)``.
When ``X`` stacks independent trials, ``fit(X, y, segment_starts=starts)`` and
``predict(X, segment_starts=starts)`` keep history from crossing them (in
closed loop, call ``reset()`` at a trial start instead).
``X`` may also be a :class:`neurolace.core.BinnedFeatures`. Wrong input
(NaN, wrong width, ``y`` of another length, use before ``fit``) raises
:class:`~neurolace.core.errors.InvalidInputError` /
:class:`~neurolace.core.errors.NotFittedError`; a bad signal (a bin of zeros,
a dead channel, a sudden baseline jump) is handled by the
:class:`SignalGuard`: the cursor holds still (zero velocity) and
``last_status.held`` says why.

Continuous decoders
    :class:`WienerFilter` (lagged ridge), :class:`KalmanFilter` (velocity
    Kalman, steady-state gain), :class:`ReFITKalmanFilter` (adds
    ``refit(X, cursor_position, target_position, decoded_velocity,
    target_radius=...)``, Gilja et al. 2012), :class:`GRUDecoder` (torch,
    optional extra ``neurolace[torch]`` for training; decoding is numpy).
Discrete decoder
    :class:`ClickDecoder`: LDA with ``predict_proba`` and a dwell/hysteresis
    rule in ``predict``/``step``; ``step`` returns a class label.
Registry and closed-loop calibration
    :data:`DECODERS` and :func:`make_decoder` (the one list of velocity
    decoders every session, the demo and the dashboard use);
    :func:`fit_click_decoder` (HMM click decoder behind a
    :class:`ClickFeatureSmoother`, a :class:`SmoothedClickDecoder`);
    :func:`estimate_label_lag` (neural lag behind observation labels).
Closed-loop adaptation
    :class:`SpeedGain` (speed-dependent cursor gain), :func:`speed_click_threshold`;
    :class:`BiasCorrector` and :class:`ContinuousRecalibration` (bias correction and
    recalibration from retrospectively inferred targets, Jarosiewicz et al. 2015).
Saved decoders
    :func:`save_decoder` / :func:`load_decoder`: arrays in ``.npz`` and JSON, never pickles.
Conformance
    :func:`check_decoder` runs the suite every decoder passes.

See docs/decoders.md for measured accuracy and latency.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule; imported on first use (PEP 562), so ``neurolace.decode.registry``
#: (the decoder names, needed by the command-line parser) loads without scipy or scikit-learn
_EXPORTS = {
    "BaseDecoder": "base", "StepStatus": "base",
    "check_decoder": "checks", "make_decoding_data": "checks",
    "estimate_label_lag": "calibration",
    "ClickDecoder": "click", "ClickFeatureSmoother": "click", "SmoothedClickDecoder": "click",
    "fit_click_decoder": "click",
    "GRUDecoder": "gru",
    "GuardReport": "guard", "SignalGuard": "guard",
    "KalmanFilter": "kalman", "ReFITKalmanFilter": "kalman", "intended_velocity": "kalman",
    "steady_state_gain": "kalman",
    "DECODERS": "registry", "make_decoder": "registry",
    "WienerFilter": "wiener",
    "load_decoder": "persist", "save_decoder": "persist",
    "SpeedGain": "speed_gain", "speed_click_threshold": "click",
    "BiasCorrector": "adapt", "ContinuousRecalibration": "adapt", "RecalibrationSettings": "adapt",
    "rebuild_decoder": "adapt", "retrospective_click_labels": "adapt", "retrospective_targets": "adapt",
    "retrospective_velocity_labels": "adapt",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'neurolace.decode' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"neurolace.decode.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "DECODERS",
    "BaseDecoder",
    "BiasCorrector",
    "ContinuousRecalibration",
    "RecalibrationSettings",
    "SpeedGain",
    "ClickDecoder",
    "ClickFeatureSmoother",
    "SmoothedClickDecoder",
    "GRUDecoder",
    "GuardReport",
    "KalmanFilter",
    "ReFITKalmanFilter",
    "SignalGuard",
    "StepStatus",
    "WienerFilter",
    "check_decoder",
    "estimate_label_lag",
    "fit_click_decoder",
    "intended_velocity",
    "load_decoder",
    "make_decoder",
    "make_decoding_data",
    "rebuild_decoder",
    "retrospective_click_labels",
    "retrospective_targets",
    "retrospective_velocity_labels",
    "save_decoder",
    "speed_click_threshold",
    "steady_state_gain",
]
