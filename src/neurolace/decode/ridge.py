"""Ridge regression, written once: the fit every linear decoder uses and the offline-decodability protocol.

- :func:`ridge_fit`: ridge with an unpenalised intercept, primal or dual form
  by shape (the Wiener filter, the label-lag estimate and the click decoder's
  calibration use it).
- :class:`RidgeSolver`: one Gram matrix, many penalties (a penalty search
  without refactoring), for wide designs such as 1024 channels x 10 lags.
- :func:`ridge_cv`: the penalty and the history length chosen together by
  time-series cross-validation (a forward validation split or contiguous
  folds, never shuffled), the search behind ``WienerFilter()``'s defaults and
  the offline benchmark's reference; one eigendecomposition per fold and
  history length serves every penalty, and the Gram matrix (or, for wide
  designs, the kernel) grows by one lag at a time.
- :func:`ridge_decodability`: the offline R² protocol of the real M1
  reference data (``../shared/data/stevenson2011-m1-reaching``), run the same
  way on real and simulated counts.

scikit-learn's ``Ridge``/``RidgeCV`` are not used here because the penalty
search of :func:`ridge_decodability` must validate on a contiguous later part
of the training bins (time series: no shuffled folds) and reuse one float32
Gram matrix of a 1024 x 10-lag design, which keeps it within a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from neurolace.core.checks import check_array, check_int
from neurolace.core.errors import InvalidInputError

__all__ = [
    "DEFAULT_N_LAGS",
    "RELATIVE_ALPHAS",
    "RidgeCVResult",
    "RidgeSolver",
    "cv_folds",
    "lagged_design",
    "r2_score_columns",
    "ridge_cv",
    "ridge_decodability",
    "ridge_fit",
]

#: candidate penalties of the search, relative to the mean diagonal of the centred Gram matrix
#: (the summed variance of one design column), so the grid does not depend on the feature scale
RELATIVE_ALPHAS = np.logspace(-4, 2, 13)

#: candidate history lengths (bins, the current one included) of the default search; at 50 ms bins
#: the longest is 1 s, the span of the classic 10 x 100 ms Wiener filter of Carmena et al. 2003
#: (PLoS Biol 1:e42)
DEFAULT_N_LAGS = (1, 2, 3, 5, 7, 10, 14, 20)


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


@dataclass(frozen=True)
class RidgeCVResult:
    """What :func:`ridge_cv` chose and the validation scores it saw.

    Attributes
    ----------
    n_lags : int
        Chosen history length (bins, the current one included).
    alpha : float
        Chosen penalty (absolute, in the units of the centred Gram matrix).
    score : float
        Mean validation R² (over folds and output dimensions) of the choice.
    n_lags_tried : tuple of int
        History lengths evaluated, in order (the search stops early when longer histories stop helping).
    alphas : ndarray, shape (n_alphas,)
        Penalties evaluated at every history length.
    scores : ndarray, shape (len(n_lags_tried), n_alphas)
        Mean validation R² of every pair.
    n_folds : int
        Validation blocks used (1 = a forward validation split).
    coef : ndarray, shape (n_lags * n_features, n_dims), or None
        The chosen ridge refitted on all rows (lag 0 first), from the search's own
        Gram matrix; None when the chosen design was wider than the training rows
        (the search then used the kernel), so the caller refits.
    intercept : ndarray, shape (n_dims,), or None
    """

    n_lags: int
    alpha: float
    score: float
    n_lags_tried: tuple[int, ...]
    alphas: np.ndarray
    scores: np.ndarray
    n_folds: int
    coef: np.ndarray | None = None
    intercept: np.ndarray | None = None


def cv_folds(
    n_bins: int,
    *,
    n_folds: int = 1,
    validation_fraction: float = 0.2,
    segments: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Contiguous validation blocks for time-series cross-validation (never shuffled).

    Parameters
    ----------
    n_bins : int
        Bins (rows) of the training data, in time order.
    n_folds : int, default 1
        1 = a forward validation split: the last ``validation_fraction`` of the
        bins validate a fit on the earlier ones. ``k >= 2`` = ``k`` contiguous
        blocks of about equal length, each validating a fit on all the others.
    validation_fraction : float, default 0.2
        Only for ``n_folds=1``.
    segments : list of (int, int), optional
        ``(start, stop)`` of stacked independent trials; with more than one,
        every block boundary moves to a trial start, so no trial is split.

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` row range of each validation block.
    """
    n_folds = check_int(n_folds, "n_folds", minimum=1)
    if not 0 < validation_fraction < 1:
        raise InvalidInputError(f"validation_fraction must lie in (0, 1), got {validation_fraction!r}")
    if n_folds == 1:
        cuts = [n_bins - round(validation_fraction * n_bins), n_bins]
    else:
        cuts = [round(k * n_bins / n_folds) for k in range(n_folds + 1)]
    if segments is not None and len(segments) > 1:
        inner = np.array([start for start, _ in segments if 0 < start < n_bins])
        snapped = [int(inner[np.argmin(np.abs(inner - cut))]) for cut in cuts[1:-1]]
        if n_folds == 1:
            cuts = [int(inner[np.argmin(np.abs(inner - cuts[0]))]), n_bins]
        else:
            cuts = [0, *snapped, n_bins]
    folds = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    for start, stop in folds:
        if stop - start < 2 or n_bins - (stop - start) < 2:
            raise InvalidInputError(
                f"{n_bins} training bins are too few for {n_folds} validation fold(s): "
                f"a fold of bins {start}..{stop} leaves fewer than 2 bins to fit or to validate"
            )
    return folds


