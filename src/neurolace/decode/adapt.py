"""Self-calibration during use: bias correction and recalibration from retrospectively inferred targets.

Jarosiewicz et al. 2015 (Sci Transl Med 7:313ra179) kept BrainGate
participants typing for hours without calibration blocks with two tools,
both built here for the closed loop of :mod:`neurolace.runtime.loop`:

- **Bias correction.** The velocity bias is an exponentially weighted
  running mean of the decoded velocities whose speed exceeds the 66th
  centile of the decoded-speed distribution of the previous decoder build
  (slow movements are excluded because users make them to counteract a
  bias); it is subtracted from every decoded velocity
  (:class:`BiasCorrector`). The time constant of the running mean is not
  given in the figure we read; :data:`DEFAULT_BIAS_TIME_CONSTANT_S` is a
  chosen value.
- **Retrospective target inference (RTI).** After each selection the
  intended target of the preceding movement is taken to be the place that
  was selected; the decoded velocities of the trajectory that led there are
  re-aimed at it (ReFIT's rule, Gilja et al. 2012: the decoded speed
  pointed at the target, zero once on it) and the part just after the
  previous selection, before the user can have reacted, is left out
  (:func:`retrospective_targets`, :func:`retrospective_velocity_labels`).
  The decoder is rebuilt on those labels together with the most recent
  data (:class:`ContinuousRecalibration`).
- **Click recalibration** the same way (Jarosiewicz et al. 2016, J Physiol
  Paris 110:382): bins in which the click decoder's evidence was above its
  threshold before a selection are labelled "click", the RTI movement bins
  away from the inferred target "no click", the rest are not used
  (:func:`retrospective_click_labels`).

Nothing here looks at the task's true targets: every selection, right or
wrong, is taken as intended (the method's own assumption).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError

__all__ = [
    "DEFAULT_BIAS_SPEED_CENTILE",
    "DEFAULT_BIAS_TIME_CONSTANT_S",
    "BiasCorrector",
    "ContinuousRecalibration",
    "RecalibrationSettings",
    "rebuild_decoder",
    "retrospective_click_labels",
    "retrospective_targets",
    "retrospective_velocity_labels",
]

#: Centile of the decoded speeds above which a velocity enters the bias estimate (Jarosiewicz et al. 2015, Fig. 2).
DEFAULT_BIAS_SPEED_CENTILE = 66.0

#: Time constant of the bias's running mean, seconds. Not a published value (a chosen one; see the module docstring).
DEFAULT_BIAS_TIME_CONSTANT_S = 20.0


class BiasCorrector:
    """Running estimate of a velocity decoder's bias, subtracted from each decoded velocity.

    ``bias_t = bias_{t-1} + a (v_t - bias_{t-1})`` for the bins whose decoded
    speed exceeds ``speed_threshold``, ``a = 1 - exp(-loop_s / time_constant_s)``;
    other bins leave it unchanged. :meth:`correct` returns ``v_t - bias_t``.

    Parameters
    ----------
    speed_threshold : float
        Decoded speed (normalised units) above which a bin updates the estimate.
    time_constant_s : float
        Time constant of the running mean, seconds.
    loop_s : float
        Bin width, seconds.
    n_dims : int, default 2
    """

    def __init__(self, *, speed_threshold: float, time_constant_s: float = DEFAULT_BIAS_TIME_CONSTANT_S,
                 loop_s: float = 0.02, n_dims: int = 2) -> None:
        self.speed_threshold = check_nonnegative(speed_threshold, "speed_threshold")
        self.time_constant_s = check_positive(time_constant_s, "time_constant_s")
        self.loop_s = check_positive(loop_s, "loop_s")
        self.alpha = 1.0 - float(np.exp(-self.loop_s / self.time_constant_s))
        self.bias_ = np.zeros(check_int(n_dims, "n_dims", minimum=1))

    def update(self, velocity: Any) -> np.ndarray:
        """Update the estimate with one decoded velocity, shape (n_dims,); returns the bias."""
        velocity = np.asarray(velocity, dtype=np.float64)
        if velocity.shape != self.bias_.shape or not np.all(np.isfinite(velocity)):
            raise InvalidInputError(f"velocity must be {self.bias_.shape[0]} finite numbers, got {velocity!r}")
        if float(np.linalg.norm(velocity)) > self.speed_threshold:
            self.bias_ = self.bias_ + self.alpha * (velocity - self.bias_)
        return self.bias_

    def correct(self, velocity: Any) -> np.ndarray:
        """Update with ``velocity`` and return it minus the bias."""
        return np.asarray(velocity, dtype=np.float64) - self.update(velocity)


def retrospective_targets(n_bins: int, selection_index: Any, selection_xy: Any, *, loop_s: float,
                          exclude_after_selection_s: float = 0.3,
                          window_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The inferred target of every bin: the place of the next selection.

    Parameters
    ----------
    n_bins : int
    selection_index : array-like of int, shape (n_selections,)
        Bin of each selection, increasing.
    selection_xy : array-like, shape (n_selections, 2)
        Where each selection was made.
    loop_s : float
        Bin width, seconds.
    exclude_after_selection_s : float
        Bins this soon after the previous selection (or the block start) are
        not used: the user has not yet reacted to the new target.
    window_s : float or None
        Use at most this long before each selection (None: back to the exclusion).

    Returns
    -------
    target_xy : ndarray, shape (n_bins, 2)
        Inferred target (NaN where none).
    usable : ndarray of bool, shape (n_bins,)
        Bins with an inferred target that may be used for calibration.
    """
    n_bins = check_int(n_bins, "n_bins", minimum=0)
    index = np.asarray(selection_index)
    if index.ndim != 1 or (index.size and (not np.issubdtype(index.dtype, np.integer))):
        raise InvalidInputError(f"selection_index must be a 1-d array of bin indices, got {selection_index!r}")
    xy = check_array(selection_xy, "selection_xy", ndim=2, dtype=np.float64) if index.size else np.empty((0, 2))
    if xy.shape != (index.size, 2):
        raise InvalidInputError(f"selection_xy must have shape ({index.size}, 2), got {xy.shape}")
    if index.size and (np.any(np.diff(index) <= 0) or index[0] < 0 or index[-1] >= n_bins):
        raise InvalidInputError(f"selection_index must increase within [0, {n_bins}), got {index.tolist()}")
    loop_s = check_positive(loop_s, "loop_s")
    exclude = round(check_nonnegative(exclude_after_selection_s, "exclude_after_selection_s") / loop_s)
    window = None if window_s is None else round(check_positive(window_s, "window_s") / loop_s)
    target = np.full((n_bins, 2), np.nan)
    usable = np.zeros(n_bins, dtype=bool)
    previous = -1
    for bin_index, place in zip(index, xy):
        first = previous + 1 + exclude
        if window is not None:
            first = max(first, bin_index - window + 1)
        target[previous + 1: bin_index + 1] = place
        if first <= bin_index:
            usable[first: bin_index + 1] = True
        previous = int(bin_index)
    return target, usable


