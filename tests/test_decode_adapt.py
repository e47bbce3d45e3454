"""Bias correction, retrospective target inference and recalibration (decode/adapt.py); speed gain and click threshold."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.decode import WienerFilter
from neurolace.decode.adapt import (
    BiasCorrector,
    ContinuousRecalibration,
    RecalibrationSettings,
    rebuild_decoder,
    retrospective_click_labels,
    retrospective_targets,
    retrospective_velocity_labels,
)
from neurolace.decode.click import speed_click_threshold
from neurolace.decode.speed_gain import SpeedGain
from neurolace.runtime.loop import LoopSettings


def test_bias_corrector_recovers_a_constant_bias_from_movements_in_all_directions():
    rng = np.random.default_rng(0)
    bias = np.array([0.15, -0.1])
    corrector = BiasCorrector(speed_threshold=0.5, time_constant_s=50.0, loop_s=0.02)
    corrected = []
    for step in range(20000):
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.choice([0.05, 1.0])  # slow (counteracting) bins do not enter the estimate
        corrected.append(corrector.correct(speed * np.array([np.cos(angle), np.sin(angle)]) + bias))
    np.testing.assert_allclose(corrector.bias_, bias, atol=0.04)
    assert np.linalg.norm(np.mean(corrected[-5000:], axis=0)) < 0.04
    with pytest.raises(InvalidInputError, match="velocity must be 2 finite numbers"):
        corrector.update([np.nan, 0.0])
    with pytest.raises(InvalidInputError, match="time_constant_s"):
        BiasCorrector(speed_threshold=0.5, time_constant_s=0.0)


def test_retrospective_targets_labels_the_trajectory_before_each_selection():
    target, usable = retrospective_targets(10, [3, 8], [[0.1, 0.2], [0.9, 0.8]], loop_s=1.0,
                                           exclude_after_selection_s=1.0)
    np.testing.assert_array_equal(target[:4], [[0.1, 0.2]] * 4)
    np.testing.assert_array_equal(target[4:9], [[0.9, 0.8]] * 5)
    assert np.isnan(target[9]).all()
    np.testing.assert_array_equal(usable, [False, True, True, True, False, True, True, True, True, False])
    _, windowed = retrospective_targets(10, [3, 8], [[0, 0], [1, 1]], loop_s=1.0, exclude_after_selection_s=0.0,
                                        window_s=2.0)
    np.testing.assert_array_equal(np.flatnonzero(windowed), [2, 3, 7, 8])
    with pytest.raises(InvalidInputError, match="must increase within"):
        retrospective_targets(10, [5, 3], [[0, 0], [1, 1]], loop_s=1.0)
    with pytest.raises(InvalidInputError, match=r"selection_xy must have shape \(2, 2\)"):
        retrospective_targets(10, [1, 3], [[0, 0]], loop_s=1.0)


def test_retrospective_labels_aim_at_the_selection_and_stop_on_it():
    cursor = np.array([[0.0, 0.0], [0.5, 0.0], [0.99, 0.0]])
    decoded = np.array([[0.0, 2.0], [1.0, 1.0], [0.3, 0.0]])
    target, usable = retrospective_targets(3, [2], [[1.0, 0.0]], loop_s=1.0, exclude_after_selection_s=0.0)
    labels = retrospective_velocity_labels(cursor, decoded, target, usable, target_radius=0.05)
    np.testing.assert_allclose(labels, [[2.0, 0.0], [np.sqrt(2), 0.0], [0.0, 0.0]])
    clicks = retrospective_click_labels([0.1, 0.2, 0.99], [2], cursor, target, usable, threshold=0.9,
                                        target_radius=0.05, click_window_s=1.0, loop_s=1.0)
    np.testing.assert_array_equal(clicks, [0, 0, 1])


def _toy_neurons(n_features=24, seed=0):
    rng = np.random.default_rng(seed)
    encoding = rng.normal(0, 1, (2, n_features))
    baseline = rng.uniform(5, 10, n_features)

    def features(intended, noise_rng):
        return baseline + intended @ encoding + noise_rng.normal(0, 0.3, n_features)

    return features


def _intended(cursor, target):
    error = target - cursor
    distance = np.linalg.norm(error)
    return np.zeros(2) if distance == 0 else min(1.0, distance / 0.15) * error / distance


def test_recalibration_from_inferred_targets_removes_a_known_decoder_bias():
    """A decoder fitted on biased labels drifts the cursor; RTI rebuilds on the selections remove the bias."""
    features_of = _toy_neurons()
    rng = np.random.default_rng(1)
    bias = np.array([0.12, -0.08])
    calibration_intended = rng.uniform(-1, 1, (1500, 2))
    X = np.array([features_of(v, rng) for v in calibration_intended])
    decoder = WienerFilter(n_lags=1, alpha=1.0).fit(X, calibration_intended + bias)
    rest = np.array([features_of(np.zeros(2), rng) for _ in range(200)])
    np.testing.assert_allclose(decoder.predict(rest).mean(axis=0), bias, atol=0.05)  # biased at rest

    settings = RecalibrationSettings(bias_correction=False, recalibrate_click=False, rebuild_every_selections=5,
                                     memory_s=60.0, exclude_after_selection_s=0.1)
    adapter = ContinuousRecalibration(decoder, settings=settings, target_radius=0.03, loop_s=0.02)
    adapter.start_block(0.02)
    cursor, gain, target = np.array([0.5, 0.5]), 1.0, rng.uniform(0.1, 0.9, 2)
    current, dwell = decoder, 0
    for _ in range(12000):
        x = features_of(_intended(cursor, target), rng)
        velocity = current.predict(x[np.newaxis])[0]
        before = cursor.copy()
        cursor = np.clip(cursor + gain * 0.02 * velocity, 0, 1)
        adapter.record(x, before, velocity, 0.0, False, False)
        dwell = dwell + 1 if np.linalg.norm(cursor - target) < 0.03 else 0
        if dwell >= 5:  # a selection where the cursor is: the adapter never sees the target itself
            replaced = adapter.selected(cursor)
            if replaced is not None:
                current = replaced[0]
            target, dwell = rng.uniform(0.1, 0.9, 2), 0
    assert adapter.n_rebuilds_ >= 2
    assert np.linalg.norm(current.predict(rest).mean(axis=0)) < 0.4 * np.linalg.norm(bias)  # measured: 0.31


def test_rebuild_decoder_keeps_the_settings_the_fit_chose():
    from neurolace.decode import KalmanFilter

    rng = np.random.default_rng(2)
    y = rng.normal(0, 1, (400, 2))
    X = y @ rng.normal(0, 1, (2, 8)) + rng.normal(0, 0.5, (400, 8)) + 5
    fitted = KalmanFilter().fit(X, y)
    fresh = rebuild_decoder(fitted)
    assert fresh.lag_bins == fitted.lag_bins_ and fresh.q_shrinkage == fitted.q_shrinkage_
    assert not hasattr(fresh, "gain_")


def test_recalibration_settings_and_adapter_refuse_bad_input():
    with pytest.raises(InvalidInputError, match="rebuild_every_selections"):
        RecalibrationSettings(rebuild_every_selections=0)
    with pytest.raises(InvalidInputError, match="bias_speed_centile must lie in"):
        RecalibrationSettings(bias_speed_centile=120)
    with pytest.raises(InvalidInputError, match="bias_correction must be True or False"):
        RecalibrationSettings(bias_correction="yes")
    adapter = ContinuousRecalibration(WienerFilter(n_lags=1, alpha=1.0).fit(np.ones((20, 3)) + np.eye(20, 3),
                                                                            np.zeros((20, 2))),
                                      target_radius=0.02)
    with pytest.raises(InvalidInputError, match="selected\\(\\) before any record"):
        adapter.selected(np.zeros(2))
    with pytest.raises(InvalidInputError, match="loop_s=0.01 but the adapter was built for 0.02"):
        adapter.start_block(0.01)


def test_speed_click_threshold_is_monotone_from_the_base_to_certainty():
    speeds = np.linspace(0, 2, 50)
    thresholds = speed_click_threshold(speeds, base_probability=0.9, speed_scale=0.1)
    assert thresholds[0] == pytest.approx(0.9)
    assert np.all(np.diff(thresholds) > 0) and thresholds[-1] < 1.0 and thresholds[-1] > 0.9999
    with pytest.raises(InvalidInputError, match=r"base_probability must lie in \[0, 1\)"):
        speed_click_threshold(0.1, base_probability=1.0, speed_scale=0.1)
    with pytest.raises(InvalidInputError, match="speed_scale must be > 0"):
        speed_click_threshold(0.1, base_probability=0.9, speed_scale=0.0)
    with pytest.raises(InvalidInputError, match="speed must be finite and >= 0"):
        speed_click_threshold(-0.1, base_probability=0.9, speed_scale=0.1)


def test_speed_gain_is_monotone_keeps_direction_and_is_linear_at_exponent_one():
    curve = SpeedGain(gain_per_s=3.0, exponent=1.5)
    speeds = np.linspace(0, 2, 41)
    out = curve.speed_per_s(speeds)
    assert np.all(np.diff(out) > 0)
    assert out[20] == pytest.approx(3.0)  # the reference speed 1.0 moves at the gain
    assert curve.speed_per_s(0.5) < 3.0 * 0.5 and curve.speed_per_s(1.5) > 3.0 * 1.5  # slower slow, faster fast
    velocity = np.array([0.3, -0.4])
    moved = curve.velocity_per_s(velocity)
    np.testing.assert_allclose(moved / np.linalg.norm(moved), velocity / 0.5)
    np.testing.assert_allclose(SpeedGain(gain_per_s=3.0).velocity_per_s(velocity), 3.0 * velocity)
    capped = SpeedGain(gain_per_s=1.0, exponent=2.0, max_speed_per_s=2.0)
    assert capped.speed_per_s(5.0) == pytest.approx(2.0)
    with pytest.raises(InvalidInputError, match="exponent"):
        SpeedGain(gain_per_s=1.0, exponent=0.0)
    with pytest.raises(InvalidInputError, match="max_speed_per_s"):
        SpeedGain(gain_per_s=2.0, max_speed_per_s=1.0)
    with pytest.raises(InvalidInputError, match="speed_gain_exponent"):
        LoopSettings(speed_gain_exponent=-1.0)
    with pytest.raises(InvalidInputError, match="click_base_probability must lie"):
        LoopSettings(click_base_probability=1.0)
    assert LoopSettings(cursor_gain_per_s=2.0, speed_gain_exponent=1.5).speed_gain() == SpeedGain(
        gain_per_s=2.0, exponent=1.5)
