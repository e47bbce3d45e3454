"""WAV files of int16 ADC codes: a strict RIFF parser, a reader and an atomic writer.

:func:`parse_wav_header` walks the RIFF chunks of a whole file held in memory and
says exactly where the samples are, so a lossless codec can keep every byte
around them (header and trailer) and rebuild the file bit for bit.
:func:`read_wav` turns a file into a :class:`~neurolace.core.Recording`;
:func:`write_wav` writes a canonical 44-byte-header PCM file through
:func:`~neurolace.io.atomic.atomic_output`.

Only 16-bit integer PCM is accepted: neurolace stores int16 ADC codes, and a
float or 24-bit WAV cannot be held in them without loss.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurolace.core.checks import check_positive
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.recording import Recording
from neurolace.io.atomic import atomic_output
from neurolace.io.paths import check_input_file

__all__ = ["N1_WAV_GAIN_UV", "WavHeader", "parse_wav_header", "read_wav", "write_wav"]

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

#: names of the format tags one meets in practice (from the Microsoft ``mmreg.h`` registry)
FORMAT_NAMES = {
    0x0001: "PCM",
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MPEG Layer 3",
    0xFFFE: "WAVE_FORMAT_EXTENSIBLE",
}

#: the last 14 bytes shared by every KSDATAFORMAT_SUBTYPE GUID built from a format tag
_SUBFORMAT_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

#: Assumed µV per int16 step for the Neuralink N1 clips (WAV carries no scale).
#: The N1 digitises with a 10-bit ADC (Musk & Neuralink, J Med Internet Res
#: 21(10):e16194, 2019), and the public clips spread those codes over the int16
#: range about 64 steps apart (see ../shared/data/neuralink-compression/PROVENANCE.md).
#: Neuralink publishes no µV value for one code, so this is an ASSUMPTION: one
#: 10-bit code is taken as 1.95 µV (a 2 mV input range over 1024 codes, the
#: order of the input ranges of intracortical front ends), i.e. 1.95 / 64 µV per
#: int16 step. Readers mark it with ``metadata["gain_uv_assumed"] = True``; pass
#: ``gain_uv`` when the true scale is known.
N1_WAV_GAIN_UV = 1.95 / 64


@dataclass(frozen=True)
class WavHeader:
    """Where the samples of a WAV file are and everything around them.

    Attributes
    ----------
    format_tag : int
        ``wFormatTag`` of the fmt chunk (``0xFFFE`` for WAVE_FORMAT_EXTENSIBLE,
        whose sub-format was checked to be PCM).
    n_channels : int
        Interleaved channels per frame.
    sample_width_bytes : int
        Bytes per sample of one channel (always 2 for an accepted file).
    fs_hz : int
        Frames per second.
    data_offset : int
        Byte offset of the first sample (just after the ``data`` chunk header).
    data_size_bytes : int
        Bytes of sample data declared by the ``data`` chunk.
    header_bytes : bytes
        The file up to ``data_offset`` (RIFF header, fmt and any other chunks).
    trailer_bytes : bytes
        Everything after the sample data (pad byte, LIST/cue chunks, junk).
    """

    format_tag: int
    n_channels: int
    sample_width_bytes: int
    fs_hz: int
    data_offset: int
    data_size_bytes: int
    header_bytes: bytes
    trailer_bytes: bytes

    @property
    def block_align(self) -> int:
        """Bytes per frame (all channels of one sample instant)."""
        return self.n_channels * self.sample_width_bytes

    @property
    def n_frames(self) -> int:
        """Number of frames (samples per channel)."""
        return self.data_size_bytes // self.block_align

    def __repr__(self) -> str:
        return (
            f"WavHeader(format_tag=0x{self.format_tag:04X}, n_channels={self.n_channels}, "
            f"sample_width_bytes={self.sample_width_bytes}, fs_hz={self.fs_hz}, "
            f"data_offset={self.data_offset}, "
            f"data_size_bytes={self.data_size_bytes}, header_bytes={len(self.header_bytes)} B, "
            f"trailer_bytes={len(self.trailer_bytes)} B)"
        )


def _format_name(tag: int) -> str:
    return f"{FORMAT_NAMES.get(tag, 'unknown format')} (format tag 0x{tag:04X})"


def parse_wav_header(data: bytes) -> WavHeader:
    """Parse the RIFF/WAVE structure of a whole file held in memory.

    The chunks are walked in order: the ``fmt `` chunk may be 16, 18 or 40
    bytes (WAVE_FORMAT_EXTENSIBLE with a PCM sub-format counts as PCM), other
    chunks (``LIST``, ``fact``, ``JUNK``...) may come before or after ``data``,
    and odd-sized chunks are followed by one pad byte, as RIFF requires.

    Parameters
    ----------
    data : bytes
        The complete file contents (bytes, bytearray or memoryview).

    Returns
    -------
    WavHeader
        ``header_bytes + data[data_offset:data_offset + data_size_bytes] +
        trailer_bytes`` equals ``data``.

    Raises
    ------
    FormatError
        Not RIFF/WAVE, a truncated header, no fmt or data chunk, a format other
        than 16-bit integer PCM, a data chunk shorter than declared, or a data
        size that is not a whole number of frames.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"data must be bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    total = len(view)
    if total < 12:
        raise FormatError(f"truncated WAV header: the file has {total} bytes, a RIFF/WAVE header needs 12")
    if bytes(view[0:4]) != b"RIFF" or bytes(view[8:12]) != b"WAVE":
        if bytes(view[0:4]) == b"RIFX":
            raise FormatError(
                "big-endian RIFX WAV files are not supported; expected a little-endian RIFF/WAVE file"
            )
        raise FormatError(
            f"not a RIFF/WAVE file: it starts with {bytes(view[0:4])!r}...{bytes(view[8:12])!r}, "
            "expected b'RIFF'...b'WAVE'"
        )
    fmt: tuple[int, int, int, int] | None = None
    position = 12
    while True:
        if position + 8 > total:
            missing = "fmt and data chunks" if fmt is None else "data chunk"
            if position >= total:
                raise FormatError(f"no {missing} found: the RIFF chunks end at byte {total}")
            raise FormatError(
                f"truncated WAV header: a chunk header at byte {position} is cut off at byte {total} "
                f"(no {missing} found)"
            )
        chunk_id = bytes(view[position : position + 4])
        (chunk_size,) = struct.unpack_from("<I", view, position + 4)
        body = position + 8
        if chunk_id == b"fmt ":
            if chunk_size < 16:
                raise FormatError(f"fmt chunk of {chunk_size} bytes is too short: PCM needs at least 16")
            if body + chunk_size > total:
                raise FormatError(
                    f"truncated WAV header: the fmt chunk declares {chunk_size} bytes but the file ends "
                    f"{total - body} bytes after its start"
                )
            fmt = _parse_fmt(bytes(view[body : body + chunk_size]))
        elif chunk_id == b"data":
            if fmt is None:
                raise FormatError("no fmt chunk found before the data chunk: the sample format is unknown")
            return _finish(view, fmt, body, chunk_size)
        position = body + chunk_size + (chunk_size & 1)


