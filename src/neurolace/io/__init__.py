"""Readers and writers: WAV, raw interleaved binary, NWB; crash-safe output files.

:func:`read_recording` opens any supported file by its extension:

- ``.wav``: 16-bit PCM (:func:`read_wav`);
- ``.nwb``: the raw ElectricalSeries of an NWB file (:func:`read_nwb`);
- ``.raw``, ``.bin``, ``.dat``: headerless interleaved integers
  (:func:`read_raw`; ``fs_hz`` and ``n_channels`` are required).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from neurolace.core.checks import check_positive
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.recording import Recording
from neurolace.io.atomic import atomic_output
from neurolace.io.nwb import NWBContents, read_nwb, write_nwb
from neurolace.io.raw import read_raw, write_raw
from neurolace.io.wav import N1_WAV_GAIN_UV, WavHeader, parse_wav_header, read_wav, write_wav

__all__ = [
    "N1_WAV_GAIN_UV",
    "RAW_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "NWBContents",
    "WavHeader",
    "atomic_output",
    "parse_wav_header",
    "read_nwb",
    "read_raw",
    "read_recording",
    "read_wav",
    "write_nwb",
    "write_raw",
    "write_wav",
]

RAW_EXTENSIONS = (".raw", ".bin", ".dat")
SUPPORTED_EXTENSIONS = (".wav", ".nwb", *RAW_EXTENSIONS)


def read_recording(
    path: str | os.PathLike,
    *,
    fs_hz: float | None = None,
    n_channels: int | None = None,
    dtype: Any = "int16",
    gain_uv: float | None = None,
) -> Recording:
    """Read a recording from a WAV, NWB or raw binary file, chosen by extension.

    Parameters
    ----------
    path : str or path-like
        The file; its extension (case-insensitive) selects the reader.
    fs_hz : float, optional
        Sampling rate in Hz. Required for raw files (they do not store it);
        for WAV and NWB it must match the file's rate if given.
    n_channels : int, optional
        Number of interleaved channels. Required for raw files; for WAV and
        NWB it must match the file if given.
    dtype : numpy dtype or str, default "int16"
        On-disk sample type of raw files (ignored for WAV and NWB).
    gain_uv : float, optional
        µV per code. WAV and raw files carry no scale, so a default is used
        and flagged with ``metadata["gain_uv_assumed"] = True`` unless given;
        for NWB it overrides the file's conversion.

    Returns
    -------
    Recording
        Samples of shape (n_samples, n_channels), int16.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    FormatError
        The extension is not supported, or the file is malformed.
    InvalidInputError
        Raw file without ``fs_hz``/``n_channels``, or a given value that
        contradicts the file.
    """
    path = Path(path)
    extension = path.suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise FormatError(
            f"cannot read {path}: extension {extension or '(none)'!r} is not supported; "
            f"supported extensions: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if not path.exists():
        raise FileNotFoundError(f"recording file not found: {path}")
    if extension in RAW_EXTENSIONS:
        missing = [name for name, value in (("fs_hz", fs_hz), ("n_channels", n_channels)) if value is None]
        if missing:
            raise InvalidInputError(
                f"reading raw binary {path} needs {' and '.join(missing)}: a {extension} file has no header "
                "to say its sampling rate and channel count (CLI: --fs-hz and --channels)"
            )
        return read_raw(path, fs_hz=fs_hz, n_channels=n_channels, dtype=dtype, gain_uv=gain_uv)
    if extension == ".wav":
        recording = read_wav(path, gain_uv=gain_uv)
    else:
        recording = read_nwb(path).recording
        if gain_uv is not None:
            recording.gain_uv = check_positive(gain_uv, "gain_uv")
    if fs_hz is not None and check_positive(fs_hz, "fs_hz") != recording.fs_hz:
        raise InvalidInputError(f"fs_hz={fs_hz:g} was given but {path} records at {recording.fs_hz:g} Hz")
    if n_channels is not None and n_channels != recording.n_channels:
        raise InvalidInputError(
            f"n_channels={n_channels} was given but {path} has {recording.n_channels} channel(s)"
        )
    return recording