def _lag_block(
    features: np.ndarray, segments: list[tuple[int, int]], lag: int, padding: np.ndarray
) -> np.ndarray:
    """Features of bin ``t - lag`` in row ``t``, within each segment; ``padding`` before its start."""
    block = np.empty_like(features)
    for start, stop in segments:
        shift = min(lag, stop - start)
        block[start : start + shift] = padding
        block[start + shift : stop] = features[start : stop - shift]
    return block


class _LagSearch:
    """Grams (or kernels) of a lagged design that grow one lag block at a time, per validation fold.

    The design, the Gram matrices (over all rows and over each fold's
    validation rows) and the cross-products are allocated once at their
    largest size and filled one lag block at a time; lag ``l`` occupies
    columns ``l * n_features`` to ``(l + 1) * n_features``, so the history
    ``L`` design is the leading ``L * n_features`` columns.
    """

    def __init__(self, y: np.ndarray, folds: list[tuple[int, int]], dtype: type, n_columns: int) -> None:
        self.y = y
        self.folds = folds
        self.dtype = dtype
        n_bins = y.shape[0]
        self.design = np.empty((n_bins, n_columns), dtype=dtype, order="F")  # leading columns contiguous
        self.y_cast = y.astype(dtype)
        self.width = 0
        self.train_masks = []
        for start, stop in folds:
            mask = np.ones(n_bins, dtype=bool)
            mask[start:stop] = False
            self.train_masks.append(mask)
        self.primal_columns = 0  # columns the primal grams cover; the dual kernel takes over above
        self.kernel = None  # dual: (n_bins, n_bins)

    def add(self, block: np.ndarray, dual: bool) -> None:
        """Append one lag block (n_bins, n_features) to the design and update the grams or the kernel."""
        old, new = self.width, self.width + block.shape[1]
        self.design[:, old:new] = block
        self.width = new
        if dual:
            if self.kernel is None:
                design = self.design[:, :new]
                self.kernel = (design @ design.T).astype(np.float64)
            else:
                part = self.design[:, old:new]
                self.kernel += (part @ part.T).astype(np.float64)
            return
        if old == 0:
            n_columns, n_dims = self.design.shape[1], self.y.shape[1]
            self.gram = np.zeros((n_columns, n_columns))
            self.cross = np.zeros((n_columns, n_dims))
            self.sums = np.zeros(n_columns)
            self.fold_terms = [
                (np.zeros((n_columns, n_columns)), np.zeros((n_columns, n_dims)), np.zeros(n_columns))
                for _ in self.folds
            ]
        rows = [(slice(None), self.gram, self.cross, self.sums)] + [
            (slice(start, stop), *terms)
            for (start, stop), terms in zip(self.folds, self.fold_terms, strict=True)
        ]
        for row_range, gram, cross, sums in rows:
            part, added = self.design[row_range, :new], self.design[row_range, old:new]
            gram[:new, old:new] = (part.T @ added).astype(np.float64)
            gram[old:new, :old] = gram[:old, old:new].T
            cross[old:new] = (added.T @ self.y_cast[row_range]).astype(np.float64)
            sums[old:new] = added.sum(axis=0, dtype=np.float64)
        self.primal_columns = new

    def full_fit(self, n_columns: int, alpha: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Ridge on all rows with the leading ``n_columns``, from the kept Gram matrix (None if not kept)."""
        if n_columns > self.primal_columns:
            return None
        n_bins = self.y.shape[0]
        mean = self.sums[:n_columns] / n_bins
        y_mean = self.y.mean(axis=0)
        gram = self.gram[:n_columns, :n_columns] - n_bins * np.outer(mean, mean)
        gram[np.diag_indices_from(gram)] += max(alpha, 1e-10 * max(float(np.trace(gram)), 1.0))
        cross = self.cross[:n_columns] - n_bins * np.outer(mean, y_mean)
        coef = scipy.linalg.solve(gram, cross, assume_a="pos")
        return coef, y_mean - mean @ coef

    def fold_scores(self, alphas: np.ndarray, positions: Any = None) -> np.ndarray:
        """Mean validation R² of the penalties at ``positions`` (default all), averaged over folds.

        Returns
        -------
        ndarray, shape (n_alphas,)
            NaN at the positions not evaluated.
        """
        positions = np.arange(alphas.size) if positions is None else np.asarray(positions)
        scores = np.full(alphas.size, np.nan)
        scores[positions] = 0.0
        for index, ((start, stop), mask) in enumerate(zip(self.folds, self.train_masks, strict=True)):
            y_train, y_validation = self.y[mask], self.y[start:stop]
            y_mean = y_train.mean(axis=0)
            variance = np.var(y_validation, axis=0)
            variance[variance == 0] = 1.0
            if self.kernel is not None:
                matrix, validation, right = self._dual_fold(mask, start, stop, y_train - y_mean)
            else:
                matrix, validation, right = self._primal_fold(index, mask, start, stop, y_mean)
            for position, predicted in zip(
                positions, _ridge_path(matrix, validation, right, alphas[positions]), strict=True
            ):
                r2 = 1.0 - np.mean((y_validation - y_mean - predicted) ** 2, axis=0) / variance
                scores[position] += float(np.mean(r2)) / len(self.folds)
        return scores

    def _primal_fold(self, index: int, mask: np.ndarray, start: int, stop: int, y_mean: np.ndarray) -> tuple:
        """Centred training Gram ``(p, p)``, centred validation design and ``Z^T y`` of one fold."""
        width = self.width
        fold_gram, fold_cross, fold_sums = (term[:width] for term in self.fold_terms[index])
        n_train = int(mask.sum())
        sums = self.sums[:width] - fold_sums
        mean = sums / n_train
        gram = self.gram[:width, :width] - fold_gram[:, :width] - np.outer(sums, mean)
        cross = self.cross[:width] - fold_cross - np.outer(sums, y_mean)
        validation = self.design[start:stop, :width].astype(np.float64) - mean
        return gram, validation, cross

    def _dual_fold(self, mask: np.ndarray, start: int, stop: int, y_centred: np.ndarray) -> tuple:
        """Centred training kernel ``(n, n)``, centred validation-by-training kernel and centred targets."""
        if stop == mask.size:  # a forward split: the training rows are the leading block, no copy needed
            kernel, cross = self.kernel[:start, :start], self.kernel[start:stop, :start]
        else:
            train = np.flatnonzero(mask)
            kernel, cross = self.kernel[np.ix_(train, train)], self.kernel[start:stop][:, train]
        row_mean = kernel.mean(axis=0)
        centred = kernel - row_mean[np.newaxis] - row_mean[:, np.newaxis] + row_mean.mean()
        cross = cross - cross.mean(axis=1, keepdims=True) - row_mean[np.newaxis] + row_mean.mean()
        return centred, cross, y_centred


#: up to this size the penalty path uses one eigendecomposition; above, a Cholesky factorisation per
#: penalty (about 15-20x cheaper each, measured with scipy/OpenBLAS on one core) on a few penalties
EIGH_MAX_SIZE = 1200


def _ridge_path(matrix: np.ndarray, validation: np.ndarray, right: np.ndarray, alphas: np.ndarray) -> list:
    """Centred validation predictions ``validation @ (matrix + αI)^{-1} right`` for each penalty."""
    if matrix.shape[0] <= EIGH_MAX_SIZE or alphas.size > 6:
        eigenvalues, basis = scipy.linalg.eigh(matrix, driver="evd")
        eigenvalues = np.clip(eigenvalues, 0, None)
        rotated, projected = validation @ basis, basis.T @ right
        return [rotated @ (projected / (eigenvalues + alpha)[:, np.newaxis]) for alpha in alphas]
    predictions = []
    trace = float(np.trace(matrix))
    for alpha in alphas:
        # single precision halves the factorisation when the penalty bounds the condition number
        # (trace / alpha >= its largest eigenvalue over alpha) well inside float32's 1e7
        dtype = np.float32 if alpha > 0 and trace / alpha < 1e5 else np.float64
        shifted = matrix.astype(dtype)
        shifted[np.diag_indices_from(shifted)] += alpha
        try:
            factor = scipy.linalg.cho_factor(shifted, overwrite_a=True)
        except np.linalg.LinAlgError:
            shifted = matrix.copy()
            shifted[np.diag_indices_from(shifted)] += alpha
            factor = scipy.linalg.cho_factor(shifted, overwrite_a=True)
        solution = scipy.linalg.cho_solve(factor, right.astype(factor[0].dtype)).astype(np.float64)
        predictions.append(validation @ solution)
    return predictions


def _climb(search: _LagSearch, alphas: np.ndarray, start: int) -> np.ndarray:
    """Hill-climb the validation score over the penalty grid from ``start`` (NaN where not evaluated)."""
    # longer histories overfit more, so the best penalty rarely falls: start at it and the next larger
    row = search.fold_scores(alphas, sorted({start, min(start + 1, alphas.size - 1)}))
    while True:
        position = int(np.nanargmax(row))
        neighbours = [index for index in (position - 1, position + 1) if 0 <= index < alphas.size]
        missing = [index for index in neighbours if np.isnan(row[index])]
        if not missing:
            return row
        fresh = search.fold_scores(alphas, missing)
        row[missing] = fresh[missing]


def ridge_cv(
    features: Any,
    y: Any,
    *,
    n_lags: Any = DEFAULT_N_LAGS,
    alphas: Any = None,
    segments: list[tuple[int, int]] | None = None,
    padding: Any = None,
    n_folds: int = 1,
    validation_fraction: float = 0.2,
    patience: int = 1,
) -> RidgeCVResult:
    """Choose the ridge penalty and the causal history length by time-series cross-validation.

    For each history length ``L`` (increasing) the design holds bins ``t, t-1,
    ..., t-L+1`` of ``features`` (within each segment, ``padding`` before its
    start, as :class:`~neurolace.decode.wiener.WienerFilter` decodes), and
    the penalties are scored by the mean R² (over output dimensions, then folds)
    of a ridge fitted on the training rows of a fold and predicting its
    validation rows; the intercept is fitted on the training rows, never
    penalised. Folds are contiguous (:func:`cv_folds`), never shuffled:
    neighbouring bins are strongly autocorrelated, so a shuffled split (or
    leave-one-out, as scikit-learn's ``RidgeCV`` uses by default) rewards
    over-fitting. The search over ``L`` stops once ``patience`` consecutive
    longer histories have not beaten the best score (the default grid is
    roughly geometric, so one step past the peak is already a clear drop).

    Cost: the Gram matrix ``Z^T Z`` (``p = L * n_features`` columns), or the
    kernel ``Z Z^T`` when ``p`` exceeds the training rows, grows by one lag
    block per step rather than being recomputed. Up to
    :data:`EIGH_MAX_SIZE` one symmetric eigendecomposition per fold serves
    every penalty (``(Z^T Z + αI)^{-1} = V (Λ + α)^{-1} V^T``); above it, the
    penalty grid is climbed from the previous history length's best (the
    middle of the grid for the first length) with a
    Cholesky factorisation per penalty and fold (three or four penalties
    instead of all of them; the score is taken as unimodal in log α there).

    Parameters
    ----------
    features : ndarray, shape (n_bins, n_features)
        In time order.
    y : ndarray, shape (n_bins, n_dims)
    n_lags : int or sequence of int, default :data:`DEFAULT_N_LAGS`
        Candidate history lengths (bins, the current one included).
    alphas : sequence of float, optional
        Candidate penalties (absolute). Default: :data:`RELATIVE_ALPHAS` times
        the mean column variance of ``features`` times the number of training rows.
    segments : list of (int, int), optional
        ``(start, stop)`` of independent stacked trials (no history crosses a start).
    padding : ndarray, shape (n_features,), optional
        Value of bins before a segment's start; default the mean of ``features``.
    n_folds : int, default 1
        1 = forward validation split (last ``validation_fraction``); ``k >= 2`` contiguous folds.
    validation_fraction : float, default 0.2
    patience : int, default 1

    Returns
    -------
    RidgeCVResult
    """
    features = check_array(features, "features", ndim=2, dtype=np.float64)
    y = check_array(y, "y", ndim=2, dtype=np.float64, shape=(features.shape[0], None))
    n_bins, n_features = features.shape
    grid = sorted({check_int(int(value), "n_lags", minimum=1) for value in np.atleast_1d(n_lags)})
    patience = check_int(patience, "patience", minimum=1)
    segments = segments if segments is not None else [(0, n_bins)]
    padding = features.mean(axis=0) if padding is None else np.asarray(padding, dtype=np.float64)
    folds = cv_folds(n_bins, n_folds=n_folds, validation_fraction=validation_fraction, segments=segments)
    min_train = min(n_bins - (stop - start) for start, stop in folds)
    if alphas is None:
        scale = float(np.mean(np.var(features, axis=0))) * min_train or 1.0
        alphas = RELATIVE_ALPHAS * scale
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or np.any(~np.isfinite(alphas)) or np.any(alphas < 0):
        raise InvalidInputError(f"alphas must be finite numbers >= 0, got {alphas!r}")
    # float32 storage keeps a 1024-channel x 20-lag design within memory; small designs stay exact
    dtype = np.float32 if n_bins * n_features * grid[-1] > 2**24 else np.float64
    search = _LagSearch(y, folds, dtype, grid[-1] * n_features)
    tried, scores = [], []
    best, since_best, lag = (-np.inf, grid[0], float(alphas[0])), 0, 0
    for length in grid:
        while lag < length:
            search.add(_lag_block(features, segments, lag, padding), dual=(lag + 1) * n_features > min_train)
            lag += 1
        size = min(length * n_features, min_train)
        if size <= EIGH_MAX_SIZE or alphas.size <= 3:
            row = search.fold_scores(alphas)
        else:  # climb the penalty grid from the previous length's best (or its middle), a few factorisations
            row = _climb(search, alphas, int(np.nanargmax(scores[-1])) if scores else alphas.size // 2)
        tried.append(length)
        scores.append(row)
        position = int(np.nanargmax(row))
        if row[position] > best[0]:
            best, since_best = (float(row[position]), length, float(alphas[position])), 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    final = search.full_fit(best[1] * n_features, best[2])
    return RidgeCVResult(
        n_lags=best[1],
        alpha=best[2],
        score=best[0],
        n_lags_tried=tuple(tried),
        alphas=alphas,
        scores=np.array(scores),
        n_folds=len(folds),
        coef=None if final is None else final[0],
        intercept=None if final is None else final[1],
    )
