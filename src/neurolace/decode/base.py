"""The decoder base class: input checks, the signal guard, and streaming == batch.

:class:`BaseDecoder` holds what every continuous decoder shares so that each
subclass only writes its maths:

- ``_fit_model(X, y, segments)`` learns the model from checked, transformed
  features; ``segments`` lists the ``(start, stop)`` bin ranges of independent
  recordings (trials) stacked in ``X``, whose history must not cross;
- ``_initial_model_state()`` returns the streaming state before the first bin;
- ``_decode(X, state)`` decodes a block of consecutive (guarded) bins starting
  from ``state`` and returns ``(Y, new_state)``.

``predict(X)`` runs ``_decode`` once over the whole array from the initial
state (and leaves the streaming state alone); ``step(x)`` runs it on one bin
with the state carried since the last ``reset()``. Because the same function
handles both, stepping through an array gives the same output as predicting it.

``step_missing()`` is the real-time step of a bin that never arrived (a frame
the link lost; :func:`neurolace.core.features.is_missing_bin`): the decoder sees
no features at all, neither zeros nor the training mean. A subclass writes it
as ``_decode_missing(state)``; the default holds the last output, shrunk by
:data:`MISSING_OUTPUT_DECAY` per missing bin, and leaves the model's history
(lag buffer, GRU state) and the guard's state as the last real bin left them,
so the next bin follows the last one received. The Kalman filters instead run
their prediction step only (no measurement update).
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone

from neurolace.core.checks import check_array, check_in
from neurolace.core.errors import InvalidInputError, NotFittedError
from neurolace.core.features import BinnedFeatures
from neurolace.decode.guard import HOLD_REASONS, GuardReport, PassThroughGuard, SignalGuard

__all__ = [
    "FEATURE_TRANSFORMS",
    "MISSING_OUTPUT_DECAY",
    "MISSING_REASON",
    "BaseDecoder",
    "StepStatus",
    "build_guard",
    "check_bin",
    "check_features",
    "check_segment_starts",
    "check_targets",
    "lag_stack",
]

#: allowed values of the ``feature_transform`` hyperparameter
FEATURE_TRANSFORMS = ("none", "sqrt")

#: ``StepStatus.reason`` of a :meth:`BaseDecoder.step_missing` (the bin never arrived; not a hold)
MISSING_REASON = "missing_bin"

#: Factor by which the default :meth:`BaseDecoder.step_missing` shrinks the last output per missing bin:
#: a chosen value, not a measured one (0.9 per 20 ms bin leaves 35 % after a 200 ms burst, so a long gap
#: brings the cursor to rest instead of letting it run on at the last velocity).
MISSING_OUTPUT_DECAY = 0.9


@dataclass(frozen=True)
class StepStatus:
    """What the guard did to the last bin passed to ``step``.

    Attributes
    ----------
    held : bool
        The output was forced to zero (the cursor stays put).
    reason : str
        ``"ok"``, ``"zero_bin"``, ``"baseline_jump"`` or ``"dead_channels"``, or
        :data:`MISSING_REASON` after :meth:`BaseDecoder.step_missing` (not held).
    n_dead_channels : int
        Live channels currently judged dead (their values were replaced by the training mean).
    clipped : bool
        The decoded speed was clipped to the guard's speed limit.
    """

    held: bool
    reason: str
    n_dead_channels: int
    clipped: bool


def _as_features(X: Any, name: str) -> np.ndarray:
    if isinstance(X, BinnedFeatures):
        X = X.data
    return check_array(X, name, dtype="numeric")


def check_features(X: Any, *, n_features: int | None, transform: str, name: str = "X") -> np.ndarray:
    """Check a feature matrix and apply the feature transform.

    Parameters
    ----------
    X : array-like or BinnedFeatures, shape (n_bins, n_features)
        Neural features.
    n_features : int or None
        Expected width (None at fit time).
    transform : {"none", "sqrt"}
        Feature transform to apply.

    Returns
    -------
    ndarray of float64, shape (n_bins, n_features)
    """
    array = _as_features(X, name)
    if array.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 2-D with shape (n_bins, n_features), got {array.ndim}-D shape {array.shape}"
        )
    if n_features is not None and array.shape[1] != n_features:
        raise InvalidInputError(
            f"{name} has {array.shape[1]} features, but the decoder was fitted with {n_features} features"
        )
    array = np.asarray(array, dtype=np.float64)
    if transform == "sqrt":
        if array.size and array.min() < 0:
            raise InvalidInputError(
                f"{name} must be >= 0 for feature_transform='sqrt', got a minimum of {array.min():g}"
            )
        array = np.sqrt(array)
    return array


def check_bin(x: Any, *, n_features: int, transform: str) -> np.ndarray:
    """Check one bin of features, shape (n_features,), and return it as shape (1, n_features)."""
    array = _as_features(x, "x")
    if array.ndim != 1:
        raise InvalidInputError(f"x must be one bin of shape ({n_features},), got shape {array.shape}")
    if array.shape[0] != n_features:
        raise InvalidInputError(
            f"x has {array.shape[0]} features, but the decoder was fitted with {n_features} features"
        )
    return check_features(array[np.newaxis], n_features=n_features, transform=transform, name="x")


def check_targets(y: Any, n_bins: int, *, name: str = "y") -> np.ndarray:
    """Check kinematics ``y``, shape (n_bins, n_dims) (a 1-D y is one dimension)."""
    array = check_array(y, name, dtype="numeric")
    if array.ndim == 1:
        array = array[:, np.newaxis]
    if array.ndim != 2:
        raise InvalidInputError(f"{name} must have shape (n_bins, n_dims), got shape {array.shape}")
    if array.shape[0] != n_bins:
        raise InvalidInputError(
            f"{name} has {array.shape[0]} bins but X has {n_bins}; X and {name} must have one row per bin"
        )
    if array.shape[1] == 0:
        raise InvalidInputError(f"{name} must have at least one dimension, got shape {array.shape}")
    return np.asarray(array, dtype=np.float64)


def lag_stack(X: np.ndarray, history: np.ndarray, n_lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Causal lagged design: row t holds bins t, t-1, ..., t-n_lags+1.

    Parameters
    ----------
    X : ndarray, shape (n_bins, n_features)
    history : ndarray, shape (n_lags - 1, n_features)
        The bins before ``X`` (oldest first).
    n_lags : int

    Returns
    -------
    design : ndarray, shape (n_bins, n_lags * n_features)
        Lag 0 first, then lag 1, ...
    history : ndarray, shape (n_lags - 1, n_features)
        The last ``n_lags - 1`` bins, to carry to the next block.
    """
    extended = np.vstack([history, X])
    n_bins = X.shape[0]
    columns = [extended[n_lags - 1 - lag : n_lags - 1 - lag + n_bins] for lag in range(n_lags)]
    return np.hstack(columns), extended[extended.shape[0] - (n_lags - 1) :]


