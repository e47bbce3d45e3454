"""read_recording: one entry point that picks the reader by extension."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from neurolace.core import FormatError, InvalidInputError, Recording
from neurolace.io import read_recording, write_nwb, write_raw, write_wav


@pytest.fixture
def recording(rng) -> Recording:
    return Recording(rng.integers(-2000, 2000, size=(33, 3)).astype(np.int16), fs_hz=2000, gain_uv=0.25)


@pytest.mark.parametrize("name", ["x.raw", "x.bin", "x.dat", "X.BIN"])
def test_raw_extensions(tmp_path, recording, name):
    write_raw(tmp_path / name, recording)
    back = read_recording(tmp_path / name, fs_hz=2000, n_channels=3, gain_uv=0.25)
    np.testing.assert_array_equal(back.samples, recording.samples)
    assert back.metadata["format"] == "raw"


def test_raw_needs_rate_and_channels(tmp_path, recording):
    write_raw(tmp_path / "x.raw", recording)
    with pytest.raises(
        InvalidInputError, match=r"x.raw needs fs_hz and n_channels: a .raw file has no header"
    ):
        read_recording(tmp_path / "x.raw")
    with pytest.raises(InvalidInputError, match=r"needs n_channels: a .raw file"):
        read_recording(tmp_path / "x.raw", fs_hz=2000)


def test_wav_and_nwb(tmp_path, recording):
    write_wav(tmp_path / "x.wav", recording)
    back = read_recording(tmp_path / "x.wav", gain_uv=0.25)
    np.testing.assert_array_equal(back.samples, recording.samples)
    assert back.metadata["format"] == "wav" and back.gain_uv == 0.25
    write_nwb(tmp_path / "x.nwb", recording)
    back = read_recording(tmp_path / "x.nwb")
    np.testing.assert_array_equal(back.samples, recording.samples)
    assert back.gain_uv == 0.25 and back.metadata["format"] == "nwb"
    assert read_recording(tmp_path / "x.nwb", gain_uv=2.0).gain_uv == 2.0


def test_given_rate_or_channels_must_match_the_file(tmp_path, recording):
    write_wav(tmp_path / "x.wav", recording)
    assert read_recording(tmp_path / "x.wav", fs_hz=2000, n_channels=3).n_channels == 3
    with pytest.raises(InvalidInputError, match="fs_hz=1000 was given but .*x.wav records at 2000 Hz"):
        read_recording(tmp_path / "x.wav", fs_hz=1000)
    with pytest.raises(InvalidInputError, match=r"n_channels=4 was given but .*x.wav has 3 channel\(s\)"):
        read_recording(tmp_path / "x.wav", n_channels=4)


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "x.mp3").write_bytes(b"ID3")
    with pytest.raises(
        FormatError,
        match=r"extension '.mp3' is not supported; supported extensions: .wav, .nwb, .raw, .bin, .dat",
    ):
        read_recording(tmp_path / "x.mp3")
    with pytest.raises(FormatError, match=r"extension '\(none\)' is not supported"):
        read_recording(tmp_path / "noextension")
    with pytest.raises(FileNotFoundError, match=r"recording file not found: .*gone.wav"):
        read_recording(tmp_path / "gone.wav")


def test_real_files():
    wav = min(shared_data("neuralink-compression", "wav").glob("*.wav"))
    clip = read_recording(wav)
    assert clip.n_channels == 1 and clip.fs_hz == 19531
    locust = read_recording(
        shared_data("pouzat-locust-tetrode", "locust_trial_02.raw"), fs_hz=15000, n_channels=4
    )
    assert locust.samples.shape == (431548, 4)