def retrospective_velocity_labels(cursor_xy: Any, decoded_velocity: Any, target_xy: Any, usable: Any, *,
                                  target_radius: float) -> np.ndarray:
    """RTI velocity labels: the decoded velocity re-aimed at the inferred target, zero once on it.

    Parameters
    ----------
    cursor_xy, decoded_velocity, target_xy : array-like, shape (n_bins, 2)
    usable : array-like of bool, shape (n_bins,)
    target_radius : float
        Within this distance of the inferred target the label is zero.

    Returns
    -------
    ndarray, shape (n_usable, 2)
        Labels of the usable bins, in order.
    """
    from neurolace.decode.kalman import intended_velocity

    usable = np.asarray(usable, dtype=bool)
    target = np.asarray(target_xy, dtype=np.float64)
    if usable.ndim != 1 or target.shape != (usable.size, 2) or np.any(~np.isfinite(target[usable])):
        raise InvalidInputError("target_xy must have shape (n_bins, 2) and a finite target in every usable bin")
    cursor = np.asarray(cursor_xy, dtype=np.float64)
    decoded = np.asarray(decoded_velocity, dtype=np.float64)
    if cursor.shape != target.shape or decoded.shape != target.shape:
        raise InvalidInputError(f"cursor_xy and decoded_velocity must have shape {target.shape}, "
                                f"got {cursor.shape} and {decoded.shape}")
    return intended_velocity(cursor[usable], target[usable], decoded[usable], target_radius=target_radius)


