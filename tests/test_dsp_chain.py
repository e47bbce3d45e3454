"""SignalChain: the chunking contract, planted spikes through the whole chain, features, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolace.core import ElectrodeGeometry, InvalidInputError, Recording, SpikeEvents
from neurolace.dsp import SignalChain, run_signal_chain

FS_HZ = 19531.0
GAIN_UV = 0.5


def _spike_waveform(fs_hz: float) -> np.ndarray:
    """A 1.2 ms biphasic extracellular spike, trough -1 at 0.3 ms."""
    time_ms = np.arange(int(1.2e-3 * fs_hz)) / fs_hz * 1e3
    return -np.exp(-(((time_ms - 0.3) / 0.1) ** 2)) + 0.35 * np.exp(-(((time_ms - 0.7) / 0.2) ** 2))


def _synthetic(
    n_samples: int, n_channels: int, *, seed: int, spike_uv: float = 120.0, noise_uv: float = 10.0
):
    """Noise, a common-mode hum and spikes every ~10 ms on every channel; returns (recording, spike starts)."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, noise_uv, size=(n_samples, n_channels))
    signal += 40 * np.sin(2 * np.pi * 60 * np.arange(n_samples) / FS_HZ)[:, np.newaxis]
    waveform = spike_uv * _spike_waveform(FS_HZ)
    starts = {}
    for channel in range(n_channels):
        times = np.arange(200 + 37 * channel, n_samples - waveform.size, 197)
        for start in times:
            signal[start : start + waveform.size, channel] += waveform
        starts[channel] = times
    codes = np.round(signal / GAIN_UV).astype(np.int16)
    return Recording(codes, fs_hz=FS_HZ, gain_uv=GAIN_UV), starts


CHAIN_OPTIONS = {"noise_window_s": 0.05, "bin_ms": 5.0}  # window ends at sample 977, mid-recording


def _run(recording: Recording, sizes: list[int], **options) -> tuple[SpikeEvents, np.ndarray]:
    chain = SignalChain.for_recording(recording, **{**CHAIN_OPTIONS, **options})
    events, features = [], []
    start = 0
    for size in sizes:
        output = chain.process(recording.samples[start : start + size])
        assert output.features.start_sample == sum(f.shape[0] for f in features) * chain.sbp.bin_samples
        events.append(output.events)
        features.append(output.features.data)
        start += size
    if start < recording.n_samples:
        output = chain.process(recording.samples[start:])
        events.append(output.events)
        features.append(output.features.data)
    output = chain.finish()
    events.append(output.events)
    features.append(output.features.data)
    return SpikeEvents.concatenate(events), np.concatenate(features)


RECORDING, _ = _synthetic(3001, 3, seed=11)
WHOLE_EVENTS, WHOLE_FEATURES = _run(RECORDING, [RECORDING.n_samples])


def _assert_same(events: SpikeEvents, features: np.ndarray, reference_events, reference_features):
    np.testing.assert_array_equal(events.sample_index, reference_events.sample_index)
    np.testing.assert_array_equal(events.channel_index, reference_events.channel_index)
    np.testing.assert_array_equal(events.amplitude_uv, reference_events.amplitude_uv)
    assert features.shape == reference_features.shape
    np.testing.assert_allclose(features, reference_features, rtol=1e-9, atol=1e-9)


def test_whole_run_found_spikes_and_full_bins():
    assert WHOLE_EVENTS.n_spikes > 30
    assert WHOLE_FEATURES.shape == (3001 // 98, 6)  # 5 ms = 98 samples; counts then SBP
    in_full_bins = WHOLE_EVENTS.sample_index < WHOLE_FEATURES.shape[0] * 98  # the partial last bin is dropped
    expected = np.bincount(WHOLE_EVENTS.channel_index[in_full_bins], minlength=3)
    np.testing.assert_array_equal(WHOLE_FEATURES[:, :3].sum(axis=0), expected)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=25))
