"""``check_decoder``: the conformance suite every neurolace decoder passes.

In the spirit of scikit-learn's ``check_estimator``: each check is a small
function that raises ``AssertionError`` (or lets an unexpected exception
through) with the check's name in the message. Run them all with
:func:`check_decoder`; a new decoder is done when it passes.

The data are synthetic and seeded: a smooth 2-D velocity (an AR(1) process)
drives Poisson counts through cosine-like linear tuning, so any sensible
decoder explains most of the variance.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone, is_classifier
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted

from neurolace.core.errors import InvalidInputError, NotFittedError
from neurolace.core.random import SeedLike, check_rng
from neurolace.decode.base import MISSING_REASON

__all__ = ["DECODER_CHECKS", "check_decoder", "make_decoding_data"]


def make_decoding_data(
    n_bins: int = 600,
    n_features: int = 12,
    *,
    n_dims: int = 2,
    seed: SeedLike = 0,
    n_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic decoding data.

    Parameters
    ----------
    n_bins, n_features, n_dims : int
        Sizes.
    seed : int, Generator or None
    n_classes : int, optional
        If given, return class labels in ``0 .. n_classes - 1`` (held for runs of
        bins, like clicks or reach directions) instead of velocities.

    Returns
    -------
    X : ndarray, shape (n_bins, n_features)
        Spike counts.
    y : ndarray, shape (n_bins, n_dims) of float, or (n_bins,) of int
    """
    rng = check_rng(seed)
    if n_classes is not None:
        run = 15
        labels = np.repeat(rng.integers(0, n_classes, size=n_bins // run + 1), run)[:n_bins]
        labels[: n_classes * run] = np.repeat(np.arange(n_classes), run)[:n_bins]
        means = rng.normal(0, 1.5, size=(n_classes, n_features))
        rates = np.exp(0.8 + means[labels])
        return rng.poisson(rates).astype(np.float64), labels
    velocity = np.zeros((n_bins, n_dims))
    for index in range(1, n_bins):
        velocity[index] = 0.95 * velocity[index - 1] + rng.normal(0, 0.3, n_dims)
    tuning = rng.normal(0, 1, size=(n_dims, n_features))
    rates = np.clip(3.0 + 2.0 * velocity @ tuning, 0.05, None)
    return rng.poisson(rates).astype(np.float64), velocity


def _step_all(decoder: Any, X: np.ndarray) -> np.ndarray:
    return np.array([decoder.step(row) for row in X])


def _tolerance(decoder: Any) -> float:
    return float(getattr(decoder, "_conformance_tolerance", 1e-8))


def check_get_params_round_trip(
    decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]
) -> None:
    params = decoder.get_params(deep=False)
    copy = clone(decoder)
    assert type(copy) is type(decoder), "clone returned another type"
    for name, value in params.items():
        other = copy.get_params(deep=False)[name]
        assert type(other) is type(value), f"clone changed the type of hyperparameter {name}"
        if not hasattr(value, "get_params"):
            assert other == value or (other is value), f"clone changed hyperparameter {name}"
    assert not any(key.endswith("_") for key in vars(decoder) if not key.startswith("_")), (
        "an unfitted decoder must not carry learned attributes (names ending in '_')"
    )


def check_not_fitted(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    fresh = clone(decoder)
    for call in (lambda: fresh.predict(X), lambda: fresh.step(X[0])):
        try:
            call()
        except NotFittedError as error:
            assert "fit" in str(error), "the not-fitted message must say to call fit"
        else:
            raise AssertionError("predict/step before fit must raise NotFittedError")
    try:
        check_is_fitted(fresh)
    except SklearnNotFittedError:
        pass
    else:
        raise AssertionError("sklearn's check_is_fitted must see an unfitted decoder as unfitted")


def check_fit_returns_self(
    decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]
) -> None:
    fresh = clone(decoder)
    assert fresh.fit(X, y) is fresh, "fit must return self"
    check_is_fitted(fresh)
    assert fresh.n_features_in_ == X.shape[1], "n_features_in_ must equal the training width"


def check_predict_shape(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    fitted = make_fitted()
    predicted = fitted.predict(X)
    expected = (X.shape[0],) if is_classifier(decoder) else (X.shape[0], y.shape[1])
    assert predicted.shape == expected, f"predict returned shape {predicted.shape}, expected {expected}"
    assert np.all(np.isfinite(np.asarray(predicted, dtype=np.float64))), "predict returned NaN or infinity"
    assert fitted.predict(X[:0]).shape[0] == 0, "predict on zero bins must return zero rows"
    assert fitted.predict(X[:1]).shape[0] == 1, "predict on one bin must return one row"


def check_learns(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    split = int(0.7 * X.shape[0])
    score = clone(decoder).fit(X[:split], y[:split]).score(X[split:], y[split:])
    floor = 0.5 if is_classifier(decoder) else 0.3
    assert score > floor, f"held-out score {score:.3f} on easy synthetic data is not above {floor}"


def check_width(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    fitted = make_fitted()
    expected = f"has {X.shape[1] - 1} features, but the decoder was fitted with {X.shape[1]}"
    for call in (lambda: fitted.predict(X[:, :-1]), lambda: fitted.step(X[0, :-1])):
        try:
            call()
        except InvalidInputError as error:
            assert expected in str(error), f"width message {str(error)!r} must name expected and given widths"
        else:
            raise AssertionError("a feature matrix of the wrong width must raise InvalidInputError")


def check_nan(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    bad = X.copy()
    bad[3, -1] = np.nan
    decoder_fitted = make_fitted()
    for call in (
        lambda: clone(decoder).fit(bad, y),
        lambda: decoder_fitted.predict(bad),
        lambda: decoder_fitted.step(bad[3]),
    ):
        try:
            call()
        except InvalidInputError as error:
            assert "finite" in str(error), f"NaN message {str(error)!r} must say the input must be finite"
        else:
            raise AssertionError("NaN features must raise InvalidInputError")


def check_y_length(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    try:
        clone(decoder).fit(X, y[:-1])
    except InvalidInputError as error:
        assert "bins" in str(error), f"message {str(error)!r} must say the number of bins differs"
    else:
        raise AssertionError("y with a different number of bins than X must raise InvalidInputError")


def check_step_equals_predict(
    decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]
) -> None:
    fitted = make_fitted()
    batch = np.asarray(fitted.predict(X))
    fitted.reset()
    streamed = _step_all(fitted, X)
    assert np.allclose(streamed, batch, rtol=_tolerance(decoder), atol=_tolerance(decoder)), (
        f"step over the rows differs from predict by up to {np.max(np.abs(streamed - batch)):.3g}"
    )


def check_reset(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    fitted = make_fitted()
    first = _step_all(fitted, X[:40])
    fitted.reset()
    again = _step_all(fitted, X[:40])
    assert np.allclose(first, again, rtol=_tolerance(decoder), atol=_tolerance(decoder)), (
        "after reset, step must repeat the outputs of a fresh decoder"
    )
    fitted.reset()
    _step_all(fitted, X[:20])
    fitted.predict(X)
    rest = _step_all(fitted, X[20:40])
    assert np.allclose(rest, first[20:], rtol=_tolerance(decoder), atol=_tolerance(decoder)), (
        "predict must not disturb the streaming state of step"
    )


def check_deterministic(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    one = np.asarray(make_fitted().predict(X))
    two = np.asarray(clone(decoder).fit(X, y).predict(X))
    assert np.array_equal(one, two), "two fits with the same hyperparameters and data must agree exactly"


def check_pickle(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    fitted = make_fitted()
    fitted.step(X[0])
    buffer = io.BytesIO()
    pickle.dump(fitted, buffer)
    restored = pickle.loads(buffer.getvalue())
    assert np.array_equal(np.asarray(restored.predict(X)), np.asarray(fitted.predict(X))), (
        "a pickled decoder must predict the same"
    )


def check_zero_bin_holds(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    fitted = make_fitted()
    _step_all(fitted, X[:10])
    output = np.asarray(fitted.step(np.zeros(X.shape[1])))
    status = fitted.last_status
    if getattr(decoder, "guard", "auto") is None or np.any(np.all(X == 0, axis=1)):
        assert status is not None and status.reason != "zero_bin", (
            "a zero bin must not be held when the guard is off or training had zero bins"
        )
        return
    assert status is not None and status.held and status.reason == "zero_bin", (
        f"a bin of zeros must be held, got status {status}"
    )
    rest = getattr(fitted, "rest_class_", 0)
    expected = np.full(output.shape, rest) if is_classifier(decoder) else np.zeros(output.shape)
    assert np.array_equal(output, expected), "a held bin must decode to zero velocity (or the rest class)"


def check_baseline_jump_holds(
    decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]
) -> None:
    fitted = make_fitted()
    _step_all(fitted, X[:10])
    fitted.step(X[10] + 100.0 * (X.std(axis=0) + 1.0))
    status = fitted.last_status
    if getattr(decoder, "guard", "auto") is None:
        assert status is not None and not status.held, "with guard=None nothing may be held"
        return
    assert status is not None and status.held and status.reason == "baseline_jump", (
        f"a bin far outside the training range on every channel must be held, got status {status}"
    )


def check_missing_bin(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    """``step_missing``: refused before fit; bounded from a fresh state; no click evidence; repeatable; not a hold."""
    fresh = clone(decoder)
    try:
        fresh.step_missing()
    except NotFittedError as error:
        assert "fit" in str(error), "the not-fitted message must say to call fit"
    else:
        raise AssertionError("step_missing before fit must raise NotFittedError")
    fitted = make_fitted()
    rest = getattr(fitted, "rest_class_", 0)
    first = [np.asarray(fitted.step_missing()) for _ in range(3)]
    if is_classifier(decoder):
        assert all(np.array_equal(output, rest) for output in first), (
            f"missing bins from a fresh state must decode to the rest class {rest!r}, got {first}"
        )
    else:
        largest = float(np.max(np.linalg.norm(y, axis=1)))
        for output in first:
            assert output.shape == (y.shape[1],) and np.all(np.isfinite(output)), (
                f"step_missing must return {y.shape[1]} finite numbers, got {output!r}"
            )
            assert np.linalg.norm(output) <= largest, (
                f"missing bins from a fresh state decoded to speed {np.linalg.norm(output):.3g}, above the "
                f"largest training speed {largest:.3g} (a missing bin carries no data to move on)"
            )
    status = fitted.last_status
    assert status is not None and status.reason == MISSING_REASON and not status.held, (
        f"after step_missing, last_status must say reason={MISSING_REASON!r} and not held, got {status}"
    )
    fitted.reset()
    gap = 5
    outputs = [*(_step_all(fitted, X[:gap]))]
    outputs += [np.asarray(fitted.step_missing()) for _ in range(4)]
    outputs += [*(_step_all(fitted, X[gap : 4 * gap]))]
    outputs = np.asarray(outputs, dtype=np.float64)
    assert np.all(np.isfinite(outputs)), "step_missing and the bins after it must decode to finite numbers"
    fitted.reset()
    again = [*(_step_all(fitted, X[:gap]))]
    again += [np.asarray(fitted.step_missing()) for _ in range(4)]
    again += [*(_step_all(fitted, X[gap : 4 * gap]))]
    assert np.allclose(outputs, np.asarray(again, dtype=np.float64), rtol=_tolerance(decoder),
                       atol=_tolerance(decoder)), "after reset, the same bins and gaps must decode the same"
    if is_classifier(decoder):
        fitted.reset()
        for row in X:
            output = fitted.step(row)
            if output != rest:  # a missing bin carries no evidence: it neither ends nor changes the output
                assert fitted.step_missing() == output, "a missing bin must leave a non-rest output as it was"
                break


def check_segments(decoder: Any, X: np.ndarray, y: np.ndarray, make_fitted: Callable[[], Any]) -> None:
    if is_classifier(decoder):
        return
    fitted = make_fitted()
    n_bins = X.shape[0]
    starts = [0, n_bins // 4, n_bins // 4 + 1, (2 * n_bins) // 3]
    whole = fitted.predict(X, segment_starts=starts)
    pieces = np.vstack(
        [fitted.predict(X[a:b]) for a, b in zip(starts, [*starts[1:], X.shape[0]], strict=True)]
    )
    assert np.array_equal(whole, pieces), (
        "predict with segment_starts must restart from a fresh state at each"
    )
    one = clone(decoder).fit(X, y, segment_starts=[0]).predict(X)
    assert np.array_equal(one, fitted.predict(X)), "segment_starts=[0] must equal one continuous recording"
    split = clone(decoder).fit(X, y, segment_starts=[n_bins // 2])
    assert split.predict(X).shape == (X.shape[0], y.shape[1]), "fitting on two segments must work"
    for bad in ([5, 3], [X.shape[0]]):
        try:
            clone(decoder).fit(X, y, segment_starts=bad)
        except InvalidInputError as error:
            assert "segment_starts" in str(error), f"message {str(error)!r} must name segment_starts"
        else:
            raise AssertionError(f"segment_starts={bad} must raise InvalidInputError")


#: every check, in the order :func:`check_decoder` runs them
DECODER_CHECKS: tuple[Callable[[Any, np.ndarray, np.ndarray, Callable[[], Any]], None], ...] = (
    check_get_params_round_trip,
    check_not_fitted,
    check_fit_returns_self,
    check_predict_shape,
    check_width,
    check_nan,
    check_y_length,
    check_step_equals_predict,
    check_reset,
    check_deterministic,
    check_pickle,
    check_zero_bin_holds,
    check_baseline_jump_holds,
    check_missing_bin,
    check_segments,
    check_learns,
)


def check_decoder(
    decoder: Any,
    *,
    n_bins: int = 600,
    n_features: int = 12,
    seed: SeedLike = 0,
) -> list[str]:
    """Run every conformance check on an unfitted decoder.

    Parameters
    ----------
    decoder : estimator
        An unfitted neurolace decoder (regressor, or classifier such as
        :class:`~neurolace.decode.click.ClickDecoder`).
    n_bins, n_features : int
        Size of the synthetic data.
    seed : int, Generator or None

    Returns
    -------
    list of str
        Names of the checks that passed (all of them; the first failure raises).

    Raises
    ------
    AssertionError
        Naming the failed check and what went wrong.
    """
    n_classes = 3 if isinstance(decoder, ClassifierMixin) else None
    X, y = make_decoding_data(n_bins, n_features, seed=seed, n_classes=n_classes)
    template = None

    def fitted() -> Any:
        nonlocal template
        if template is None:
            template = clone(decoder).fit(X, y)
        return copy.deepcopy(template)

    passed = []
    for check in DECODER_CHECKS:
        try:
            check(decoder, X, y, fitted)
        except AssertionError as error:
            raise AssertionError(f"{type(decoder).__name__} failed {check.__name__}: {error}") from error
        passed.append(check.__name__)
    return passed
