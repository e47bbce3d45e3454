"""Noise estimation from the median absolute value (Quiroga et al. 2004).

The standard deviation of band-passed extracellular noise is estimated per
channel as ``median(|x|) / 0.6745`` (Quiroga, Nadasdy & Ben-Shaul,
"Unsupervised spike detection and sorting with wavelets and superparamagnetic
clustering", Neural Computation 16:1661-1687, 2004). For Gaussian
noise this equals sigma (0.6745 is the 75th percentile of the standard normal)
while, unlike the standard deviation, it is barely moved by the spikes
themselves. Band-passed signals have zero median, so this is the median
absolute deviation about zero.

Streaming without breaking determinism: the estimate is computed from a fixed
window of samples on the global sample clock, ``[0, window)``, and, when
``update_weight > 0``, refreshed from each later non-overlapping block
``[k window, (k+1) window)`` as ``noise = (1 - w) noise + w mad(block)``; the
refreshed value applies from the first sample after the block. Block
boundaries sit on the sample clock, not on chunk boundaries, so any chunking
gives the same estimates applied to the same samples. Memory is one window of
samples, whatever the recording length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.recording import Recording
from neurolace.dsp.filters import BandpassFilter, check_chunk

__all__ = ["MAD_TO_SIGMA", "NoiseEstimator", "estimate_noise", "mad_noise"]

#: Median of |N(0, 1)|, the divisor of Quiroga et al. (2004).
MAD_TO_SIGMA = 0.6745


def mad_noise(samples: Any) -> np.ndarray:
    """Noise standard deviation of each channel, ``median(|x|) / 0.6745``.

    Parameters
    ----------
    samples : array-like, shape (n_samples, n_channels) or (n_samples,)
        Zero-median (band-passed) signal; at least one sample.

    Returns
    -------
    noise : ndarray of float64, shape (n_channels,) (a float for 1-D input)
    """
    array = check_array(samples, "samples", ndim=(1, 2), dtype="numeric", allow_empty=False)
    if array.ndim == 1:
        return _median_magnitude(array[:, np.newaxis])[0] / MAD_TO_SIGMA
    return _median_magnitude(array) / MAD_TO_SIGMA


# Profile on 1024 channels x 19,531 samples (1 s), one core: np.median(np.abs(x.T), axis=-1) took
# 0.33 s; np.partition on the two middle ranks, 64 channels at a time (so the transposed block stays
# in cache), 0.38 s on numpy 2.4 (CPU time, the same with AVX-512 off): np.abs of the transposed
# view keeps its strided layout, so the partition ran over strided rows, and a plain transposing
# copy of a 64-column slice costs 0.19 s. Transposing 512-sample tiles into a contiguous
# (64, n_samples) block first takes 0.078 s in all. Same values as before (an exact selection).
_MEDIAN_CHANNEL_BLOCK = 64
_MEDIAN_TRANSPOSE_TILE = 512


def _median_magnitude(samples: np.ndarray) -> np.ndarray:
    """Median of |x| along axis 0 of a 2-D array, float64, shape (n_channels,)."""
    n_samples, n_channels = samples.shape
    middle = [n_samples // 2] if n_samples % 2 else [n_samples // 2 - 1, n_samples // 2]
    magnitude_dtype = np.abs(samples[:1]).dtype
    out = np.empty(n_channels, dtype=np.float64)
    for start in range(0, n_channels, _MEDIAN_CHANNEL_BLOCK):
        stop = min(n_channels, start + _MEDIAN_CHANNEL_BLOCK)
        block = np.empty((stop - start, n_samples), dtype=magnitude_dtype)
        for row in range(0, n_samples, _MEDIAN_TRANSPOSE_TILE):
            tile = samples[row : row + _MEDIAN_TRANSPOSE_TILE, start:stop]
            block[:, row : row + _MEDIAN_TRANSPOSE_TILE] = np.abs(tile).T
        block.partition(middle, axis=-1)
        out[start:stop] = block[:, middle].astype(np.float64).mean(axis=1)
    return out


class NoiseEstimator:
    """Per-channel noise level from a window on the global sample clock.

    Parameters
    ----------
    fs_hz : float
        Sampling rate in Hz.
    n_channels : int
        Number of channels.
    window_s : float, default 1.0
        Length of the estimation window (and of each update block) in seconds.
    update_weight : float in [0, 1], default 0.0
        Weight of each new block in the running estimate; 0 keeps the first window's estimate.

    Attributes
    ----------
    noise_uv : ndarray of float64, shape (n_channels,), or None
        Current estimate, None until the first window is complete (or :meth:`finish`).
    """

    def __init__(
        self, fs_hz: float, n_channels: int, *, window_s: float = 1.0, update_weight: float = 0.0
    ) -> None:
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.window_s = check_positive(window_s, "window_s")
        self.window_samples = max(1, round(self.window_s * self.fs_hz))
        weight = float(update_weight)
        if not 0.0 <= weight <= 1.0:
            raise InvalidInputError(f"update_weight must lie in [0, 1], got {update_weight!r}")
        self.update_weight = weight
        self.reset()

    def reset(self) -> None:
        """Forget the estimate and the buffered samples."""
        self.noise_uv: np.ndarray | None = None
        self._buffer: np.ndarray | None = None
        self._filled = 0
        self._completed = 0

    @property
    def ready(self) -> bool:
        return self.noise_uv is not None

    @property
    def buffering(self) -> bool:
        """Whether incoming samples are still used (first window, or updates enabled)."""
        return self.noise_uv is None or self.update_weight > 0

    @property
    def samples_until_update(self) -> int:
        """Samples left before the estimate next changes (a large number when it never will)."""
        if not self.buffering:
            return np.iinfo(np.int64).max
        return self.window_samples - self._filled

    @property
    def buffered(self) -> np.ndarray:
        """Samples of the current block so far, shape (n_filled, n_channels); valid until the next call."""
        if self._buffer is None:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        return self._buffer[: self._filled]

    @property
    def completed_block(self) -> np.ndarray | None:
        """Samples of the block the last call completed, shape (n, n_channels), else None.

        Set only when the call ended exactly at the end of a block (as the chain arranges through
        :attr:`samples_until_update`); valid until the next call.
        """
        if not self._completed or self._buffer is None:
            return None
        return self._buffer[: self._completed]

    def process(self, chunk: Any) -> np.ndarray | None:
        """Consume the next samples; return the current estimate (None while the first window fills).

        Parameters
        ----------
        chunk : array-like, shape (n_samples, n_channels)
            Band-passed (and referenced) samples, in µV.

        Returns
        -------
        noise_uv : ndarray of float64, shape (n_channels,), or None
        """
        return self._process(check_chunk(chunk, self.n_channels))

    def _process(self, samples: np.ndarray) -> np.ndarray | None:
        """``process`` without the input checks."""
        self._completed = 0
        if not self.buffering:
            self._buffer = None
        position = 0
        while position < samples.shape[0] and self.buffering:
            if self._buffer is None:
                self._buffer = np.empty((self.window_samples, self.n_channels), dtype=np.float32)
            take = min(samples.shape[0] - position, self.window_samples - self._filled)
            self._completed = 0  # a new block overwrites the one just completed
            self._buffer[self._filled : self._filled + take] = samples[position : position + take]
            self._filled += take
            position += take
            if self._filled == self.window_samples:
                self._complete_block()
        return self.noise_uv

    def finish(self) -> np.ndarray | None:
        """At the end of the recording: estimate from a partial first window if that is all there is."""
        self._completed = 0
        if self.noise_uv is None and self._filled > 0:
            self._complete_block()
        return self.noise_uv

    def _complete_block(self) -> None:
        estimate = mad_noise(self._buffer[: self._filled])
        if self.noise_uv is None:
            self.noise_uv = estimate
        else:
            self.noise_uv = (1.0 - self.update_weight) * self.noise_uv + self.update_weight * estimate
        self._completed = self._filled
        self._filled = 0

    def __repr__(self) -> str:
        return (
            f"NoiseEstimator(window_s={self.window_s:g}, update_weight={self.update_weight:g}, "
            f"n_channels={self.n_channels}, ready={self.ready})"
        )


def estimate_noise(
    recording: Recording,
    *,
    window_s: float | None = None,
    low_hz: float = 300.0,
    high_hz: float | None = 6000.0,
    order: int = 4,
) -> np.ndarray:
    """Noise level of each channel of a recording after causal band-pass filtering, in µV.

    Parameters
    ----------
    recording : Recording
    window_s : float, optional
        Use only the first ``window_s`` seconds; default the whole recording.
    low_hz, high_hz, order
        Band-pass applied first, as in :class:`~neurolace.dsp.BandpassFilter`.

    Returns
    -------
    noise_uv : ndarray of float64, shape (n_channels,)
    """
    if not isinstance(recording, Recording):
        raise InvalidInputError(f"recording must be a Recording, got {type(recording).__name__}")
    if recording.n_samples == 0:
        raise InvalidInputError("recording must hold at least one sample to estimate noise, got 0")
    stop = recording.n_samples
    if window_s is not None:
        stop = min(stop, max(1, round(check_positive(window_s, "window_s") * recording.fs_hz)))
    stage = BandpassFilter(
        recording.fs_hz,
        recording.n_channels,
        low_hz=low_hz,
        high_hz=high_hz,
        order=order,
        scale=recording.gain_uv,
    )
    return mad_noise(stage.process(recording.samples[:stop]))