def test_random_chunkings_equal_whole(sizes):
    events, features = _run(RECORDING, sizes)
    _assert_same(events, features, WHOLE_EVENTS, WHOLE_FEATURES)


@pytest.mark.parametrize("size", [1, 2, 7, 97, 98, 391, 977, 978, 3000, 3001, 5000])
def test_fixed_chunk_sizes_equal_whole(size):
    sizes = [size] * (RECORDING.n_samples // size + 1)
    events, features = _run(RECORDING, sizes)
    _assert_same(events, features, WHOLE_EVENTS, WHOLE_FEATURES)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=20))
def test_chunking_contract_holds_with_noise_updates_median_reference_and_groups(sizes):
    options = {
        "noise_update_weight": 0.3,
        "reference": "median",
        "reference_groups": [0, 1, 0],
        "sbp_band_hz": None,
    }
    whole = _run(RECORDING, [RECORDING.n_samples], **options)
    _assert_same(*_run(RECORDING, sizes, **options), *whole)


def _lone_spike(trough_uv: float) -> tuple[Recording, int]:
    """One spike of ``trough_uv`` at sample ~2500 in 10 µV of noise; returns it and its trough sample."""
    codes = np.zeros((4000, 1), np.int16)
    waveform = np.round(trough_uv * _spike_waveform(FS_HZ) / GAIN_UV).astype(np.int16)
    codes[2500 : 2500 + waveform.size, 0] += waveform
    codes[:, 0] += np.random.default_rng(4).normal(0, 20, 4000).round().astype(np.int16)
    return Recording(codes, fs_hz=FS_HZ, gain_uv=GAIN_UV), 2500 + int(np.argmin(waveform))


def test_default_design_is_the_linear_phase_moving_average_and_events_are_on_the_file_clock():
    chain = SignalChain(FS_HZ, 3)
    assert chain.filter_design == "moving_average" and chain.delay_samples == 33
    assert "MovingAverageBandpass" in repr(chain)
    recording, trough = _lone_spike(400.0)
    events = run_signal_chain(recording, noise_window_s=0.05).events
    near = np.abs(events.sample_index - trough) <= 40
    # one crossing, on the falling flank just before the trough, not 33 samples (the delay) later
    assert near.sum() == 1 and trough - 5 <= events.sample_index[near][0] <= trough
    # the linear-phase filter keeps the trough's depth; the causal Butterworth shrinks it
    assert events.amplitude_uv[near][0] < -0.9 * 400
    causal = run_signal_chain(recording, noise_window_s=0.05, filter_design="butterworth").events
    assert -0.7 * 400 < causal.amplitude_uv[np.abs(causal.sample_index - trough) <= 40][0] < -0.5 * 400


@pytest.mark.parametrize(
    "options",
    [{"filter_design": "fir", "fir_taps": 41}, {"filter_design": "butterworth"}],
    ids=["fir", "butterworth"],
)
@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=20))
def test_chunking_contract_holds_with_the_other_filter_designs(options, sizes):
    whole = _run(RECORDING, [RECORDING.n_samples], **options)
    assert whole[0].n_spikes > 30
    _assert_same(*_run(RECORDING, sizes, **options), *whole)


@pytest.mark.parametrize("design", ["moving_average", "butterworth", "fir"])
def test_planted_spikes_are_detected_within_half_a_millisecond(design):
    recording, starts = _synthetic(int(FS_HZ), 4, seed=5, spike_uv=200.0)
    result = run_signal_chain(recording, noise_window_s=0.25, filter_design=design)
    trough_offset = int(0.3e-3 * FS_HZ)
    tolerance = int(0.5e-3 * FS_HZ)
    for channel in range(4):
        detected = result.events.sample_index[result.events.channel_index == channel]
        truth = starts[channel] + trough_offset
        distance = np.abs(detected[:, np.newaxis] - truth[np.newaxis, :])
        recall = np.mean(distance.min(axis=0) <= tolerance)
        precision = np.mean(distance.min(axis=1) <= tolerance)
        assert recall >= 0.98 and precision >= 0.98, (channel, recall, precision)
    np.testing.assert_allclose(result.thresholds_uv, -4.5 * result.noise_uv, rtol=1e-6)
    assert np.all(result.events.amplitude_uv <= result.thresholds_uv[result.events.channel_index])


