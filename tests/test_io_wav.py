"""WAV parsing, reading and writing: against the standard library's ``wave`` and hand-built RIFF files."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

from neurolace.core import FormatError, InvalidInputError, Recording
from neurolace.io.wav import N1_WAV_GAIN_UV, parse_wav_header, read_wav, write_wav

PCM_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def stdlib_wav(samples: np.ndarray, fs_hz: int) -> bytes:
    """A WAV file written by Python's own ``wave`` module (the reference)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(samples.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(fs_hz)
        writer.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    """One RIFF chunk, with the pad byte RIFF requires after an odd-sized body."""
    return chunk_id + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def fmt_body(
    *,
    format_tag: int = 1,
    n_channels: int = 1,
    fs_hz: int = 1000,
    bits: int = 16,
    size: int = 16,
    sub_tag: int = 1,
) -> bytes:
    block_align = n_channels * bits // 8
    body = struct.pack("<HHIIHH", format_tag, n_channels, fs_hz, fs_hz * block_align, block_align, bits)
    if size == 18:
        body += struct.pack("<H", 0)
    elif size == 40:
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub_tag) + PCM_GUID_TAIL
    return body


def riff(*chunks: bytes) -> bytes:
    payload = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_matches_stdlib_writer_and_splits_file_exactly():
    samples = np.array([[1, -2], [300, -32768], [32767, 0]], dtype=np.int16)
    data = stdlib_wav(samples, 19531)
    header = parse_wav_header(data)
    assert (header.format_tag, header.n_channels, header.sample_width_bytes, header.fs_hz) == (1, 2, 2, 19531)
    assert header.data_offset == 44 and header.data_size_bytes == 12 and header.n_frames == 3
    assert header.header_bytes + data[44:56] + header.trailer_bytes == data
    assert header.trailer_bytes == b""


@pytest.mark.parametrize("fmt_size", [16, 18, 40])
def test_fmt_chunk_sizes_and_extensible_pcm(fmt_size):
    samples = np.array([5, -7, 9], dtype="<i2").tobytes()
    tag = 0xFFFE if fmt_size == 40 else 1
    data = riff(chunk(b"fmt ", fmt_body(format_tag=tag, size=fmt_size)), chunk(b"data", samples))
    header = parse_wav_header(data)
    assert header.format_tag == tag
    assert header.data_offset == 12 + 8 + fmt_size + 8
    assert data[header.data_offset : header.data_offset + header.data_size_bytes] == samples


def test_chunks_before_and_after_data_with_odd_padding():
    samples = np.arange(-3, 4, dtype="<i2").tobytes()
    odd_list = chunk(b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00")  # 15 bytes: padded to 16
    fact = chunk(b"fact", struct.pack("<I", 7))
    trailer = chunk(b"id3 ", b"xyz")
    data = riff(odd_list, chunk(b"fmt ", fmt_body()), fact, chunk(b"data", samples), trailer)
    header = parse_wav_header(data)
    assert header.data_offset == 12 + (8 + 16) + (8 + 16) + (8 + 4) + 8
    assert header.trailer_bytes == trailer
    assert header.header_bytes + samples + header.trailer_bytes == data


def test_odd_chunk_after_data_keeps_its_pad_byte_in_the_trailer():
    samples = np.array([1, 2], dtype="<i2").tobytes()
    data = riff(chunk(b"fmt ", fmt_body()), chunk(b"data", samples), chunk(b"LIST", b"abc"))
    header = parse_wav_header(data)
    assert header.trailer_bytes == b"LIST\x03\x00\x00\x00abc\x00"
    assert len(header.header_bytes) + header.data_size_bytes + len(header.trailer_bytes) == len(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"RIFF\x00\x00", "truncated WAV header: the file has 6 bytes"),
        (b"", "truncated WAV header: the file has 0 bytes"),
        (b"OggS" + b"\x00" * 40, r"not a RIFF/WAVE file: it starts with b'OggS'"),
        (b"RIFF\x24\x00\x00\x00AVI " + b"\x00" * 32, r"not a RIFF/WAVE file.*b'AVI '"),
        (b"RIFX\x24\x00\x00\x00WAVE" + b"\x00" * 32, "big-endian RIFX"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt and data chunks found"),
        (b"RIFF\x08\x00\x00\x00WAVEfmt ", "truncated WAV header: a chunk header at byte 12 is cut off"),
    ],
)
def test_malformed_riff_is_rejected(data, match):
    with pytest.raises(FormatError, match=match):
        parse_wav_header(data)


