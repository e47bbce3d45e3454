"""Stimulation artifacts on the simulated recording, and the chain's blanking of them (counts that can fail)."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.dsp.blanking import Blanker
from neurolace.dsp.chain import SignalChain, run_signal_chain
from neurolace.sim import simulate_implant
from neurolace.sim.implant import ImplantParameters
from neurolace.stim.artifacts import ArtifactParameters, StimArtifacts, add_stim_artifacts
from neurolace.stim.pulses import PulseTrain

FS_HZ = 19531.25
STIM_AT_S = 1.5  # after the chain's first 1 s noise window


def _train(amplitude_ua: float = 100.0, *, channels=(3,), frequency_hz: float = 100.0, train_s: float = 1.0):
    return PulseTrain(channels=channels, amplitude_ua=amplitude_ua, cathodic_width_us=200.0, interphase_us=100.0,
                      anodic_width_us=400.0, anodic_amplitude_ua=amplitude_ua / 2, frequency_hz=frequency_hz,
                      train_s=train_s)


@pytest.fixture(scope="module")
def quiet():
    """3 s of 32 channels with no neurons (noise, LFP, drift only), and the same with a 1 s train."""
    recording = simulate_implant(duration_s=3.0, n_electrodes=32, seed=1,
                                 parameters=ImplantParameters(active_density_per_mm3=0.0)).recording
    stimulated, onsets = add_stim_artifacts(recording, [(_train(), STIM_AT_S)], seed=0)
    return recording, stimulated, onsets


@pytest.fixture(scope="module")
def spiking():
    recording = simulate_implant(duration_s=3.0, n_electrodes=32, seed=2).recording
    stimulated, onsets = add_stim_artifacts(recording, [(_train(), STIM_AT_S)], seed=0)
    return recording, stimulated, onsets


def _in_stim_second(events) -> np.ndarray:
    first, stop = int(STIM_AT_S * FS_HZ), int((STIM_AT_S + 1.0) * FS_HZ)
    return (events.sample_index >= first) & (events.sample_index < stop)


def _blanker(onsets, n_channels=32) -> Blanker:
    blanker = Blanker(FS_HZ, n_channels)
    blanker.schedule(onsets)
    return blanker


# -- the artifacts ------------------------------------------------------------------------------------
def test_artifacts_are_at_the_pulse_times_and_nowhere_else(quiet):
    recording, stimulated, onsets = quiet
    assert onsets.size == 100
    assert np.array_equal(onsets, np.floor((STIM_AT_S + np.arange(100) / 100.0) * FS_HZ).astype(np.int64))
    changed = np.any(stimulated.samples != recording.samples, axis=1)
    # nothing changes before the first pulse or long after the last one
    assert not changed[: onsets[0]].any()
    assert not changed[onsets[-1] + 200:].any()
    # every pulse drives every electrode to an ADC rail during its phases (100 µA saturates a +-1 mV range)
    rails = (stimulated.samples == 0) | (stimulated.samples == 1023)
    for onset in onsets:
        assert rails[onset + 1 : onset + 4].any(axis=0).all()
    # and between pulses (8 ms after each) the recording is back to what it was
    gap = onsets[:-1] + round(0.008 * FS_HZ)
    assert np.array_equal(stimulated.samples[gap], recording.samples[gap])


def test_artifact_falls_with_distance_from_the_stimulated_electrode(quiet):
    recording = quiet[0]
    artifacts = StimArtifacts.for_recording(recording, parameters=ArtifactParameters(jitter_sd=0.0))
    artifacts.add_train(_train(10.0, train_s=0.01), at_s=0.0)
    peak = np.abs(artifacts.artifact_uv(0, 40)).max(axis=0)
    distance = np.linalg.norm(recording.geometry.positions_um - recording.geometry.positions_um[3], axis=1)
    order = np.argsort(distance)
    assert np.all(np.diff(peak[order]) <= 1e-9)
    # the point-source law: 10 µA at 25 µm (the floor) in 0.3 S/m is 1e7 / (4 pi 0.3 25) µV
    assert peak[3] == pytest.approx(1e7 / (4 * np.pi * 0.3 * 25.0), rel=0.01)
    far = order[-1]
    assert peak[far] == pytest.approx(peak[3] * 25.0 / distance[far], rel=0.01)


def test_artifacts_streamed_equal_whole(quiet):
    recording = quiet[0]
    trains = [(_train(), 0.2), (_train(40.0, channels=(0, 17), frequency_hz=250.0, train_s=0.05), 0.3)]
    whole, _ = add_stim_artifacts(recording.slice_samples(0, 12000), trains, seed=5, chunk_samples=12000)
    rng = np.random.default_rng(0)
    for chunk in (1, 7, 391):
        artifacts = StimArtifacts.for_recording(recording, seed=5)
        for train, at_s in trains:
            artifacts.add_train(train, at_s=at_s)
        parts, start = [], 0
        while start < 12000:
            stop = min(start + (int(rng.integers(1, 2 * chunk + 1)) if chunk > 1 else 1), 12000)
            parts.append(artifacts.apply(recording.samples[start:stop], start_sample=start))
            start = stop
        assert np.array_equal(np.concatenate(parts), whole.samples)


def test_artifacts_are_seeded(quiet):
    recording = quiet[0].slice_samples(0, 6000)
    first, _ = add_stim_artifacts(recording, [(_train(5.0), 0.05)], seed=3)
    again, _ = add_stim_artifacts(recording, [(_train(5.0), 0.05)], seed=3)
    other, _ = add_stim_artifacts(recording, [(_train(5.0), 0.05)], seed=4)
    assert np.array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, other.samples)


def test_artifact_inputs_are_checked(quiet):
    recording = quiet[0]
    artifacts = StimArtifacts.for_recording(recording)
    with pytest.raises(InvalidInputError, match="train channels must be electrode indices below 32"):
        artifacts.add_train(_train(channels=(40,)))
    with pytest.raises(InvalidInputError, match="train must be a PulseTrain"):
        artifacts.add_train({"amplitude_ua": 10})
    with pytest.raises(InvalidInputError, match=r"codes must have shape \(n_samples, 32\)"):
        artifacts.apply(np.zeros((4, 3), np.int16), start_sample=0)
    with pytest.raises(InvalidInputError, match="recovery_tau_ms"):
        ArtifactParameters(recovery_tau_ms=0.0)


# -- blanking ---------------------------------------------------------------------------------------
def test_artifacts_cause_false_crossings_and_blanking_removes_them(quiet):
    recording, stimulated, onsets = quiet
    clean = run_signal_chain(recording).events
    raw = run_signal_chain(stimulated).events
    blanked = run_signal_chain(stimulated, blanking=_blanker(onsets)).events
    n_clean, n_raw, n_blanked = (int(_in_stim_second(e).sum()) for e in (clean, raw, blanked))
    assert n_clean <= 5  # no neurons: only the odd noise crossing
    assert n_raw >= 100 * 20  # at least 20 of the 32 channels cross on every pulse
    assert n_blanked <= n_clean
    # outside the stimulated second the blanking changes nothing
    assert np.array_equal(clean.sample_index[~_in_stim_second(clean)],
                          blanked.sample_index[~_in_stim_second(blanked)])


def test_blanking_keeps_spikes_outside_its_windows(spiking):
    recording, stimulated, onsets = spiking
    blanker = _blanker(onsets)
    clean = run_signal_chain(recording).events
    blanked = run_signal_chain(stimulated, blanking=blanker).events
    chain = SignalChain.for_recording(recording)
    delay = chain.delay_samples  # events are on the recording's clock, the wait on the filter's output
    waiting = _blanker(onsets).detection_mask(0, recording.n_samples + delay, delay)
    # a clean event counts as kept when the blanked run has one on its channel within 2 samples
    outside = ~waiting[clean.sample_index + delay] & _in_stim_second(clean)
    assert outside.sum() >= 200
    kept = 0
    for sample, channel in zip(clean.sample_index[outside], clean.channel_index[outside]):
        mine = blanked.sample_index[blanked.channel_index == channel]
        kept += bool(np.any(np.abs(mine - sample) <= 2))
    assert kept / outside.sum() >= 0.97
    # and nothing is detected inside the windows
    inside = waiting[blanked.sample_index + delay]
    assert not inside.any()


def test_blanked_chain_streamed_equals_whole(quiet):
    stimulated, onsets = quiet[1], quiet[2]
    whole = run_signal_chain(stimulated, chunk_ms=3000.0, blanking=_blanker(onsets))
    for chunk_ms in (0.37, 20.0):
        chunked = run_signal_chain(stimulated, chunk_ms=chunk_ms, blanking=_blanker(onsets))
        assert np.array_equal(chunked.events.sample_index, whole.events.sample_index)
        assert np.array_equal(chunked.events.amplitude_uv, whole.events.amplitude_uv)
        np.testing.assert_allclose(chunked.features.data, whole.features.data, rtol=1e-9, atol=1e-9)


def test_hold_replaces_windows_with_the_last_sample_before_them():
    blanker = Blanker(1000.0, 2, pre_ms=1.0, post_ms=2.0, settle_ms=0.0)
    blanker.schedule([3, 8])
    samples = np.arange(24).reshape(12, 2)
    held = np.concatenate([blanker.hold(samples[:4]), blanker.hold(samples[4:5]), blanker.hold(samples[5:])])
    # windows [2, 5) and [7, 10): held at the values of samples 1 and 6
    expected = samples.copy()
    expected[2:5] = samples[1]
    expected[7:10] = samples[6]
    assert np.array_equal(held, expected)
    assert blanker.n_blanked_samples == 6


def test_blanking_refuses_what_it_cannot_do():
    blanker = Blanker(FS_HZ, 4)
    blanker.hold(np.zeros((100, 4)))
    with pytest.raises(InvalidInputError, match="scheduled before their window is processed"):
        blanker.schedule([50])
    with pytest.raises(InvalidInputError, match="whole sample indices"):
        blanker.schedule([200.5])
    with pytest.raises(InvalidInputError, match="has no blanking"):
        SignalChain(FS_HZ, 4).schedule_blanking([10])
    with pytest.raises(InvalidInputError, match="blanking must be a Blanker for 4 channels"):
        SignalChain(FS_HZ, 4, blanking=Blanker(FS_HZ, 8))
