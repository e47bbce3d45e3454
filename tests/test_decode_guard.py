"""The signal guard: bad signal holds the cursor still, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.decode import KalmanFilter, SignalGuard, WienerFilter, make_decoding_data
from neurolace.decode.guard import _longest_runs


@pytest.fixture
def data():
    return make_decoding_data(1500, 16, seed=11)


def test_longest_runs_known_answer():
    X = np.array([[1, 0], [1, 0], [2, 0], [1, 5], [1, 5], [1, 5]], dtype=float)
    assert np.array_equal(_longest_runs(X), [3.0, 3.0])
    assert np.array_equal(_longest_runs(np.zeros((0, 3))), [0.0, 0.0, 0.0])


def test_screen_in_chunks_equals_screen_whole(data):
    X, y = data
    guard = SignalGuard().fit(X, y)
    bad = X.copy()
    bad[100:400, 3] = 0.0  # dead channel
    bad[500] = 0.0  # zero bin
    bad[700:705] += 1000.0  # baseline jump
    whole, report, _ = guard.screen(bad, guard.initial_state())
    assert report.held.sum() == 6 and report.n_dead.max() == 1
    for chunk in (1, 37):  # one bin at a time takes the real-time fast path
        state, parts, held, reason = guard.initial_state(), [], [], []
        for start in range(0, bad.shape[0], chunk):
            cleaned, part_report, state = guard.screen(bad[start : start + chunk], state)
            parts.append(cleaned)
            held.append(part_report.held)
            reason.append(part_report.reason)
        assert np.array_equal(np.vstack(parts), whole)
        assert np.array_equal(np.concatenate(held), report.held)
        assert np.array_equal(np.concatenate(reason), report.reason)


def test_dead_channel_is_replaced_by_its_training_mean_after_the_known_delay(data):
    X, y = data
    guard = SignalGuard(min_dead_bins=20, dead_run_factor=2.0).fit(X, y)
    limit = int(guard.dead_after_bins_[3])
    assert limit == max(20, int(np.ceil(2.0 * _longest_runs(X)[3])))
    stream = X[: limit + 100].copy()
    stream[49, 3] = 1.0
    stream[50:, 3] = 0.0  # channel 3 stuck at zero from bin 50
    cleaned, report, _ = guard.screen(stream, guard.initial_state())
    first_dead = 50 + limit  # the run of zeros is limit + 1 bins long here
    assert np.all(cleaned[50:first_dead, 3] == 0.0)
    assert np.all(cleaned[first_dead:, 3] == guard.mean_[3])
    assert np.all(report.n_dead[first_dead:] == 1) and np.all(report.n_dead[:first_dead] == 0)
    assert not report.held.any()  # one dead channel of 16 is repaired, not held
    # the other channels pass through untouched
    assert np.array_equal(np.delete(cleaned, 3, axis=1), np.delete(stream, 3, axis=1))


def test_many_dead_channels_hold_the_cursor(data):
    X, y = data
    decoder = WienerFilter(n_lags=3).fit(X, y)
    stuck = np.tile(X[10], (400, 1))
    decoded, report = decoder.predict_with_status(stuck)
    held = report.held
    assert held[-1] and report.reason[-1] == 3
    assert np.all(decoded[held] == 0.0)


def test_zero_bin_holds_but_a_plausible_zero_bin_does_not():
    X, y = make_decoding_data(500, 16, seed=3)
    decoder = KalmanFilter().fit(X, y)
    decoder.step(X[0])
    assert np.array_equal(decoder.step(np.zeros(16)), [0.0, 0.0])
    assert decoder.last_status.held and decoder.last_status.reason == "zero_bin"
    # one sparse channel: all-zero bins happen in training, so a zero bin is real data
    sparse = X[:, :1] // 4
    assert np.any(sparse == 0)
    single = KalmanFilter().fit(sparse, y)
    single.step(np.zeros(1))
    assert not single.last_status.held


def test_baseline_jump_holds_and_the_cursor_recovers(data):
    X, y = data
    decoder = WienerFilter(n_lags=5).fit(X, y)
    reference = decoder.predict(X[:300])
    jumped = X[:300].copy()
    jumped[100:140] += 50.0  # common-mode artefact on every channel
    decoded, report = decoder.predict_with_status(jumped)
    assert np.array_equal(np.flatnonzero(report.held), np.arange(100, 140))
    assert np.all(report.reason[100:140] == 2)
    assert np.all(decoded[100:140] == 0.0)
    # held bins enter the history as the training mean, so once the lag buffer has refilled
    # with real bins the output is exactly the undisturbed one again
    assert np.allclose(decoded[144:], reference[144:])
    without_guard = WienerFilter(n_lags=5, guard=None).fit(X, y).predict(jumped)
    speed = np.linalg.norm(without_guard[100:140], axis=1)
    assert np.median(speed) > np.linalg.norm(y, axis=1).max(), "without the guard the cursor runs away"


def test_a_jump_on_a_few_channels_is_not_held(data):
    X, y = data
    decoder = WienerFilter(n_lags=2).fit(X, y)
    bumped = X[:50].copy()
    bumped[:, :3] += 100.0  # 3 of 16 channels < jump_fraction 0.3
    _, report = decoder.predict_with_status(bumped)
    assert not report.held.any()


def test_speed_is_clipped_to_the_limit(data):
    X, y = data
    decoder = WienerFilter(n_lags=1, guard=SignalGuard(speed_limit_factor=0.5)).fit(X, y)
    limit = 0.5 * np.linalg.norm(y, axis=1).max()
    decoded = decoder.predict(X)
    assert np.linalg.norm(decoded, axis=1).max() <= limit + 1e-12
    unclipped = WienerFilter(n_lags=1, guard=SignalGuard(speed_limit_factor=None)).fit(X, y).predict(X)
    fast = np.linalg.norm(unclipped, axis=1) > limit
    assert fast.any()
    # clipping keeps the direction
    cosine = np.sum(decoded[fast] * unclipped[fast], axis=1) / (
        np.linalg.norm(decoded[fast], axis=1) * np.linalg.norm(unclipped[fast], axis=1)
    )
    assert np.allclose(cosine, 1.0)


def test_constant_training_channel_is_ignored(data):
    X, y = data
    X = X.copy()
    X[:, 5] = 2.0
    decoder = KalmanFilter().fit(X, y)
    moved = X[:100].copy()
    moved[:, 5] = 40.0
    assert np.allclose(decoder.predict(moved), decoder.predict(X[:100]))


def test_guard_parameters_are_checked(data):
    X, y = data
    with pytest.raises(InvalidInputError, match="jump_fraction must lie in"):
        WienerFilter(guard=SignalGuard(jump_fraction=1.5)).fit(X, y)
    with pytest.raises(InvalidInputError, match="z_threshold must be a positive"):
        WienerFilter(guard=SignalGuard(z_threshold=0)).fit(X, y)


def test_a_dead_tuned_channel_does_not_make_the_cursor_drift(rng):
    """Kill the most strongly tuned channel while the velocity is zero: the decoder's drift stops
    once the guard calls the channel dead, and from then on the output is exactly the decoding
    with that channel at its training mean."""
    X, y = make_decoding_data(3000, 16, seed=12)
    decoder = KalmanFilter().fit(X, y)
    loudest = int(np.argmax(np.linalg.norm(decoder.H_, axis=1)))
    limit = int(decoder.guard_.dead_after_bins_[loudest])
    rest = np.tile(decoder.guard_.mean_, (limit + 200, 1))
    rest += rng.normal(0, 0.01, rest.shape)  # small noise so no other channel looks stuck
    dead = rest.copy()
    dead[:, loudest] = 0.0
    guarded, report = decoder.predict_with_status(dead)
    unguarded = KalmanFilter(guard=None).fit(X, y).predict(dead)
    imputed = rest.copy()
    imputed[:, loudest] = decoder.guard_.mean_[loudest]
    reference = decoder.predict(imputed)
    after = slice(limit + 1, None)
    assert report.n_dead[limit + 1] == 1 and not report.held.any()
    assert np.allclose(guarded[after][20:], reference[after][20:], atol=1e-9)
    # extra displacement the dead channel causes, integrated over the whole block
    drift_guarded = np.linalg.norm((guarded - reference).sum(axis=0))
    drift_unguarded = np.linalg.norm((unguarded - reference).sum(axis=0))
    assert drift_guarded < 0.5 * drift_unguarded, (drift_guarded, drift_unguarded)


def test_pass_through_guard_passes_a_zero_bin_in_real_time_too():
    import numpy as np

    from neurolace.decode import KalmanFilter

    rng = np.random.default_rng(0)
    X = rng.poisson(3.0, size=(400, 8)).astype(float)
    y = rng.normal(size=(400, 2))
    decoder = KalmanFilter(guard=None).fit(X, y)
    decoder.reset()
    decoder.step(X[0])
    decoder.step(np.zeros(8))
    assert not decoder.last_status.held  # without a guard nothing is held, in step as in predict
