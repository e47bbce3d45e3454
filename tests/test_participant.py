"""The simulated participant: reproducible, aims and clicks as its control model says, calibrated neurons."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.io
from conftest import shared_data

from neurolace.core.errors import InvalidInputError
from neurolace.decode.ridge import ridge_decodability
from neurolace.runtime.reaching import offline_decodability, simulate_reaching
from neurolace.sim.participant import ControlParameters, NeuralParameters, SimulatedParticipant
from neurolace.sim.tuning import TuningModel
from neurolace.tasks import Target

QUIET = ControlParameters(motor_noise_cv=0.0)


def test_participant_is_reproducible_from_seed():
    first, second = SimulatedParticipant(n_channels=64, seed=5), SimulatedParticipant(n_channels=64, seed=5)
    np.testing.assert_array_equal(first.tuning.preferred_direction_rad, second.tuning.preferred_direction_rad)
    np.testing.assert_array_equal(first.background_hz, second.background_hz)
    a = simulate_reaching(first, duration_s=5.0, seed=11)
    b = simulate_reaching(second, duration_s=5.0, seed=11)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.velocity, b.velocity)
    other = SimulatedParticipant(n_channels=64, seed=6)
    assert not np.array_equal(first.background_hz, other.background_hz)


def test_intention_waits_for_reaction_time_then_aims_at_target_and_saturates():
    participant = SimulatedParticipant(n_channels=8, seed=0, control=QUIET)
    participant.start((0.5, 0.5), cursor_gain_per_s=1.0)
    target = Target((0.9, 0.5), 0.05)
    reaction_steps = round(QUIET.reaction_time_s / QUIET.loop_s)
    velocities = [participant.step((0.5, 0.5), target).velocity for _ in range(reaction_steps + 40)]
    # nothing before the target is perceived
    assert np.all(np.asarray(velocities[:reaction_steps]) == 0.0)
    moving = np.asarray(velocities[reaction_steps:])
    assert np.all(moving[:, 0] > 0) and np.allclose(moving[:, 1], 0.0)
    # the cursor is not moving in this test, so the forward model believes it has gone a long way;
    # before that belief reaches the target (0.4 away) the speed saturates at max_speed (smoothing 60 ms)
    assert moving[10, 0] == pytest.approx(QUIET.max_speed, rel=0.05)


def test_forward_model_predicts_cursor_exactly_when_cursor_follows_intention():
    participant = SimulatedParticipant(n_channels=8, seed=0, control=QUIET)
    gain = 1.3
    participant.start((0.5, 0.5), cursor_gain_per_s=gain)
    cursor = np.array([0.5, 0.5])
    target = Target((0.2, 0.7), 0.05)
    errors = []
    for _ in range(100):
        intention = participant.step(cursor, target)
        errors.append(np.abs(intention.estimated_cursor_xy - cursor).max())
        cursor = cursor + gain * QUIET.loop_s * intention.velocity
    assert max(errors) < 1e-12  # a perfect internal model cancels the 200 ms visual delay


def test_click_when_settled_on_target_and_released_after_the_target_changes():
    participant = SimulatedParticipant(n_channels=8, seed=0, control=QUIET)
    participant.start((0.3, 0.3), cursor_gain_per_s=1.0)
    target = Target((0.3, 0.3), 0.1)
    clicks = [participant.step((0.3, 0.3), target).click for _ in range(60)]
    first = int(np.argmax(clicks))
    expected = round((QUIET.reaction_time_s + QUIET.dwell_s) / QUIET.loop_s)
    assert abs(first - expected) <= 1
    # the target changes: the click goes on until the change is perceived (reaction time), then stops
    new_target = Target((0.7, 0.7), 0.1)
    after = [participant.step((0.3, 0.3), new_target).click for _ in range(30)]
    reaction_steps = round(QUIET.reaction_time_s / QUIET.loop_s)
    assert all(after[: reaction_steps - 1]) and not any(after[reaction_steps + 1:])


def test_counts_are_poisson_around_the_tuning_rates():
    neural = NeuralParameters(n_nuisance=0)
    participant = SimulatedParticipant(n_channels=16, seed=1, neural=neural)
    velocity = np.tile([0.6, -0.3], (20000, 1))
    counts = participant.sample_counts(velocity, bin_s=0.02, seed=2)
    expected = participant.rates_hz(velocity[:1])[0] * 0.02
    np.testing.assert_allclose(counts.mean(axis=0), expected, rtol=0.08, atol=0.004)
    np.testing.assert_allclose(counts.var(axis=0), expected, rtol=0.12, atol=0.004)  # Poisson: var = mean
    # the channel rates are the shared TuningModel's, scaled by visibility, over the background
    tuned = participant.tuning.rates_hz(velocity[:1])[0]
    np.testing.assert_allclose(expected / 0.02, participant.background_hz + participant.visibility * tuned)


def test_drift_keeps_units_at_day_zero_and_moves_them_later():
    participant = SimulatedParticipant(n_channels=32, seed=3)
    same = participant.drifted(days=0.0, seed=1)
    np.testing.assert_allclose(same.rates_hz([[0.5, 0.5]]), participant.rates_hz([[0.5, 0.5]]))
    later = participant.drifted(days=10.0, seed=1)
    shift = np.angle(np.exp(1j * (later.tuning.preferred_direction_rad - participant.tuning.preferred_direction_rad)))
    assert 0.3 < np.std(shift) < 1.0  # 10 degrees per sqrt(day): about 0.55 rad after 10 days


def test_participant_rejects_bad_parameters():
    with pytest.raises(InvalidInputError, match="n_channels must be >= 1, got 0"):
        SimulatedParticipant(n_channels=0)
    with pytest.raises(InvalidInputError, match="reaction_time_s must be >= visual_delay_s"):
        ControlParameters(visual_delay_s=0.3, reaction_time_s=0.2)
    with pytest.raises(InvalidInputError, match=r"tuning must have one unit-mix per channel \(4\), got 3"):
        SimulatedParticipant(n_channels=4, tuning=TuningModel.random(3, seed=0))
    with pytest.raises(InvalidInputError, match="loop_s must be a positive finite number, got 0.0"):
        replace(QUIET, loop_s=0.0)


def test_ridge_decodability_known_answer_and_bad_input():
    rng = np.random.default_rng(0)
    velocity = rng.normal(size=(600, 2))
    counts = np.column_stack([(velocity[:, 0] + 3) ** 2, (velocity[:, 1] + 3) ** 2, rng.random(600)])
    result = ridge_decodability(counts, velocity, n_lags=1, alphas=(1e-6,))
    # sqrt(counts) is exactly linear in velocity; the design is float32, hence the tolerance
    assert result["r2"] == pytest.approx([1.0, 1.0], abs=2e-3)
    with pytest.raises(InvalidInputError, match="too few bins"):
        ridge_decodability(counts[:20], velocity[:20])
    with pytest.raises(InvalidInputError, match="counts must be >= 0"):
        ridge_decodability(-counts, velocity)


def test_calibrated_participant_matches_real_m1_decodability_at_matched_size():
    """196 of the default participant's channels at 50 ms reach the ridge R² of the real 196-unit M1 data."""
    data = scipy.io.loadmat(shared_data("stevenson2011-m1-reaching", "StevensonV2.mat"))
    real = ridge_decodability(data["spikes"].T.astype(np.float64), data["handVel"][:2].T)
    # same protocol as the real data: 196 channels (its number of units), 50 ms bins, 10 bins of history;
    # 300 s here to keep the test short (docs/closed-loop.md reports 777 s, the real recording's length:
    # R² 0.775 for seeds 0-2 against the real 0.772)
    simulated = offline_decodability(seed=0, duration_s=300.0, bin_s=0.05, n_subset_channels=196)
    assert 0.72 < real["r2_mean"] < 0.82
    assert abs(simulated["r2_mean"] - real["r2_mean"]) < 0.05  # measured 0.735 against 0.772
    assert simulated["n_features"] == 196 * 10 == real["n_features"]
    assert simulated["n_channels"] == 196


def test_offline_decodability_subset_is_a_subset_and_checked():
    participant = SimulatedParticipant(n_channels=40, seed=2)
    result = offline_decodability(participant, duration_s=20.0, n_lags=2, n_subset_channels=7, seed=1)
    assert result["n_channels"] == 7 and result["n_features"] == 14
    with pytest.raises(InvalidInputError, match="n_subset_channels must be <= the participant's 40 channels, got 41"):
        offline_decodability(participant, duration_s=20.0, n_subset_channels=41)
    with pytest.raises(InvalidInputError, match="n_subset_channels must be >= 1, got 0"):
        offline_decodability(participant, duration_s=20.0, n_subset_channels=0)
