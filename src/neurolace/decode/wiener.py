"""The Wiener filter: ridge regression of kinematics on a causal history of features.

The decoded kinematics of bin ``t`` are

    y_t = b + sum_{l=0}^{L-1} W_l^T x_{t-l}

with ``L = n_lags`` bins of history (the current bin included), fitted by ridge
regression (Carmena et al. 2003, PLoS Biol 1:e42; Glaser et al. 2020, eNeuro
7:ENEURO.0506-19.2020, "Machine learning for neural decoding"). Bins before the
first one are taken to equal the training mean of the features, so the first
``L - 1`` outputs are not special cases in either ``predict`` or ``step``.

At its defaults (``n_lags="auto"``, ``alpha="auto"``) the filter chooses both
by time-series cross-validation on the data given to ``fit`` only
(:func:`neurolace.decode.ridge.ridge_cv`: five contiguous folds on small
data, a forward validation split of the last 20 % of the training bins on
large data), as
scikit-learn's ``RidgeCV`` chooses a penalty, then refits on all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_in, check_int
from neurolace.core.errors import InvalidInputError
from neurolace.decode.base import BaseDecoder, check_alpha, lag_stack
from neurolace.decode.ridge import DEFAULT_N_LAGS, ridge_cv, ridge_fit

__all__ = ["FOLDS_MAX_ENTRIES", "WienerFilter", "choose_ridge_alpha"]

#: ``cv_folds="auto"`` uses 5 contiguous folds up to this many entries in the longest candidate
#: design (n_bins x n_features x max lags: 1,200 bins x 71 units x 20 lags is 1.7 M), else one forward
#: split (10,875 training bins x 196 units x 20 lags is 43 M, where 5 folds cost ~3x more time)
FOLDS_MAX_ENTRIES = 2**24

def choose_ridge_alpha(design: np.ndarray, y: np.ndarray, *, validation_fraction: float = 0.2) -> float:
    """Pick the ridge penalty of a fixed design on a contiguous hold-out (the last bins), never shuffled.

    The candidates are :data:`~neurolace.decode.ridge.RELATIVE_ALPHAS` times the
    mean squared column norm of the centred design; the one with the highest
    mean validation R² over the output dimensions wins (:func:`ridge_cv` with
    one history length).
    """
    return ridge_cv(design, y, n_lags=1, validation_fraction=validation_fraction).alpha


class WienerFilter(BaseDecoder):
    """Lagged ridge regression (the classic BCI "Wiener filter").

    Parameters
    ----------
    n_lags : int or "auto", default "auto"
        Bins of causal history, the current bin included (10 bins = 500 ms at 50 ms bins);
        "auto" chooses among ``n_lags_candidates`` by cross-validation on the training bins.
    alpha : float or "auto", default "auto"
        Ridge penalty; "auto" chooses it by the same cross-validation
        (candidates :data:`~neurolace.decode.ridge.RELATIVE_ALPHAS` times the summed
        variance of one design column).
    n_lags_candidates : tuple of int, default :data:`~neurolace.decode.ridge.DEFAULT_N_LAGS`
        History lengths searched when ``n_lags="auto"`` (shortest first; the search stops
        at the first longer one that fails to beat the best).
    cv_folds : int or "auto", default "auto"
        1 = validate on the last 20 % of the training bins (a forward split, fit on the
        earlier 80 %); ``k >= 2`` = ``k`` contiguous folds (``k`` times the cost, a less
        noisy choice). "auto" = 5 folds while the longest candidate design holds at most
        :data:`FOLDS_MAX_ENTRIES` entries (small data, where one split is noisiest and five
        cost little), else the forward split. With ``segment_starts`` the folds keep trials whole.
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
    n_lags_ : int
        History length used.
    cv_result_ : RidgeCVResult or None
        The search's validation scores (None when nothing was "auto" or the data
        were too short to validate: then the shortest candidate and ``alpha=1`` are used).
    n_features_in_ : int
    """

    def __init__(
        self,
        *,
        n_lags: int | str = "auto",
        alpha: float | str = "auto",
        n_lags_candidates: tuple[int, ...] = DEFAULT_N_LAGS,
        cv_folds: int | str = "auto",
        feature_transform: str = "none",
        guard: Any = "auto",
    ) -> None:
        self.n_lags = n_lags
        self.alpha = alpha
        self.n_lags_candidates = n_lags_candidates
        self.cv_folds = cv_folds
        self.feature_transform = feature_transform
        self.guard = guard

    def _fit_model(self, X: np.ndarray, y: np.ndarray, segments: list[tuple[int, int]]) -> None:
        if isinstance(self.n_lags, str):
            check_in(self.n_lags, "n_lags", ("auto",))
            candidates = tuple(
                check_int(value, "n_lags_candidates", minimum=1) for value in self.n_lags_candidates
            )
            if not candidates:
                raise InvalidInputError("n_lags_candidates must hold at least one history length, got ()")
        else:
            candidates = (check_int(self.n_lags, "n_lags", minimum=1),)
        alpha = check_alpha(self.alpha)
        if isinstance(self.cv_folds, str):
            check_in(self.cv_folds, "cv_folds", ("auto",))
            folds = 5 if X.shape[0] * X.shape[1] * max(candidates) <= FOLDS_MAX_ENTRIES else 1
        else:
            folds = check_int(self.cv_folds, "cv_folds", minimum=1)
        n_lags, self.cv_result_ = min(candidates), None
        if len(candidates) > 1 or alpha == "auto":
            if X.shape[0] >= 10 * folds:
                self.cv_result_ = ridge_cv(
                    X,
                    y,
                    n_lags=candidates,
                    alphas=None if alpha == "auto" else (alpha,),
                    segments=segments,
                    padding=self.guard_.mean_,
                    n_folds=folds,
                )
                n_lags, alpha = self.cv_result_.n_lags, self.cv_result_.alpha
            elif alpha == "auto":
                alpha = 1.0
        if self.cv_result_ is not None and self.cv_result_.coef is not None:
            coef, intercept = self.cv_result_.coef, self.cv_result_.intercept
        else:
            history = np.tile(self.guard_.mean_, (n_lags - 1, 1))
            design = np.vstack([lag_stack(X[start:stop], history, n_lags)[0] for start, stop in segments])
            coef, intercept = ridge_fit(design, y, alpha)
        self.alpha_ = float(alpha)
        self.n_lags_ = n_lags
        self.coef_ = coef.reshape(n_lags, X.shape[1], y.shape[1])
        self.intercept_ = intercept
        self._coef_flat = coef

    def _initial_model_state(self) -> np.ndarray:
        return np.tile(self.guard_.mean_, (self.coef_.shape[0] - 1, 1))

    def _decode(self, X: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        design, history = lag_stack(X, history, self.coef_.shape[0])
        return design @ self._coef_flat + self.intercept_, history
