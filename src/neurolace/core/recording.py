"""The recording container: ADC codes plus everything needed to read them.

A :class:`Recording` holds time-first integer ADC samples, shape
``(n_samples, n_channels)``, with the sampling rate, the µV value of one code,
channel ids and electrode geometry. Floating-point µV are computed on demand
(``get_traces_uv``), so a 1024-channel recording costs 2 bytes per sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.geometry import ElectrodeGeometry

__all__ = ["Recording"]


class Recording:
    """Multichannel extracellular recording in ADC codes.

    Parameters
    ----------
    samples : ndarray of int16, shape (n_samples, n_channels)
        ADC codes, time first. A 1-D array is taken as one channel. Integer
        arrays of another dtype are accepted when every value fits in int16.
    fs_hz : float
        Sampling rate in Hz.
    gain_uv : float
        µV per ADC code (the value of one least-significant step).
    offset_uv : float, default 0.0
        µV value of code 0, so ``uv = offset_uv + gain_uv * code``.
    channel_ids : array-like of str or int, shape (n_channels,), optional
        Labels of the channels; defaults to ``0 .. n_channels - 1``.
    geometry : ElectrodeGeometry, optional
        Electrode positions; defaults to one linear thread.
    metadata : dict, optional
        Free-form provenance (source file, subject, session start).
    """

    def __init__(
        self,
        samples: Any,
        *,
        fs_hz: float,
        gain_uv: float,
        offset_uv: float = 0.0,
        channel_ids: Any = None,
        geometry: ElectrodeGeometry | None = None,
        metadata: dict | None = None,
    ) -> None:
        array = check_array(samples, "samples", ndim=(1, 2), dtype="integer")
        array = check_array(array, "samples", dtype=np.int16)
        if array.ndim == 1:
            array = array[:, np.newaxis]
        if array.shape[1] == 0:
            raise InvalidInputError("samples must have at least one channel, got shape " f"{array.shape}")
        self._samples = array
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.gain_uv = check_positive(gain_uv, "gain_uv")
        self.offset_uv = float(offset_uv)
        n_channels = array.shape[1]
        if channel_ids is None:
            channel_ids = np.arange(n_channels)
        channel_ids = np.asarray(channel_ids)
        if channel_ids.shape != (n_channels,):
            raise InvalidInputError(
                f"channel_ids must have shape ({n_channels},) to match samples, got {channel_ids.shape}"
            )
        self.channel_ids = channel_ids
        if geometry is None:
            geometry = ElectrodeGeometry.linear(n_channels)
        if not isinstance(geometry, ElectrodeGeometry):
            raise InvalidInputError(f"geometry must be an ElectrodeGeometry, got {type(geometry).__name__}")
        if geometry.n_channels != n_channels:
            raise InvalidInputError(
                f"geometry describes {geometry.n_channels} electrodes but samples have {n_channels} channels"
            )
        self.geometry = geometry
        self.metadata = dict(metadata or {})

    # -- shape -----------------------------------------------------------------
    @property
    def samples(self) -> np.ndarray:
        """ADC codes, shape (n_samples, n_channels), int16."""
        return self._samples

    @property
    def n_samples(self) -> int:
        return int(self._samples.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self._samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    # -- values ----------------------------------------------------------------
    def get_traces_uv(self, start: int = 0, stop: int | None = None, dtype: Any = np.float32) -> np.ndarray:
        """Samples ``start:stop`` converted to µV, shape (stop - start, n_channels)."""
        codes = self._samples[start:stop]
        return (codes.astype(dtype) * dtype(self.gain_uv) + dtype(self.offset_uv)).astype(dtype, copy=False)

    def slice_samples(self, start: int, stop: int | None = None) -> "Recording":
        """A new recording of samples ``start:stop`` (a view, no copy)."""
        start = check_int(start, "start", minimum=0)
        return Recording(
            self._samples[start:stop],
            fs_hz=self.fs_hz,
            gain_uv=self.gain_uv,
            offset_uv=self.offset_uv,
            channel_ids=self.channel_ids,
            geometry=self.geometry,
            metadata={**self.metadata, "start_sample": self.metadata.get("start_sample", 0) + start},
        )

    def select_channels(self, channel_index: Any) -> "Recording":
        """A new recording holding only the channels at ``channel_index`` (positions, not ids)."""
        index = check_array(channel_index, "channel_index", ndim=1, dtype="integer")
        if index.size and (index.min() < 0 or index.max() >= self.n_channels):
            raise InvalidInputError(
                f"channel_index must lie in [0, {self.n_channels - 1}], got values in [{index.min()}, {index.max()}]"
            )
        return Recording(
            self._samples[:, index],
            fs_hz=self.fs_hz,
            gain_uv=self.gain_uv,
            offset_uv=self.offset_uv,
            channel_ids=self.channel_ids[index],
            geometry=self.geometry.subset(index),
            metadata=self.metadata,
        )

    def iter_chunks(self, chunk_samples: int) -> Iterator[np.ndarray]:
        """Yield consecutive int16 blocks of at most ``chunk_samples`` samples."""
        chunk_samples = check_int(chunk_samples, "chunk_samples", minimum=1)
        for start in range(0, self.n_samples, chunk_samples):
            yield self._samples[start : start + chunk_samples]

    def __repr__(self) -> str:
        return (
            f"Recording(n_channels={self.n_channels}, n_samples={self.n_samples}, "
            f"fs_hz={self.fs_hz:g}, duration_s={self.duration_s:.3f}, gain_uv={self.gain_uv:g}, "
            f"n_threads={self.geometry.n_threads}, dtype=int16)"
        )
