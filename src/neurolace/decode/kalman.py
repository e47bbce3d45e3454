"""Velocity Kalman filters with a steady-state gain, and ReFIT retraining.

Model (Wu et al. 2006, Neural Comput 18:80; state = velocity only, as in the
closed-loop decoders of Kim et al. 2008 and Gilja et al. 2012)::

    v_t = A v_{t-1} + w_t,            w_t ~ N(0, W)      (kinematics)
    z_{t-k} = b + H v_t + q_t,         q_t ~ N(0, Q)      (neural features, k = lag_bins)

``A, W`` come from least squares on the training kinematics, ``b, H, Q`` from
least squares of the features on velocity. The gain is the steady-state
Kalman gain ``K`` (Malik et al. 2011, IEEE TNSRE 19:25: the steady state costs
almost nothing in accuracy and makes the update a fixed linear map), so a bin
costs one ``(n_dims, n_features)`` matrix-vector product::

    v_t = (I - K H) A v_{t-1} + K (z_{t-k} - b)

A missing bin (:meth:`~neurolace.decode.base.BaseDecoder.step_missing`: a
frame the link lost) gets the prediction step only, ``v_t = A v_{t-1}``, with
no measurement update; with ``lag_bins = k`` the update that bin's features
would have made ``k`` bins later is skipped instead, and the bins in between
still use the features they are paired with. The gain stays the steady-state
one after a gap (the covariance grown during a short gap is not tracked).

The steady-state prior covariance solves the discrete algebraic Riccati
equation. Only ``J = H^T Q^{-1} H`` (n_dims x n_dims) enters it, so it is
solved in that reduced form with :func:`scipy.linalg.solve_discrete_are`
(``J = B B^T`` with unit measurement noise), which costs the same at 1024
features as at 10.

:class:`ReFITKalmanFilter` adds ``refit`` (Gilja et al. 2012, Nat Neurosci
15:1884): decoded velocities from a closed-loop block are rotated to point
at the target (zeroed while the cursor is on the target), on the assumption
that the participant always intended to go straight there, and the filter is
refitted on these intentions. The cursor position is taken as known (it is
on the screen), which is ReFIT's "position uncertainty set to zero": with a
velocity-only state the position never enters the gain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from neurolace.core.checks import check_array, check_in, check_int, check_nonnegative
from neurolace.core.errors import InvalidInputError
from neurolace.decode.base import BaseDecoder, check_features, check_targets
from neurolace.decode.ridge import cv_folds, r2_score_columns

__all__ = [
    "LAG_BINS_CANDIDATES",
    "Q_SHRINKAGE_CANDIDATES",
    "KalmanFilter",
    "ReFITKalmanFilter",
    "intended_velocity",
    "steady_state_gain",
]

#: ``lag_bins`` searched by ``lag_bins="auto"``: 0 to 5 bins (0 to 250 ms at 50 ms bins), spanning the
#: ~100 ms by which motor cortex leads movement (Moran & Schwartz 1999, J Neurophysiol 82:2676)
LAG_BINS_CANDIDATES = (0, 1, 2, 3, 4, 5)

#: ``q_shrinkage`` searched by ``q_shrinkage="auto"``: from a nearly full observation-noise covariance
#: to a diagonal one (1.0, the independent-noise model)
Q_SHRINKAGE_CANDIDATES = (0.01, 0.1, 0.3, 0.6, 1.0)


def steady_state_gain(
    A: np.ndarray, W: np.ndarray, H: np.ndarray, Q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state Kalman gain of ``x_t = A x_{t-1} + w``, ``z_t = H x_t + q``.

    Parameters
    ----------
    A, W : ndarray, shape (n_states, n_states)
        State transition and process noise covariance.
    H : ndarray, shape (n_features, n_states)
        Observation matrix.
    Q : ndarray, shape (n_features, n_features)
        Observation noise covariance (positive definite).

    Returns
    -------
    gain : ndarray, shape (n_states, n_features)
        ``K`` with ``x_t = A x_{t-1} + K (z_t - H A x_{t-1})``.
    prior_covariance : ndarray, shape (n_states, n_states)
        The steady-state covariance of the one-step prediction.
    """
    n_states = A.shape[0]
    h_t_q_inv = scipy.linalg.solve(Q, H, assume_a="pos").T
    information = h_t_q_inv @ H
    information = 0.5 * (information + information.T)
    eigenvalues, eigenvectors = np.linalg.eigh(information)
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))
    process = 0.5 * (W + W.T) + 1e-12 * max(float(np.trace(W)), 1e-12) * np.eye(n_states)
    prior = scipy.linalg.solve_discrete_are(A.T, root, process, np.eye(n_states))
    prior = 0.5 * (prior + prior.T)
    posterior = np.linalg.inv(np.linalg.inv(prior) + information)
    return posterior @ h_t_q_inv, prior


