"""Wiener and Kalman decoders: known answers, conformance, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted

from neurolace.core.errors import InvalidInputError, NotFittedError
from neurolace.core.features import BinnedFeatures
from neurolace.decode import (
    KalmanFilter,
    ReFITKalmanFilter,
    WienerFilter,
    check_decoder,
    intended_velocity,
    make_decoding_data,
    steady_state_gain,
)
from neurolace.decode.checks import DECODER_CHECKS
from neurolace.decode.ridge import cv_folds, lagged_design, ridge_cv, ridge_fit
from neurolace.decode.wiener import choose_ridge_alpha

LINEAR_DECODERS = [
    WienerFilter(),
    WienerFilter(n_lags=1, alpha=0.0, guard=None),
    WienerFilter(n_lags=3, alpha=5.0, feature_transform="sqrt"),
    KalmanFilter(),
    KalmanFilter(lag_bins=2, feature_transform="sqrt"),
    ReFITKalmanFilter(),
]


@pytest.mark.parametrize("decoder", LINEAR_DECODERS, ids=repr)
def test_conformance(decoder):
    assert check_decoder(decoder) == [check.__name__ for check in DECODER_CHECKS]


@pytest.mark.parametrize("decoder", [WienerFilter(n_lags=2), KalmanFilter()], ids=repr)
def test_conformance_one_feature_odd_length(decoder):
    assert len(check_decoder(decoder, n_bins=333, n_features=1)) == len(DECODER_CHECKS)


def test_check_decoder_catches_a_broken_decoder():
    class Forgetful(WienerFilter):
        """step ignores history: must fail step == predict."""

        def step(self, x):
            self.reset()
            return super().step(x)

    with pytest.raises(AssertionError, match="Forgetful failed check_step_equals_predict"):
        check_decoder(Forgetful(n_lags=3))


def test_wiener_recovers_known_lagged_weights(rng):
    n_bins, n_features, n_lags = 5000, 5, 3
    X = rng.normal(size=(n_bins, n_features))
    weights = rng.normal(size=(n_lags, n_features, 2))
    y = np.full((n_bins, 2), 0.7)
    for lag in range(n_lags):
        y[lag:] += X[: n_bins - lag] @ weights[lag]
    # bins before the first are the training mean in the decoder; drop them from the comparison
    decoder = WienerFilter(n_lags=n_lags, alpha=0.0, guard=None).fit(X[n_lags:], y[n_lags:])
    # only the first n_lags - 1 bins (filled with the mean) keep this from being exact
    assert np.allclose(decoder.coef_, weights, atol=1e-3)
    assert np.allclose(decoder.intercept_, 0.7, atol=1e-3)
    assert np.allclose(decoder.predict(X)[2 * n_lags :], y[2 * n_lags :], atol=1e-2)


def test_ridge_matches_closed_form_in_primal_and_dual(rng):
    for n_samples, n_columns in ((50, 8), (8, 50)):
        design = rng.normal(size=(n_samples, n_columns))
        y = rng.normal(size=(n_samples, 2))
        coef, intercept = ridge_fit(design, y, 3.0)
        centered = design - design.mean(axis=0)
        expected = np.linalg.solve(
            centered.T @ centered + 3.0 * np.eye(n_columns), centered.T @ (y - y.mean(0))
        )
        assert np.allclose(coef, expected, atol=1e-9)
        assert np.allclose(intercept, y.mean(0) - design.mean(0) @ expected)


def test_auto_alpha_prefers_little_penalty_without_noise_and_more_with_noise(rng):
    design = rng.normal(size=(400, 30))
    clean = design @ rng.normal(size=(30, 1))
    noisy = 0.02 * clean + rng.normal(size=clean.shape)
    assert choose_ridge_alpha(design, clean) < choose_ridge_alpha(design, noisy)


def _brute_force_cv_score(X, y, n_lags, alpha, folds, segments):
    """Mean validation R² of scikit-learn's Ridge on the same lagged design and contiguous folds."""
    from sklearn.linear_model import Ridge

    design = np.vstack(
        [
            lagged_design(X[start:stop] - X.mean(0), n_lags) + np.tile(X.mean(0), n_lags)
            for start, stop in segments
        ]
    )
    score = 0.0
    for start, stop in folds:
        train = np.ones(len(y), dtype=bool)
        train[start:stop] = False
        predicted = Ridge(alpha=alpha).fit(design[train], y[train]).predict(design[start:stop])
        r2 = 1 - np.mean((y[start:stop] - predicted) ** 2, 0) / np.var(y[start:stop], 0)
        score += np.mean(r2) / len(folds)
    return score