def test_fmt_chunk_cut_off_is_a_truncated_header():
    data = riff(chunk(b"fmt ", fmt_body()))[:30]
    with pytest.raises(FormatError, match="truncated WAV header: the fmt chunk declares 16 bytes"):
        parse_wav_header(data)


def test_missing_fmt_and_missing_data_chunks():
    samples = np.zeros(4, dtype="<i2").tobytes()
    with pytest.raises(FormatError, match="no fmt chunk found before the data chunk"):
        parse_wav_header(riff(chunk(b"data", samples), chunk(b"fmt ", fmt_body())))
    with pytest.raises(FormatError, match="no data chunk found: the RIFF chunks end at byte 48"):
        parse_wav_header(riff(chunk(b"fmt ", fmt_body()), chunk(b"LIST", b"INFO")))


@pytest.mark.parametrize(
    ("fmt", "match"),
    [
        (fmt_body(format_tag=3, bits=32), r"IEEE float \(format tag 0x0003\) WAV is not supported"),
        (fmt_body(format_tag=7, bits=8), r"mu-law \(format tag 0x0007\) WAV is not supported"),
        (fmt_body(format_tag=0x55), r"MPEG Layer 3 \(format tag 0x0055\) WAV is not supported"),
        (fmt_body(format_tag=0x1234), r"unknown format \(format tag 0x1234\)"),
        (
            fmt_body(format_tag=0xFFFE, size=40, sub_tag=3, bits=32),
            r"WAVE_FORMAT_EXTENSIBLE with IEEE float \(format tag 0x0003\) is not supported",
        ),
        (fmt_body(format_tag=0xFFFE, size=18), "WAVE_FORMAT_EXTENSIBLE fmt chunk of 18 bytes is too short"),
        (fmt_body(bits=24), "24-bit PCM is not supported: neurolace stores int16 ADC codes"),
        (fmt_body(bits=8), "8-bit PCM is not supported"),
        (fmt_body(bits=32), "32-bit PCM is not supported"),
        (fmt_body(n_channels=0), "declares 0 channels"),
        (fmt_body(fs_hz=0), "sample rate of 0 Hz"),
        (fmt_body()[:14], "fmt chunk of 14 bytes is too short"),
    ],
)
def test_unsupported_sample_formats_are_named(fmt, match):
    with pytest.raises(FormatError, match=match):
        parse_wav_header(riff(chunk(b"fmt ", fmt), chunk(b"data", b"\x00" * 12)))


def test_block_align_mismatch_is_rejected():
    body = bytearray(fmt_body(n_channels=2))
    body[12:14] = struct.pack("<H", 2)  # block_align 2 for 2 channels of 16 bits
    with pytest.raises(
        FormatError, match=r"block_align=2 bytes, but 2 channel\(s\) of 16-bit samples need 4"
    ):
        parse_wav_header(riff(chunk(b"fmt ", bytes(body)), chunk(b"data", b"\x00" * 8)))


def test_data_shorter_than_declared_is_a_truncated_file():
    data = riff(chunk(b"fmt ", fmt_body()), chunk(b"data", b"\x00" * 100))[:-10]
    with pytest.raises(
        FormatError, match="truncated WAV file: the data chunk declares 100 bytes but only 90 follow"
    ):
        parse_wav_header(data)


def test_data_size_not_a_whole_number_of_frames():
    data = riff(chunk(b"fmt ", fmt_body(n_channels=2)), chunk(b"data", b"\x00" * 6))
    with pytest.raises(FormatError, match="6 bytes, not a multiple of the block align of 4 bytes"):
        parse_wav_header(data)


def test_parse_needs_bytes():
    with pytest.raises(InvalidInputError, match="data must be bytes, got str"):
        parse_wav_header("RIFF")


# -- reading and writing ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 3), (13, 3), (0, 2), (1001, 16)])
def test_write_matches_stdlib_and_reads_back(tmp_path, rng, shape):
    samples = rng.integers(-32768, 32768, size=shape).astype(np.int16)
    recording = Recording(samples, fs_hz=30000, gain_uv=0.195)
    path = write_wav(tmp_path / "x.wav", recording)
    assert path.read_bytes() == stdlib_wav(samples, 30000)
    back = read_wav(path, gain_uv=0.195)
    assert back.samples.shape == shape
    assert back.samples.dtype == np.int16
    np.testing.assert_array_equal(back.samples, samples)
    assert back.fs_hz == 30000 and back.gain_uv == 0.195
    assert back.metadata["gain_uv_assumed"] is False


