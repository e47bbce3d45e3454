"""The click (discrete state) decoder: LDA evidence, optional HMM integration, a dwell/hysteresis rule.

Point-and-click BCIs decode a discrete state (click / no click, or one of a
few commands) beside the velocity. Linear discriminant analysis on binned
features is the standard first choice (Kim et al. 2011, IEEE TNSRE 19:193;
Simeral et al. 2011 used it for the BrainGate click); its class
probabilities are turned into a stable output by hysteresis, as in the HMM
click decoders of Jarosiewicz et al. 2015 (Sci Transl Med 7:313ra179): the
output switches to class ``c`` only after ``c`` has had the highest
probability, at least ``on_probability``, for ``dwell_bins`` consecutive
bins, and a non-rest output returns to the rest class as soon as its own
probability falls below ``off_probability``.

Evidence integration (``integration="hmm"``): one bin of an attempted click
is weak evidence, so, as in the HMM click decoder of Jarosiewicz et al. 2015,
the per-bin evidence is accumulated by the forward filter of a hidden Markov
model whose states are the classes::

    prior_t = posterior_{t-1} @ A
    posterior_t ∝ prior_t * exp(s * loglik_t)

``A`` is estimated from the training label sequence (transition counts plus
one, row-normalised), ``loglik_t[c] = decision_c(x_t) - log(pi_c)`` is the
LDA class log-likelihood up to a constant (the decision function without its
class prior), and ``s`` (``evidence_scale_``) is a temperature chosen by
3-fold contiguous cross-validation of the per-bin held-out log-loss, because
an LDA with many features is overconfident on its own training bins. The
filtered posterior is what the hysteresis thresholds. The filter starts (and
restarts on a held bin) certain of the rest class.

``predict_proba`` gives the probabilities the hysteresis sees: per bin (no
memory) without integration, the filtered posterior from a fresh state with
``integration="hmm"``. ``predict`` and ``step`` apply the hysteresis, so
stepping through an array gives ``predict`` of that array. With
``on_probability=0``, ``off_probability=0``, ``dwell_bins=1`` and no
integration the output is the plain LDA ``argmax``.

A missing bin (``step_missing``: a frame the link lost) carries no click
evidence: the HMM runs its prediction step only (``posterior @ A``, no
likelihood), without integration the probability is the LDA's class prior,
and the dwell/hysteresis state is left as it was (a missing bin neither
counts towards a dwell nor ends one), so the output stays what it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from neurolace.core.checks import check_array, check_in, check_int, check_nonnegative
from neurolace.core.errors import InvalidInputError, NotFittedError
from neurolace.decode.base import (
    FEATURE_TRANSFORMS,
    MISSING_REASON,
    StepStatus,
    build_guard,
    check_bin,
    check_features,
)
from neurolace.decode.guard import HOLD_REASONS

__all__ = [
    "DEFAULT_CLICK_DWELL_BINS",
    "DEFAULT_CLICK_INTEGRATION",
    "DEFAULT_CLICK_OFF_PROBABILITY",
    "DEFAULT_CLICK_ON_PROBABILITY",
    "DEFAULT_CLICK_SMOOTHING_S",
    "ClickDecoder",
    "ClickFeatureSmoother",
    "SmoothedClickDecoder",
    "fit_click_decoder",
    "speed_click_threshold",
]

#: Ways of combining the evidence of successive bins.
INTEGRATIONS = ("none", "hmm")

#: Temperatures tried for the per-bin log-likelihoods (``evidence_scale_``).
_EVIDENCE_SCALES = np.geomspace(0.01, 2.0, 48)

#: The HMM posterior never gets closer to certainty than this (keeps it able to switch).
_POSTERIOR_FLOOR = 1e-9


class ClickDecoder(ClassifierMixin, BaseEstimator):
    """LDA click/state decoder with dwell and hysteresis.

    Parameters
    ----------
    shrinkage : "auto", float in [0, 1] or None, default "auto"
        LDA covariance shrinkage (Ledoit-Wolf when "auto"); keeps many features usable.
    on_probability : float in [0, 1], default 0.8
        Probability a class needs to become the output.
    off_probability : float in [0, 1], default 0.5
        A non-rest output falls back to the rest class when its probability drops below this.
    dwell_bins : int, default 2
        Consecutive bins a class must qualify before the output switches to it.
    rest_class : label or None, default None
        Output before any switch and while the guard holds; None = the most frequent training class.
    feature_transform : {"none", "sqrt"}, default "none"
    guard : "auto", None or SignalGuard, default "auto"
    integration : {"none", "hmm"}, default "none"
        ``"hmm"`` accumulates the evidence of successive bins with an HMM
        forward filter (module docstring); ``"none"`` uses each bin alone.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    rest_class_ : label
    lda_ : LinearDiscriminantAnalysis
    n_features_in_ : int
    transition_ : ndarray, shape (n_classes, n_classes)
        HMM transition matrix (rows: from, columns: to); ``integration="hmm"`` only.
    evidence_scale_ : float
        Cross-validated temperature of the per-bin log-likelihoods; ``integration="hmm"`` only.
    """

    def __init__(
        self,
        *,
        shrinkage: Any = "auto",
        on_probability: float = 0.8,
        off_probability: float = 0.5,
        dwell_bins: int = 2,
        rest_class: Any = None,
        feature_transform: str = "none",
        guard: Any = "auto",
        integration: str = "none",
    ) -> None:
        self.shrinkage = shrinkage
        self.on_probability = on_probability
        self.off_probability = off_probability
        self.dwell_bins = dwell_bins
        self.rest_class = rest_class
        self.feature_transform = feature_transform
        self.guard = guard
        self.integration = integration

    def fit(self, X: Any, y: Any) -> ClickDecoder:
        """Fit the LDA.

        Parameters
        ----------
        X : array-like, shape (n_bins, n_features)
        y : array-like, shape (n_bins,)
            Class label of each bin (at least two classes).

        Returns
        -------
        self
        """
        check_in(self.feature_transform, "feature_transform", FEATURE_TRANSFORMS)
        check_in(self.integration, "integration", INTEGRATIONS)
        for name in ("on_probability", "off_probability"):
            value = check_nonnegative(getattr(self, name), name)
            if value > 1:
                raise InvalidInputError(f"{name} must lie in [0, 1], got {value}")
        check_int(self.dwell_bins, "dwell_bins", minimum=1)
        X = check_features(X, n_features=None, transform=self.feature_transform)
        labels = check_array(y, "y", ndim=1)
        if labels.shape[0] != X.shape[0]:
            raise InvalidInputError(
                f"y has {labels.shape[0]} bins but X has {X.shape[0]}; X and y must have one row per bin"
            )
        classes, counts = np.unique(labels, return_counts=True)
        if classes.size < 2:
            raise InvalidInputError(f"y must hold at least two classes, got {classes.tolist()}")
        if self.rest_class is None:
            rest = classes[np.argmax(counts)]
        else:
            if self.rest_class not in classes:
                raise InvalidInputError(
                    f"rest_class must be one of the training classes {classes.tolist()}, got {self.rest_class!r}"
                )
            rest = self.rest_class
        self.n_features_in_ = X.shape[1]
        self.guard_ = build_guard(self.guard).fit(X)
        cleaned, _, _ = self.guard_.screen(X, self.guard_.initial_state())
        solver = "svd" if self.shrinkage is None else "lsqr"
        self.lda_ = LinearDiscriminantAnalysis(solver=solver, shrinkage=self.shrinkage).fit(cleaned, labels)
        self.classes_ = self.lda_.classes_
        self.rest_class_ = rest
        self._rest_index = int(np.flatnonzero(self.classes_ == rest)[0])
        if self.integration == "hmm":
            index = np.searchsorted(self.classes_, labels)
            self.transition_ = _transition_matrix(index, self.classes_.size)
            self.evidence_scale_ = _cross_validated_scale(cleaned, index, solver, self.shrinkage,
                                                          np.log(counts / counts.sum()))
        self._stream = None
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "lda_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("This ClickDecoder is not fitted yet; call fit(X, y) before predict or step")

    # -- decoding ----------------------------------------------------------------
    def _probabilities(self, X: np.ndarray, guard_state: Any, posterior: np.ndarray) -> tuple:
        """Probabilities the hysteresis sees: (probability, guard report, guard state, HMM posterior)."""
        cleaned, report, guard_state = self.guard_.screen(X, guard_state)
        if X.shape[0] == 0:
            return np.zeros((0, self.classes_.size)), report, guard_state, posterior
        if self.integration == "hmm":
            probability, posterior = self._filter(self._class_scores(cleaned), report.held, posterior)
            return probability, report, guard_state, posterior
        probability = self._lda_probability(cleaned)
        probability[report.held] = 0.0
        probability[report.held, self._rest_index] = 1.0
        return probability, report, guard_state, posterior

    def _class_scores(self, X: np.ndarray) -> np.ndarray:
        """LDA class log-likelihoods up to a per-bin constant, shape (n_bins, n_classes)."""
        decision = X @ self.lda_.coef_.T + self.lda_.intercept_
        if self.classes_.size == 2:
            decision = np.column_stack([np.zeros(X.shape[0]), decision[:, 0]])
        return decision - np.log(self.lda_.priors_)

    def _filter(self, scores: np.ndarray, held: np.ndarray, posterior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """HMM forward filter over the bins; returns (posteriors, last posterior)."""
        out = np.empty_like(scores)
        loglik = self.evidence_scale_ * scores
        loglik -= loglik.max(axis=1, keepdims=True)
        likelihood = np.exp(loglik)
        start = np.zeros(self.classes_.size)
        start[self._rest_index] = 1.0
        for index in range(scores.shape[0]):
            if held[index]:
                posterior = start.copy()
            else:
                posterior = (posterior @ self.transition_) * likelihood[index]
                posterior = np.maximum(posterior / posterior.sum(), _POSTERIOR_FLOOR)
                posterior /= posterior.sum()
            out[index] = posterior
        return out, posterior

    def _lda_probability(self, X: np.ndarray) -> np.ndarray:
        """LDA class probabilities from its linear decision function.

        Same numbers as ``LinearDiscriminantAnalysis.predict_proba`` (sigmoid for two
        classes, softmax otherwise), without its per-call validation, which
        dominated ``step``.
        """
        decision = X @ self.lda_.coef_.T + self.lda_.intercept_
        if self.classes_.size == 2:
            positive = expit(decision[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return softmax(decision, axis=1)

    def _decide(self, probability: np.ndarray, held: np.ndarray, state: tuple[int, int, int]) -> tuple:
        output, candidate, count = state
        rest = self._rest_index
        decisions = np.empty(probability.shape[0], dtype=np.int64)
        for index in range(probability.shape[0]):
            row = probability[index]
            if held[index]:
                output, candidate, count = rest, -1, 0
            else:
                best = int(np.argmax(row))
                if output != rest and row[output] < self.off_probability:
                    output = rest
                if best != output and row[best] >= self.on_probability:
                    count = count + 1 if best == candidate else 1
                    candidate = best
                    if count >= self.dwell_bins:
                        output, candidate, count = best, -1, 0
                else:
                    candidate, count = -1, 0
            decisions[index] = output
        return decisions, (output, candidate, count)

    def _initial_state(self) -> tuple:
        posterior = np.zeros(self.classes_.size)
        posterior[self._rest_index] = 1.0
        return self.guard_.initial_state(), (self._rest_index, -1, 0), posterior

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities the hysteresis thresholds, from a fresh state.

        Per bin without integration; the HMM's filtered posterior with
        ``integration="hmm"``. Held bins are certain of the rest class.

        Parameters
        ----------
        X : array-like, shape (n_bins, n_features)

        Returns
        -------
        ndarray, shape (n_bins, n_classes)
        """
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, transform=self.feature_transform)
        guard_state, _, posterior = self._initial_state()
        probability, _, _, _ = self._probabilities(X, guard_state, posterior)
        return probability

    def predict(self, X: Any) -> np.ndarray:
        """Decoded class of each bin with dwell and hysteresis, from a fresh state.

        Parameters
        ----------
        X : array-like, shape (n_bins, n_features)

        Returns
        -------
        ndarray, shape (n_bins,)
        """
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, transform=self.feature_transform)
        guard_state, decision_state, posterior = self._initial_state()
        probability, report, _, _ = self._probabilities(X, guard_state, posterior)
        decisions, _ = self._decide(probability, report.held, decision_state)
        return self.classes_[decisions]

    def step(self, x: Any) -> Any:
        """Decode one bin in real time; returns the class label."""
        self._check_fitted()
        X = check_bin(x, n_features=self.n_features_in_, transform=self.feature_transform)
        if getattr(self, "_stream", None) is None:
            self._stream = self._initial_state()
        guard_state, decision_state, posterior = self._stream
        probability, report, guard_state, posterior = self._probabilities(X, guard_state, posterior)
        decisions, decision_state = self._decide(probability, report.held, decision_state)
        self._stream = (guard_state, decision_state, posterior)
        self._last_probability = probability[0]
        self._last_status = StepStatus(
            held=bool(report.held[0]),
            reason=HOLD_REASONS[int(report.reason[0])],
            n_dead_channels=int(report.n_dead[0]),
            clipped=False,
        )
        return self.classes_[decisions[0]]

    def step_missing(self) -> Any:
        """A bin that never arrived: no evidence (module docstring); returns the class label, unchanged.

        ``last_probability`` is the HMM's prediction (or the class priors without
        integration); ``last_status.reason`` is ``MISSING_REASON``.
        """
        self._check_fitted()
        if getattr(self, "_stream", None) is None:
            self._stream = self._initial_state()
        guard_state, decision_state, posterior = self._stream
        if self.integration == "hmm":
            posterior = posterior @ self.transition_
            probability = posterior
        else:
            probability = np.asarray(self.lda_.priors_, dtype=np.float64)
        self._stream = (guard_state, decision_state, posterior)
        self._last_probability = probability.copy()
        self._last_status = StepStatus(held=False, reason=MISSING_REASON, n_dead_channels=0, clipped=False)
        return self.classes_[decision_state[0]]

    def reset(self) -> ClickDecoder:
        """Forget the streaming state (guard runs and the dwell counter)."""
        self._stream = None
        self._last_status = None
        self._last_probability = None
        return self

    @property
    def last_probability(self) -> np.ndarray | None:
        """Class probabilities of the last :meth:`step`, shape (n_classes,) (None before the first)."""
        return getattr(self, "_last_probability", None)

    @property
    def last_status(self) -> StepStatus | None:
        """:class:`~neurolace.decode.base.StepStatus` of the last :meth:`step`."""
        return getattr(self, "_last_status", None)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_stream", None)
        return state


