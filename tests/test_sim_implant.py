"""The simulated implant: reproducible, chunk-invariant, and faithful to its own ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurolace.core import InvalidInputError, Recording
from neurolace.sim import ImplantParameters, TuningModel, simulate_implant
from neurolace.sim.implant import add_spikes, add_spikes_numpy, implant_geometry

FS_HZ = 19531.25

#: A signal with nothing but thermal noise and hash: no units, LFP, drift or offset.
QUIET = ImplantParameters(
    active_density_per_mm3=0.0, lfp_uv_rms=0.0, drift_uv_rms=0.0, dc_offset_uv_mean=0.0, dc_offset_uv_sd=0.0
)


@pytest.fixture(scope="module")
def small():
    return simulate_implant(duration_s=0.5, n_electrodes=32, seed=7)


def test_shapes_and_metadata(small):
    recording = small.recording
    assert isinstance(recording, Recording)
    assert recording.samples.dtype == np.int16
    assert recording.samples.shape == (round(0.5 * FS_HZ), 32)
    assert recording.fs_hz == FS_HZ
    assert recording.gain_uv == 2.0
    assert recording.offset_uv == -512 * 2.0
    assert recording.geometry.n_threads == 2
    assert recording.metadata["seed"] == 7
    truth = small.ground_truth
    n_units = truth.n_units
    assert n_units > 0
    assert truth.unit_positions_um.shape == (n_units, 3)
    assert truth.amplitude_uv.shape == (n_units, 32)
    assert truth.tuning.n_units == n_units
    assert truth.waveforms.shape[0] == n_units
    assert truth.units.n_channels == 32
    assert truth.units.fs_hz == FS_HZ
    # channel_index of every spike is its unit's peak channel, and the amplitude is its signed trough there
    np.testing.assert_array_equal(truth.units.channel_index, truth.peak_channel[truth.units.unit_id])
    np.testing.assert_allclose(
        truth.units.amplitude_uv, -truth.peak_amplitude_uv[truth.units.unit_id], rtol=1e-6
    )
    np.testing.assert_allclose(truth.snr, truth.peak_amplitude_uv / truth.noise_rms_uv[truth.peak_channel])
    dense = truth.amplitude_uv.toarray()
    np.testing.assert_array_equal(dense.argmax(axis=1), truth.peak_channel)
    assert truth.intended_velocity.shape[1] == 2 and truth.click.shape == truth.intended_velocity.shape[:1]


def test_same_seed_same_everything_and_other_seed_differs(small):
    again = simulate_implant(duration_s=0.5, n_electrodes=32, seed=7)
    np.testing.assert_array_equal(again.recording.samples, small.recording.samples)
    first, second = small.ground_truth, again.ground_truth
    np.testing.assert_array_equal(first.units.sample_index, second.units.sample_index)
    np.testing.assert_array_equal(first.units.unit_id, second.units.unit_id)
    np.testing.assert_array_equal(first.unit_positions_um, second.unit_positions_um)
    np.testing.assert_array_equal(first.tuning.preferred_direction_rad, second.tuning.preferred_direction_rad)
    np.testing.assert_array_equal(first.amplitude_uv.toarray(), second.amplitude_uv.toarray())
    np.testing.assert_array_equal(first.intended_velocity, second.intended_velocity)
    other = simulate_implant(duration_s=0.5, n_electrodes=32, seed=8)
    assert not np.array_equal(other.recording.samples, small.recording.samples)


@pytest.mark.parametrize("chunk_samples", [1000, 333, 100_000])
def test_chunk_size_does_not_change_the_output(small, chunk_samples):
    other = simulate_implant(duration_s=0.5, n_electrodes=32, seed=7, chunk_samples=chunk_samples)
    np.testing.assert_array_equal(other.recording.samples, small.recording.samples)


@pytest.mark.parametrize("n_electrodes", [1, 5])
def test_chunk_size_does_not_change_the_output_with_an_odd_channel_count(n_electrodes):
    # a row of an odd count uses half of its last 64-bit word: chunking must not shift the words
    whole = simulate_implant(duration_s=0.05, n_electrodes=n_electrodes, seed=2)
    chunked = simulate_implant(duration_s=0.05, n_electrodes=n_electrodes, seed=2, chunk_samples=7)
    np.testing.assert_array_equal(chunked.recording.samples, whole.recording.samples)


def test_adc_codes_stay_in_ten_bits_and_clip():
    loud = simulate_implant(
        duration_s=0.1, n_electrodes=16, seed=1, parameters=ImplantParameters(gain_uv=0.05)
    )
    codes = loud.recording.samples
    assert codes.min() == 0 and codes.max() == 1023  # 0.05 µV per code: the LFP alone saturates
    normal = simulate_implant(duration_s=0.1, n_electrodes=16, seed=1)
    assert 0 <= normal.recording.samples.min() and normal.recording.samples.max() <= 1023


def test_noise_rms_of_a_unit_free_simulation_matches_its_configuration():
    sim = simulate_implant(duration_s=1.0, n_electrodes=16, seed=3, parameters=QUIET)
    assert sim.ground_truth.n_units == 0 and sim.ground_truth.units.n_spikes == 0
    traces = sim.recording.get_traces_uv(dtype=np.float64)
    expected = np.sqrt(sim.ground_truth.noise_rms_uv**2 + 2.0**2 / 12)  # plus the ADC's quantisation noise
    np.testing.assert_allclose(traces.std(axis=0), expected, rtol=0.03)
    np.testing.assert_allclose(traces.mean(axis=0), 0.0, atol=0.5)


def test_noise_levels_follow_the_parameters():
    sim = simulate_implant(duration_s=0.01, n_electrodes=512, seed=3, parameters=QUIET)
    defaults = ImplantParameters()
    hash_uv = np.sqrt(sim.ground_truth.noise_rms_uv**2 - defaults.thermal_noise_uv_rms**2)
    # log-normal around hash_noise_uv_rms with log-sd hash_spread (512 draws)
    assert abs(np.median(hash_uv) / defaults.hash_noise_uv_rms - 1) < 0.08
    assert abs(np.std(np.log(hash_uv)) / defaults.hash_spread - 1) < 0.15


def test_hash_is_band_limited_and_thermal_noise_is_white():
    thermal_only = dataclasses.replace(QUIET, hash_noise_uv_rms=0.0, thermal_noise_uv_rms=10.0)
    sim = simulate_implant(duration_s=1.0, n_electrodes=4, seed=2, parameters=thermal_only)
    traces = sim.recording.get_traces_uv(dtype=np.float64)
    # white noise: neighbouring samples uncorrelated
    lag_one = np.mean([np.corrcoef(traces[1:, c], traces[:-1, c])[0, 1] for c in range(4)])
    assert abs(lag_one) < 0.02
    hash_only = dataclasses.replace(QUIET, hash_noise_uv_rms=10.0, thermal_noise_uv_rms=0.0, hash_spread=0.0)
    sim = simulate_implant(duration_s=1.0, n_electrodes=4, seed=2, parameters=hash_only)
    traces = sim.recording.get_traces_uv(dtype=np.float64)
    lag_one = np.mean([np.corrcoef(traces[1:, c], traces[:-1, c])[0, 1] for c in range(4)])
    assert lag_one > 0.5  # band-limited below ~3 kHz at 19.5 kHz sampling
    np.testing.assert_allclose(traces.std(axis=0), np.sqrt(10.0**2 + 4 / 12), rtol=0.05)


def test_lfp_is_large_slow_and_shared_along_a_thread():
    lfp_only = dataclasses.replace(
        QUIET, thermal_noise_uv_rms=0.0, hash_noise_uv_rms=0.0, lfp_uv_rms=40.0, lfp_spread=0.0
    )
    sim = simulate_implant(duration_s=4.0, n_electrodes=16, seed=5, parameters=lfp_only)
    traces = sim.recording.get_traces_uv(dtype=np.float64)
    # 1/f from 1 Hz: over 4 s the sample RMS is a noisy estimate of 40 µV, but of the right size
    assert 15.0 < traces.std(axis=0).mean() < 70.0
    # neighbouring electrodes (50 µm apart) see nearly the same LFP
    assert np.corrcoef(traces[:, 0], traces[:, 1])[0, 1] > 0.95
    # slow: almost no power above 300 Hz
    spectrum = np.abs(np.fft.rfft(traces[:, 0] - traces[:, 0].mean())) ** 2
    frequency = np.fft.rfftfreq(traces.shape[0], 1 / FS_HZ)
    assert spectrum[frequency > 300].sum() < 0.02 * spectrum.sum()


def test_spike_waveforms_in_the_recording_match_the_ground_truth_amplitudes():
    sim = simulate_implant(
        duration_s=2.0,
        n_electrodes=16,
        seed=11,
        parameters=dataclasses.replace(ImplantParameters(), lfp_uv_rms=0.0, drift_uv_rms=0.0),
    )
    truth = sim.ground_truth
    traces = sim.recording.get_traces_uv(dtype=np.float64)
    traces -= np.median(traces, axis=0)
    counts = np.bincount(truth.units.unit_id, minlength=truth.n_units)
    candidates = np.flatnonzero((counts >= 20) & (truth.snr >= 4))
    assert candidates.size >= 2
    for unit in candidates[:4]:
        spikes = truth.units.sample_index[truth.units.unit_id == unit]
        spikes = spikes[(spikes > 50) & (spikes < traces.shape[0] - 50)]
        row = truth.amplitude_uv[[unit], :].toarray().ravel()
        # spike-triggered average at the trough sample on every channel the unit reaches
        average = traces[spikes].mean(axis=0)
        reached = np.flatnonzero(row)
        standard_error = truth.noise_rms_uv[reached] / np.sqrt(spikes.size)
        # sub-sample timing makes the sampled trough up to a few % shallower than the true one
        assert np.all(average[reached] < -0.8 * row[reached] + 5 * standard_error + 3.0)
        assert np.all(average[reached] > -1.0 * row[reached] - 5 * standard_error - 3.0)


def test_amplitude_falls_with_distance(small):
    truth = small.ground_truth
    positions = small.recording.geometry.positions_um
    matrix = truth.amplitude_uv.tocoo()
    distance = np.linalg.norm(truth.unit_positions_um[matrix.row] - positions[matrix.col], axis=1)
    for unit in range(min(truth.n_units, 200)):
        mine = matrix.row == unit
        order = np.argsort(distance[mine])
        assert np.all(np.diff(matrix.data[mine][order]) <= 1e-9)
    # far electrodes (beyond the footprint) get nothing; the peak channel is the nearest electrode
    nearest = np.argmin(
        np.linalg.norm(truth.unit_positions_um[:, None, :] - positions[None, :, :], axis=2), axis=1
    )
    np.testing.assert_array_equal(nearest, truth.peak_channel)


def test_refractory_period_is_never_violated(small):
    truth = small.ground_truth
    dead_samples = int(np.ceil(2.0e-3 * FS_HZ))
    order = np.lexsort((truth.units.sample_index, truth.units.unit_id))
    units = truth.units.unit_id[order]
    samples = truth.units.sample_index[order]
    same_unit = units[1:] == units[:-1]
    assert same_unit.any()
    assert np.diff(samples)[same_unit].min() >= dead_samples


def test_given_tuning_and_constant_velocity_give_the_tuned_rates():
    n_units = 60
    rng = np.random.default_rng(0)
    tuning = TuningModel(
        baseline_hz=rng.uniform(5, 40, n_units),
        depth_hz=rng.uniform(0, 20, n_units),
        preferred_direction_rad=rng.uniform(-np.pi, np.pi, n_units),
        speed_gain_hz=np.zeros(n_units),
        click_gain_hz=np.zeros(n_units),
    )
    velocity = np.tile([0.8, -0.4], (301, 1))
    # unit 0 is pushed below 0 Hz by moving against its preferred direction
    tuning.baseline_hz[0], tuning.depth_hz[0] = 2.0, 20.0
    tuning.preferred_direction_rad[0] = np.arctan2(0.4, -0.8)
    duration_s = 3.0
    sim = simulate_implant(
        duration_s=duration_s,
        n_electrodes=16,
        seed=2,
        tuning=tuning,
        intended_velocity=velocity,
        parameters=dataclasses.replace(QUIET, active_density_per_mm3=1.0),
    )
    truth = sim.ground_truth
    assert truth.n_units == n_units and truth.tuning is tuning
    expected = tuning.rates_hz(velocity[:1])[0] * duration_s
    counts = np.bincount(truth.units.unit_id, minlength=n_units)
    silent = expected == 0  # rates clipped at 0 Hz
    assert silent.any() and np.all(counts[silent] == 0)
    z = (counts[~silent] - expected[~silent]) / np.sqrt(expected[~silent])
    assert np.abs(z).max() < 4.5
    assert abs(z.mean()) < 4.0 / np.sqrt(z.size)


def test_one_electrode_and_sixteen_and_multiples_map_to_threads():
    assert implant_geometry(1).n_channels == 1
    assert implant_geometry(16).n_threads == 1
    assert implant_geometry(1024).n_threads == 64
    one = simulate_implant(duration_s=0.05, n_electrodes=1, seed=0)
    assert one.recording.samples.shape == (round(0.05 * FS_HZ), 1)


def test_typical_electrode_sees_one_to_three_units_above_noise():
    sim = simulate_implant(duration_s=0.05, n_electrodes=256, seed=4)
    per_channel = sim.ground_truth.units_per_channel(min_snr=5.0)
    assert 1.0 <= per_channel.mean() <= 3.0


def test_numba_and_numpy_spike_rendering_agree(small):
    truth = small.ground_truth
    rng = np.random.default_rng(0)
    n_units = truth.n_units
    waveforms = rng.standard_normal((n_units, 3, 41)).astype(np.float32)
    matrix = truth.amplitude_uv
    arguments = (
        np.sort(rng.integers(-30, 530, 400)),
        rng.integers(0, n_units, 400),
        rng.integers(0, 3, 400),
        matrix.indptr.astype(np.int64),
        matrix.indices.astype(np.int64),
        matrix.data.astype(np.float32),
        waveforms,
        12,
    )
    expected = np.zeros((500, 32), np.float32)
    add_spikes_numpy(expected, 10, *arguments)
    got = np.zeros((500, 32), np.float32)
    add_spikes(got, 10, *arguments)
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"duration_s": 0.0}, "duration_s must be a positive"),
        ({"duration_s": -1.0}, "duration_s must be a positive"),
        ({"duration_s": 1e-6}, "shorter than one sample"),
        ({"n_electrodes": 40}, "n_electrodes must be 1-16 .* or a multiple of 16.*got 40"),
        ({"n_electrodes": 0}, "n_electrodes must be >= 1, got 0"),
        ({"seed": -3}, "seed must be a non-negative"),
        ({"intended_velocity": np.zeros((10, 3))}, r"intended_velocity must have shape \(n_steps, 2\)"),
        (
            {"intended_velocity": np.zeros((3, 2))},
            "intended_velocity must cover duration_s=0.1 s.*at least 10 rows, got 3",
        ),
        ({"intended_velocity": np.zeros((10, 2)), "click": np.full(10, 2.0)}, r"click must lie in \[0, 1\]"),
        ({"intended_velocity": np.zeros((10, 2)), "click": np.zeros(9)}, "click must have shape"),
        ({"tuning": "cosine"}, "tuning must be a TuningModel, got str"),
        ({"parameters": {"gain_uv": 2}}, "parameters must be an ImplantParameters, got dict"),
        ({"chunk_samples": 0}, "chunk_samples must be >= 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(keywords, message):
    arguments = {"duration_s": 0.1, "n_electrodes": 16, **keywords}
    with pytest.raises(InvalidInputError, match=message):
        simulate_implant(**arguments)


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"gain_uv": 0.0}, "gain_uv must be a positive"),
        ({"thermal_noise_uv_rms": -1.0}, "thermal_noise_uv_rms must be a finite number >= 0"),
        ({"min_distance_um": 200.0}, "min_distance_um .* must be smaller than placement_radius_um"),
        ({"hash_band_hz": (3000.0, 300.0)}, "hash_band_hz must be"),
        ({"adc_bits": 16}, "adc_bits must be <= 15"),
    ],
)
def test_bad_parameters_are_refused(keywords, message):
    with pytest.raises(InvalidInputError, match=message):
        ImplantParameters(**keywords)


def test_spike_times_do_not_depend_on_the_sample_rate():
    fast = simulate_implant(duration_s=0.3, n_electrodes=16, seed=1, fs_hz=30000.0).ground_truth
    slow = simulate_implant(duration_s=0.3, n_electrodes=16, seed=1, fs_hz=8000.0).ground_truth
    assert fast.units.n_spikes == slow.units.n_spikes > 0
    order_fast = np.lexsort((fast.units.sample_index, fast.units.unit_id))
    order_slow = np.lexsort((slow.units.sample_index, slow.units.unit_id))
    np.testing.assert_array_equal(fast.units.unit_id[order_fast], slow.units.unit_id[order_slow])
    difference_s = fast.units.times_s[order_fast] - slow.units.times_s[order_slow]
    # The dead time is a whole number of samples counted from the start of the spike's sample, so it
    # differs slightly between clocks (2 ms at both rates here, minus up to one sample): times agree to
    # about a sample of the slower clock, not exactly.
    assert np.median(np.abs(difference_s)) < 1 / 8000.0
    assert np.abs(difference_s).max() < 1e-3
    assert fast.waveforms.shape[1] > slow.waveforms.shape[1]  # same 2 ms window, more taps


def test_progress_reports_every_chunk_and_spike_counts_add_up():
    calls = []
    sim = simulate_implant(
        duration_s=0.3,
        n_electrodes=16,
        seed=1,
        chunk_samples=1000,
        progress=lambda done, total: calls.append(done),
    )
    n_samples = sim.recording.n_samples
    assert calls == [*range(1000, n_samples, 1000), n_samples]
    truth = sim.ground_truth
    counts = truth.spike_counts(0.1, 3)
    assert counts.shape == (3, truth.n_units)
    np.testing.assert_array_equal(
        counts.sum(axis=0), np.bincount(truth.units.unit_id, minlength=truth.n_units)
    )
