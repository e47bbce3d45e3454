"""The signal guard: keep the cursor still when the neural signal is bad.

Every decoder runs its input through a :class:`SignalGuard` fitted on the
training features. The guard separates two kinds of trouble:

- **Wrong input** (NaN, wrong width) is a caller error and raises
  :class:`~neurolace.core.errors.InvalidInputError` (see ``base.py``).
- **Bad signal** is plausible-looking input that the decoder would
  extrapolate from. The guard repairs or holds it, so the decoded cursor stays
  put instead of running away:

  ``zero bin``
      every feature of the bin is exactly 0 although no training bin was all
      zeros (a dropped frame, a muted amplifier). The bin is held.
  ``dead channel``
      a channel repeats the same value for longer than ``dead_run_factor``
      times the longest such run seen in training (and at least
      ``min_dead_bins``). Its value is replaced by its training mean, which
      makes its contribution neutral; if more than ``max_dead_fraction`` of the
      live channels are dead the bin is held.
  ``baseline jump``
      more than ``jump_fraction`` of the live channels sit more than
      ``z_threshold`` robust standard deviations (1.4826 MAD, or the standard
      deviation where the MAD is 0) from their training median: a common-mode
      artefact or a shifted baseline. The bin is held.
  ``speed limit``
      the decoded speed is clipped to ``speed_limit_factor`` times the largest
      training speed.

A *held* bin gives zero velocity, and the decoder's history (lag buffer,
Kalman state, GRU state) sees the training-mean feature vector in its place,
so the bins after a hold start from a neutral state.

Channels that were constant over the whole training set carry no
information; the guard always replaces them by their training value and
ignores them in the counts above.

The guard is streaming: :meth:`SignalGuard.screen` takes a block of bins
plus the carried :class:`GuardState` and returns the new state, so screening
bin by bin gives the same result as screening the whole array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator

from neurolace.core.checks import check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError, NotFittedError

__all__ = ["HOLD_REASONS", "GuardReport", "GuardState", "PassThroughGuard", "SignalGuard"]

#: reason codes in :attr:`GuardReport.reason` (0 = not held)
HOLD_REASONS = {0: "ok", 1: "zero_bin", 2: "baseline_jump", 3: "dead_channels"}


@dataclass
class GuardState:
    """Streaming state of the guard.

    Attributes
    ----------
    last_value : ndarray, shape (n_features,)
        Features of the previous bin (NaN before the first bin).
    run_bins : ndarray of int64, shape (n_features,)
        How many consecutive bins each feature has held its current value.
    """

    last_value: np.ndarray
    run_bins: np.ndarray


@dataclass
class GuardReport:
    """What the guard did to a block of bins.

    Attributes
    ----------
    held : ndarray of bool, shape (n_bins,)
        Bins whose output was forced to zero.
    reason : ndarray of int8, shape (n_bins,)
        Code of :data:`HOLD_REASONS` per bin (0 where not held).
    n_dead : ndarray of int64, shape (n_bins,)
        Number of live channels judged dead in each bin.
    n_clipped : int
        Bins whose decoded speed was clipped (filled in by :meth:`SignalGuard.limit`).
    """

    held: np.ndarray
    reason: np.ndarray
    n_dead: np.ndarray
    n_clipped: int = 0


class SignalGuard(BaseEstimator):
    """Detect and neutralise bad neural input for a decoder.

    Parameters
    ----------
    z_threshold : float, default 8.0
        Robust z-score beyond which a channel counts as far outside its training range.
    jump_fraction : float, default 0.3
        Fraction of live channels that must be far outside their range for a bin to be held.
    dead_run_factor : float, default 2.0
        A channel is dead after repeating one value this many times longer than its
        longest repeat in training.
    min_dead_bins : int, default 20
        Never call a channel dead before it repeats one value for this many bins.
    max_dead_fraction : float, default 0.5
        Hold the bin when more than this fraction of live channels are dead.
    speed_limit_factor : float or None, default 2.0
        Clip decoded speed to this multiple of the largest training speed; None disables.
    """

    def __init__(
        self,
        *,
        z_threshold: float = 8.0,
        jump_fraction: float = 0.3,
        dead_run_factor: float = 2.0,
        min_dead_bins: int = 20,
        max_dead_fraction: float = 0.5,
        speed_limit_factor: float | None = 2.0,
    ) -> None:
        self.z_threshold = z_threshold
        self.jump_fraction = jump_fraction
        self.dead_run_factor = dead_run_factor
        self.min_dead_bins = min_dead_bins
        self.max_dead_fraction = max_dead_fraction
        self.speed_limit_factor = speed_limit_factor

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> SignalGuard:
        """Learn per-channel training statistics.

        Parameters
        ----------
        X : ndarray, shape (n_bins, n_features)
            Training features (already validated and finite).
        y : ndarray, shape (n_bins, n_dims), optional
            Training kinematics; sets the speed limit when 2-D and numeric.
        """
        check_positive(self.z_threshold, "z_threshold")
        for name in ("jump_fraction", "max_dead_fraction"):
            value = check_nonnegative(getattr(self, name), name)
            if value > 1:
                raise InvalidInputError(f"{name} must lie in [0, 1], got {value}")
        check_positive(self.dead_run_factor, "dead_run_factor")
        check_positive(self.min_dead_bins, "min_dead_bins")
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        self.center_ = np.median(X, axis=0)
        mad = 1.4826 * np.median(np.abs(X - self.center_), axis=0)
        std = X.std(axis=0)
        self.constant_ = std == 0
        scale = np.where(mad > 0, mad, std)
        self.scale_ = np.where(self.constant_, 1.0, scale)
        self.live_ = ~self.constant_
        self.zero_bin_seen_ = bool(np.any(np.all(X == 0, axis=1)))
        longest = _longest_runs(X)
        self.dead_after_bins_ = np.maximum(
            float(self.min_dead_bins), np.ceil(self.dead_run_factor * longest)
        ).astype(np.int64)
        self.speed_limit_ = np.inf
        if self.speed_limit_factor is not None and y is not None:
            y = np.asarray(y, dtype=np.float64)
            if y.ndim == 2 and y.size:
                factor = check_positive(self.speed_limit_factor, "speed_limit_factor")
                self.speed_limit_ = factor * float(np.max(np.linalg.norm(y, axis=1)))
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "mean_")

    def initial_state(self) -> GuardState:
        """The state before the first bin."""
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("SignalGuard is not fitted yet; call fit(X) first")
        n_features = self.mean_.shape[0]
        return GuardState(np.full(n_features, np.nan), np.zeros(n_features, dtype=np.int64))

    def screen(self, X: np.ndarray, state: GuardState) -> tuple[np.ndarray, GuardReport, GuardState]:
        """Repair dead or constant channels and mark bins to hold.

        Parameters
        ----------
        X : ndarray, shape (n_bins, n_features)
            Finite features of consecutive bins.
        state : GuardState
            State after the previous block (``initial_state()`` at the start).

        Returns
        -------
        cleaned : ndarray, shape (n_bins, n_features)
            Features with dead and constant channels replaced by their training mean,
            and held bins replaced entirely by the training mean.
        report : GuardReport
            Which bins are held and why.
        state : GuardState
            State to pass with the next block.
        """
        n_bins = X.shape[0]
        if n_bins == 0:
            empty = np.zeros(0, dtype=bool)
            return X.copy(), GuardReport(empty, np.zeros(0, np.int8), np.zeros(0, np.int64)), state
        if n_bins == 1:
            return self._screen_one(X, state)
        previous = np.vstack([state.last_value[np.newaxis], X[:-1]])
        changed = X != previous
        index = np.arange(n_bins)[:, np.newaxis]
        last_change = np.maximum.accumulate(np.where(changed, index, -1), axis=0)
        run_bins = np.where(last_change >= 0, index - last_change + 1, state.run_bins + index + 1)
        dead = (run_bins > self.dead_after_bins_) & self.live_
        n_live = max(int(self.live_.sum()), 1)
        n_dead = dead.sum(axis=1)
        far = np.abs(X - self.center_) > self.z_threshold * self.scale_
        jump = (far & self.live_ & ~dead).sum(axis=1) > self.jump_fraction * n_live
        zero = np.all(X == 0, axis=1) & (not self.zero_bin_seen_)
        too_dead = n_dead > self.max_dead_fraction * n_live
        reason = np.zeros(n_bins, dtype=np.int8)
        reason[too_dead] = 3
        reason[jump] = 2
        reason[zero] = 1
        held = reason > 0
        cleaned = np.where(dead | self.constant_, self.mean_, X)
        cleaned[held] = self.mean_
        new_state = GuardState(X[-1].astype(np.float64, copy=True), run_bins[-1].astype(np.int64))
        return cleaned, GuardReport(held, reason, n_dead.astype(np.int64)), new_state

    def _screen_one(self, X: np.ndarray, state: GuardState) -> tuple[np.ndarray, GuardReport, GuardState]:
        """:meth:`screen` for one bin, with 1-D operations only (the real-time path; 3x faster)."""
        x = X[0]
        run_bins = np.where(x != state.last_value, 1, state.run_bins + 1)
        dead = (run_bins > self.dead_after_bins_) & self.live_
        n_dead = int(np.count_nonzero(dead))
        n_live = max(int(np.count_nonzero(self.live_)), 1)
        far = np.abs(x - self.center_) > self.z_threshold * self.scale_
        reason = 0
        if not self.zero_bin_seen_ and not x.any():
            reason = 1
        elif np.count_nonzero(far & self.live_ & ~dead) > self.jump_fraction * n_live:
            reason = 2
        elif n_dead > self.max_dead_fraction * n_live:
            reason = 3
        if reason:
            cleaned = self.mean_[np.newaxis].copy()
        else:
            replace = dead | self.constant_
            cleaned = np.where(replace, self.mean_, x)[np.newaxis] if replace.any() else X
        report = GuardReport(
            np.array([reason > 0]), np.array([reason], dtype=np.int8), np.array([n_dead], dtype=np.int64)
        )
        return cleaned, report, GuardState(x.astype(np.float64, copy=True), run_bins.astype(np.int64))

    def limit(self, Y: np.ndarray, report: GuardReport) -> np.ndarray:
        """Zero held bins and clip decoded speed, in place; return ``Y``.

        Parameters
        ----------
        Y : ndarray, shape (n_bins, n_dims)
            Decoded kinematics.
        report : GuardReport
            From :meth:`screen`; ``n_clipped`` is updated.
        """
        Y[report.held] = 0.0
        if np.isfinite(self.speed_limit_) and Y.size:
            speed = np.linalg.norm(Y, axis=1)
            over = speed > self.speed_limit_
            if over.any():
                Y[over] *= (self.speed_limit_ / speed[over])[:, np.newaxis]
            report.n_clipped = int(over.sum())
        return Y


class PassThroughGuard(SignalGuard):
    """A guard that changes nothing (``guard=None``): for measuring what the guard costs or saves."""

    def screen(self, X: np.ndarray, state: GuardState) -> tuple[np.ndarray, GuardReport, GuardState]:
        n_bins = X.shape[0]
        report = GuardReport(
            np.zeros(n_bins, dtype=bool), np.zeros(n_bins, np.int8), np.zeros(n_bins, np.int64)
        )
        return X, report, state

    def _screen_one(self, X: np.ndarray, state: GuardState) -> tuple[np.ndarray, GuardReport, GuardState]:
        return self.screen(X, state)

    def limit(self, Y: np.ndarray, report: GuardReport) -> np.ndarray:
        return Y


def _longest_runs(X: np.ndarray) -> np.ndarray:
    """Longest run of one repeated value in each column, shape (n_features,)."""
    n_bins, n_features = X.shape
    if n_bins == 0:
        return np.zeros(n_features)
    changed = np.vstack([np.ones((1, n_features), dtype=bool), X[1:] != X[:-1]])
    index = np.arange(n_bins)[:, np.newaxis]
    last_change = np.maximum.accumulate(np.where(changed, index, 0), axis=0)
    return (index - last_change + 1).max(axis=0).astype(np.float64)
