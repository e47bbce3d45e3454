"""ImplantFeatureSource: the participant's intention through the simulated implant and the on-implant chain."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from neurolace.core import InvalidInputError
from neurolace.dsp.features import CrossingCounter, SpikeBandPower, bin_ratio_for
from neurolace.core.events import SpikeEvents
from neurolace.sim.neural_source import ImplantFeatureSource, implant_tuning
from neurolace.sim.participant import Intention, SimulatedParticipant

N_CHANNELS = 32


@pytest.fixture(scope="module")
def participant() -> SimulatedParticipant:
    return SimulatedParticipant(n_channels=N_CHANNELS, seed=4)


def _intention(velocity, click=0.0) -> Intention:
    return Intention(np.asarray(velocity, dtype=np.float64), float(click), np.full(2, 0.5))


def _random_intentions(n_bins: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.6, (n_bins, 2)), (rng.random(n_bins) < 0.1).astype(float)


@pytest.mark.parametrize(("features", "width"), [("crossings", 1), ("sbp", 1), ("both", 2)])
def test_shapes_and_feature_kinds(participant, features, width):
    source = ImplantFeatureSource(participant, features=features)
    assert source.n_features == width * N_CHANNELS
    source.start(seed=0)
    row = source.emit(_intention([0.3, -0.2]))
    assert row.shape == (width * N_CHANNELS,) and row.dtype == np.float64
    assert np.all(row >= 0)
    if features == "crossings":
        np.testing.assert_array_equal(row, np.round(row))  # whole counts


def test_both_is_crossings_then_sbp_of_the_same_block(participant):
    velocity, click = _random_intentions(30, seed=1)
    parts = {}
    for kind in ("crossings", "sbp", "both"):
        source = ImplantFeatureSource(participant, features=kind)
        source.start(seed=5)
        parts[kind] = source.emit_many(velocity, click)
    np.testing.assert_array_equal(parts["both"], np.hstack([parts["crossings"], parts["sbp"]]))


def test_same_seed_same_features_and_new_seed_new_noise_on_the_same_implant(participant):
    velocity, click = _random_intentions(40, seed=2)
    source = ImplantFeatureSource(participant, features="both")
    source.start(seed=7)
    first = source.emit_many(velocity, click)
    first_amplitudes = source.stream.amplitude_uv.toarray()
    source.start(seed=7)
    np.testing.assert_array_equal(source.emit_many(velocity, click), first)
    source.start(seed=8)
    assert not np.array_equal(source.emit_many(velocity, click), first)
    np.testing.assert_array_equal(source.stream.amplitude_uv.toarray(), first_amplitudes)  # same implant


def test_streaming_bin_by_bin_equals_the_whole_block_at_once(participant):
    velocity, click = _random_intentions(60, seed=3)
    source = ImplantFeatureSource(participant, features="both")
    source.start(seed=11)
    streamed = np.array([source.emit(_intention(v, c)) for v, c in zip(velocity, click, strict=True)])
    source.start(seed=11)
    np.testing.assert_array_equal(source.emit_many(velocity, click), streamed)
    source.start(seed=11)
    pieces = [source.emit_many(velocity[a:b], click[a:b]) for a, b in ((0, 7), (7, 8), (8, 60))]
    np.testing.assert_array_equal(np.concatenate(pieces), streamed)


def test_implant_units_have_the_counts_paths_rates(participant):
    tuning = implant_tuning(participant)
    velocity, click = _random_intentions(50, seed=4)
    rates = tuning.rates_hz(velocity, click)
    np.testing.assert_allclose(
        rates[:, :N_CHANNELS] + rates[:, N_CHANNELS:], participant.rates_hz(velocity, click), rtol=1e-12
    )


def test_crossings_follow_the_spikes_near_each_electrode(participant):
    """Each electrode's crossings are its own two units' spikes, less few misses: the chain sees the units."""
    source = ImplantFeatureSource(participant)
    source.start(seed=2)
    velocity, click = _random_intentions(256, seed=5)  # 5.12 s
    crossings = source.emit_many(velocity, click).sum(axis=0)
    truth = source.stream.ground_truth()
    first, stop = source.bin_samples(0)[0], source.bin_samples(255)[1]
    assert stop - first == 100_000  # 256 x 390.625: the fraction of a sample is carried, no drift
    in_block = (truth.units.sample_index >= first) & (truth.units.sample_index < stop)
    spikes = np.bincount(truth.units.unit_id[in_block] % N_CHANNELS, minlength=N_CHANNELS)
    ratio = crossings.sum() / spikes.sum()
    assert 0.8 < ratio <= 1.02, ratio
    assert np.corrcoef(crossings, spikes)[0, 1] > 0.95


def test_tuning_shows_up_along_the_preferred_direction(participant):
    """Crossings rise with the intended velocity projected on each channel's preferred direction.

    In single 20 ms bins Poisson noise dominates (a 10 Hz modulation is 0.2 spikes a bin against
    ~0.4 of variance), so the correlation is judged against the counts path's on the same intentions.
    """
    source = ImplantFeatureSource(participant)
    source.start(seed=3)
    rng = np.random.default_rng(6)
    angles = rng.uniform(-np.pi, np.pi, 400)
    velocity = np.column_stack([np.cos(angles), np.sin(angles)])
    crossings = source.emit_many(velocity)
    preferred = participant.tuning.preferred_direction_rad
    projection = velocity @ np.vstack([np.cos(preferred), np.sin(preferred)])
    tuned = participant.visibility * participant.tuning.depth_hz > 5.0  # channels with visible tuning
    assert tuned.sum() >= 5
    correlations = [np.corrcoef(projection[:, c], crossings[:, c])[0, 1] for c in np.flatnonzero(tuned)]
    counts = participant.sample_counts(velocity, seed=6)  # the counts path, same intentions
    expected = [np.corrcoef(projection[:, c], counts[:, c])[0, 1] for c in np.flatnonzero(tuned)]
    assert np.median(correlations) > 0.1
    assert np.median(correlations) > 0.7 * np.median(expected)
    shuffled = [np.corrcoef(projection[::-1, c], crossings[:, c])[0, 1] for c in np.flatnonzero(tuned)]
    assert abs(np.median(shuffled)) < 0.1


def test_dead_channels_give_zero_features_and_the_others_keep_theirs(participant):
    dead = [0, 5, 31]
    source = ImplantFeatureSource(participant, features="both", dead_channels=dead)
    source.start(seed=1)
    rows = source.emit_many(*_random_intentions(50, seed=7))
    for channel in dead:
        np.testing.assert_array_equal(rows[:, channel], 0.0)
        np.testing.assert_array_equal(rows[:, N_CHANNELS + channel], 0.0)
    live = np.setdiff1d(np.arange(N_CHANNELS), dead)
    assert np.all(rows[:, N_CHANNELS + live] > 0)  # spike-band power of live electrodes
    assert rows[:, live].sum() > 0


def test_bad_input_errors(participant):
    with pytest.raises(InvalidInputError, match="features must be one of"):
        ImplantFeatureSource(participant, features="lfp")
    with pytest.raises(InvalidInputError, match="dead_channels must be channel indices"):
        ImplantFeatureSource(participant, dead_channels=[N_CHANNELS])
    with pytest.raises(InvalidInputError, match="must not set 'bin_ms'"):
        ImplantFeatureSource(participant, chain_options={"bin_ms": 10.0})
    with pytest.raises(InvalidInputError, match="participant must be a SimulatedParticipant"):
        ImplantFeatureSource(object())
    with pytest.raises(InvalidInputError, match="n_electrodes must be"):
        ImplantFeatureSource(SimulatedParticipant(n_channels=20, seed=0))
    source = ImplantFeatureSource(participant)
    with pytest.raises(InvalidInputError, match="call start"):
        source.emit(_intention([0.0, 0.0]))
    source.start(seed=0)
    with pytest.raises(InvalidInputError, match="intention.click must lie in"):
        source.emit(_intention([0.0, 0.0], click=2.0))
    with pytest.raises(InvalidInputError, match="intention.velocity"):
        source.emit(Intention(np.zeros(3), 0.0, np.zeros(2)))
    with pytest.raises(InvalidInputError, match="intention must have velocity"):
        source.emit(np.zeros(2))
    with pytest.raises(InvalidInputError, match="velocity"):
        source.emit(_intention([np.nan, 0.0]))


def test_fractional_bins_carry_the_fraction_and_stay_on_the_control_clock():
    assert bin_ratio_for(19531.25, 20.0, fractional=True) == (3125, 8)
    assert bin_ratio_for(19531.25, 20.0, fractional=False) == (391, 1)
    stage = SpikeBandPower(19531.25, 1, bin_ms=20.0, fractional_bins=True)
    widths = np.diff([stage.clock.bin_start(k) for k in range(801)])
    assert set(widths.tolist()) == {390, 391} and widths.sum() == 800 * Fraction(3125, 8)
    samples = np.arange(3125 * 2, dtype=np.float32)[:, np.newaxis]
    rows = stage.process(samples)
    starts = [stage.clock.bin_start(k) for k in range(17)]
    expected = [samples[a:b, 0].mean() for a, b in zip(starts[:-1], starts[1:], strict=True)]
    np.testing.assert_allclose(rows[:, 0], expected, rtol=1e-12)
    counter = CrossingCounter(19531.25, 1, bin_ms=20.0, fractional_bins=True)
    edges = np.array(starts)
    events = SpikeEvents(np.sort(np.concatenate([edges[1:8] - 1, edges[1:8]])), np.zeros(14, np.int64),
                         fs_hz=19531.25, n_channels=1)
    counts = counter.process(events, int(edges[8]))
    np.testing.assert_array_equal(counts[:, 0], [1, 2, 2, 2, 2, 2, 2, 1])


def test_decoders_and_the_guard_take_crossings_plus_sbp(participant):
    """Features of width 2 x n_channels fit and step like counts; a dead electrode is constant to the guard."""
    from neurolace.decode import KalmanFilter, SignalGuard

    time_s = np.arange(600) * participant.control.loop_s
    velocity = 0.8 * np.column_stack([np.sin(2 * np.pi * time_s / 3.1), np.cos(2 * np.pi * time_s / 2.3)])
    source = ImplantFeatureSource(participant, features="both", dead_channels=[2])
    source.start(seed=4)
    features = source.emit_many(velocity)
    decoder = KalmanFilter().fit(features[:450], velocity[:450])
    decoded = decoder.predict(features[450:])
    assert decoded.shape == (150, 2)
    correlation = [np.corrcoef(decoded[:, d], velocity[450:, d])[0, 1] for d in range(2)]
    assert min(correlation) > 0.3
    decoder.reset()
    stepped = np.array([decoder.step(row) for row in features[450:460]])
    np.testing.assert_allclose(stepped, decoded[:10], rtol=1e-9, atol=1e-12)
    guard = SignalGuard().fit(features[:450], velocity[:450])
    assert guard.constant_[[2, N_CHANNELS + 2]].all() and guard.constant_.sum() == 2