def _transition_matrix(index: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised transition counts of a label sequence, plus one per cell (Laplace)."""
    counts = np.ones((n_classes, n_classes))
    np.add.at(counts, (index[:-1], index[1:]), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def _cross_validated_scale(X: np.ndarray, index: np.ndarray, solver: str, shrinkage: Any,
                           log_prior: np.ndarray, n_folds: int = 3) -> float:
    """Temperature of the LDA log-likelihoods with the best held-out per-bin log-loss.

    The bins are cut into ``n_folds`` contiguous folds (never shuffled: bins
    next to each other are alike); each fold is scored by an LDA fitted on the
    others with the training priors. A fold whose training part lacks a class
    is skipped; with no usable fold the scale is 1.
    """
    n_classes = log_prior.size
    held_out_scores, held_out_index = [], []
    for fold in np.array_split(np.arange(X.shape[0]), n_folds):
        train = np.ones(X.shape[0], dtype=bool)
        train[fold] = False
        if fold.size == 0 or np.unique(index[train]).size < n_classes:
            continue
        lda = LinearDiscriminantAnalysis(solver=solver, shrinkage=shrinkage).fit(X[train], index[train])
        decision = X[fold] @ lda.coef_.T + lda.intercept_
        if n_classes == 2:
            decision = np.column_stack([np.zeros(fold.size), decision[:, 0]])
        held_out_scores.append(decision - np.log(lda.priors_))
        held_out_index.append(index[fold])
    if not held_out_scores:
        return 1.0
    scores = np.concatenate(held_out_scores)
    truth = np.concatenate(held_out_index)
    losses = []
    for scale in _EVIDENCE_SCALES:
        logits = scale * scores + log_prior
        logits -= logits.max(axis=1, keepdims=True)
        log_probability = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        losses.append(-np.mean(log_probability[np.arange(truth.size), truth]))
    return float(_EVIDENCE_SCALES[int(np.argmin(losses))])


# -- the closed loop's click decoder: defaults, feature smoothing, fit ---------------------------------

#: Time constant of the causal smoothing of the features the click decoder sees (0: none; the HMM integrates).
DEFAULT_CLICK_SMOOTHING_S = 0.0

#: How the click decoder combines successive bins (``"hmm"``: forward filter of a two-state HMM).
DEFAULT_CLICK_INTEGRATION = "hmm"

#: Posterior the click needs to switch on / below which it switches off, and bins it must stay on.
#: On seeds 10 and 11 at gain 0.6, mean BPS of Kalman filter and ReFIT-KF: on 0.7 (1 bin) 2.46,
#: 0.9 (1 bin) 2.78, 0.9 (2 bins) 3.11, 0.97 (2 bins) 3.60, 0.99 (2 bins) 3.76; at gain 0.5, 0.97 gave
#: 3.88 and 0.99 3.85 (the old 100 ms-smoothed per-bin LDA: 1.92 at gain 0.6).
DEFAULT_CLICK_ON_PROBABILITY = 0.97
DEFAULT_CLICK_OFF_PROBABILITY = 0.5
DEFAULT_CLICK_DWELL_BINS = 2


class ClickFeatureSmoother:
    """Causal exponential smoothing of features for the click decoder, streaming or batch.

    ``y_t = y_{t-1} + a (x_t - y_{t-1})``, ``a = 1 - exp(-loop_s / smoothing_s)``,
    started at the first bin. One 20 ms bin separates "click" from "no click"
    poorly; averaging over ~100 ms, the length of an attempted click, raises
    the separation, as the HMM integration of Jarosiewicz et al. 2015 does.

    Parameters
    ----------
    smoothing_s : float
        Time constant in seconds (0 disables smoothing).
    loop_s : float
        Bin width in seconds.
    """

    def __init__(self, *, smoothing_s: float, loop_s: float) -> None:
        smoothing_s = check_nonnegative(smoothing_s, "smoothing_s")
        loop_s = check_nonnegative(loop_s, "loop_s")
        self.alpha = 1.0 if smoothing_s <= 0 else 1.0 - float(np.exp(-loop_s / smoothing_s))
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        self._state = None

    def step(self, features: np.ndarray) -> np.ndarray:
        """Smooth one bin, shape (n_features,)."""
        if self._state is None:
            self._state = np.asarray(features, dtype=np.float64).copy()
        else:
            self._state += self.alpha * (features - self._state)
        return self._state

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Smooth a block of consecutive bins from a fresh state, shape (n_bins, n_features)."""
        self.reset()
        out = np.empty_like(features, dtype=np.float64)
        for index in range(features.shape[0]):
            out[index] = self.step(features[index])
        self.reset()
        return out


class SmoothedClickDecoder:
    """A fitted :class:`ClickDecoder` behind its feature smoother: ``step(features)`` -> class, ``reset()``.

    :attr:`click_probability` is the probability of a non-rest class at the
    last step (0 before the first), which the closed loop's click brake uses.
    """

    def __init__(self, decoder: ClickDecoder, smoother: ClickFeatureSmoother) -> None:
        self.decoder = decoder
        self.smoother = smoother

    def reset(self) -> SmoothedClickDecoder:
        self.smoother.reset()
        self.decoder.reset()
        return self

    def step(self, features: np.ndarray) -> Any:
        return self.decoder.step(self.smoother.step(features))

    def step_missing(self) -> Any:
        """A missing bin: the smoother keeps its state, the decoder gets no evidence (``ClickDecoder.step_missing``)."""
        return self.decoder.step_missing()

    @property
    def last_status(self) -> Any:
        return self.decoder.last_status

    @property
    def click_probability(self) -> float:
        probability = self.decoder.last_probability
        if probability is None:
            return 0.0
        rest = np.flatnonzero(self.decoder.classes_ == self.decoder.rest_class_)[0]
        return float(1.0 - probability[rest])


def fit_click_decoder(features: np.ndarray, click: np.ndarray, *, loop_s: float = 0.02,
                      smoothing_s: float = DEFAULT_CLICK_SMOOTHING_S,
                      integration: str = DEFAULT_CLICK_INTEGRATION,
                      on_probability: float = DEFAULT_CLICK_ON_PROBABILITY,
                      off_probability: float = DEFAULT_CLICK_OFF_PROBABILITY,
                      dwell_bins: int = DEFAULT_CLICK_DWELL_BINS) -> SmoothedClickDecoder:
    """Fit a :class:`ClickDecoder` on (smoothed) features and click intentions (0/1).

    The defaults integrate the evidence over the attempt with the HMM forward
    filter (Jarosiewicz et al. 2015) on unsmoothed features; the thresholds
    were chosen on seeds 10 and 11, which the closed-loop benchmark does not
    use (docs/closed-loop.md).

    Parameters
    ----------
    features : ndarray, shape (n_bins, n_features)
    click : ndarray, shape (n_bins,)
        Attempted click per bin (> 0.5 is a click).
    loop_s : float
        Bin width in seconds.
    """
    smoother = ClickFeatureSmoother(smoothing_s=smoothing_s, loop_s=loop_s)
    decoder = ClickDecoder(on_probability=on_probability, off_probability=off_probability,
                           dwell_bins=dwell_bins, integration=integration)
    decoder.fit(smoother.transform(np.asarray(features, dtype=np.float64)), (np.asarray(click) > 0.5).astype(int))
    return SmoothedClickDecoder(decoder, smoother)


def speed_click_threshold(speed: Any, *, base_probability: float, speed_scale: float) -> np.ndarray:
    """Click probability needed at decoded speed ``speed``: ``1 - (1 - base) * exp(-speed / speed_scale)``.

    A speed-dependent click threshold: at rest a click needs the click
    decoder's probability to reach ``base_probability``; the faster the
    decoded cursor moves the closer to certainty it must be, because the
    participant clicks while nearly still and false clicks come mid-movement
    (docs/closed-loop.md). It is strictly increasing in the speed and tends
    to 1; a hard speed limit is its limit for ``speed_scale -> 0``. The form
    (an exponential approach to certainty) is a chosen one, not a published
    one; ``speed_scale`` is chosen by closed-loop simulation.

    Parameters
    ----------
    speed : float or ndarray
        Decoded speed, normalised units (>= 0).
    base_probability : float in [0, 1)
        Threshold at rest.
    speed_scale : float
        Speed (normalised units) over which the distance of the threshold from 1 shrinks by ``e``.

    Returns
    -------
    ndarray
        Thresholds, the shape of ``speed``.
    """
    speed = np.asarray(speed, dtype=np.float64)
    if not np.all(np.isfinite(speed)) or np.any(speed < 0):
        raise InvalidInputError("speed must be finite and >= 0 (decoded speed, normalised units)")
    base = check_nonnegative(base_probability, "base_probability")
    if base >= 1.0:
        raise InvalidInputError(f"base_probability must lie in [0, 1), got {base}")
    scale = check_nonnegative(speed_scale, "speed_scale")
    if scale == 0:
        raise InvalidInputError("speed_scale must be > 0 (normalised speed units)")
    return 1.0 - (1.0 - base) * np.exp(-speed / scale)
