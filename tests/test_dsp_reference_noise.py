"""Common-average reference and MAD noise estimation on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import ElectrodeGeometry, InvalidInputError, Recording
from neurolace.dsp import (
    CommonAverageReference,
    NoiseEstimator,
    common_average_reference,
    estimate_noise,
    mad_noise,
)


def test_mean_reference_removes_a_common_signal_exactly(rng):
    private = rng.normal(size=(500, 8)).astype(np.float32)
    private -= private.mean(axis=1, keepdims=True)  # zero mean across channels at every sample
    common = (50 * np.sin(np.arange(500) / 7.0)).astype(np.float32)[:, np.newaxis]
    out = CommonAverageReference(8).process(private + common)
    np.testing.assert_allclose(out, private, atol=1e-4)


def test_median_reference_ignores_one_outlier_channel():
    samples = np.tile(np.array([1.0, 2.0, 3.0, 4.0, 1000.0], dtype=np.float32), (4, 1))
    out = CommonAverageReference(5, operator="median").process(samples)
    np.testing.assert_array_equal(out[0], [-2.0, -1.0, 0.0, 1.0, 997.0])


def test_reference_per_thread_uses_each_threads_own_mean():
    geometry = ElectrodeGeometry.threads(n_threads=2, electrodes_per_thread=3)
    samples = np.array([[1, 2, 3, 10, 20, 30]], dtype=np.float32)
    out = CommonAverageReference(6, groups=geometry).process(samples)
    np.testing.assert_allclose(out[0], [-1, 0, 1, -10, 0, 10])


def test_reference_with_interleaved_group_labels():
    samples = np.array([[1, 10, 3, 30]], dtype=np.float32)
    out = CommonAverageReference(4, groups=[0, 1, 0, 1]).process(samples)
    np.testing.assert_allclose(out[0], [-1, -10, 1, 10])


def test_single_channel_passes_through_and_empty_chunk_is_fine():
    stage = CommonAverageReference(1)
    np.testing.assert_array_equal(stage.process(np.full((3, 1), 2.5)), np.full((3, 1), 2.5))
    assert stage.process(np.zeros((0, 1))).shape == (0, 1)


def test_a_lone_channel_in_its_own_group_is_left_alone():
    samples = np.array([[1, 3, 7]], dtype=np.float32)
    np.testing.assert_allclose(CommonAverageReference(3, groups=[0, 0, 1]).process(samples), [[-1, 1, 7]])


def test_reference_verb_on_recording():
    recording = Recording(np.array([[2, 4], [6, 10]], dtype=np.int16), fs_hz=1000.0, gain_uv=0.5)
    np.testing.assert_allclose(common_average_reference(recording), [[-0.5, 0.5], [-1.0, 1.0]])


def test_reference_errors():
    with pytest.raises(
        InvalidInputError, match=r"groups must give one label per channel, shape \(4,\), got \(3,\)"
    ):
        CommonAverageReference(4, groups=[0, 0, 1])
    with pytest.raises(InvalidInputError, match="operator must be one of 'mean', 'median'; got 'mode'"):
        CommonAverageReference(4, operator="mode")


@pytest.mark.parametrize("sigma", [1.0, 7.5, 120.0])
def test_mad_of_gaussian_noise_is_within_3_percent_of_sigma(sigma):
    samples = np.random.default_rng(int(sigma * 10)).normal(0, sigma, size=(20000, 4))
    estimate = mad_noise(samples)
    np.testing.assert_allclose(estimate, sigma, rtol=0.03)


def test_mad_barely_moves_when_spikes_are_added(rng):
    noise = rng.normal(0, 10, size=(20000, 1))
    spiky = noise.copy()
    spiky[::200] -= 100  # 100 large spikes (10 sigma)
    assert abs(mad_noise(spiky)[0] / mad_noise(noise)[0] - 1) < 0.02
    assert spiky.std() / noise.std() > 1.1  # while the plain standard deviation is inflated


def test_mad_odd_and_even_lengths_and_one_dimensional_input():
    assert mad_noise(np.array([-3.0, 1.0, 2.0])) == pytest.approx(2.0 / 0.6745)
    assert mad_noise(np.array([[-4.0], [1.0], [2.0], [3.0]]))[0] == pytest.approx(2.5 / 0.6745)


def test_estimator_waits_for_its_window_then_keeps_the_first_estimate(rng):
    fs_hz = 1000.0
    samples = rng.normal(0, 2, size=(3000, 2)).astype(np.float32)
    stage = NoiseEstimator(fs_hz, 2, window_s=1.0)
    assert stage.process(samples[:999]) is None
    first = stage.process(samples[999:1500])
    np.testing.assert_array_equal(first, mad_noise(samples[:1000]))
    np.testing.assert_array_equal(stage.process(samples[1500:]), first)


def test_estimator_update_weight_blends_later_windows():
    fs_hz = 100.0
    quiet = np.random.default_rng(1).normal(0, 1, size=(100, 1)).astype(np.float32)
    loud = np.random.default_rng(2).normal(0, 4, size=(100, 1)).astype(np.float32)
    stage = NoiseEstimator(fs_hz, 1, window_s=1.0, update_weight=0.25)
    stage.process(quiet)
    stage.process(loud)
    expected = 0.75 * mad_noise(quiet) + 0.25 * mad_noise(loud)
    np.testing.assert_allclose(stage.noise_uv, expected)


def test_estimator_finish_uses_a_short_recording():
    samples = np.arange(1, 6, dtype=np.float32)[:, np.newaxis]
    stage = NoiseEstimator(1000.0, 1, window_s=1.0)
    assert stage.process(samples) is None
    assert stage.finish()[0] == pytest.approx(3.0 / 0.6745)


def test_estimate_noise_verb_on_white_noise():
    codes = np.random.default_rng(3).normal(0, 40, size=(40000, 2)).astype(np.int16)
    recording = Recording(codes, fs_hz=20000.0, gain_uv=0.25)
    # white noise of 10 µV through a 300-6000 Hz band keeps about (6000 - 300) / 10000 of its power
    expected = 10.0 * np.sqrt((6000 - 300) / 10000)
    np.testing.assert_allclose(estimate_noise(recording), expected, rtol=0.06)


def test_noise_errors():
    with pytest.raises(InvalidInputError, match=r"update_weight must lie in \[0, 1\], got 2"):
        NoiseEstimator(1000.0, 1, update_weight=2)
    with pytest.raises(InvalidInputError, match="samples must not be empty"):
        mad_noise(np.zeros((0, 2)))
    with pytest.raises(InvalidInputError, match="window_s must be a positive finite number"):
        NoiseEstimator(1000.0, 1, window_s=0)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (513, 65), (1024, 130), (1537, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_mad_noise_equals_the_exact_median_across_tile_and_channel_block_edges(shape, dtype):
    # the tiled transpose (512 samples x 64 channels) must select exactly the median of |x|
    rng = np.random.default_rng(7)
    samples = (rng.standard_normal(shape) * 20).astype(dtype)
    expected = np.median(np.abs(samples).astype(np.float64), axis=0) / 0.6745
    np.testing.assert_array_equal(mad_noise(samples), expected)


@pytest.mark.parametrize("n_channels", [2, 7, 8, 13, 128, 129, 300, 1024])
def test_mean_reference_is_bit_identical_to_numpy_mean_in_float32(rng, n_channels):
    samples = (rng.standard_normal((50, n_channels)) * 40 + 3).astype(np.float32)
    expected = samples - samples.mean(axis=1, keepdims=True).astype(np.float32)
    np.testing.assert_array_equal(CommonAverageReference(n_channels).process(samples), expected)


@pytest.mark.parametrize("interleaved", [False, True])
def test_mean_reference_per_group_is_bit_identical_to_numpy(rng, interleaved):
    # runs of 16 channels (a thread each) take the kernel; interleaved groups keep numpy's own mean
    labels = np.arange(320) % 20 if interleaved else np.arange(320) // 16
    samples = (rng.standard_normal((40, 320)) * 25).astype(np.float32)
    expected = samples.copy()
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if not interleaved:
            members = slice(members[0], members[-1] + 1)
        block = samples[:, members]
        expected[:, members] = block - block.mean(axis=1, keepdims=True).astype(np.float32)
    np.testing.assert_array_equal(CommonAverageReference(320, groups=labels).process(samples), expected)
