"""The background generator: its ziggurat normals, its one-filter noise and the kernel against its reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import signal, special, stats

from neurolace.sim import ImplantParameters, simulate_implant
from neurolace.sim.background import (
    ZIGGURAT_TAIL_START,
    BackgroundGenerator,
    noise_filter,
    normals_numpy,
    render_numpy,
    ziggurat_tables,
)
from neurolace.sim.implant import implant_geometry

FS_HZ = 19531.25
QUIET = ImplantParameters(
    active_density_per_mm3=0.0, lfp_uv_rms=0.0, drift_uv_rms=0.0, dc_offset_uv_mean=0.0, dc_offset_uv_sd=0.0
)
HASH_SOS = signal.butter(1, [300.0, 3000.0], btype="bandpass", fs=FS_HZ, output="sos")


def _words(shape, seed):
    count = int(np.prod(shape))
    return np.random.default_rng(seed).bit_generator.random_raw((count + 1) // 2).view(np.uint32)[:count].reshape(shape)


def test_ziggurat_layers_have_equal_area_and_close_at_the_peak():
    accept, scale, height = ziggurat_tables()
    edges = scale * 2.0**23
    r = ZIGGURAT_TAIL_START
    area = r * np.exp(-r * r / 2) + np.sqrt(np.pi / 2) * special.erfc(r / np.sqrt(2))
    layer_areas = edges[1:] * (height[2:] - height[1:-1])  # layers 1..255: width x_i, heights f(x_i)..f(x_i+1)
    np.testing.assert_allclose(layer_areas, area, rtol=1e-9)
    assert height[256] == 1.0 and accept[255] == 0  # the top layer is all wedge
    assert 0.98 < np.mean(accept / 2.0**23) < 0.99  # ~1.5 % of words take the slow path


def test_ziggurat_normals_are_standard_normal_including_the_tail():
    values = normals_numpy(_words((2000, 1000), 0), np.random.default_rng(1)).ravel()
    assert stats.kstest(values, "norm").pvalue > 1e-3
    assert abs(values.mean()) < 5 / np.sqrt(values.size)
    assert abs(values.var() - 1) < 5 * np.sqrt(2 / values.size)
    # beyond the base layer's edge (the tail branch) and beyond 4.5 (deep tail): binomial counts
    for threshold in (ZIGGURAT_TAIL_START, 4.5):
        expected = 2 * stats.norm.sf(threshold) * values.size
        count = np.count_nonzero(np.abs(values) > threshold)
        assert abs(count - expected) < 5 * np.sqrt(expected), (threshold, count, expected)


@pytest.mark.parametrize("thermal_uv_rms", [0.0, 6.0])
def test_one_filter_has_the_spectrum_of_thermal_noise_plus_hash(thermal_uv_rms):
    hash_gain = np.array([0.0, 0.3, 1.0, 4.0])
    if thermal_uv_rms == 0:
        hash_gain = hash_gain[1:]
    numerators, denominator, _ = noise_filter(thermal_uv_rms, hash_gain, HASH_SOS)
    _, hash_response = signal.freqz(HASH_SOS[0, :3], HASH_SOS[0, 3:], worN=256)
    for channel, gain in enumerate(hash_gain):
        _, response = signal.freqz(numerators[:, channel], denominator, worN=256)
        expected = thermal_uv_rms**2 + gain**2 * np.abs(hash_response) ** 2
        np.testing.assert_allclose(np.abs(response) ** 2, expected, rtol=1e-9, atol=1e-12)
        assert np.all(np.abs(np.roots(numerators[:, channel])) <= 1 + 1e-9)  # minimum phase


def test_filter_starts_in_its_stationary_state():
    numerators, denominator, cholesky = noise_filter(6.0, np.array([2.0]), HASH_SOS)
    # the state after a long run from rest (poles decay within ~20 samples), over many independent runs
    _, final = signal.lfilter(
        numerators[:, 0],
        denominator,
        np.random.default_rng(0).standard_normal((400, 4000)),
        axis=0,
        zi=np.zeros((2, 4000)),
    )
    np.testing.assert_allclose(np.cov(final), cholesky[0] @ cholesky[0].T, rtol=0.1, atol=0.02)


def test_background_power_spectrum_matches_the_configured_noise():
    sim = simulate_implant(duration_s=2.0, n_electrodes=4, seed=4, parameters=QUIET)
    traces = sim.recording.get_traces_uv(dtype=np.float64)
    frequency, power = signal.welch(traces, fs=FS_HZ, nperseg=512, axis=0)
    _, hash_response = signal.freqz(HASH_SOS[0, :3], HASH_SOS[0, 3:], worN=frequency, fs=FS_HZ)
    unit_gain = np.sqrt(np.sum(signal.sosfilt(HASH_SOS, np.eye(1, 3906)[0]) ** 2))
    hash_uv = np.sqrt(sim.ground_truth.noise_rms_uv**2 - QUIET.thermal_noise_uv_rms**2)
    quantisation = QUIET.gain_uv**2 / 12
    expected = (
        2
        / FS_HZ
        * (QUIET.thermal_noise_uv_rms**2 + quantisation + (hash_uv / unit_gain) ** 2 * np.abs(hash_response[:, None]) ** 2)
    )
    band = (frequency > 50) & (frequency < 9000)
    # 2 s in 512-sample segments: ~150 averages, so each bin is within ~20 % (5 sd ~ 40 %)
    ratio = power[band] / expected[band]
    assert np.all(np.abs(ratio - 1) < 0.4)
    assert abs(np.median(ratio) - 1) < 0.05


def test_noise_is_stationary_from_the_first_sample():
    sim = simulate_implant(duration_s=0.002, n_electrodes=1024, seed=6, parameters=QUIET)
    traces = sim.recording.get_traces_uv(dtype=np.float64)
    normalised = traces[:3] / sim.ground_truth.noise_rms_uv  # 3 x 1024 values, variance 1 (plus the ADC's)
    assert abs(normalised.var() - 1) < 0.15


def test_numba_and_numpy_background_agree():
    geometry = implant_geometry(32)
    generator = BackgroundGenerator(geometry.thread_id, geometry.depth_um, FS_HZ, ImplantParameters(), 0)
    rng = np.random.default_rng(1)
    add = rng.normal(0, 30, (333, 32)).astype(np.float32)
    low = rng.normal(0, 30, (30, 32)).astype(np.float32)
    words = _words((333, 34), 2)  # rows padded as the generator draws them
    from neurolace.sim._noise_kernels import render_rows

    for quantise, dtype in ((True, np.int16), (False, np.float32)):
        outputs, states = [], []
        for kernel in (render_numpy, render_rows):
            out, state = np.empty((333, 32), dtype), generator._state.copy()
            kernel(
                out, add, words, *ziggurat_tables(), ZIGGURAT_TAIL_START, np.random.default_rng(3),
                generator._numerators, generator._denominator, state, low, 5, 16,
                np.float32(0.5), np.float32(512), np.float32(1023), quantise,
            )
            outputs.append(out)
            states.append(state)
        np.testing.assert_allclose(states[1], states[0], rtol=1e-9, atol=1e-9)
        if quantise:  # a value within float rounding of a half code may round either way
            assert np.count_nonzero(outputs[1] != outputs[0]) <= 2
            assert np.abs(outputs[1].astype(int) - outputs[0]).max() <= 1
        else:
            np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-3)


def test_hash_only_and_thermal_only_keep_their_levels():
    hash_only = dataclasses.replace(QUIET, thermal_noise_uv_rms=0.0, hash_spread=0.0)
    sim = simulate_implant(duration_s=0.5, n_electrodes=4, seed=2, parameters=hash_only)
    std = sim.recording.get_traces_uv(dtype=np.float64).std(axis=0)
    np.testing.assert_allclose(std, np.sqrt(QUIET.hash_noise_uv_rms**2 + 4 / 12), rtol=0.08)
    geometry = implant_geometry(3)
    generator = BackgroundGenerator(geometry.thread_id, geometry.depth_um, FS_HZ, QUIET, 0)
    out = np.empty((20000, 3), np.float32)
    generator.fill(out)
    np.testing.assert_allclose(out.std(axis=0), generator.noise_uv_rms, rtol=0.05)