def test_common_mode_is_removed_by_the_reference():
    n_samples = 8000
    hum = 500 * np.sin(2 * np.pi * 1000 * np.arange(n_samples) / FS_HZ)  # 1 kHz, inside the band
    noise = np.random.default_rng(2).normal(0, 10, size=(n_samples, 8))
    recording = Recording(
        np.round((noise + hum[:, np.newaxis]) / GAIN_UV).astype(np.int16), fs_hz=FS_HZ, gain_uv=GAIN_UV
    )
    referenced = run_signal_chain(recording, noise_window_s=0.1)
    unreferenced = run_signal_chain(recording, noise_window_s=0.1, reference=None)
    assert referenced.noise_uv.max() < 10 and unreferenced.noise_uv.min() > 100


def test_one_channel_empty_chunks_and_short_recordings():
    recording, _ = _synthetic(500, 1, seed=3)
    chain = SignalChain.for_recording(recording, noise_window_s=1.0, bin_ms=5.0, reference=None)
    assert chain.process(np.zeros((0, 1), np.int16)).events.n_spikes == 0
    first = chain.process(recording.samples)
    assert first.events.n_spikes == 0  # still inside the noise window
    last = chain.finish()  # the 500-sample recording is shorter than the window: use all of it
    assert last.events.n_spikes >= 1
    assert first.features.n_bins + last.features.n_bins == 500 // 98
    assert chain.noise_uv is not None


def test_empty_recording_gives_no_events_and_no_bins():
    recording = Recording(np.zeros((0, 2), np.int16), fs_hz=FS_HZ, gain_uv=1.0)
    result = run_signal_chain(recording)
    assert result.events.n_spikes == 0 and result.features.n_bins == 0


def test_reference_by_thread_uses_the_geometry():
    recording, _ = _synthetic(2000, 4, seed=9)
    threaded = Recording(
        recording.samples, fs_hz=FS_HZ, gain_uv=GAIN_UV, geometry=ElectrodeGeometry.threads(2, 2)
    )
    chain = SignalChain.for_recording(threaded, reference_by_thread=True)
    assert chain.reference.group_labels.tolist() == [0, 0, 1, 1]


def test_reset_reproduces_the_run():
    chain = SignalChain.for_recording(RECORDING, **CHAIN_OPTIONS)
    first = chain.process(RECORDING.samples).events
    chain.reset()
    again = chain.process(RECORDING.samples).events
    np.testing.assert_array_equal(first.sample_index, again.sample_index)


def test_chain_errors():
    with pytest.raises(InvalidInputError, match="reference must be one of 'mean', 'median', None; got 'car'"):
        SignalChain(FS_HZ, 2, reference="car")
    with pytest.raises(InvalidInputError, match=r"chunk must have shape \(n_samples, 2\), got \(4, 3\)"):
        SignalChain(FS_HZ, 2).process(np.zeros((4, 3), np.int16))
    with pytest.raises(InvalidInputError, match="chunk must be finite"):
        SignalChain(FS_HZ, 1).process(np.array([[1.0], [np.inf]]))
    with pytest.raises(InvalidInputError, match="gain_uv must be a positive finite number"):
        SignalChain(FS_HZ, 1, gain_uv=0)
    with pytest.raises(InvalidInputError, match=r"sbp_band_hz must be \(low_hz, high_hz\) or None"):
        SignalChain(FS_HZ, 1, sbp_band_hz=(300.0,))
    with pytest.raises(
        InvalidInputError,
        match="filter_design must be one of 'moving_average', 'butterworth', 'fir'; got 'bessel'",
    ):
        SignalChain(FS_HZ, 1, filter_design="bessel")
    with pytest.raises(InvalidInputError, match="chunk_ms must be a positive finite number"):
        run_signal_chain(RECORDING, chunk_ms=0)