def test_read_wav_with_chunks_around_data(tmp_path):
    samples = np.array([[1, -1], [2, -2], [3, -3]], dtype="<i2")
    data = riff(
        chunk(b"fmt ", fmt_body(format_tag=0xFFFE, n_channels=2, fs_hz=19531, size=40)),
        chunk(b"LIST", b"INFOx"),
        chunk(b"data", samples.tobytes()),
        chunk(b"cue ", b"\x00" * 4),
    )
    (tmp_path / "x.wav").write_bytes(data)
    recording = read_wav(tmp_path / "x.wav")
    np.testing.assert_array_equal(recording.samples, samples)
    assert recording.fs_hz == 19531


def test_default_gain_is_the_flagged_n1_assumption(tmp_path):
    write_wav(tmp_path / "x.wav", Recording(np.zeros(4, np.int16), fs_hz=100, gain_uv=1.0))
    recording = read_wav(tmp_path / "x.wav")
    assert recording.gain_uv == N1_WAV_GAIN_UV
    assert recording.metadata["gain_uv_assumed"] is True
    # one 10-bit N1 code is ~64 int16 steps: the assumption puts it at 1.95 µV
    assert 64 * recording.gain_uv == pytest.approx(1.95)


def test_read_wav_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="WAV file not found: .*missing.wav"):
        read_wav(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(FormatError, match=r"bad.wav: not a RIFF/WAVE file"):
        read_wav(tmp_path / "bad.wav")
    write_wav(tmp_path / "ok.wav", Recording(np.zeros(4, np.int16), fs_hz=100, gain_uv=1.0))
    with pytest.raises(InvalidInputError, match="gain_uv must be a positive finite number, got -1.0"):
        read_wav(tmp_path / "ok.wav", gain_uv=-1.0)


def test_write_wav_rejects_fractional_rate_and_non_recordings(tmp_path):
    with pytest.raises(
        InvalidInputError, match="fs_hz must be a whole number of Hz to be written as WAV, got 19531.25"
    ):
        write_wav(tmp_path / "x.wav", Recording(np.zeros(4, np.int16), fs_hz=19531.25, gain_uv=1.0))
    with pytest.raises(InvalidInputError, match="recording must be a Recording, got ndarray"):
        write_wav(tmp_path / "x.wav", np.zeros(4, np.int16))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "x.wav"
    old = Recording(np.arange(5, dtype=np.int16), fs_hz=100, gain_uv=1.0)
    write_wav(target, old)
    old_bytes = target.read_bytes()
    recording = Recording(np.arange(300_000, dtype=np.int64) % 1000, fs_hz=100, gain_uv=1.0)

    def fail_after_first_block(chunk_samples):
        yield recording.samples[:chunk_samples]
        raise OSError("disk full")

    monkeypatch.setattr(recording, "iter_chunks", fail_after_first_block)
    with pytest.raises(OSError, match="disk full"):
        write_wav(target, recording)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]
    assert target.read_bytes() == old_bytes


# -- the real N1 clips ------------------------------------------------------------------------------


def n1_clip() -> Path:
    folder = shared_data("neuralink-compression", "wav")
    return min(folder.glob("*.wav"))


def test_n1_clip_reads_as_documented_and_writes_back_byte_for_byte(tmp_path):
    path = n1_clip()
    data = path.read_bytes()
    header = parse_wav_header(data)
    assert header.n_channels == 1 and header.fs_hz == 19531 and header.data_offset == 44
    recording = read_wav(path)
    assert recording.n_channels == 1 and recording.fs_hz == 19531
    expected = np.frombuffer(
        data[header.data_offset : header.data_offset + header.data_size_bytes], dtype="<i2"
    )
    np.testing.assert_array_equal(recording.samples[:, 0], expected)
    assert recording.samples.tobytes() == expected.tobytes()
    assert recording.metadata["gain_uv_assumed"] is True
    assert write_wav(tmp_path / path.name, recording).read_bytes() == data