def _parse_fmt(body: bytes) -> tuple[int, int, int, int]:
    """Check a fmt chunk; return (format_tag, n_channels, sample_width_bytes, fs_hz)."""
    format_tag, n_channels, fs_hz, _byte_rate, block_align, bits_per_sample = struct.unpack_from(
        "<HHIIHH", body
    )
    if format_tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise FormatError(
                f"WAVE_FORMAT_EXTENSIBLE fmt chunk of {len(body)} bytes is too short: it needs 40"
            )
        subformat = body[24:40]
        (sub_tag,) = struct.unpack_from("<H", subformat)
        if subformat[2:] != _SUBFORMAT_GUID_TAIL or sub_tag != WAVE_FORMAT_PCM:
            name = (
                _format_name(sub_tag)
                if subformat[2:] == _SUBFORMAT_GUID_TAIL
                else "a non-standard sub-format"
            )
            raise FormatError(
                f"WAVE_FORMAT_EXTENSIBLE with {name} is not supported: "
                "neurolace reads 16-bit integer PCM only"
            )
    elif format_tag != WAVE_FORMAT_PCM:
        raise FormatError(
            f"{_format_name(format_tag)} WAV is not supported: neurolace reads 16-bit integer PCM only"
        )
    if n_channels < 1:
        raise FormatError(f"the fmt chunk declares {n_channels} channels; expected at least 1")
    if fs_hz < 1:
        raise FormatError(f"the fmt chunk declares a sample rate of {fs_hz} Hz; expected at least 1")
    if bits_per_sample != 16:
        raise FormatError(
            f"{bits_per_sample}-bit PCM is not supported: neurolace stores int16 ADC codes (16-bit PCM only)"
        )
    if block_align != 2 * n_channels:
        raise FormatError(
            f"the fmt chunk declares block_align={block_align} bytes, but {n_channels} channel(s) of "
            f"16-bit samples need {2 * n_channels}"
        )
    return format_tag, n_channels, 2, fs_hz


