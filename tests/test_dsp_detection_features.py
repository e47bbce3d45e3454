"""ThresholdDetector, SpikeBandPower and CrossingCounter on planted, known answers."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import InvalidInputError, Recording, SpikeEvents
from neurolace.dsp import CrossingCounter, SpikeBandPower, ThresholdDetector, bin_crossings, spike_band_power

FS_HZ = 20000.0  # 1 ms = 20 samples


def _pulses(
    n_samples: int, n_channels: int, plants: list[tuple[int, int, float]], width: int = 5
) -> np.ndarray:
    """Zero signal with negative rectangular pulses: (start sample, channel, depth)."""
    samples = np.zeros((n_samples, n_channels), dtype=np.float32)
    for start, channel, depth in plants:
        samples[start : start + width, channel] = -depth
    return samples


def _detect(samples, noise, sizes=None, **kwargs):
    detector = ThresholdDetector(FS_HZ, samples.shape[1], **kwargs)
    if sizes is None:
        sizes = [samples.shape[0]]
    parts, start = [], 0
    for size in sizes:
        parts.append(detector.process(samples[start : start + size], noise))
        start += size
    parts.append(detector.finish())
    return SpikeEvents.concatenate(parts)


def test_planted_spikes_are_found_at_their_first_sample_with_their_depth():
    plants = [(100, 0, 10.0), (400, 1, 8.0), (401, 0, 6.0), (900, 2, 20.0)]
    events = _detect(_pulses(1000, 3, plants), np.ones(3))
    assert events.sample_index.tolist() == [100, 400, 401, 900]
    assert events.channel_index.tolist() == [0, 1, 0, 2]
    np.testing.assert_array_equal(events.amplitude_uv, [-10.0, -8.0, -6.0, -20.0])


def test_threshold_scales_with_noise_and_spares_small_pulses():
    plants = [(100, 0, 4.0), (300, 0, 5.0)]
    events = _detect(_pulses(500, 1, plants), np.array([1.0]))  # threshold -4.5
    assert events.sample_index.tolist() == [300]
    events = _detect(_pulses(500, 1, plants), np.array([0.5]))  # threshold -2.25
    assert events.sample_index.tolist() == [100, 300]


def test_dead_time_is_honoured_and_measured_from_the_detection():
    # pulses 10 samples (0.5 ms) apart: the second is inside the 1 ms dead time
    near = _detect(_pulses(200, 1, [(50, 0, 10.0), (60, 0, 10.0)], width=3), np.ones(1))
    assert near.sample_index.tolist() == [50]
    # exactly 20 samples (1 ms) later is allowed again
    far = _detect(_pulses(200, 1, [(50, 0, 10.0), (70, 0, 10.0)], width=3), np.ones(1))
    assert far.sample_index.tolist() == [50, 70]
    # dead time 0 still needs a return above threshold between crossings
    zero = _detect(_pulses(200, 1, [(50, 0, 10.0), (53, 0, 10.0)], width=3), np.ones(1), dead_time_ms=0)
    assert zero.sample_index.tolist() == [50]


def test_dead_time_and_below_state_carry_across_chunk_borders():
    samples = _pulses(200, 1, [(50, 0, 10.0), (60, 0, 10.0), (100, 0, 10.0)], width=3)
    for sizes in ([55, 145], [51, 1, 1, 147], [1] * 200, [50, 0, 150], [101, 99]):
        events = _detect(samples, np.ones(1), sizes=sizes)
        assert events.sample_index.tolist() == [50, 100], sizes
        np.testing.assert_array_equal(events.amplitude_uv, [-10.0, -10.0])


def test_signal_below_threshold_at_the_first_sample_counts_once():
    samples = np.full((30, 1), -10.0, dtype=np.float32)
    assert _detect(samples, np.ones(1)).sample_index.tolist() == [0]


def test_amplitude_is_the_trough_within_the_dead_time_window():
    samples = np.zeros((100, 1), dtype=np.float32)
    samples[10:30, 0] = -np.concatenate([np.linspace(5, 25, 10), np.linspace(25, 5, 10)])
    samples[35, 0] = -100.0  # after the 20-sample window: its own event, not part of the first
    events = _detect(samples, np.ones(1), sizes=[12, 3, 85])
    assert events.sample_index.tolist() == [10, 35]
    np.testing.assert_allclose(events.amplitude_uv, [-25.0, -100.0])


def test_positive_threshold_detects_upward_crossings():
    samples = -_pulses(300, 2, [(100, 1, 9.0)])
    events = _detect(samples, np.ones(2), threshold=4.5)
    assert events.sample_index.tolist() == [100] and events.channel_index.tolist() == [1]
    assert events.amplitude_uv[0] == pytest.approx(9.0)


def test_finalized_through_lags_only_while_an_amplitude_window_is_open():
    detector = ThresholdDetector(FS_HZ, 1)
    samples = _pulses(100, 1, [(90, 0, 10.0)])
    assert detector.process(samples, np.ones(1)).n_spikes == 0
    assert detector.finalized_through == 90
    assert detector.process(np.zeros((20, 1)), np.ones(1)).sample_index.tolist() == [90]
    assert detector.finalized_through == 120


def _definition(samples, thresholds, dead_samples):
    """The detector's definition, one channel and one sample at a time (slow, obviously right)."""
    found = []
    negative = thresholds[0] < 0
    for channel in range(samples.shape[1]):
        x = samples[:, channel]
        beyond = x < thresholds[channel] if negative else x > thresholds[channel]
        last = None
        for index in range(x.size):
            crossing = beyond[index] and (index == 0 or not beyond[index - 1])
            if crossing and (last is None or index - last >= dead_samples):
                window = x[index : index + dead_samples]
                found.append((index, channel, window.min() if negative else window.max()))
                last = index
    found.sort()
    return found


