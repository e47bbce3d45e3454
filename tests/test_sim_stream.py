"""ImplantStream: pushing intention and reading samples in any pieces gives simulate_implant's output."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import InvalidInputError
from neurolace.sim import ImplantStream, simulate_implant
from neurolace.sim.spiking import RATE_FS_HZ, IntendedMovement, splitmix64

FS_HZ = 19531.25


def test_streaming_in_random_pieces_equals_the_batch_simulation():
    rng = np.random.default_rng(0)
    velocity = rng.normal(0.0, 0.6, (40, 2))  # 0.4 s at 100 Hz
    click = (rng.random(40) < 0.2).astype(float)
    batch = simulate_implant(
        duration_s=0.3, n_electrodes=16, seed=3, intended_velocity=velocity, click=click, velocity_fs_hz=100.0
    )
    n_samples = batch.recording.n_samples
    movement = IntendedMovement(velocity=velocity, click=click, fs_hz=100.0)
    steps_velocity, steps_click = movement.at((np.arange(320) + 0.5) / RATE_FS_HZ)

    stream = ImplantStream(n_electrodes=16, seed=3)
    pieces, pushed = [], 0
    while sum(len(piece) for piece in pieces) < n_samples:
        size = int(rng.integers(1, 38))
        stream.push_intention(steps_velocity[pushed : pushed + size], steps_click[pushed : pushed + size])
        pushed += size
        pieces.append(stream.read(int(rng.integers(0, 900))))
    streamed = np.concatenate(pieces)[:n_samples]
    np.testing.assert_array_equal(streamed, batch.recording.samples)
    truth = stream.ground_truth(n_samples)
    np.testing.assert_array_equal(truth.units.sample_index, batch.ground_truth.units.sample_index)
    np.testing.assert_array_equal(truth.units.unit_id, batch.ground_truth.units.unit_id)
    assert truth.velocity_fs_hz == RATE_FS_HZ
    np.testing.assert_array_equal(truth.intended_velocity, steps_velocity[:pushed])


def test_samples_become_final_0_6_ms_behind_the_intention():
    stream = ImplantStream(n_electrodes=4, seed=1)
    assert stream.samples_available == 0
    assert stream.read().shape == (0, 4)
    stream.push_intention(np.zeros((10, 2)))
    # 10 ms of intention: 195 samples with known spikes, minus the 12-sample waveform lead, minus one
    assert stream.samples_available == int(10 * FS_HZ / 1000) - 12 - 1
    first = stream.read(50)
    assert first.shape == (50, 4) and first.dtype == np.int16
    assert stream.samples_available == int(10 * FS_HZ / 1000) - 12 - 1 - 50
    recording = stream.to_recording(first)
    assert recording.gain_uv == 2.0 and recording.geometry.n_channels == 4
    assert "ImplantStream(n_channels=4" in repr(stream)


def test_stream_refuses_bad_intention_and_reading_ahead():
    stream = ImplantStream(n_electrodes=4, seed=1)
    with pytest.raises(InvalidInputError, match=r"velocity must have shape \(n_steps, 2\)"):
        stream.push_intention(np.zeros((5, 3)))
    with pytest.raises(InvalidInputError, match="click must have shape"):
        stream.push_intention(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(InvalidInputError, match=r"click must lie in \[0, 1\]"):
        stream.push_intention(np.zeros((5, 2)), np.full(5, -1.0))
    with pytest.raises(InvalidInputError, match="only 0 samples are final"):
        stream._render_into(np.empty((10, 4), np.int16))
    with pytest.raises(InvalidInputError, match="n_samples must be >= 0"):
        stream.read(-1)
    with pytest.raises(InvalidInputError, match="n_electrodes must be"):
        ImplantStream(n_electrodes=17)


def test_splitmix64_matches_the_published_sequence():
    # SplitMix64 seeded with 0 (Steele, Lea & Flood 2014; the generator Vigna's xoshiro seeding uses)
    gamma = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        states = np.arange(1, 4, dtype=np.uint64) * gamma
    assert [hex(int(v)) for v in splitmix64(states)] == [
        "0xe220a8397b1dcdaf",
        "0x6e789e6aa1b965f4",
        "0x6c45d188009454f",
    ]