def _delay(X: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``X`` down by ``len(history)`` rows, filling from ``history``; return the new history."""
    if history.shape[0] == 0:
        return X, history
    extended = np.vstack([history, X])
    return extended[: X.shape[0]], extended[X.shape[0] :]


class KalmanFilter(BaseDecoder):
    """Velocity Kalman filter with a steady-state gain.

    Parameters
    ----------
    lag_bins : int or "auto", default "auto"
        The features of bin ``t - lag_bins`` are paired with the velocity of bin ``t``
        (motor cortex leads movement by ~100 ms; Moran & Schwartz 1999). Causal.
        "auto" chooses among :data:`LAG_BINS_CANDIDATES`, together with ``q_shrinkage``,
        by the validation R² of a forward split of the training bins (fit on the first
        80 %, decode the last 20 %; never the data given to ``predict``).
    q_shrinkage : float in [0, 1] or "auto", default "auto"
        Shrink the observation noise covariance toward its diagonal; keeps it invertible
        with many features and few bins. "auto" chooses among :data:`Q_SHRINKAGE_CANDIDATES`.
    feature_transform : {"none", "sqrt"}, default "none"
    guard : "auto", None or SignalGuard, default "auto"

    Attributes
    ----------
    A_, W_ : ndarray, shape (n_dims, n_dims)
        Velocity dynamics and process noise.
    H_ : ndarray, shape (n_features, n_dims)
    baseline_ : ndarray, shape (n_features,)
    Q_ : ndarray, shape (n_features, n_features)
    gain_ : ndarray, shape (n_dims, n_features)
        Steady-state Kalman gain.
    transition_ : ndarray, shape (n_dims, n_dims)
        ``(I - K H) A``, the map from one decoded velocity to the next.
    lag_bins_, q_shrinkage_ : int, float
        The settings used (chosen when "auto").
    cv_scores_ : ndarray, shape (n_lag_candidates, n_shrinkage_candidates), or None
        Validation R² of every pair searched (None when nothing was searched).
    """

    def __init__(
        self,
        *,
        lag_bins: int | str = "auto",
        q_shrinkage: float | str = "auto",
        feature_transform: str = "none",
        guard: Any = "auto",
    ) -> None:
        self.lag_bins = lag_bins
        self.q_shrinkage = q_shrinkage
        self.feature_transform = feature_transform
        self.guard = guard

    def _fit_model(self, X: np.ndarray, y: np.ndarray, segments: list[tuple[int, int]]) -> None:
        lags = self._candidates(self.lag_bins, "lag_bins", LAG_BINS_CANDIDATES, integer=True)
        shrinkages = self._candidates(
            self.q_shrinkage, "q_shrinkage", Q_SHRINKAGE_CANDIDATES, integer=False
        )
        padding = self.guard_.mean_
        self.cv_scores_ = None
        if (len(lags) > 1 or len(shrinkages) > 1) and X.shape[0] >= 20:
            lag, shrinkage, self.cv_scores_ = _choose_kalman_settings(
                X, y, segments, lags, shrinkages, padding
            )
        else:
            lag, shrinkage = lags[0], shrinkages[0]
        if X.shape[0] <= lag + 1:
            raise InvalidInputError(f"X must have more than lag_bins + 1 = {lag + 1} bins, got {X.shape[0]}")
        model = _fit_kalman(X, y, segments, lag, padding)
        gain, transition = _kalman_gain(model, shrinkage)
        self.lag_bins_, self.q_shrinkage_ = lag, shrinkage
        self.A_, self.W_, self.H_, self.baseline_ = model["A"], model["W"], model["H"], model["baseline"]
        self.Q_ = _shrink(model["Q"], shrinkage)
        self.gain_ = gain
        self.transition_ = transition
        self._offset = gain @ model["baseline"]
        self._gain_t = np.ascontiguousarray(gain.T)

    @staticmethod
    def _candidates(value: Any, name: str, default: tuple, *, integer: bool) -> tuple:
        if isinstance(value, str):
            check_in(value, name, ("auto",))
            return default
        if integer:
            return (check_int(value, name, minimum=0),)
        value = check_nonnegative(value, name)
        if value > 1:
            raise InvalidInputError(f"{name} must lie in [0, 1], got {value}")
        return (value,)

    def _initial_model_state(self) -> tuple[np.ndarray, np.ndarray]:
        lag = self.lag_bins_
        return np.zeros(self.A_.shape[0]), np.tile(self.guard_.mean_, (lag, 1))

    def _decode(self, X: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        # rows of NaN are missing bins (only step_missing puts them here: predict and step refuse NaN)
        velocity, history = state
        observed, history = _delay(X, history)
        drive = observed @ self._gain_t - self._offset
        missing = np.isnan(observed[:, 0]) if observed.shape[1] else np.zeros(observed.shape[0], dtype=bool)
        if missing.any():
            drive[missing] = 0.0
            out, velocity = _filter(drive, self.transition_, velocity, missing=missing, prediction=self.A_)
        else:
            out, velocity = _filter(drive, self.transition_, velocity)
        return out, (velocity, history)

    def _decode_missing(self, state: tuple) -> tuple[np.ndarray, tuple]:
        """A missing bin: predict only (``v = A v``) when its update is due, i.e. at once when ``lag_bins = 0``."""
        out, state = self._decode(np.full((1, self.n_features_in_), np.nan), state)
        return out[0], state


def _filter(drive: np.ndarray, transition: np.ndarray, velocity: np.ndarray, *,
            missing: np.ndarray | None = None, prediction: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``v_t = transition v_{t-1} + drive_t`` from ``velocity``; all decoded bins and the last one.

    Where ``missing`` is True the bin has no measurement: ``v_t = prediction v_{t-1}``
    (the Kalman prediction step, ``prediction = A``).
    """
    out = np.empty_like(drive)
    v = velocity
    for index in range(drive.shape[0]):
        if missing is not None and missing[index]:
            v = prediction @ v
        else:
            v = transition @ v + drive[index]
        out[index] = v
    return out, v.copy()


def _shrink(Q: np.ndarray, shrinkage: float) -> np.ndarray:
    """Shrink the off-diagonal of ``Q`` by ``shrinkage``; floor the diagonal at 1e-3 of its mean."""
    diagonal = np.diag(Q).copy()
    floor = 1e-3 * (float(diagonal.mean()) if diagonal.mean() > 0 else 1.0)
    shrunk = (1 - shrinkage) * Q
    shrunk[np.diag_indices_from(shrunk)] = np.maximum(diagonal, floor)
    return shrunk


def _fit_kalman(
    X: np.ndarray, y: np.ndarray, segments: list[tuple[int, int]], lag: int, padding: np.ndarray
) -> dict:
    """Least-squares ``A, W`` (kinematics) and ``b, H, Q`` (features on velocity), Q unshrunk."""
    n_dims = y.shape[1]
    # per segment: drop the first lag bins (their features are padding), pair bins within the segment
    history = np.tile(padding, (lag, 1))
    pieces = [
        (_delay(X[start:stop], history)[0][lag:], y[start + lag : stop])
        for start, stop in segments
        if stop - start > lag
    ]
    if sum(piece[1].shape[0] for piece in pieces) < 2:
        raise InvalidInputError(
            f"the segments must hold more than lag_bins = {lag} bins each, got {segments}"
        )
    observed = np.vstack([piece[0] for piece in pieces])
    velocity = np.vstack([piece[1] for piece in pieces])
    # kinematics: v_t = A v_{t-1} + w, from consecutive bins of the same segment
    before = np.vstack([piece[1][:-1] for piece in pieces])
    after = np.vstack([piece[1][1:] for piece in pieces])
    gram = before.T @ before + 1e-9 * max(float(np.trace(before.T @ before)), 1e-12) * np.eye(n_dims)
    A = scipy.linalg.solve(gram, before.T @ after, assume_a="pos").T
    residual = after - before @ A.T
    W = residual.T @ residual / max(residual.shape[0], 1)
    # observations: z = b + H v + q
    design = np.column_stack([np.ones(observed.shape[0]), velocity])
    design_gram = design.T @ design
    design_gram[np.diag_indices_from(design_gram)] += 1e-9 * max(float(np.trace(design_gram)), 1e-12)
    coef = scipy.linalg.solve(design_gram, design.T @ observed, assume_a="pos")
    noise = observed - design @ coef
    return {"A": A, "W": W, "H": coef[1:].T, "baseline": coef[0], "Q": noise.T @ noise / noise.shape[0]}


def _kalman_gain(model: dict, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state gain ``K`` and the transition ``(I - K H) A`` of a fitted model."""
    gain, _ = steady_state_gain(model["A"], model["W"], model["H"], _shrink(model["Q"], shrinkage))
    return gain, (np.eye(model["A"].shape[0]) - gain @ model["H"]) @ model["A"]


def _choose_kalman_settings(
    X: np.ndarray,
    y: np.ndarray,
    segments: list[tuple[int, int]],
    lags: tuple,
    shrinkages: tuple,
    padding: np.ndarray,
) -> tuple[int, float, np.ndarray]:
    """Choose ``lag_bins`` and ``q_shrinkage`` on a forward validation split of the training bins.

    Fit on the first 80 % of the bins (whole segments when several), decode
    the last 20 % from a fresh state as ``predict`` does, and keep the pair
    with the highest mean R²; the scores have shape (len(lags), len(shrinkages)).
    """
    ((split, _),) = cv_folds(X.shape[0], n_folds=1, segments=segments)
    train = [(start, min(stop, split)) for start, stop in segments if start < split]
    validation = [(max(start, split), stop) for start, stop in segments if stop > split]
    target = np.vstack([y[start:stop] for start, stop in validation])
    scores = np.full((len(lags), len(shrinkages)), -np.inf)
    for row, lag in enumerate(lags):
        try:
            model = _fit_kalman(X, y, train, lag, padding)
        except InvalidInputError:  # the training part is too short for this lag
            continue
        for column, shrinkage in enumerate(shrinkages):
            gain, transition = _kalman_gain(model, shrinkage)
            decoded = []
            for start, stop in validation:
                observed, _ = _delay(X[start:stop], np.tile(padding, (lag, 1)))
                drive = observed @ gain.T - gain @ model["baseline"]
                decoded.append(_filter(drive, transition, np.zeros(y.shape[1]))[0])
            scores[row, column] = float(np.mean(r2_score_columns(target, np.vstack(decoded))))
    row, column = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(lags[row]), float(shrinkages[column]), scores


def intended_velocity(
    cursor_position: Any,
    target_position: Any,
    decoded_velocity: Any,
    *,
    target_radius: float,
) -> np.ndarray:
    """ReFIT's estimate of the intended velocity (Gilja et al. 2012).

    The decoded velocity is rotated to point from the cursor to the target,
    keeping its speed; while the cursor is inside the target it is zero (the
    participant meant to stay).

    Parameters
    ----------
    cursor_position, target_position : array-like, shape (n_bins, n_dims)
        Where the cursor was and where the target was in each bin (same units).
    decoded_velocity : array-like, shape (n_bins, n_dims)
        The velocity the decoder produced in each bin.
    target_radius : float
        Distance from the target centre within which the intention is zero.

    Returns
    -------
    ndarray, shape (n_bins, n_dims)
    """
    radius = check_nonnegative(target_radius, "target_radius")
    cursor = check_array(cursor_position, "cursor_position", ndim=2, dtype=np.float64)
    target = check_array(target_position, "target_position", ndim=2, dtype=np.float64)
    decoded = check_array(decoded_velocity, "decoded_velocity", ndim=2, dtype=np.float64)
    if not (cursor.shape == target.shape == decoded.shape):
        raise InvalidInputError(
            "cursor_position, target_position and decoded_velocity must have the same shape "
            f"(n_bins, n_dims), got {cursor.shape}, {target.shape} and {decoded.shape}"
        )
    to_target = target - cursor
    distance = np.linalg.norm(to_target, axis=1, keepdims=True)
    speed = np.linalg.norm(decoded, axis=1, keepdims=True)
    direction = np.divide(to_target, distance, out=np.zeros_like(to_target), where=distance > 0)
    intention = speed * direction
    intention[distance[:, 0] <= radius] = 0.0
    return intention


class ReFITKalmanFilter(KalmanFilter):
    """Kalman filter retrained on re-aimed closed-loop intentions (ReFIT-KF).

    Use it as a :class:`KalmanFilter`: fit on open-loop (observation or
    hand-control) data, run a closed-loop block with ``step``, then call
    :meth:`refit` with what happened in that block.

    Parameters
    ----------
    lag_bins, q_shrinkage, feature_transform, guard
        As for :class:`KalmanFilter`.

    Attributes
    ----------
    n_refits_ : int
        How many times :meth:`refit` has run since the last ``fit``.
    """

    def fit(self, X: Any, y: Any, *, segment_starts: Any = None) -> ReFITKalmanFilter:
        super().fit(X, y, segment_starts=segment_starts)
        self.n_refits_ = 0
        return self

    def refit(
        self,
        X: Any,
        cursor_position: Any,
        target_position: Any,
        decoded_velocity: Any,
        *,
        target_radius: float,
        segment_starts: Any = None,
    ) -> ReFITKalmanFilter:
        """Refit on a closed-loop block using ReFIT's intention estimate.

        Parameters
        ----------
        X : array-like, shape (n_bins, n_features)
            Features of the closed-loop block, in time order.
        cursor_position, target_position : array-like, shape (n_bins, n_dims)
            Cursor and target of each bin.
        decoded_velocity : array-like, shape (n_bins, n_dims)
            Velocity the decoder produced (and the participant saw) in each bin.
        target_radius : float
            Within this distance of the target the intention is zero.
        segment_starts : array-like of int, optional
            Bins where an independent segment (trial) starts, as in :meth:`fit`.

        The ``lag_bins_`` and ``q_shrinkage_`` of the last :meth:`fit` are kept
        (not searched again on the closed-loop block).

        Returns
        -------
        self
        """
        self._check_fitted()
        features = check_features(X, n_features=self.n_features_in_, transform="none")
        intention = intended_velocity(
            cursor_position, target_position, decoded_velocity, target_radius=target_radius
        )
        check_targets(intention, features.shape[0], name="cursor_position")
        if intention.shape[1] != self.n_dims_:
            raise InvalidInputError(
                f"cursor_position has {intention.shape[1]} dimensions, but the decoder decodes {self.n_dims_}"
            )
        n_refits = self.n_refits_
        # the lead and shrinkage chosen on the calibration data stay: a refit changes the weights only
        hyperparameters = self.lag_bins, self.q_shrinkage
        self.lag_bins, self.q_shrinkage = self.lag_bins_, self.q_shrinkage_
        try:
            super().fit(features, intention, segment_starts=segment_starts)
        finally:
            self.lag_bins, self.q_shrinkage = hyperparameters
        self.n_refits_ = n_refits + 1
        return self