@pytest.mark.parametrize("n_folds", [1, 3])
@pytest.mark.parametrize("n_bins, n_features", [(300, 4), (60, 12)], ids=["primal", "dual"])
def test_ridge_cv_scores_equal_sklearn_ridge_on_the_same_folds(rng, n_bins, n_features, n_folds):
    """Every (history, penalty) score equals a brute-force scikit-learn Ridge, in primal and kernel form."""
    X = rng.normal(size=(n_bins, n_features))
    y = rng.normal(size=(n_bins, 2)) + X[:, :2]
    segments = [(0, n_bins // 2), (n_bins // 2, n_bins)]
    result = ridge_cv(X, y, n_lags=(1, 2, 4), segments=segments, n_folds=n_folds, patience=5)
    folds = cv_folds(n_bins, n_folds=n_folds, segments=segments)
    assert all(start in (0, n_bins // 2) for start, _ in folds)  # folds keep the trials whole
    for row, n_lags in enumerate(result.n_lags_tried):
        for column in (0, 6, 12):
            expected = _brute_force_cv_score(X, y, n_lags, result.alphas[column], folds, segments)
            assert result.scores[row, column] == pytest.approx(expected, abs=1e-9)
    best = np.unravel_index(np.argmax(result.scores), result.scores.shape)
    assert (result.n_lags, result.alpha) == (result.n_lags_tried[best[0]], result.alphas[best[1]])


def _lagged_target(rng, n_bins, n_features, n_lags, noise):
    X = rng.normal(size=(n_bins, n_features))
    weights = rng.normal(size=(n_lags, n_features, 2))
    y = noise * rng.normal(size=(n_bins, 2))
    for lag in range(n_lags):
        y[lag:] += X[: n_bins - lag] @ weights[lag]
    return X, y


@pytest.mark.parametrize("seed", range(4))
def test_cross_validation_finds_the_true_history_length(seed):
    """y depends on bins t, t-1, t-2: five contiguous folds choose 3 bins; one forward split never fewer."""
    X, y = _lagged_target(np.random.default_rng(seed), 3000, 6, 3, noise=2.0)
    assert WienerFilter(cv_folds=5, guard=None).fit(X, y).n_lags_ == 3
    forward = WienerFilter(cv_folds=1, guard=None).fit(X, y)
    assert forward.n_lags_ >= 3
    scores = forward.cv_result_.scores
    assert np.nanmax(scores[2]) > np.nanmax(scores[1]) + 0.1  # 2 bins miss a third of the signal


def test_cross_validation_penalty_grows_with_noise_and_refit_equals_an_explicit_fit(rng):
    X, y = _lagged_target(rng, 800, 40, 2, noise=0.1)
    clean = WienerFilter(guard=None).fit(X, y)
    noisy = WienerFilter(guard=None).fit(X, 0.05 * y + rng.normal(size=y.shape))
    assert clean.alpha_ < noisy.alpha_
    explicit = WienerFilter(n_lags=clean.n_lags_, alpha=clean.alpha_, guard=None).fit(X, y)
    assert np.allclose(clean.coef_, explicit.coef_, atol=1e-9)
    assert np.allclose(clean.intercept_, explicit.intercept_, atol=1e-9)


def test_settings_never_depend_on_rows_outside_the_fit(rng):
    """Corrupting the held-out rows of the same array leaves every chosen setting unchanged."""
    X, y = _lagged_target(rng, 1500, 8, 2, noise=1.0)
    X = np.abs(X)
    split = 1000
    decoders = (WienerFilter(), WienerFilter(cv_folds=5), KalmanFilter())

    def settings():
        out = []
        for decoder in decoders:
            decoder.fit(X[:split], y[:split])
            names = ("n_lags_", "alpha_", "lag_bins_", "q_shrinkage_")
            out.append({name: getattr(decoder, name) for name in names if hasattr(decoder, name)})
        return out

    before = settings()
    X[split:] = rng.permutation(X[split:]) * 10
    y[split:] = -y[split:]
    assert settings() == before


def test_ridge_cv_errors():
    X, y = make_decoding_data(30, 3, seed=1)
    with pytest.raises(InvalidInputError, match="too few for 5 validation fold"):
        ridge_cv(X[:8], y[:8], n_folds=5)
    with pytest.raises(InvalidInputError, match="alphas must be finite numbers >= 0"):
        ridge_cv(X, y, alphas=(-1.0,))
    with pytest.raises(InvalidInputError, match="n_lags_candidates must hold at least one"):
        WienerFilter(n_lags_candidates=()).fit(X, y)
    with pytest.raises(InvalidInputError, match="cv_folds must be one of 'auto'"):
        WienerFilter(cv_folds="kfold").fit(X, y)


def test_kalman_cross_validation_finds_the_neural_lead(rng):
    """Features lead velocity by 2 bins: lag_bins='auto' chooses 2 on the training bins alone."""
    n_bins = 3000
    velocity = np.zeros((n_bins, 2))
    for index in range(1, n_bins):
        velocity[index] = 0.95 * velocity[index - 1] + rng.normal(0, 0.3, 2)
    features = np.full((n_bins, 20), 3.0)
    features[:-2] += velocity[2:] @ rng.normal(size=(20, 2)).T
    features += rng.normal(0, 1.0, size=features.shape)
    decoder = KalmanFilter(guard=None).fit(features, velocity)
    assert decoder.lag_bins_ == 2
    assert decoder.cv_scores_.shape == (6, 5)
    assert decoder.cv_scores_[2].max() == decoder.cv_scores_.max()


def test_steady_state_gain_matches_iterated_riccati(rng):
    A = np.array([[0.9, 0.05], [-0.03, 0.85]])
    W = np.array([[0.02, 0.005], [0.005, 0.03]])
    H = rng.normal(size=(7, 2))
    noise = rng.normal(size=(7, 7))
    Q = noise @ noise.T + 0.5 * np.eye(7)
    gain, prior = steady_state_gain(A, W, H, Q)
    covariance = np.eye(2)
    for _ in range(500):
        predicted = A @ covariance @ A.T + W
        reference = predicted @ H.T @ np.linalg.inv(H @ predicted @ H.T + Q)
        covariance = (np.eye(2) - reference @ H) @ predicted
    assert np.allclose(gain, reference, atol=1e-10)
    assert np.allclose(prior, predicted, atol=1e-10)


def test_kalman_matches_a_full_kalman_filter_after_the_transient(rng):
    n_bins = 3000
    A = np.array([[0.95, 0.0], [0.0, 0.9]])
    velocity = np.zeros((n_bins, 2))
    for index in range(1, n_bins):
        velocity[index] = A @ velocity[index - 1] + rng.normal(0, 0.2, 2)
    H = rng.normal(size=(6, 2))
    X = 2.0 + velocity @ H.T + rng.normal(0, 0.5, size=(n_bins, 6))
    decoder = KalmanFilter(q_shrinkage=0.0, guard=None).fit(X, velocity)
    assert np.allclose(decoder.A_, A, atol=0.03)
    assert np.allclose(decoder.H_, H, atol=0.1)
    decoded = decoder.predict(X)
    state, covariance = np.zeros(2), np.eye(2)
    reference = np.empty_like(decoded)
    for index in range(n_bins):
        state = decoder.A_ @ state
        covariance = decoder.A_ @ covariance @ decoder.A_.T + decoder.W_
        gain = covariance @ decoder.H_.T @ np.linalg.inv(decoder.H_ @ covariance @ decoder.H_.T + decoder.Q_)
        state = state + gain @ (X[index] - decoder.baseline_ - decoder.H_ @ state)
        covariance = (np.eye(2) - gain @ decoder.H_) @ covariance
        reference[index] = state
    assert np.allclose(decoded[50:], reference[50:], atol=1e-8)
    assert 1 - np.mean((decoded - velocity) ** 2) / np.var(velocity) > 0.8


def test_kalman_lag_pairs_earlier_features_with_velocity(rng):
    n_bins = 2000
    velocity = np.zeros((n_bins, 2))
    for index in range(1, n_bins):
        velocity[index] = 0.6 * velocity[index - 1] + rng.normal(0, 1.0, 2)
    features = np.zeros((n_bins, 4))
    H = rng.normal(size=(4, 2))
    features[:-2] = velocity[2:] @ H.T  # neurons lead movement by 2 bins
    features += rng.normal(0, 0.05, size=features.shape)
    lagged = KalmanFilter(lag_bins=2, guard=None).fit(features, velocity).score(features, velocity)
    unlagged = KalmanFilter(lag_bins=0, guard=None).fit(features, velocity).score(features, velocity)
    assert lagged > 0.9
    assert unlagged < 0.6


def test_intended_velocity_known_answers():
    cursor = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    target = np.array([[1.0, 0.0], [1.0, 1.05], [0.0, 2.0], [0.0, 0.0]])
    decoded = np.array([[0.0, 2.0], [3.0, 0.0], [-1.0, 0.0], [1.0, 1.0]])
    intention = intended_velocity(cursor, target, decoded, target_radius=0.1)
    # rotated toward the target with the decoded speed; zero inside the target radius
    assert np.allclose(intention, [[2.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(InvalidInputError, match="must have the same shape"):
        intended_velocity(cursor, target[:2], decoded, target_radius=0.1)


def test_refit_learns_the_intention_from_a_misaimed_block(rng):
    """ReFIT corrects a decoder whose x axis is flipped, using only where the targets were."""
    n_bins, n_features = 3000, 20
    tuning = rng.normal(size=(2, n_features))
    intention = np.zeros((n_bins, 2))
    for index in range(1, n_bins):
        intention[index] = 0.9 * intention[index - 1] + rng.normal(0, 0.3, 2)
    X = rng.poisson(np.clip(4 + intention @ tuning, 0.1, None)).astype(float)
    flipped = intention * [-1.0, 1.0]
    decoder = ReFITKalmanFilter().fit(X, flipped)
    assert decoder.score(X, intention) < 0.0
    # a closed-loop block: targets lie along the intended direction from the cursor
    cursor = rng.normal(size=(n_bins, 2))
    target = cursor + 5.0 * intention / np.maximum(np.linalg.norm(intention, axis=1, keepdims=True), 1e-9)
    decoded = decoder.predict(X)
    chosen = decoder.lag_bins_, decoder.q_shrinkage_
    assert decoder.refit(X, cursor, target, decoded, target_radius=0.0) is decoder
    assert decoder.n_refits_ == 1
    assert decoder.score(X, intention) > 0.4
    assert (decoder.lag_bins_, decoder.q_shrinkage_) == chosen  # refit keeps the calibration's settings
    assert decoder.get_params()["lag_bins"] == "auto"


def test_refit_checks_its_input(rng):
    X, y = make_decoding_data(200, 5, seed=1)
    decoder = ReFITKalmanFilter().fit(X, y)
    with pytest.raises(InvalidInputError, match="has 4 features, but the decoder was fitted with 5"):
        decoder.refit(X[:, :4], y, y, y, target_radius=0.1)
    with pytest.raises(InvalidInputError, match="cursor_position has 150 bins but X has 200"):
        decoder.refit(X, y[:150], y[:150], y[:150], target_radius=0.1)
    with pytest.raises(NotFittedError, match="call fit"):
        ReFITKalmanFilter().refit(X, y, y, y, target_radius=0.1)


def test_errors_name_parameter_expected_and_given(rng):
    X, y = make_decoding_data(100, 4, seed=2)
    decoder = WienerFilter(n_lags=2)
    with pytest.raises(NotFittedError, match="WienerFilter is not fitted yet; call fit"):
        decoder.predict(X)
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(decoder)
    decoder.fit(X, y)
    with pytest.raises(
        InvalidInputError, match="X has 3 features, but the decoder was fitted with 4 features"
    ):
        decoder.predict(X[:, :3])
    with pytest.raises(InvalidInputError, match=r"x must be one bin of shape \(4,\), got shape \(2, 4\)"):
        decoder.step(X[:2])
    with pytest.raises(InvalidInputError, match="y has 99 bins but X has 100"):
        WienerFilter().fit(X, y[:99])
    bad = X.copy()
    bad[5, 2] = np.nan
    with pytest.raises(InvalidInputError, match=r"X must be finite.*\[5, 2\]"):
        WienerFilter().fit(bad, y)
    bad_y = y.copy()
    bad_y[7, 1] = np.inf
    with pytest.raises(InvalidInputError, match=r"y must be finite.*\[7, 1\]"):
        KalmanFilter().fit(X, bad_y)
    with pytest.raises(InvalidInputError, match="n_lags must be >= 1, got 0"):
        WienerFilter(n_lags=0).fit(X, y)
    with pytest.raises(InvalidInputError, match="alpha must be 'auto' or a finite number >= 0"):
        WienerFilter(alpha=-1.0).fit(X, y)
    with pytest.raises(InvalidInputError, match="feature_transform must be one of 'none', 'sqrt'; got 'log'"):
        KalmanFilter(feature_transform="log").fit(X, y)
    with pytest.raises(InvalidInputError, match="must be >= 0 for feature_transform='sqrt'"):
        KalmanFilter(feature_transform="sqrt").fit(X - 10.0, y)
    with pytest.raises(InvalidInputError, match="q_shrinkage must lie in"):
        KalmanFilter(q_shrinkage=2.0).fit(X, y)
    with pytest.raises(InvalidInputError, match="guard must be 'auto', None or a SignalGuard"):
        KalmanFilter(guard="strict").fit(X, y)
    with pytest.raises(InvalidInputError, match="at least 2 bins"):
        KalmanFilter().fit(X[:1], y[:1])


def test_binned_features_and_one_dimensional_y_are_accepted():
    X, y = make_decoding_data(300, 6, seed=3)
    features = BinnedFeatures(X, bin_width_s=0.05)
    decoder = WienerFilter(n_lags=2).fit(features, y[:, 0])
    assert decoder.predict(features).shape == (300, 1)
    assert np.array_equal(decoder.predict(features), decoder.predict(X))


def test_clone_keeps_hyperparameters_and_drops_the_fit():
    decoder = KalmanFilter(lag_bins=3, q_shrinkage=0.2, feature_transform="sqrt")
    X, y = make_decoding_data(200, 5, seed=4)
    copy = clone(decoder.fit(X, y))
    assert copy.get_params() == decoder.get_params()
    assert not hasattr(copy, "gain_")
