"""Ridge regression, written once: the fit every linear decoder uses and the offline-decodability protocol.

- :func:`ridge_fit`: ridge with an unpenalised intercept, primal or dual form
  by shape (the Wiener filter, the label-lag estimate and the click decoder's
  calibration use it).
- :class:`RidgeSolver`: one Gram matrix, many penalties (a penalty search
  without refactoring), for wide designs such as 1024 channels x 10 lags.
- :func:`ridge_decodability`: the offline R² protocol of the real M1
  reference data (``../shared/data/stevenson2011-m1-reaching``), run the same
  way on real and simulated counts.

scikit-learn's ``Ridge``/``RidgeCV`` are not used here because the penalty
search of :func:`ridge_decodability` must validate on a contiguous later part
of the training bins (time series: no shuffled folds) and reuse one float32
Gram matrix of a 1024 x 10-lag design, which keeps it within a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from neurolace.core.checks import check_array, check_int
from neurolace.core.errors import InvalidInputError

__all__ = ["RidgeSolver", "lagged_design", "r2_score_columns", "ridge_decodability", "ridge_fit"]


def ridge_fit(design: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept.

    Parameters
    ----------
    design : ndarray, shape (n_samples, n_columns)
    y : ndarray, shape (n_samples, n_dims)
    alpha : float
        L2 penalty (>= 0).

    Returns
    -------
    coef : ndarray, shape (n_columns, n_dims)
    intercept : ndarray, shape (n_dims,)
    """
    design_mean = design.mean(axis=0)
    y_mean = y.mean(axis=0)
    centered = design - design_mean
    yc = y - y_mean
    n_samples, n_columns = centered.shape
    ridge = max(alpha, 1e-10 * max(float(np.einsum("ij,ij->", centered, centered)), 1.0))
    if n_columns <= n_samples:
        gram = centered.T @ centered
        gram[np.diag_indices_from(gram)] += ridge
        coef = scipy.linalg.solve(gram, centered.T @ yc, assume_a="pos")
    else:
        gram = centered @ centered.T
        gram[np.diag_indices_from(gram)] += ridge
        coef = centered.T @ scipy.linalg.solve(gram, yc, assume_a="pos")
    return coef, y_mean - design_mean @ coef


def lagged_design(features: Any, n_lags: int) -> np.ndarray:
    """Causal history design: row ``t`` holds bins ``t, t-1, ..., t-n_lags+1`` (zeros before the start).

    Parameters
    ----------
    features : ndarray, shape (n_bins, n_features)
    n_lags : int

    Returns
    -------
    ndarray, shape (n_bins, n_lags * n_features)
    """
    features = check_array(features, "features", ndim=2, dtype=np.float64)
    n_lags = check_int(n_lags, "n_lags", minimum=1)
    n_bins, n_features = features.shape
    design = np.zeros((n_bins, n_lags * n_features), dtype=features.dtype)
    for lag in range(n_lags):
        design[lag:, lag * n_features:(lag + 1) * n_features] = features[: n_bins - lag]
    return design


def ridge_decodability(
    counts: Any,
    velocity: Any,
    *,
    n_lags: int = 10,
    train_fraction: float = 0.7,
    alphas: Any = (1.0, 10.0, 100.0, 1000.0, 10000.0),
) -> dict:
    """Offline R² of a plain ridge decoder, with the protocol of the real M1 reference data.

    The protocol of ``../shared/data/stevenson2011-m1-reaching``: sqrt of the
    counts, ``n_lags`` bins of causal history, fit on the first
    ``train_fraction`` of the bins, score R² of each velocity component on the
    rest, no shuffling. The penalty is chosen from ``alphas`` on the last 20 %
    of the training bins (contiguous), then the model is refitted on all
    training bins; the same procedure runs on real and simulated data.

    Parameters
    ----------
    counts : ndarray, shape (n_bins, n_channels)
    velocity : ndarray, shape (n_bins, 2)

    Returns
    -------
    dict
        ``r2`` (list per component), ``r2_mean``, ``alpha``, ``n_train_bins``, ``n_test_bins``, ``n_features``.
    """
    counts = check_array(counts, "counts", ndim=2, dtype=np.float64)
    velocity = check_array(velocity, "velocity", ndim=2, dtype=np.float64, shape=(counts.shape[0], None))
    if not 0 < train_fraction < 1:
        raise InvalidInputError(f"train_fraction must lie in (0, 1), got {train_fraction!r}")
    if np.any(counts < 0):
        raise InvalidInputError("counts must be >= 0")
    design = lagged_design(np.sqrt(counts), n_lags)[n_lags - 1:].astype(np.float32)
    target = velocity[n_lags - 1:]
    n_train = int(train_fraction * design.shape[0])
    if n_train < 10 or design.shape[0] - n_train < 10:
        raise InvalidInputError(f"counts has too few bins ({counts.shape[0]}) for this protocol")
    n_fit = int(0.8 * n_train)
    solver = RidgeSolver(design[:n_train], target[:n_train])
    scores = [np.mean(r2_score_columns(target[n_fit:n_train], solver.validate(n_fit, a))) for a in alphas]
    best = float(alphas[int(np.argmax(scores))])
    prediction = solver.predict(design[n_train:], best)
    r2 = r2_score_columns(target[n_train:], prediction)
    return {
        "r2": [float(v) for v in r2],
        "r2_mean": float(np.mean(r2)),
        "alpha": best,
        "n_train_bins": n_train,
        "n_test_bins": int(design.shape[0] - n_train),
        "n_features": int(design.shape[1]),
    }