@pytest.mark.parametrize("dead_time_ms", [0.0, 0.35, 1.0, 2.5])
@pytest.mark.parametrize("threshold", [-1.5, 2.0])
def test_detector_equals_its_definition_on_noise_for_any_chunking(rng, dead_time_ms, threshold):
    samples = rng.standard_normal((1500, 13)).astype(np.float32)
    noise = np.full(13, 1.0)
    sizes = list(rng.integers(1, 97, size=60))
    events = _detect(samples, noise, sizes, threshold=threshold, dead_time_ms=dead_time_ms)
    dead_samples = ThresholdDetector(FS_HZ, 13, dead_time_ms=dead_time_ms).dead_samples
    expected = _definition(samples, np.full(13, np.float32(threshold)), dead_samples)
    assert len(expected) > 100
    got = list(zip(events.sample_index.tolist(), events.channel_index.tolist(), events.amplitude_uv.tolist()))
    assert got == [(i, c, float(a)) for i, c, a in expected]


def test_detector_errors():
    with pytest.raises(InvalidInputError, match="threshold must be a finite non-zero multiple"):
        ThresholdDetector(FS_HZ, 1, threshold=0)
    with pytest.raises(InvalidInputError, match=r"noise_uv must have shape \(2\), got \(3,\)"):
        ThresholdDetector(FS_HZ, 2).process(np.zeros((5, 2)), np.ones(3))
    with pytest.raises(InvalidInputError, match="dead_time_ms must be a finite number >= 0"):
        ThresholdDetector(FS_HZ, 1, dead_time_ms=-1)


def test_sbp_mean_abs_and_mean_square_known_answers():
    samples = np.tile(np.array([[3.0], [-1.0]], dtype=np.float32), (10, 1))  # 20 samples, 1 ms at 20 kHz
    mean_abs = SpikeBandPower(FS_HZ, 1, bin_ms=0.5).process(samples)
    np.testing.assert_allclose(mean_abs, np.full((2, 1), 2.0))
    mean_square = SpikeBandPower(FS_HZ, 1, bin_ms=0.5, statistic="mean_square").process(samples)
    np.testing.assert_allclose(mean_square, np.full((2, 1), 5.0))


def test_sbp_partial_bins_carry_across_chunks(rng):
    samples = rng.normal(size=(1003, 3)).astype(np.float32)
    whole = SpikeBandPower(FS_HZ, 3, bin_ms=2.5).process(samples)
    stage = SpikeBandPower(FS_HZ, 3, bin_ms=2.5)
    parts = [stage.process(samples[start : start + 37]) for start in range(0, 1003, 37)]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6)
    assert whole.shape == (1003 // 50, 3)


def test_bin_width_is_rounded_to_whole_samples():
    stage = SpikeBandPower(19531.0, 1, bin_ms=20.0)
    assert stage.bin_samples == 391
    assert stage.bin_width_s == pytest.approx(391 / 19531.0)


def test_crossing_counter_closes_bins_only_when_told_and_counts_per_channel():
    counter = CrossingCounter(1000.0, 2, bin_ms=10.0)
    events = SpikeEvents([1, 5, 12, 29], [0, 0, 1, 1], fs_hz=1000.0, n_channels=2)
    np.testing.assert_array_equal(counter.process(events, 25), [[2, 0], [0, 1]])
    np.testing.assert_array_equal(
        counter.process(SpikeEvents.empty(fs_hz=1000.0, n_channels=2), 30), [[0, 1]]
    )
    with pytest.raises(InvalidInputError, match="events must arrive in time order"):
        counter.process(SpikeEvents([3], [0], fs_hz=1000.0, n_channels=2), 40)


def test_bin_crossings_drops_the_partial_last_bin():
    events = SpikeEvents([0, 10, 19, 20, 25], [0, 0, 0, 0, 0], fs_hz=1000.0, n_channels=1)
    binned = bin_crossings(events, 25, bin_ms=10.0)
    np.testing.assert_array_equal(binned.data, [[1], [2]])
    assert binned.kind == "threshold_crossings"


def test_spike_band_power_verb_on_a_tone():
    fs_hz = 20000.0
    time_s = np.arange(int(fs_hz)) / fs_hz
    codes = np.round(1000 * np.sin(2 * np.pi * 600.0 * time_s)).astype(np.int16)
    features = spike_band_power(Recording(codes, fs_hz=fs_hz, gain_uv=0.1), bin_ms=50.0)
    # mean |sin| = 2/pi for a 100 µV tone inside the 300-1000 Hz band (gain near 1 at 600 Hz)
    late = features.data[5:, 0]
    np.testing.assert_allclose(late, 100 * 2 / np.pi, rtol=0.05)
    assert features.kind == "spike_band_power" and features.n_bins == 20