def build_guard(guard: Any) -> SignalGuard:
    """Turn the ``guard`` hyperparameter into an unfitted guard: "auto", None (off) or a SignalGuard."""
    if isinstance(guard, str) and guard == "auto":
        return SignalGuard()
    if guard is None:
        return PassThroughGuard()
    if isinstance(guard, SignalGuard):
        return clone(guard)
    raise InvalidInputError(f"guard must be 'auto', None or a SignalGuard, got {guard!r}")


class BaseDecoder(RegressorMixin, BaseEstimator):
    """Base of continuous decoders: checks, guard, ``step``/``step_missing``/``reset``.

    Subclasses declare ``feature_transform`` and ``guard`` hyperparameters and
    implement ``_fit_model``, ``_initial_model_state`` and ``_decode``, and
    may override ``_decode_missing`` (module docstring).
    """

    # -- fitting ---------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, segment_starts: Any = None) -> BaseDecoder:
        """Fit the decoder.

        Parameters
        ----------
        X : array-like or BinnedFeatures, shape (n_bins, n_features)
            Causal neural features, one row per bin, in time order.
        y : array-like, shape (n_bins, n_dims)
            Kinematics (e.g. velocity) of the same bins.
        segment_starts : array-like of int, optional
            Bins where an independent segment starts when ``X`` stacks several
            trials; no history (lags, filter or GRU state) crosses a start. None
            means ``X`` is one continuous recording.

        Returns
        -------
        self
        """
        check_in(self.feature_transform, "feature_transform", FEATURE_TRANSFORMS)
        X = check_features(X, n_features=None, transform=self.feature_transform)
        y = check_targets(y, X.shape[0])
        if X.shape[0] < 2:
            raise InvalidInputError(f"X must have at least 2 bins to fit a decoder, got {X.shape[0]}")
        if X.shape[1] == 0:
            raise InvalidInputError("X must have at least one feature, got 0 columns")
        segments = check_segment_starts(segment_starts, X.shape[0])
        self.n_features_in_ = X.shape[1]
        self.n_dims_ = y.shape[1]
        self.guard_ = self._build_guard().fit(X, y)
        cleaned = np.vstack(
            [self.guard_.screen(X[start:stop], self.guard_.initial_state())[0] for start, stop in segments]
        )
        self._fit_model(cleaned, y, segments)
        self._stream = None
        self._last_output = None
        return self

    def _build_guard(self) -> SignalGuard:
        return build_guard(self.guard)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(X, y) before predict or step"
            )

    # -- decoding --------------------------------------------------------------
    def _initial_state(self) -> tuple:
        return (self.guard_.initial_state(), self._initial_model_state())

    def _run(self, X: np.ndarray, state: tuple) -> tuple[np.ndarray, GuardReport, tuple]:
        guard_state, model_state = state
        cleaned, report, guard_state = self.guard_.screen(X, guard_state)
        Y, model_state = self._decode(cleaned, model_state)
        Y = self.guard_.limit(Y, report)
        return Y, report, (guard_state, model_state)

    def predict(self, X: Any, *, segment_starts: Any = None) -> np.ndarray:
        """Decode a block of consecutive bins from a fresh state.

        Parameters
        ----------
        X : array-like or BinnedFeatures, shape (n_bins, n_features)
        segment_starts : array-like of int, optional
            Bins where an independent segment (trial) starts; decoding restarts
            from a fresh state at each, as after :meth:`reset`.

        Returns
        -------
        ndarray, shape (n_bins, n_dims)
        """
        return self.predict_with_status(X, segment_starts=segment_starts)[0]

    def predict_with_status(self, X: Any, *, segment_starts: Any = None) -> tuple[np.ndarray, GuardReport]:
        """Like :meth:`predict`, also returning the guard's :class:`GuardReport`."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, transform=self.feature_transform)
        segments = check_segment_starts(segment_starts, X.shape[0])
        parts = [self._run(X[start:stop], self._initial_state()) for start, stop in segments]
        if len(parts) == 1:
            return parts[0][0], parts[0][1]
        reports = [part[1] for part in parts]
        report = GuardReport(
            np.concatenate([r.held for r in reports]),
            np.concatenate([r.reason for r in reports]),
            np.concatenate([r.n_dead for r in reports]),
            sum(r.n_clipped for r in reports),
        )
        return np.vstack([part[0] for part in parts]), report

    def step(self, x: Any) -> np.ndarray:
        """Decode one bin in real time, carrying state since the last :meth:`reset`.

        Parameters
        ----------
        x : array-like, shape (n_features,)

        Returns
        -------
        ndarray, shape (n_dims,)
        """
        self._check_fitted()
        X = check_bin(x, n_features=self.n_features_in_, transform=self.feature_transform)
        if getattr(self, "_stream", None) is None:
            self._stream = self._initial_state()
        Y, report, self._stream = self._run(X, self._stream)
        self._last_status = StepStatus(
            held=bool(report.held[0]),
            reason=HOLD_REASONS[int(report.reason[0])],
            n_dead_channels=int(report.n_dead[0]),
            clipped=report.n_clipped > 0,
        )
        self._last_output = Y[0]
        return Y[0]

    def step_missing(self) -> np.ndarray:
        """Decode a bin that never arrived (a missing bin), carrying state like :meth:`step`.

        No features enter the decoder. By default the last output is held,
        shrunk by :data:`MISSING_OUTPUT_DECAY` (zero before the first bin), and
        the model and guard states are left as the last real bin left them;
        the Kalman filters run their prediction step instead. ``last_status``
        reports ``reason == MISSING_REASON`` and ``held == False``.

        Returns
        -------
        ndarray, shape (n_dims,)
        """
        self._check_fitted()
        if getattr(self, "_stream", None) is None:
            self._stream = self._initial_state()
        guard_state, model_state = self._stream
        output, model_state = self._decode_missing(model_state)
        self._stream = (guard_state, model_state)
        self._last_status = StepStatus(held=False, reason=MISSING_REASON, n_dead_channels=0, clipped=False)
        self._last_output = output
        return output.copy()

    def _decode_missing(self, state: Any) -> tuple[np.ndarray, Any]:
        """The output of a missing bin and the model state after it: the decayed last output, state kept."""
        last = getattr(self, "_last_output", None)
        if last is None:
            return np.zeros(self.n_dims_), state
        return MISSING_OUTPUT_DECAY * last, state

    def reset(self) -> BaseDecoder:
        """Forget the streaming state (lag buffer, filter state); the fitted model is kept."""
        self._stream = None
        self._last_status = None
        self._last_output = None
        return self

    @property
    def last_status(self) -> StepStatus | None:
        """:class:`StepStatus` of the last :meth:`step` (None before the first)."""
        return getattr(self, "_last_status", None)

    # -- sklearn plumbing --------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_stream", None)
        state.pop("_last_output", None)
        return state


def check_segment_starts(segment_starts: Any, n_bins: int) -> list[tuple[int, int]]:
    """Turn ``segment_starts`` into ``(start, stop)`` ranges covering ``0 .. n_bins``.

    Parameters
    ----------
    segment_starts : array-like of int or None
        Bins where an independent segment (trial) starts; 0 is implied. None = one segment.
    n_bins : int

    Returns
    -------
    list of (int, int)
    """
    if segment_starts is None:
        return [(0, n_bins)]
    starts = check_array(segment_starts, "segment_starts", ndim=1, dtype="integer")
    if starts.size and (np.any(np.diff(starts) <= 0) or starts[0] < 0 or starts[-1] >= max(n_bins, 1)):
        raise InvalidInputError(
            f"segment_starts must be strictly increasing bin indices in [0, {n_bins - 1}], "
            f"got values from {starts.min()} to {starts.max()}"
        )
    bounds = np.unique(np.concatenate([[0], starts, [n_bins]]).astype(np.int64))
    return [(int(start), int(stop)) for start, stop in itertools.pairwise(bounds)]


def check_alpha(alpha: Any, name: str = "alpha") -> float | str:
    """Validate a ridge penalty: ``"auto"`` or a number >= 0."""
    if isinstance(alpha, str):
        return check_in(alpha, name, ("auto",))
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not alpha >= 0
        or not np.isfinite(alpha)
    ):
        raise InvalidInputError(f"{name} must be 'auto' or a finite number >= 0, got {alpha!r}")
    return float(alpha)
