"""Spike trains of tuned units and the default reaching session."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import InvalidInputError
from neurolace.sim import TuningModel, random_reaching_trajectory, simulate_spike_trains
from neurolace.sim.trajectory import minimum_jerk_speed


def _constant_tuning(rates_hz) -> TuningModel:
    rates = np.asarray(rates_hz, dtype=float)
    zeros = np.zeros_like(rates)
    return TuningModel(rates, zeros, zeros, zeros, zeros)


def test_mean_rate_is_kept_despite_the_dead_time():
    # 200 units at 150 Hz for 4 s: a plain dead time would lose ~30 % of the spikes (150 Hz x 2 ms).
    result = simulate_spike_trains(
        duration_s=4.0,
        tuning=_constant_tuning(np.full(200, 150.0)),
        intended_velocity=np.zeros((400, 2)),
        seed=1,
    )
    rates = np.bincount(result.events.unit_id, minlength=200) / 4.0
    assert abs(rates.mean() - 150.0) < 4 * np.sqrt(150.0 / 4.0 / 200)


def test_dead_time_makes_intervals_at_least_the_refractory_period_and_otherwise_exponential():
    result = simulate_spike_trains(
        duration_s=20.0,
        tuning=_constant_tuning([20.0]),
        intended_velocity=np.zeros((2000, 2)),
        seed=2,
        refractory_ms=1.5,
    )
    intervals_s = np.diff(result.events.times_s)
    dead_samples = int(np.ceil(1.5e-3 * result.events.fs_hz))
    assert np.diff(result.events.sample_index).min() >= dead_samples
    # beyond the dead time, intervals are exponential: mean excess = 1 / hazard ~ 1 / 20 Hz
    excess = intervals_s - 1.5e-3
    assert abs(excess.mean() * 20.0 / (1 - 20.0 * 1.5e-3) - 1) < 0.1
    assert abs(np.std(excess) / np.mean(excess) - 1) < 0.1  # coefficient of variation of an exponential


def test_zero_rate_units_never_fire_and_velocity_tuning_is_recoverable():
    n_units = 40
    tuning = TuningModel.random(n_units, seed=3)
    tuning.baseline_hz[0] = 0.0
    tuning.depth_hz[0] = 0.0
    tuning.speed_gain_hz[0] = 0.0
    tuning.click_gain_hz[0] = 0.0
    result = simulate_spike_trains(duration_s=60.0, tuning=tuning, seed=4)
    counts = result.binned_counts(0.05)
    assert counts.shape == (1200, n_units)
    assert counts[:, 0].sum() == 0
    # regress counts on the intended velocity (50 ms bins); the fitted direction is the preferred direction
    velocity = result.movement.velocity.reshape(-1, 5, 2).mean(axis=1)  # 100 Hz -> 20 Hz
    speed = np.hypot(velocity[:, 0], velocity[:, 1])
    design = np.column_stack([np.ones(len(velocity)), velocity, speed, result.movement.click[::5]])
    coefficients, *_ = np.linalg.lstsq(design, counts, rcond=None)
    fitted = np.arctan2(coefficients[2], coefficients[1])
    error = np.angle(np.exp(1j * (fitted - tuning.preferred_direction_rad)))
    strong = tuning.depth_hz > 6.0
    assert strong.sum() >= 10
    assert np.median(np.abs(error[strong])) < np.deg2rad(15)
    # and the fitted depth is the tuning depth (x 50 ms bins)
    depth = np.hypot(coefficients[1], coefficients[2]) / 0.05
    np.testing.assert_allclose(np.median(depth[strong] / tuning.depth_hz[strong]), 1.0, atol=0.2)


def test_spike_trains_are_reproducible_and_sorted():
    first = simulate_spike_trains(duration_s=2.0, n_units=30, seed=9)
    second = simulate_spike_trains(duration_s=2.0, n_units=30, seed=9)
    np.testing.assert_array_equal(first.events.sample_index, second.events.sample_index)
    np.testing.assert_array_equal(first.events.unit_id, second.events.unit_id)
    assert np.all(np.diff(first.events.sample_index) >= 0)
    np.testing.assert_array_equal(first.events.channel_index, first.events.unit_id)
    assert first.events.n_channels == 30


def test_click_drives_click_tuned_units():
    tuning = _constant_tuning([10.0, 10.0])
    tuning.click_gain_hz[:] = [40.0, 0.0]
    click = np.zeros(1000)
    click[500:] = 1.0
    result = simulate_spike_trains(
        duration_s=10.0, tuning=tuning, intended_velocity=np.zeros((1000, 2)), click=click, seed=5
    )
    counts = result.binned_counts(5.0)  # first half: no click; second half: click
    assert counts[1, 0] > counts[0, 0] + 5 * np.sqrt(counts[0, 0] + counts[1, 0])
    assert abs(int(counts[1, 1]) - int(counts[0, 1])) < 5 * np.sqrt(counts[0, 1] + counts[1, 1])


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"duration_s": 0}, "duration_s must be a positive"),
        ({"n_units": 0}, "n_units must be >= 1"),
        ({"tuning": np.ones(3)}, "tuning must be a TuningModel"),
        ({"velocity_fs_hz": -5.0}, "velocity_fs_hz must be a positive"),
        ({"refractory_ms": -1.0}, "refractory_ms must be a finite number >= 0"),
    ],
)
def test_spike_train_errors(keywords, message):
    with pytest.raises(InvalidInputError, match=message):
        simulate_spike_trains(**{"duration_s": 1.0, **keywords})


def test_minimum_jerk_profile_integrates_to_one_and_peaks_at_1_875():
    phase = np.linspace(0, 1, 100_001)
    speed = minimum_jerk_speed(phase)
    assert abs(np.trapezoid(speed, phase) - 1.0) < 1e-9
    assert abs(speed.max() - 1.875) < 1e-6
    assert speed[0] == 0 and speed[-1] == 0


def test_reaching_session_goes_out_and_back_and_clicks_when_still():
    trajectory = random_reaching_trajectory(30.0, fs_hz=200.0, seed=1)
    assert trajectory.velocity.shape == (6000, 2) and trajectory.click.shape == (6000,)
    speed = np.hypot(*trajectory.velocity.T)
    assert 0.8 < np.percentile(speed, 99) < 2.0  # peak speeds ~1 normalised unit
    assert np.all(speed[trajectory.click > 0] == 0)  # clicks happen during holds
    assert trajectory.click.sum() > 0
    radius = np.hypot(*trajectory.position.T)
    assert radius.max() <= 0.5 + 0.01  # reaches of 0.5 from the centre
    returns = (radius < 0.01).mean()
    assert returns > 0.1  # time spent back at the centre
