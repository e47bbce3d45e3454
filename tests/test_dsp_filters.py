"""Band-pass stages against scipy (sosfilt, lfilter of the equivalent FIR), chunk invariance, response, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolace.core import InvalidInputError, Recording
from neurolace.dsp import (
    BandpassFilter,
    LinearPhaseBandpass,
    MovingAverageBandpass,
    bandpass_filter,
    design_bandpass,
    design_fir_bandpass,
    design_moving_average_highpass,
    moving_average_highpass_gain,
)

FS_HZ = 19531.0


def _chunks(array: np.ndarray, sizes: list[int]):
    start = 0
    for size in sizes:
        yield array[start : start + size]
        start += size
    if start < array.shape[0]:
        yield array[start:]


def _scipy_reference(stage: BandpassFilter, samples: np.ndarray, scale: float = 1.0) -> np.ndarray:
    scaled = samples.astype(np.float32) * np.float32(scale)
    sos = stage.sos.astype(np.float32)
    zi = scipy.signal.sosfilt_zi(stage.sos).astype(np.float32)[:, :, np.newaxis] * scaled[0]
    out, _ = scipy.signal.sosfilt(sos, scaled, axis=0, zi=zi)
    return out


def test_whole_array_is_bit_identical_to_scipy_sosfilt(rng):
    samples = rng.normal(0, 20, size=(1000, 7)).astype(np.float32)
    stage = BandpassFilter(FS_HZ, 7)
    np.testing.assert_array_equal(stage.process(samples), _scipy_reference(stage, samples))


def test_int16_codes_with_scale_match_scipy_on_scaled_floats(rng):
    codes = rng.integers(-500, 500, size=(777, 3)).astype(np.int16)
    stage = BandpassFilter(FS_HZ, 3, scale=0.195)
    np.testing.assert_array_equal(stage.process(codes), _scipy_reference(stage, codes, 0.195))


def test_zero_initial_state_matches_plain_sosfilt(rng):
    samples = rng.normal(0, 1, size=(500, 2))
    stage = BandpassFilter(FS_HZ, 2, initial="zero")
    expected = scipy.signal.sosfilt(stage.sos.astype(np.float32), samples.astype(np.float32), axis=0)
    np.testing.assert_allclose(stage.process(samples), expected, rtol=0, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), max_size=12), st.integers(1, 5))
def test_any_chunking_equals_scipy_on_the_whole_array(sizes, n_channels):
    samples = np.random.default_rng(len(sizes) * 7 + n_channels).normal(0, 30, size=(1500, n_channels))
    stage = BandpassFilter(FS_HZ, n_channels)
    chunked = np.concatenate([stage.process(chunk) for chunk in _chunks(samples, sizes)])
    np.testing.assert_array_equal(chunked, _scipy_reference(stage, samples))


def test_one_sample_chunks_equal_whole(rng):
    samples = rng.normal(0, 5, size=(200, 1))
    whole = BandpassFilter(FS_HZ, 1).process(samples)
    stage = BandpassFilter(FS_HZ, 1)
    np.testing.assert_array_equal(
        np.concatenate([stage.process(samples[i : i + 1]) for i in range(200)]), whole
    )


def test_dc_offset_does_not_ring_with_steady_initial_state():
    samples = np.full((2000, 1), 1600.0)  # a DC offset like the locust tetrode's codes
    assert np.abs(BandpassFilter(15000.0, 1).process(samples)).max() < 1e-2
    assert np.abs(BandpassFilter(15000.0, 1, initial="zero").process(samples)).max() > 100


def test_passband_and_stopband_gains():
    time_s = np.arange(int(FS_HZ)) / FS_HZ
    stage_kwargs = {"fs_hz": FS_HZ, "n_channels": 1}
    for frequency_hz, low, high in ((1500.0, 0.97, 1.03), (50.0, 0.0, 0.002), (9000.0, 0.0, 0.05)):
        tone = np.sin(2 * np.pi * frequency_hz * time_s)[:, np.newaxis]
        out = BandpassFilter(**stage_kwargs).process(tone)[int(FS_HZ) // 2 :]
        gain = out.std() * np.sqrt(2)
        assert low <= gain <= high, (frequency_hz, gain)


def test_empty_chunk_returns_empty_and_keeps_state(rng):
    samples = rng.normal(size=(100, 2))
    stage = BandpassFilter(FS_HZ, 2)
    first = stage.process(samples[:50])
    assert stage.process(np.zeros((0, 2))).shape == (0, 2)
    rest = stage.process(samples[50:])
    np.testing.assert_array_equal(np.concatenate([first, rest]), BandpassFilter(FS_HZ, 2).process(samples))


def test_one_dimensional_chunk_for_one_channel(rng):
    samples = rng.normal(size=64)
    out = BandpassFilter(FS_HZ, 1).process(samples)
    assert out.shape == (64, 1) and out.dtype == np.float32


def test_reset_restarts(rng):
    samples = rng.normal(size=(300, 2))
    stage = BandpassFilter(FS_HZ, 2)
    first = stage.process(samples)
    stage.reset()
    np.testing.assert_array_equal(stage.process(samples), first)


def test_verb_over_recording_matches_stage(rng):
    codes = rng.integers(-300, 300, size=(20000, 3)).astype(np.int16)
    recording = Recording(codes, fs_hz=FS_HZ, gain_uv=0.5)
    expected = BandpassFilter(FS_HZ, 3, scale=0.5).process(codes)
    np.testing.assert_array_equal(bandpass_filter(recording), expected)


def test_errors_name_the_parameter():
    with pytest.raises(
        InvalidInputError,
        match=r"high_hz must lie between low_hz \(300\) and the Nyquist frequency \(5000 Hz\), got 6000",
    ):
        BandpassFilter(10000.0, 2)
    with pytest.raises(InvalidInputError, match="low_hz must be below the Nyquist frequency"):
        design_bandpass(1000.0, 600.0, None, 2)
    with pytest.raises(InvalidInputError, match=r"chunk must have shape \(n_samples, 2\), got \(10, 3\)"):
        BandpassFilter(FS_HZ, 2).process(np.zeros((10, 3)))
    with pytest.raises(InvalidInputError, match="chunk must be finite"):
        BandpassFilter(FS_HZ, 1).process(np.array([[0.0], [np.nan]]))
    with pytest.raises(InvalidInputError, match="fs_hz must be a positive finite number"):
        BandpassFilter(-5.0, 1)
    with pytest.raises(InvalidInputError, match="recording must be a Recording"):
        bandpass_filter(np.zeros((10, 2)))


def test_linear_phase_fir_matches_scipy_lfilter_with_a_steady_start(rng):
    codes = rng.integers(-400, 400, size=(2000, 3)).astype(np.int16)
    stage = LinearPhaseBandpass(FS_HZ, 3, scale=0.5)
    scaled = codes.astype(np.float64) * 0.5
    history = np.repeat(scaled[:1], stage.n_taps - 1, axis=0)
    expected = scipy.signal.lfilter(stage.taps, 1.0, np.concatenate([history, scaled]), axis=0)[
        stage.n_taps - 1 :
    ]
    np.testing.assert_allclose(stage.process(codes), expected, rtol=0, atol=1e-3)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_fir_any_chunking_equals_whole(sizes):
    samples = np.random.default_rng(len(sizes)).normal(0, 30, size=(1200, 2))
    whole = LinearPhaseBandpass(FS_HZ, 2, n_taps=31).process(samples)
    stage = LinearPhaseBandpass(FS_HZ, 2, n_taps=31)
    np.testing.assert_array_equal(np.concatenate([stage.process(c) for c in _chunks(samples, sizes)]), whole)


def test_fir_delays_a_tone_by_half_its_length_without_distortion():
    time_s = np.arange(int(FS_HZ)) / FS_HZ
    tone = np.sin(2 * np.pi * 1500.0 * time_s)[:, np.newaxis]
    stage = LinearPhaseBandpass(FS_HZ, 1)
    out = stage.process(tone)[:, 0]
    delay = stage.delay_samples
    assert delay == 50
    np.testing.assert_allclose(out[1000:], tone[1000 - delay : -delay, 0], atol=0.02)


def test_fir_errors():
    with pytest.raises(InvalidInputError, match="n_taps must be odd"):
        design_fir_bandpass(FS_HZ, 300.0, 6000.0, 100)
    with pytest.raises(InvalidInputError, match="high_hz must lie between low_hz"):
        LinearPhaseBandpass(10000.0, 1)


def test_moving_average_design_has_half_gain_at_the_corner():
    assert design_moving_average_highpass(19531.25, 300.0) == 29
    for fs_hz, low_hz in ((19531.25, 300.0), (15000.0, 300.0), (30000.0, 250.0), (19531.0, 1000.0)):
        length = design_moving_average_highpass(fs_hz, low_hz)
        gain = moving_average_highpass_gain(fs_hz, length, low_hz)
        # the nearest integer length: neighbours are no closer to one half
        for other in (length - 1, length + 1):
            assert abs(gain - 0.5) <= abs(moving_average_highpass_gain(fs_hz, other, low_hz) - 0.5)
        assert abs(gain - 0.5) < 0.03


def test_moving_average_bandpass_equals_its_fir_in_scipy(rng):
    codes = rng.integers(-400, 400, size=(3000, 3)).astype(np.int16)
    stage = MovingAverageBandpass(FS_HZ, 3, scale=0.5)
    assert stage.length == 29 and stage.lowpass.size == 11 and stage.delay_samples == 33
    assert stage.taps.size == 2 * 29 - 1 + 10
    np.testing.assert_allclose(stage.taps.sum(), 0.0, atol=1e-12)  # no DC gain
    scaled = codes.astype(np.float64) * 0.5
    history = np.repeat(scaled[:1], stage.taps.size - 1, axis=0)
    expected = scipy.signal.lfilter(stage.taps, 1.0, np.concatenate([history, scaled]), axis=0)[
        stage.taps.size - 1 :
    ]
    np.testing.assert_allclose(stage.process(codes), expected, rtol=0, atol=2e-4)


def test_moving_average_response_matches_the_analytic_gain():
    stage = MovingAverageBandpass(FS_HZ, 1)
    frequencies_hz = np.array([60.0, 150.0, 300.0, 1000.0, 3000.0])
    _, response = scipy.signal.freqz(stage.taps, worN=frequencies_hz, fs=FS_HZ)
    _, lowpass = scipy.signal.freqz(stage.lowpass, worN=frequencies_hz, fs=FS_HZ)
    expected = moving_average_highpass_gain(FS_HZ, stage.length, frequencies_hz) * np.abs(lowpass)
    np.testing.assert_allclose(np.abs(response), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.abs(response), [0.026, 0.15, 0.50, 0.95, 0.99], atol=0.01)
    time_s = np.arange(int(FS_HZ)) / FS_HZ
    for frequency_hz, gain in zip(frequencies_hz, expected):
        tone = np.sin(2 * np.pi * frequency_hz * time_s)[:, np.newaxis]
        out = MovingAverageBandpass(FS_HZ, 1).process(tone)[:, 0]
        # linear phase: the output is the tone, scaled by the gain and delayed by delay_samples
        delayed = gain * tone[2000 - stage.delay_samples : -stage.delay_samples, 0]
        np.testing.assert_allclose(out[2000:], delayed, atol=1e-3)


def test_moving_average_constant_codes_give_exactly_zero_after_a_long_run(rng):
    noisy = rng.integers(-512, 512, size=(200_000, 2)).astype(np.int16)
    constant = np.full((100, 2), 37, dtype=np.int16)
    stage = MovingAverageBandpass(FS_HZ, 2, high_hz=None)
    stage.process(noisy)
    out = stage.process(constant)
    assert np.all(out[2 * stage.length :] == 0.0)  # exact integer sums: no drift
    assert np.all(MovingAverageBandpass(FS_HZ, 1).process(np.full((300, 1), 900, np.int16)) == 0.0)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    st.sampled_from([np.int16, np.float32, np.float64]),
)
def test_moving_average_any_chunking_equals_whole(sizes, dtype):
    samples = (np.random.default_rng(len(sizes)).normal(0, 30, size=(1201, 3)) + 500).astype(dtype)
    whole = MovingAverageBandpass(FS_HZ, 3, scale=0.195).process(samples)
    stage = MovingAverageBandpass(FS_HZ, 3, scale=0.195)
    chunked = np.concatenate([stage.process(c) for c in _chunks(samples, sizes)])
    np.testing.assert_array_equal(chunked, whole)
    stage.reset()
    np.testing.assert_array_equal(stage.process(samples), whole)


def test_moving_average_one_channel_one_dimensional_and_empty():
    stage = MovingAverageBandpass(15000.0, 1, low_hz=300.0, high_hz=5000.0)
    assert stage.process(np.zeros((0, 1))).shape == (0, 1)
    assert stage.process(np.arange(7.0)).shape == (7, 1)
    assert "length=22" in repr(stage)


def test_moving_average_errors():
    with pytest.raises(InvalidInputError, match="lowpass_taps must be odd"):
        MovingAverageBandpass(FS_HZ, 1, lowpass_taps=10)
    with pytest.raises(InvalidInputError, match="high_hz must lie between low_hz"):
        MovingAverageBandpass(10000.0, 1)
    with pytest.raises(InvalidInputError, match="low_hz=0.5 needs a moving average of ~17304 samples"):
        MovingAverageBandpass(FS_HZ, 1, low_hz=0.5)
    with pytest.raises(InvalidInputError, match="low_hz must be below the Nyquist frequency"):
        design_moving_average_highpass(FS_HZ, 10000.0)