def retrospective_click_labels(click_probability: Any, selection_index: Any, cursor_xy: Any, target_xy: Any,
                               usable: Any, *, threshold: float, target_radius: float,
                               click_window_s: float = 1.0, loop_s: float = 0.02) -> np.ndarray:
    """RTI click labels (Jarosiewicz et al. 2016): 1 click, 0 no click, -1 unused.

    A bin is "click" when the click evidence was at least ``threshold``
    within ``click_window_s`` before a selection; "no click" when it is a
    usable RTI bin (see :func:`retrospective_targets`) with the cursor
    farther than ``target_radius`` from the inferred target (the user was
    moving there); unused otherwise.

    Parameters
    ----------
    click_probability : array-like, shape (n_bins,)
    selection_index : array-like of int, shape (n_selections,)
    cursor_xy, target_xy : array-like, shape (n_bins, 2)
    usable : array-like of bool, shape (n_bins,)

    Returns
    -------
    ndarray of int, shape (n_bins,)
    """
    probability = check_array(click_probability, "click_probability", ndim=1, dtype=np.float64)
    n_bins = probability.size
    usable = np.asarray(usable, dtype=bool)
    cursor = np.asarray(cursor_xy, dtype=np.float64)
    target = np.asarray(target_xy, dtype=np.float64)
    if usable.shape != (n_bins,) or cursor.shape != (n_bins, 2) or target.shape != (n_bins, 2):
        raise InvalidInputError(f"usable, cursor_xy and target_xy must have {n_bins} rows like click_probability")
    labels = np.full(n_bins, -1, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        away = np.linalg.norm(target - cursor, axis=1) > check_nonnegative(target_radius, "target_radius")
    labels[usable & away] = 0
    window = max(1, round(check_positive(click_window_s, "click_window_s") / check_positive(loop_s, "loop_s")))
    for bin_index in np.asarray(selection_index, dtype=np.int64):
        first = max(0, bin_index - window + 1)
        segment = slice(first, bin_index + 1)
        high = probability[segment] >= threshold
        labels[segment][high] = 1
    return labels


def rebuild_decoder(decoder: Any) -> Any:
    """An unfitted copy of a fitted decoder that keeps the settings its fit chose.

    Every hyperparameter set to ``"auto"`` whose chosen value the fit stored
    as ``<name>_`` (``lag_bins_``, ``q_shrinkage_``, ...) is fixed to it, so a
    rebuild during use does not repeat the cross-validated search.
    """
    from sklearn.base import clone

    fresh = clone(decoder)
    chosen = {name: getattr(decoder, f"{name}_") for name, value in decoder.get_params(deep=False).items()
              if isinstance(value, str) and value == "auto" and hasattr(decoder, f"{name}_")}
    return fresh.set_params(**chosen) if chosen else fresh


@dataclass(frozen=True)
class RecalibrationSettings:
    """What :class:`ContinuousRecalibration` does and how often.

    Attributes
    ----------
    bias_correction : bool
        Subtract the running bias estimate (:class:`BiasCorrector`).
    bias_time_constant_s : float
    bias_speed_centile : float
        Centile of the decoded speeds (of the last build's data) above which bins update the bias.
    recalibrate_velocity, recalibrate_click : bool
        Rebuild the velocity / click decoder from RTI labels.
    rebuild_every_selections : int
        Rebuild after this many new selections.
    exclude_after_selection_s : float
        RTI leaves out this long after each selection (about one reaction time).
    window_s : float
        RTI uses at most this long before each selection.
    memory_s : float
        Rebuilds use the most recent ``memory_s`` of labelled bins (the calibration data first, dropped first).
    click_window_s : float
        Click labels come from this long before each selection.
    """

    bias_correction: bool = True
    bias_time_constant_s: float = DEFAULT_BIAS_TIME_CONSTANT_S
    bias_speed_centile: float = DEFAULT_BIAS_SPEED_CENTILE
    recalibrate_velocity: bool = True
    recalibrate_click: bool = False
    rebuild_every_selections: int = 10
    exclude_after_selection_s: float = 0.3
    window_s: float = 3.0
    memory_s: float = 240.0
    click_window_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("bias_correction", "recalibrate_velocity", "recalibrate_click"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidInputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("bias_time_constant_s", "window_s", "memory_s", "click_window_s"):
            check_positive(getattr(self, name), name)
        check_nonnegative(self.exclude_after_selection_s, "exclude_after_selection_s")
        check_int(self.rebuild_every_selections, "rebuild_every_selections", minimum=1)
        centile = check_nonnegative(self.bias_speed_centile, "bias_speed_centile")
        if centile > 100:
            raise InvalidInputError(f"bias_speed_centile must lie in [0, 100], got {centile}")


class ContinuousRecalibration:
    """Bias correction and RTI recalibration of a velocity and a click decoder during closed-loop use.

    The closed loop calls :meth:`start_block` at each block start,
    :meth:`correct` on each decoded velocity, :meth:`record` after each step
    and :meth:`selected` after each selection; :meth:`selected` returns
    ``(velocity_decoder, click_decoder)`` when it has rebuilt them (either may
    be None: unchanged), else None. State carries across blocks.

    Parameters
    ----------
    decoder : fitted velocity decoder
    click_decoder : fitted click decoder (:class:`~neurolace.decode.click.SmoothedClickDecoder`) or None
    settings : RecalibrationSettings
    calibration_features : ndarray, shape (n_bins, n_features), optional
        The data the decoders were fitted on, used in rebuilds until newer data push them out.
    calibration_velocity : ndarray, shape (n_bins, 2), optional
    calibration_click : ndarray, shape (n_bins,), optional
        Click labels of the calibration data (0/1).
    target_radius : float
        RTI zero-velocity radius around the inferred target (half a Webgrid cell, say).
    loop_s : float
    fit_click : callable ``(features, labels, loop_s=...) -> click decoder``, optional
        Default :func:`~neurolace.decode.click.fit_click_decoder`.

    Attributes
    ----------
    n_rebuilds_ : int
    n_selections_ : int
    bias_ : ndarray, shape (2,)
    """

    def __init__(self, decoder: Any, click_decoder: Any = None, *, settings: RecalibrationSettings | None = None,
                 calibration_features: Any = None, calibration_velocity: Any = None, calibration_click: Any = None,
                 target_radius: float, loop_s: float = 0.02, fit_click: Any = None) -> None:
        self.decoder, self.click_decoder = decoder, click_decoder
        self.settings = RecalibrationSettings() if settings is None else settings
        if not isinstance(self.settings, RecalibrationSettings):
            raise InvalidInputError(f"settings must be a RecalibrationSettings, got {type(settings).__name__}")
        self.target_radius = check_nonnegative(target_radius, "target_radius")
        self.loop_s = check_positive(loop_s, "loop_s")
        self.fit_click = fit_click
        self._memory_bins = max(1, round(self.settings.memory_s / self.loop_s))
        # labelled bins available to rebuilds, oldest first: (features, velocity label or None, click label)
        self._bank: deque = deque(maxlen=self._memory_bins)
        if calibration_features is not None:
            features = check_array(calibration_features, "calibration_features", ndim=2, dtype=np.float64)
            velocity = check_array(calibration_velocity, "calibration_velocity", ndim=2, dtype=np.float64)
            click = np.zeros(features.shape[0]) if calibration_click is None else np.asarray(calibration_click)
            if velocity.shape != (features.shape[0], 2) or click.shape != (features.shape[0],):
                raise InvalidInputError("calibration_velocity (n_bins, 2) and calibration_click (n_bins,) must "
                                        f"match calibration_features' {features.shape[0]} bins")
            for row, label, clicked in zip(features, velocity, click):
                self._bank.append((row, label, int(clicked > 0.5)))
        speeds = None
        if calibration_features is not None:
            speeds = np.linalg.norm(decoder.predict(np.asarray(calibration_features)), axis=1)
        self.bias = BiasCorrector(speed_threshold=self._speed_threshold(speeds),
                                  time_constant_s=self.settings.bias_time_constant_s, loop_s=self.loop_s)
        self.n_rebuilds_ = 0
        self.n_selections_ = 0
        self._since_rebuild = 0
        self._block: dict[str, list] = {}
        self._labelled_upto = 0

    def _speed_threshold(self, speeds: np.ndarray | None) -> float:
        if speeds is None or speeds.size == 0:
            return 0.0
        return float(np.percentile(speeds, self.settings.bias_speed_centile))

    @property
    def bias_(self) -> np.ndarray:
        return self.bias.bias_

    def start_block(self, loop_s: float) -> None:
        """A new block: forget the block's trajectory (the bias and the bank carry over)."""
        if abs(check_positive(loop_s, "loop_s") - self.loop_s) > 1e-12:
            raise InvalidInputError(f"the loop runs at loop_s={loop_s} but the adapter was built for {self.loop_s}")
        self._block = {"features": [], "cursor": [], "velocity": [], "click_probability": [], "held": [],
                       "selections": [], "selection_xy": []}
        self._labelled_upto = 0

    def correct(self, velocity: np.ndarray) -> np.ndarray:
        """The decoded velocity minus the running bias (unchanged without bias correction)."""
        if not self.settings.bias_correction:
            return velocity
        return self.bias.correct(velocity)

    def record(self, features: np.ndarray | None, cursor_xy: np.ndarray, velocity: np.ndarray,
               click_probability: float, click: bool, held: bool) -> None:
        """One control step: its features, the cursor before the move, the decoded velocity, the click evidence."""
        if not self._block:
            self.start_block(self.loop_s)
        block = self._block
        block["features"].append(None if features is None else np.array(features, dtype=np.float64))
        block["cursor"].append(np.array(cursor_xy, dtype=np.float64))
        block["velocity"].append(np.array(velocity, dtype=np.float64))
        block["click_probability"].append(float(click_probability))
        block["held"].append(bool(held) or features is None)

    def selected(self, selection_xy: np.ndarray) -> tuple[Any, Any] | None:
        """A selection at the last recorded step: label its trajectory; rebuild when due."""
        block = self._block
        if not block or not block["cursor"]:
            raise InvalidInputError("selected() before any record(): nothing to label")
        block["selections"].append(len(block["cursor"]) - 1)
        block["selection_xy"].append(np.array(selection_xy, dtype=np.float64))
        self._label_last_selection()
        self.n_selections_ += 1
        self._since_rebuild += 1
        if self._since_rebuild < self.settings.rebuild_every_selections:
            return None
        self._since_rebuild = 0
        return self._rebuild()

    def _label_last_selection(self) -> None:
        block, settings = self._block, self.settings
        n_bins = len(block["cursor"])
        start = self._labelled_upto
        indices = np.asarray(block["selections"][-1:], dtype=np.int64) - start
        cursor = np.asarray(block["cursor"][start:n_bins])
        target, usable = retrospective_targets(
            n_bins - start, indices, np.asarray(block["selection_xy"][-1:]), loop_s=self.loop_s,
            exclude_after_selection_s=settings.exclude_after_selection_s, window_s=settings.window_s)
        held = np.asarray(block["held"][start:n_bins])
        usable &= ~held
        velocity = np.asarray(block["velocity"][start:n_bins])
        labels = np.full((n_bins - start, 2), np.nan)
        if usable.any():
            labels[usable] = retrospective_velocity_labels(cursor, velocity, target, usable,
                                                           target_radius=self.target_radius)
        threshold = getattr(getattr(self.click_decoder, "decoder", None), "on_probability", 0.5)
        clicks = retrospective_click_labels(np.asarray(block["click_probability"][start:n_bins]), indices, cursor,
                                            target, usable, threshold=threshold, target_radius=self.target_radius,
                                            click_window_s=settings.click_window_s, loop_s=self.loop_s)
        clicks[held] = -1
        for offset in range(n_bins - start):
            features = block["features"][start + offset]
            if features is None or (not usable[offset] and clicks[offset] < 0):
                continue
            label = labels[offset] if usable[offset] else None
            self._bank.append((features, label, int(clicks[offset])))
        self._labelled_upto = n_bins

    def _rebuild(self) -> tuple[Any, Any] | None:
        settings = self.settings
        bank = list(self._bank)
        new_decoder = new_click = None
        if settings.recalibrate_velocity:
            rows = [(f, v) for f, v, _ in bank if v is not None]
            if len(rows) >= 50:
                X = np.asarray([f for f, _ in rows])
                y = np.asarray([v for _, v in rows])
                new_decoder = rebuild_decoder(self.decoder).fit(X, y)
                self.decoder = new_decoder
                speeds = np.linalg.norm(new_decoder.predict(X), axis=1)
                self.bias = BiasCorrector(speed_threshold=self._speed_threshold(speeds),
                                          time_constant_s=settings.bias_time_constant_s, loop_s=self.loop_s)
        if settings.recalibrate_click and self.click_decoder is not None:
            rows = [(f, c) for f, _, c in bank if c >= 0]
            labels = np.asarray([c for _, c in rows])
            if labels.size >= 50 and 0 < labels.sum() < labels.size:
                if self.fit_click is None:
                    from neurolace.decode.click import fit_click_decoder

                    fit = fit_click_decoder
                else:
                    fit = self.fit_click
                new_click = fit(np.asarray([f for f, _ in rows]), labels, loop_s=self.loop_s)
                self.click_decoder = new_click
        if new_decoder is None and new_click is None:
            return None
        self.n_rebuilds_ += 1
        return new_decoder, new_click
