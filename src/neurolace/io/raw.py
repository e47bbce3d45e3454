"""Headerless interleaved binary: the simplest container of ADC codes.

A raw file is ``n_samples x n_channels`` integers written time first (all
channels of sample 0, then all channels of sample 1, ...), with nothing to say
the rate, the channel count or the type: the caller gives them. The locust
tetrode set in ``../shared/data/pouzat-locust-tetrode`` is such a file
(little-endian int16, 4 channels, 15 kHz).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.recording import Recording
from neurolace.io.atomic import atomic_output
from neurolace.io.paths import check_input_file

__all__ = ["read_raw", "write_raw"]

_INT16_INFO = np.iinfo(np.int16)


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise InvalidInputError(
            f"dtype must be an integer numpy dtype such as 'int16', '<i2' or 'uint16', got {dtype!r}"
        ) from None
    if resolved.kind not in "iu":
        raise InvalidInputError(
            f"dtype must be an integer type (neurolace stores int16 ADC codes), got {resolved} ({dtype!r}); "
            "floating-point raw files cannot be read as codes without a scale"
        )
    return resolved


def read_raw(
    path: str | os.PathLike,
    *,
    fs_hz: float,
    n_channels: int,
    dtype: Any = "int16",
    gain_uv: float | None = None,
    offset: int = 0,
    offset_uv: float = 0.0,
) -> Recording:
    """Read a headerless interleaved binary file of integer ADC codes.

    Parameters
    ----------
    path : str or path-like
        The file (any extension; ``.raw``, ``.bin`` and ``.dat`` by convention).
    fs_hz : float
        Sampling rate in Hz (> 0).
    n_channels : int
        Number of interleaved channels (>= 1).
    dtype : numpy dtype or str, default "int16"
        Type of one sample on disk, with its byte order (``"int16"`` is the
        machine's order, ``"<i2"`` little-endian, ``">i2"`` big-endian). Types
        other than int16 are accepted when every value fits in int16, so the
        codes are kept exactly; otherwise the read fails.
    gain_uv : float, optional
        µV per code. Raw files carry no scale: by default 1.0 is used and
        ``metadata["gain_uv_assumed"]`` is True.
    offset : int, default 0
        Bytes to skip at the start of the file (a foreign header).
    offset_uv : float, default 0.0
        µV value of code 0 (``uv = offset_uv + gain_uv * code``).

    Returns
    -------
    Recording
        ``samples`` of shape (n_samples, n_channels), int16.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FormatError
        The file is empty, its size after ``offset`` is not a whole number of
        frames (``n_channels * itemsize`` bytes), or its values do not fit int16.
    InvalidInputError
        A parameter is out of range.
    """
    fs_hz = check_positive(fs_hz, "fs_hz")
    n_channels = check_int(n_channels, "n_channels", minimum=1)
    disk_dtype = _check_dtype(dtype)
    offset = check_int(offset, "offset", minimum=0)
    gain = 1.0 if gain_uv is None else check_positive(gain_uv, "gain_uv")
    path = check_input_file(path, "raw file")
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        raise FormatError(f"{path}: the file is empty (0 bytes), no samples to read")
    if offset > size_bytes:
        raise FormatError(f"{path}: offset={offset} bytes is past the end of the {size_bytes}-byte file")
    payload_bytes = size_bytes - offset
    frame_bytes = n_channels * disk_dtype.itemsize
    if payload_bytes % frame_bytes:
        raise FormatError(
            f"{path}: {payload_bytes} bytes of samples are not a whole number of frames of "
            f"{n_channels} channel(s) x {disk_dtype.itemsize} bytes ({disk_dtype}) = {frame_bytes} bytes "
            f"({payload_bytes % frame_bytes} bytes left over): the file is truncated or n_channels "
            "(--channels) or dtype is wrong"
        )
    values = np.fromfile(path, dtype=disk_dtype, offset=offset).reshape(-1, n_channels)
    if values.dtype != np.int16:
        if values.size:
            low, high = int(values.min()), int(values.max())
            if low < _INT16_INFO.min or high > _INT16_INFO.max:
                raise FormatError(
                    f"{path}: values in [{low}, {high}] do not fit int16 "
                    f"[{_INT16_INFO.min}, {_INT16_INFO.max}], "
                    f"so the {disk_dtype} codes cannot be kept exactly; neurolace stores int16 ADC codes"
                )
        values = values.astype(np.int16)
    return Recording(
        values,
        fs_hz=fs_hz,
        gain_uv=gain,
        offset_uv=offset_uv,
        metadata={
            "source": str(path),
            "format": "raw",
            "raw_dtype": disk_dtype.str,
            "gain_uv_assumed": gain_uv is None,
        },
    )


def write_raw(
    path: str | os.PathLike, recording: Recording, *, dtype: Any = "<i2", overwrite: bool = True
) -> Path:
    """Write a recording's codes as headerless interleaved binary (atomic).

    Parameters
    ----------
    path : str or path-like
        Output file.
    recording : Recording
        Samples of shape (n_samples, n_channels) are written time first.
    dtype : numpy dtype or str, default "<i2"
        On-disk type; it must hold every int16 value of the recording.
    overwrite : bool, default True
        If false, an existing ``path`` is refused
        (:class:`~neurolace.io.atomic.OutputExistsError`) and left as it is.

    Returns
    -------
    Path
        The written file. Rate, gain and channel count are not stored.
    """
    if not isinstance(recording, Recording):
        raise InvalidInputError(f"recording must be a Recording, got {type(recording).__name__}")
    disk_dtype = _check_dtype(dtype)
    if recording.n_samples:
        info = np.iinfo(disk_dtype)
        low, high = int(recording.samples.min()), int(recording.samples.max())
        if low < info.min or high > info.max:
            raise InvalidInputError(
                f"dtype {disk_dtype} cannot hold the recording's codes in [{low}, {high}]"
            )
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temporary, open(temporary, "wb") as stream:
        stream.writelines(
            np.ascontiguousarray(block, dtype=disk_dtype).tobytes()
            for block in recording.iter_chunks(1 << 16)
        )
    return path
