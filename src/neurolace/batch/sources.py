"""What a batch reads: INPUTS expanded to files, and a recording file read one time range at a time.

:func:`expand_inputs` turns the command line's files, directories and glob patterns into a
sorted list of files. :class:`RecordingSource` describes one recording file without loading its
samples (rate, channels, length, from the WAV header or the raw file's size) and reads any range
``[start, stop)`` of samples on its own: WAV and raw files through a read-only memory map, so a
worker holding one time chunk of a 150 GB file holds that chunk only. NWB files are read whole
(their samples are HDF5 chunks behind pynwb), so they are never split into time chunks.
"""

from __future__ import annotations

import glob
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.batch.errors import BatchError
from neurolace.core.errors import InvalidInputError
from neurolace.core.recording import Recording

__all__ = ["RecordingSource", "expand_inputs"]


def expand_inputs(inputs: list[str | os.PathLike], *, extensions: tuple[str, ...]) -> list[Path]:
    """Files named by ``inputs``: files as given, directories and globs by ``extensions``.

    Parameters
    ----------
    inputs : list of str or path-like
        Files (taken whatever their extension, so a wrong one is reported per file), directories
        (their files ending in one of ``extensions``, case-insensitive, not recursive) and glob
        patterns (``*``, ``?``, ``[``; ``**`` recurses).
    extensions : tuple of str
        Lower-case suffixes with the dot, e.g. ``(".wav", ".nwb")``.

    Returns
    -------
    list of Path
        Sorted within each input, in the order of ``inputs``, each file once.

    Raises
    ------
    BatchError
        An input names nothing (a missing path, a pattern or directory with no matching file),
        or no file at all was found.
    """
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in extensions)
            if not matches:
                raise BatchError(f"directory {text} holds no {'/'.join(extensions)} file")
        elif glob.has_magic(text):
            matches = sorted(
                Path(p) for p in glob.glob(text, recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in extensions
            )
            if not matches:
                raise BatchError(f"pattern {text!r} matches no {'/'.join(extensions)} file")
        elif path.exists() or path.is_symlink():
            matches = [path]
        else:
            raise BatchError(f"input {text} does not exist")
        found.extend(matches)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise BatchError("no input files given")
    return unique


def _wav_header(path: Path, parse) -> tuple[Any, Exception | None]:
    """The WAV header of ``path`` parsed through a memory map (only the pages it touches are read).

    Returns (header, None) or (None, the error naming ``path``): the error is built after the map
    is closed, since a live exception's frames would still hold a view of it.
    """
    from neurolace.core.errors import FormatError

    problem = None
    with open(path, "rb") as stream:
        if os.fstat(stream.fileno()).st_size == 0:
            return None, FormatError(f"{path}: the file is empty (0 bytes), not a WAV file")
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return parse(view), None
            except FormatError as exc:
                problem = str(exc)
            finally:
                view.release()
    return None, FormatError(f"{path}: {problem}")


@dataclass(frozen=True)
class RecordingSource:
    """One recording file, described from its header, read range by range.

    Attributes
    ----------
    path : Path
    kind : {"wav", "raw", "nwb"}
    fs_hz : float
    n_channels : int
    n_samples : int
    data_offset_bytes : int
        Where the samples start (WAV and raw).
    dtype : str
        On-disk sample type (numpy string, e.g. ``"<i2"``).
    gain_uv : float or None
        µV per code given on the command line (None: the reader's assumption).
    """

    path: Path
    kind: str
    fs_hz: float
    n_channels: int
    n_samples: int
    data_offset_bytes: int = 0
    dtype: str = "<i2"
    gain_uv: float | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        fs_hz: float | None = None,
        n_channels: int | None = None,
        dtype: Any = "int16",
        gain_uv: float | None = None,
    ) -> RecordingSource:
        """Describe ``path`` (extension chooses the format) without reading its samples.

        Raises
        ------
        neurolace.core.errors.NeurolaceError or OSError
            What the readers raise for a missing, unreadable or malformed file, or a raw file
            without ``fs_hz``/``n_channels``.
        """
        from neurolace.io import RAW_EXTENSIONS, parse_wav_header, read_recording
        from neurolace.io.paths import check_input_file

        path = Path(path)
        extension = path.suffix.lower()
        if extension == ".wav":
            check_input_file(path, "WAV file")
            header, problem = _wav_header(path, parse_wav_header)
            if problem is not None:
                raise problem
            return cls(path, "wav", float(header.fs_hz), header.n_channels, header.n_frames,
                       header.data_offset, "<i2", gain_uv)
        if extension in RAW_EXTENSIONS and fs_hz is not None and n_channels is not None:
            # read_raw's checks (size a whole number of frames, values fit int16) on a 1-frame probe
            # would miss a bad size, so check the size here and leave the values to read_segment.
            check_input_file(path, "raw file")
            disk = np.dtype(dtype)
            size_bytes = path.stat().st_size
            frame_bytes = int(n_channels) * disk.itemsize
            if size_bytes == 0 or size_bytes % frame_bytes:
                read_recording(path, fs_hz=fs_hz, n_channels=n_channels, dtype=dtype)  # raises its message
            return cls(path, "raw", float(fs_hz), int(n_channels), size_bytes // frame_bytes, 0, disk.str, gain_uv)
        recording = read_recording(path, fs_hz=fs_hz, n_channels=n_channels, dtype=dtype, gain_uv=gain_uv)
        return cls(path, "nwb", recording.fs_hz, recording.n_channels, recording.n_samples, 0, "<i2", gain_uv)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    @property
    def splittable(self) -> bool:
        """Whether ranges can be read without the whole file (WAV and raw)."""
        return self.kind in ("wav", "raw")

    def read_whole(self) -> Recording:
        """The whole recording, as :func:`neurolace.io.read_recording` returns it."""
        from neurolace.io import read_recording

        options = {} if self.kind != "raw" else {"fs_hz": self.fs_hz, "n_channels": self.n_channels}
        return read_recording(self.path, dtype=self.dtype, gain_uv=self.gain_uv, **options)

    def read_segment(self, start: int, stop: int) -> Recording:
        """Samples ``[start, stop)`` as a :class:`Recording` (int16 codes, the reader's gain).

        Parameters
        ----------
        start, stop : int
            Sample indices, ``0 <= start <= stop <= n_samples``.
        """
        if not 0 <= start <= stop <= self.n_samples:
            raise InvalidInputError(
                f"segment must satisfy 0 <= start <= stop <= {self.n_samples}, got [{start}, {stop})"
            )
        if not self.splittable:
            return self.read_whole().slice_samples(start, stop)
        from neurolace.io import N1_WAV_GAIN_UV

        disk = np.dtype(self.dtype)
        frame_bytes = self.n_channels * disk.itemsize
        codes = np.fromfile(
            self.path, dtype=disk, count=(stop - start) * self.n_channels,
            offset=self.data_offset_bytes + start * frame_bytes,
        ).reshape(-1, self.n_channels)
        if codes.shape[0] != stop - start:
            raise BatchError(f"{self.path}: expected {stop - start} samples from {start}, the file ended early")
        if codes.dtype != np.int16:
            info = np.iinfo(np.int16)
            if codes.size and (codes.min() < info.min or codes.max() > info.max):
                raise BatchError(f"{self.path}: values in samples [{start}, {stop}) do not fit int16")
            codes = codes.astype(np.int16)
        default_gain = N1_WAV_GAIN_UV if self.kind == "wav" else 1.0
        return Recording(codes, fs_hz=self.fs_hz, gain_uv=default_gain if self.gain_uv is None else self.gain_uv)
