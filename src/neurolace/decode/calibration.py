"""Calibration helpers of a closed-loop session: the neural lag behind an observation block's labels.

In an observation block the participant follows a computer-driven cursor,
so the attempted movement (and the neural activity) trails the cursor's
velocity by a reaction time; a decoder fitted on unshifted labels learns a
lagged mapping. :func:`estimate_label_lag` finds the shift from the block's
own data with :func:`neurolace.decode.ridge.ridge_fit`.
"""

from __future__ import annotations

import numpy as np

from neurolace.core.checks import check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.decode.ridge import r2_score_columns, ridge_fit

__all__ = ["DEFAULT_MAX_LABEL_LAG_S", "estimate_label_lag"]

#: Longest neural lag behind the observation block's cursor that :func:`estimate_label_lag` considers.
DEFAULT_MAX_LABEL_LAG_S = 0.4


def estimate_label_lag(features: np.ndarray, labels: np.ndarray, *, loop_s: float = 0.02,
                       max_lag_s: float = DEFAULT_MAX_LABEL_LAG_S, alpha: float = 1000.0) -> int:
    """Bins by which the neural activity of an observation block lags its cursor-velocity labels.

    The lag is the shift, in whole bins from 0 to ``max_lag_s``, at which a
    ridge regression (penalty ``alpha``, square-rooted features, no history)
    of ``labels[t - lag]`` on ``features[t]``, fitted on the first 80 % of the
    bins, best predicts the last 20 % (mean R² over the label columns). Only
    the block's own data are used.

    Parameters
    ----------
    features : ndarray, shape (n_bins, n_features)
        Non-negative features (counts); negative values are clipped to 0.
    labels : ndarray, shape (n_bins, n_dims)
    loop_s : float
        Bin width in seconds.
    max_lag_s : float
        Longest lag tried (also at most a quarter of the bins).
    alpha : float
        Ridge penalty.

    Returns
    -------
    int
        The lag in bins; fit a decoder on ``features[lag:]`` and ``labels[:n_bins - lag]``.
    """
    features = np.sqrt(np.maximum(np.asarray(features, dtype=np.float64), 0.0))
    labels = np.asarray(labels, dtype=np.float64)
    if features.ndim != 2:
        raise InvalidInputError(f"features must have shape (n_bins, n_features), got {features.shape}")
    if labels.ndim != 2 or labels.shape[0] != features.shape[0]:
        raise InvalidInputError(
            f"labels must have shape ({features.shape[0]}, n_dims) to match the features, got {labels.shape}"
        )
    loop_s = check_positive(loop_s, "loop_s")
    max_lag = min(round(check_nonnegative(max_lag_s, "max_lag_s") / loop_s), features.shape[0] // 4)
    scores = []
    for lag in range(max_lag + 1):
        X, y = features[lag:], labels[: labels.shape[0] - lag]
        n_fit = int(0.8 * X.shape[0])
        if n_fit < 2 or X.shape[0] - n_fit < 2:
            raise InvalidInputError(f"estimate_label_lag needs at least 10 bins, got {features.shape[0]}")
        coef, intercept = ridge_fit(X[:n_fit], y[:n_fit], alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = r2_score_columns(y[n_fit:], X[n_fit:] @ coef + intercept)
        scores.append(float(np.mean(np.nan_to_num(r2, nan=-np.inf))))
    return int(np.argmax(scores))
