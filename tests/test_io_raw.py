"""Headerless interleaved binary: exact round trips, byte order, int16 fit, and every bad input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from conftest import shared_data

from neurolace.core import FormatError, InvalidInputError, Recording
from neurolace.io.raw import read_raw, write_raw


@pytest.mark.parametrize("shape", [(1, 1), (9, 1), (1, 4), (7, 3), (1001, 5)])
def test_round_trip(tmp_path, rng, shape):
    samples = rng.integers(-32768, 32768, size=shape).astype(np.int16)
    path = write_raw(tmp_path / "x.raw", Recording(samples, fs_hz=15000, gain_uv=0.5))
    assert path.stat().st_size == samples.size * 2
    recording = read_raw(path, fs_hz=15000, n_channels=shape[1], gain_uv=0.5)
    np.testing.assert_array_equal(recording.samples, samples)
    assert recording.fs_hz == 15000 and recording.gain_uv == 0.5
    assert recording.metadata["gain_uv_assumed"] is False


def test_interleaving_and_byte_order_known_answer(tmp_path):
    # frames (1, 2, 3) and (-4, 5, -6) written time first, little-endian
    (tmp_path / "le.bin").write_bytes(struct.pack("<6h", 1, 2, 3, -4, 5, -6))
    recording = read_raw(tmp_path / "le.bin", fs_hz=1000, n_channels=3, dtype="<i2")
    np.testing.assert_array_equal(recording.samples, [[1, 2, 3], [-4, 5, -6]])
    (tmp_path / "be.bin").write_bytes(struct.pack(">6h", 1, 2, 3, -4, 5, -6))
    recording = read_raw(tmp_path / "be.bin", fs_hz=1000, n_channels=3, dtype=">i2")
    np.testing.assert_array_equal(recording.samples, [[1, 2, 3], [-4, 5, -6]])
    assert recording.samples.dtype == np.int16


def test_offset_skips_a_foreign_header(tmp_path):
    (tmp_path / "x.dat").write_bytes(b"HDR!" + struct.pack("<4h", 10, 20, 30, 40))
    recording = read_raw(tmp_path / "x.dat", fs_hz=1000, n_channels=2, offset=4, offset_uv=-5.0)
    np.testing.assert_array_equal(recording.samples, [[10, 20], [30, 40]])
    assert recording.get_traces_uv()[0, 0] == pytest.approx(-5.0 + 10.0)
    with pytest.raises(FormatError, match="offset=100 bytes is past the end of the 12-byte file"):
        read_raw(tmp_path / "x.dat", fs_hz=1000, n_channels=2, offset=100)


def test_wider_types_are_accepted_when_they_fit_int16(tmp_path):
    np.array([0, 1, 32767, 2], dtype="<u2").tofile(tmp_path / "u16.raw")
    recording = read_raw(tmp_path / "u16.raw", fs_hz=1000, n_channels=2, dtype="uint16")
    np.testing.assert_array_equal(recording.samples, [[0, 1], [32767, 2]])
    np.array([-32768, 5], dtype="<i4").tofile(tmp_path / "i32.raw")
    recording = read_raw(tmp_path / "i32.raw", fs_hz=1000, n_channels=1, dtype="<i4")
    np.testing.assert_array_equal(recording.samples[:, 0], [-32768, 5])


def test_values_beyond_int16_are_refused(tmp_path):
    np.array([0, 40000], dtype="<u2").tofile(tmp_path / "u16.raw")
    with pytest.raises(FormatError, match=r"values in \[0, 40000\] do not fit int16 \[-32768, 32767\]"):
        read_raw(tmp_path / "u16.raw", fs_hz=1000, n_channels=1, dtype="uint16")


def test_bad_parameters(tmp_path):
    np.zeros(8, dtype="<i2").tofile(tmp_path / "x.raw")
    path = tmp_path / "x.raw"
    with pytest.raises(InvalidInputError, match="fs_hz must be a positive finite number, got 0.0"):
        read_raw(path, fs_hz=0, n_channels=1)
    with pytest.raises(InvalidInputError, match="fs_hz must be a positive finite number, got -3.0"):
        read_raw(path, fs_hz=-3.0, n_channels=1)
    with pytest.raises(InvalidInputError, match="n_channels must be >= 1, got 0"):
        read_raw(path, fs_hz=1000, n_channels=0)
    with pytest.raises(InvalidInputError, match="dtype must be an integer numpy dtype .* got 'int17'"):
        read_raw(path, fs_hz=1000, n_channels=1, dtype="int17")
    with pytest.raises(InvalidInputError, match="dtype must be an integer type .* got float32"):
        read_raw(path, fs_hz=1000, n_channels=1, dtype="float32")
    with pytest.raises(FileNotFoundError, match="raw file not found: .*nope.raw"):
        read_raw(tmp_path / "nope.raw", fs_hz=1000, n_channels=1)


def test_size_not_a_whole_number_of_frames(tmp_path):
    np.zeros(7, dtype="<i2").tofile(tmp_path / "x.raw")
    with pytest.raises(
        FormatError,
        match=r"14 bytes of samples are not a whole number of frames of 4 channel\(s\) x 2 bytes "
        r".* = 8 bytes "
        r"\(6 bytes left over\): the file is truncated or n_channels \(--channels\) or dtype is wrong",
    ):
        read_raw(tmp_path / "x.raw", fs_hz=1000, n_channels=4)
    (tmp_path / "odd.raw").write_bytes(b"\x00" * 3)
    with pytest.raises(FormatError, match="3 bytes of samples are not a whole number of frames"):
        read_raw(tmp_path / "odd.raw", fs_hz=1000, n_channels=1)


def test_empty_file(tmp_path):
    (tmp_path / "empty.raw").write_bytes(b"")
    with pytest.raises(FormatError, match=r"the file is empty \(0 bytes\)"):
        read_raw(tmp_path / "empty.raw", fs_hz=1000, n_channels=1)


def test_default_gain_is_flagged_as_assumed(tmp_path):
    np.zeros(2, dtype="<i2").tofile(tmp_path / "x.raw")
    recording = read_raw(tmp_path / "x.raw", fs_hz=1000, n_channels=1)
    assert recording.gain_uv == 1.0 and recording.metadata["gain_uv_assumed"] is True


def test_write_raw_checks_its_dtype(tmp_path):
    recording = Recording(np.array([-1, 300], dtype=np.int16), fs_hz=1000, gain_uv=1.0)
    with pytest.raises(
        InvalidInputError, match=r"dtype uint8 cannot hold the recording's codes in \[-1, 300\]"
    ):
        write_raw(tmp_path / "x.raw", recording, dtype="uint8")
    assert list(tmp_path.iterdir()) == []
    write_raw(tmp_path / "x.raw", recording, dtype=">i4")
    assert (tmp_path / "x.raw").read_bytes() == struct.pack(">2i", -1, 300)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    recording = Recording(np.arange(200_000, dtype=np.int64) % 500, fs_hz=1000, gain_uv=1.0)

    def fail_after_first_block(chunk_samples):
        yield recording.samples[:chunk_samples]
        raise OSError("disk full")

    monkeypatch.setattr(recording, "iter_chunks", fail_after_first_block)
    with pytest.raises(OSError, match="disk full"):
        write_raw(tmp_path / "x.raw", recording)
    assert list(tmp_path.iterdir()) == []


def test_locust_tetrode_file():
    path = shared_data("pouzat-locust-tetrode", "locust_trial_01.raw")
    recording = read_raw(path, fs_hz=15000, n_channels=4, dtype="<i2")
    assert recording.samples.shape == (431548, 4)
    assert recording.duration_s == pytest.approx(28.77, abs=0.01)
    np.testing.assert_array_equal(recording.samples, np.fromfile(path, dtype="<i2").reshape(-1, 4))
    with pytest.raises(FormatError, match="truncated or n_channels"):
        read_raw(path, fs_hz=15000, n_channels=3)