class RidgeSolver:
    """Ridge with intercept for several penalties from one Gram matrix.

    With more features than bins (1024 channels x 10 lags) the dual form is
    used: one ``X X^T`` of the training bins serves both the penalty search
    (on a contiguous first part, re-centred in kernel space) and the final fit.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X = X
        self.y = y
        self.primal = X.shape[1] <= X.shape[0]
        if not self.primal:
            self.gram = (X @ X.T).astype(np.float64)

    def _dual_solution(self, n_rows: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        gram = self.gram[:n_rows, :n_rows]
        row_mean = gram.mean(axis=0)
        centred = gram - row_mean[np.newaxis] - row_mean[:, np.newaxis] + row_mean.mean()
        centred[np.diag_indices(n_rows)] += alpha
        y = self.y[:n_rows]
        solution = scipy.linalg.solve(centred, y - y.mean(axis=0), assume_a="pos")
        return solution, row_mean

    def validate(self, n_fit: int, alpha: float) -> np.ndarray:
        """Fit on the first ``n_fit`` rows, predict the remaining training rows."""
        y_mean = self.y[:n_fit].mean(axis=0)
        if self.primal:
            return self._primal_predict(self.X[:n_fit], self.y[:n_fit], self.X[n_fit:], alpha)
        solution, row_mean = self._dual_solution(n_fit, alpha)
        cross = self.gram[n_fit:, :n_fit]
        cross = cross - cross.mean(axis=1, keepdims=True) - row_mean[np.newaxis] + row_mean.mean()
        return cross @ solution + y_mean

    def predict(self, X_new: np.ndarray, alpha: float) -> np.ndarray:
        """Fit on all training rows, predict ``X_new``."""
        if self.primal:
            return self._primal_predict(self.X, self.y, X_new, alpha)
        solution, _ = self._dual_solution(self.X.shape[0], alpha)
        x_mean = self.X.mean(axis=0, dtype=np.float64)
        weights = (self.X.T @ solution.astype(np.float32)).astype(np.float64) - np.outer(x_mean, solution.sum(axis=0))
        return (X_new - x_mean) @ weights + self.y.mean(axis=0)

    @staticmethod
    def _primal_predict(X: np.ndarray, y: np.ndarray, X_new: np.ndarray, alpha: float) -> np.ndarray:
        x_mean = X.mean(axis=0, dtype=np.float64)
        Xc = (X - x_mean).astype(np.float32)
        gram = (Xc.T @ Xc).astype(np.float64)
        gram[np.diag_indices_from(gram)] += alpha
        weights = scipy.linalg.solve(gram, (Xc.T @ (y - y.mean(axis=0)).astype(np.float32)).astype(np.float64),
                                     assume_a="pos")
        return (X_new - x_mean) @ weights + y.mean(axis=0)


def r2_score_columns(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """R² of each column of ``prediction`` against ``y`` (shapes (n_samples, n_dims)); no averaging."""
    residual = np.sum((y - prediction) ** 2, axis=0)
    total = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    return 1.0 - residual / total
