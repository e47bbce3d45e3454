"""Threshold-crossing spike detection with a per-channel dead time, chunk by chunk.

A spike is detected on a channel at the first sample that lies beyond the
threshold after a sample that did not (a *crossing*), the threshold being a
multiple of the channel's noise level (-4.5 x RMS by default, the convention of
intracortical BCI work such as Christie et al., J Neural Eng 12:016009, 2015,
and close to Quiroga et al.'s 4-5 sigma). After a detection, crossings on the
same channel are ignored for a dead time (1 ms by default), so one spike is
counted once. The state that decides the next chunk -- whether the last sample
was beyond threshold, and when the last detection happened -- is carried
across chunk borders, so chunking never adds or removes a detection.

Each event's ``amplitude_uv`` is the extreme value (minimum for a negative
threshold) of the signal over the dead-time window that starts at the
crossing, ``[s, s + dead_samples)``: the trough of the spike as the detector
saw it. An event whose window runs past the end of a chunk is held back and
returned with the next chunk; :meth:`ThresholdDetector.finish` returns the
ones left at the end of the recording.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.dsp.defaults import DEFAULT_DEAD_TIME_MS, DEFAULT_THRESHOLD
from neurolace.dsp.filters import check_chunk

__all__ = ["DEFAULT_DEAD_TIME_MS", "DEFAULT_THRESHOLD", "ThresholdDetector"]

# Profile on 1024 channels x 10 s of synthetic codes (20 events per channel per second) in 20 ms
# blocks, CPU time on one core (under the benchmarks' first AVX2 emulation, which still let numba
# use AVX-512; with strict AVX2 this kernel took 0.185 s before its flag pass moved to bytes).
# The first design -- a branch-free flag pass, a scan for crossings outside the dead time, numpy
# gathers for each event's amplitude window and concatenations to carry the unfinished ones -- spent 0.155 s (0.085 s in its kernels, the rest
# in numpy and Python per block). Tracking every channel's window with selects in the flag pass
# spent 0.19 s: windows are open about 2 % of the time, so most of that work is wasted. This
# kernel keeps the flag pass branch-free and vectorised across channels and follows only the open
# windows, in a queue: every window is the dead time long, so windows close in the order they
# opened (sample, then channel), which is also the order events are returned in.


@numba.njit(nogil=True, cache=True)
def _detect_kernel(
    samples, flipped_thresholds, sign, first_index, dead_samples, beyond_before, window_open, flags,
    flag_words, queue_channel, queue_start, queue_extreme, queue_state,
):
    """Detect crossings and their amplitudes over one block; return the events whose window closed.

    ``queue_*`` hold the open amplitude windows in the order they opened, a ring of capacity
    ``n_channels`` (a channel has at most one open window: a crossing opens one only when none
    is open, which is the dead time); ``queue_state`` is ``[head, size]``. ``window_open`` marks
    the channels with an open window.
    """
    n_samples, n_channels = samples.shape
    n_words = flag_words.shape[0]
    capacity = n_channels * (n_samples // dead_samples + 1)
    found_index = np.empty(capacity, dtype=np.int64)
    found_channel = np.empty(capacity, dtype=np.int32)
    found_extreme = np.empty(capacity, dtype=np.float32)
    count = 0
    head = queue_state[0]
    size = queue_state[1]
    for index in range(n_samples):
        row = samples[index]
        sample_index = first_index + index
        n_flagged = 0
        for channel in range(n_channels):
            # 0/1 bytes, not bools: numba's bool logic here compiled to scalar code for AVX2
            # (230 µs per 391 x 1024 block), byte arithmetic vectorises (97 µs)
            beyond = np.uint8(sign * row[channel] > flipped_thresholds[channel])
            crossing = beyond & (np.uint8(1) - beyond_before[channel])
            flags[channel] = crossing
            n_flagged += crossing
            beyond_before[channel] = beyond
        # the windows already open take this sample, oldest first
        for slot in range(size):
            position = (head + slot) % n_channels
            value = row[queue_channel[position]]
            if sign * value > sign * queue_extreme[position]:
                queue_extreme[position] = value
        if n_flagged:
            for word in range(n_words):
                if flag_words[word] != 0:
                    for channel in range(8 * word, min(8 * word + 8, n_channels)):
                        if flags[channel] and not window_open[channel]:
                            position = (head + size) % n_channels
                            queue_channel[position] = channel
                            queue_start[position] = sample_index
                            queue_extreme[position] = row[channel]
                            window_open[channel] = True
                            size += 1
        # windows that have seen their dead_samples samples close, in the order they opened
        while size and queue_start[head] + dead_samples - 1 == sample_index:
            channel = queue_channel[head]
            found_index[count] = queue_start[head]
            found_channel[count] = channel
            found_extreme[count] = queue_extreme[head]
            count += 1
            window_open[channel] = False
            head = (head + 1) % n_channels
            size -= 1
    queue_state[0] = head
    queue_state[1] = size
    return found_index[:count], found_channel[:count], found_extreme[:count]


class ThresholdDetector:
    """Streaming threshold-crossing detector.

    Parameters
    ----------
    fs_hz : float
        Sampling rate in Hz.
    n_channels : int
        Number of channels.
    threshold : float, default -4.5
        Threshold as a multiple of each channel's noise RMS; negative detects downward
        crossings (the usual extracellular spike polarity), positive upward ones.
    dead_time_ms : float, default 1.0
        After a detection, no other detection on that channel for this long. Rounded to whole
        samples (at least one).

    Notes
    -----
    :meth:`process` returns the events whose amplitude window is complete; :attr:`finalized_through`
    tells how far the returned events are final (used to close feature bins).
    """

    def __init__(
        self,
        fs_hz: float,
        n_channels: int,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        dead_time_ms: float = DEFAULT_DEAD_TIME_MS,
    ) -> None:
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        threshold = float(threshold)
        if threshold == 0 or not np.isfinite(threshold):
            raise InvalidInputError(
                f"threshold must be a finite non-zero multiple of the noise RMS, got {threshold!r}"
            )
        self.threshold = threshold
        self.dead_time_ms = check_nonnegative(dead_time_ms, "dead_time_ms")
        self.dead_samples = max(1, round(self.dead_time_ms * self.fs_hz / 1000.0))
        self.reset()

    def reset(self) -> None:
        """Forget the carried state, pending events and the sample clock."""
        n = self.n_channels
        self._beyond_before = np.zeros(n, dtype=np.uint8)
        self._window_open = np.zeros(n, dtype=np.bool_)
        padded = -(-n // 8) * 8
        self._flags = np.zeros(padded, dtype=np.uint8)
        self._flag_words = self._flags.view(np.uint64)
        self._queue_channel = np.zeros(n, dtype=np.int32)
        self._queue_start = np.zeros(n, dtype=np.int64)
        self._queue_extreme = np.zeros(n, dtype=np.float32)
        self._queue_state = np.zeros(2, dtype=np.int64)  # head, size
        self._position = 0

    @property
    def samples_seen(self) -> int:
        return self._position

    @property
    def finalized_through(self) -> int:
        """Every event with ``sample_index`` below this value has been returned."""
        head, size = self._queue_state
        return int(self._queue_start[head]) if size else self._position

    def thresholds_uv(self, noise_uv: Any) -> np.ndarray:
        """Per-channel thresholds in µV for noise levels ``noise_uv``, shape (n_channels,)."""
        noise = check_array(noise_uv, "noise_uv", ndim=1, shape=(self.n_channels,), dtype=np.float64)
        if (noise < 0).any():
            raise InvalidInputError("noise_uv must be >= 0 on every channel")
        return (self.threshold * noise).astype(np.float32)

    def process(self, chunk: Any, noise_uv: Any) -> SpikeEvents:
        """Detect crossings in the next block of samples.

        Parameters
        ----------
        chunk : array-like, shape (n_samples, n_channels)
            Band-passed samples in µV, continuing the previous chunk.
        noise_uv : array-like, shape (n_channels,)
            Noise RMS of each channel in µV; thresholds are ``threshold * noise_uv``.

        Returns
        -------
        events : SpikeEvents
            Events finalized by this chunk (sample indices on the global clock, ``amplitude_uv`` set).
        """
        samples = check_chunk(chunk, self.n_channels).astype(np.float32, copy=False)
        return self._process(samples, self.thresholds_uv(noise_uv))

    def _process(self, samples: np.ndarray, thresholds: np.ndarray) -> SpikeEvents:
        """``process`` on a checked float32 block with thresholds in µV, shape (n_channels,)."""
        if samples.shape[0] == 0:
            return self._events(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))
        sign = np.float32(-1.0 if self.threshold < 0 else 1.0)
        found = _detect_kernel(
            samples,
            sign * thresholds,
            sign,
            self._position,
            self.dead_samples,
            self._beyond_before,
            self._window_open,
            self._flags,
            self._flag_words,
            self._queue_channel,
            self._queue_start,
            self._queue_extreme,
            self._queue_state,
        )
        self._position += samples.shape[0]
        return self._events(*found)

    def _events(
        self, sample_index: np.ndarray, channel_index: np.ndarray, amplitude_uv: np.ndarray
    ) -> SpikeEvents:
        """Events already in (sample, channel) order, as the kernel returns them."""
        return SpikeEvents._from_sorted(
            sample_index, channel_index, fs_hz=self.fs_hz, n_channels=self.n_channels, amplitude_uv=amplitude_uv
        )

    def finish(self) -> SpikeEvents:
        """Return the events whose amplitude window was still open, with the extreme seen so far."""
        head, size = (int(v) for v in self._queue_state)
        slots = (head + np.arange(size)) % self.n_channels
        events = self._events(
            self._queue_start[slots], self._queue_channel[slots], self._queue_extreme[slots]
        )
        self._window_open[:] = False
        self._queue_state[:] = 0
        return events

    def __repr__(self) -> str:
        return (
            f"ThresholdDetector(threshold={self.threshold:g} x RMS, dead_time_ms={self.dead_time_ms:g}, "
            f"n_channels={self.n_channels}, fs_hz={self.fs_hz:g})"
        )