def _finish(view: memoryview, fmt: tuple[int, int, int, int], data_offset: int, data_size: int) -> WavHeader:
    format_tag, n_channels, sample_width, fs_hz = fmt
    total = len(view)
    available = total - data_offset
    if data_size > available:
        raise FormatError(
            f"truncated WAV file: the data chunk declares {data_size} bytes but only {available} follow "
            f"its header (file of {total} bytes)"
        )
    block_align = n_channels * sample_width
    if data_size % block_align:
        raise FormatError(
            f"the data chunk holds {data_size} bytes, not a multiple of the block align of "
            f"{block_align} bytes "
            f"({n_channels} channel(s) x {sample_width} bytes)"
        )
    return WavHeader(
        format_tag=format_tag,
        n_channels=n_channels,
        sample_width_bytes=sample_width,
        fs_hz=fs_hz,
        data_offset=data_offset,
        data_size_bytes=data_size,
        header_bytes=bytes(view[:data_offset]),
        trailer_bytes=bytes(view[data_offset + data_size :]),
    )


def read_wav(path: str | os.PathLike, *, gain_uv: float | None = None) -> Recording:
    """Read a 16-bit PCM WAV file into a recording of int16 codes.

    Parameters
    ----------
    path : str or path-like
        The ``.wav`` file.
    gain_uv : float, optional
        µV per int16 step. WAV carries no scale: by default
        :data:`N1_WAV_GAIN_UV` is used (the documented assumption for the
        Neuralink N1 clips) and ``metadata["gain_uv_assumed"]`` is True.

    Returns
    -------
    Recording
        ``samples`` of shape (n_frames, n_channels), the file's sample rate,
        and metadata ``source``, ``format`` ("wav"), ``wav_format_tag``,
        ``gain_uv_assumed``.
    """
    path = check_input_file(path, "WAV file")
    if gain_uv is not None:
        gain_uv = check_positive(gain_uv, "gain_uv")
    contents = bytearray(path.read_bytes())
    try:
        header = parse_wav_header(contents)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    samples = np.frombuffer(
        contents, dtype="<i2", count=header.data_size_bytes // 2, offset=header.data_offset
    ).reshape(header.n_frames, header.n_channels)
    if samples.dtype != np.int16:
        samples = samples.astype(np.int16)
    return Recording(
        samples,
        fs_hz=header.fs_hz,
        gain_uv=N1_WAV_GAIN_UV if gain_uv is None else gain_uv,
        metadata={
            "source": str(path),
            "format": "wav",
            "wav_format_tag": header.format_tag,
            "gain_uv_assumed": gain_uv is None,
        },
    )


def _canonical_header(n_channels: int, fs_hz: int, data_size: int) -> bytes:
    block_align = 2 * n_channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        WAVE_FORMAT_PCM,
        n_channels,
        fs_hz,
        fs_hz * block_align,
        block_align,
        16,
        b"data",
        data_size,
    )


def write_wav(path: str | os.PathLike, recording: Recording, *, overwrite: bool = True) -> Path:
    """Write a recording's int16 codes as a canonical 16-bit PCM WAV file.

    The header is the plain 44-byte form (fmt chunk of 16 bytes, then data),
    the one the Neuralink N1 clips use, so reading such a clip and writing it
    back gives the same bytes. The file appears only when complete.

    Parameters
    ----------
    path : str or path-like
        Output file.
    recording : Recording
        Its ``fs_hz`` must be a whole number of Hz (the WAV field is an integer).
        The µV gain is not stored: WAV has no field for it.
    overwrite : bool, default True
        If false, an existing ``path`` is refused
        (:class:`~neurolace.io.atomic.OutputExistsError`) and left as it is.

    Returns
    -------
    Path
        The written file.
    """
    if not isinstance(recording, Recording):
        raise InvalidInputError(f"recording must be a Recording, got {type(recording).__name__}")
    fs_hz = recording.fs_hz
    if fs_hz != round(fs_hz) or fs_hz > 0xFFFFFFFF:
        raise InvalidInputError(
            f"recording.fs_hz must be a whole number of Hz to be written as WAV, got {fs_hz!r}"
        )
    if recording.n_channels > 0xFFFF // 2:
        raise InvalidInputError(
            f"WAV holds at most {0xFFFF // 2} channels of 16-bit samples, got {recording.n_channels}"
        )
    data_size = recording.n_samples * recording.n_channels * 2
    if 36 + data_size > 0xFFFFFFFF:
        raise InvalidInputError(f"{data_size} bytes of samples exceed the 4 GiB limit of a RIFF file")
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temporary, open(temporary, "wb") as stream:
        stream.write(_canonical_header(recording.n_channels, int(fs_hz), data_size))
        stream.writelines(
            np.ascontiguousarray(block, dtype="<i2").tobytes() for block in recording.iter_chunks(1 << 16)
        )
    return path
