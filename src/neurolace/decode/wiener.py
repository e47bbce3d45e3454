"""The Wiener filter: ridge regression of kinematics on a causal history of features.

The decoded kinematics of bin ``t`` are

    y_t = b + sum_{l=0}^{L-1} W_l^T x_{t-l}

with ``L = n_lags`` bins of history (the current bin included), fitted by ridge
regression (Carmena et al. 2003, PLoS Biol 1:e42; Glaser et al. 2020, eNeuro
7:ENEURO.0506-19.2020, "Machine learning for neural decoding"). Bins before the
first one are taken to equal the training mean of the features, so the first
``L - 1`` outputs are not special cases in either ``predict`` or ``step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_int
from neurolace.decode.base import BaseDecoder, check_alpha, lag_stack
from neurolace.decode.ridge import ridge_fit

__all__ = ["WienerFilter", "choose_ridge_alpha"]

#: candidate penalties of ``alpha="auto"``, relative to the mean squared column norm of the design
RELATIVE_ALPHAS = np.logspace(-4, 1, 11)


def choose_ridge_alpha(design: np.ndarray, y: np.ndarray, *, validation_fraction: float = 0.2) -> float:
    """Pick the ridge penalty on a contiguous hold-out (the last bins), never a shuffled one.

    Neighbouring bins are strongly autocorrelated, so a random split would
    reward over-fitting; the last ``validation_fraction`` of the bins are held
    out instead. The candidates are :data:`RELATIVE_ALPHAS` times the mean
    squared column norm of the centred design; the one with the highest mean
    R² over the output dimensions wins.
    """
    n_samples = design.shape[0]
    n_validation = max(1, round(validation_fraction * n_samples))
    train, validation = design[:-n_validation], design[-n_validation:]
    y_train, y_validation = y[:-n_validation], y[-n_validation:]
    mean = train.mean(axis=0)
    y_mean = y_train.mean(axis=0)
    centered = train - mean
    if centered.shape[1] <= centered.shape[0]:
        eigenvalues, basis = np.linalg.eigh(centered.T @ centered)
        projected = basis.T @ (centered.T @ (y_train - y_mean))
        validation_basis = (validation - mean) @ basis
    else:
        eigenvalues, basis = np.linalg.eigh(centered @ centered.T)
        projected = basis.T @ (y_train - y_mean)
        validation_basis = (validation - mean) @ (centered.T @ basis)
    eigenvalues = np.clip(eigenvalues, 0, None)
    scale = float(eigenvalues.sum() / centered.shape[1]) or 1.0
    variance = np.var(y_validation, axis=0)
    variance[variance == 0] = 1.0
    best_alpha, best_score = float(RELATIVE_ALPHAS[0] * scale), -np.inf
    for relative in RELATIVE_ALPHAS:
        alpha = relative * scale
        predicted = y_mean + validation_basis @ (projected / (eigenvalues + alpha)[:, np.newaxis])
        score = float(np.mean(1 - np.mean((y_validation - predicted) ** 2, axis=0) / variance))
        if score > best_score:
            best_alpha, best_score = float(alpha), score
    return best_alpha


class WienerFilter(BaseDecoder):
    """Lagged ridge regression (the classic BCI "Wiener filter").

    Parameters
    ----------
    n_lags : int, default 10
        Bins of causal history, the current bin included (10 bins = 500 ms at 50 ms bins).
    alpha : float or "auto", default "auto"
        Ridge penalty; "auto" picks it on a contiguous hold-out of the training bins
        (:func:`choose_ridge_alpha`).
    feature_transform : {"none", "sqrt"}, default "none"
        Applied to features before everything else; "sqrt" stabilises the variance of counts.
    guard : "auto", None or SignalGuard, default "auto"
        Bad-signal handling (see :mod:`neurolace.decode.guard`); None disables it.

    Attributes
    ----------
    coef_ : ndarray, shape (n_lags, n_features, n_dims)
        Weights of each lag (lag 0 = current bin).
    intercept_ : ndarray, shape (n_dims,)
    alpha_ : float
        Penalty used.
    n_features_in_ : int
    """

    def __init__(
        self,
        *,
        n_lags: int = 10,
        alpha: float | str = "auto",
        feature_transform: str = "none",
        guard: Any = "auto",
    ) -> None:
        self.n_lags = n_lags
        self.alpha = alpha
        self.feature_transform = feature_transform
        self.guard = guard

    def _fit_model(self, X: np.ndarray, y: np.ndarray, segments: list[tuple[int, int]]) -> None:
        n_lags = check_int(self.n_lags, "n_lags", minimum=1)
        alpha = check_alpha(self.alpha)
        history = np.tile(self.guard_.mean_, (n_lags - 1, 1))
        design = np.vstack([lag_stack(X[start:stop], history, n_lags)[0] for start, stop in segments])
        if alpha == "auto":
            alpha = choose_ridge_alpha(design, y) if X.shape[0] >= 10 else 1.0
        coef, intercept = ridge_fit(design, y, alpha)
        self.alpha_ = float(alpha)
        self.coef_ = coef.reshape(n_lags, X.shape[1], y.shape[1])
        self.intercept_ = intercept
        self._coef_flat = coef

    def _initial_model_state(self) -> np.ndarray:
        return np.tile(self.guard_.mean_, (self.coef_.shape[0] - 1, 1))

    def _decode(self, X: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        design, history = lag_stack(X, history, self.coef_.shape[0])
        return design @ self._coef_flat + self.intercept_, history
