"""Latency logs: fixed-size buffers of nanosecond intervals and their percentiles.

Recording a latency must cost less than the thing measured, so a
:class:`LatencyLog` is a preallocated int64 ring (no allocation per message);
percentiles are computed once, at the end of a run.

A :class:`BacklogMeter` does the same for the depth of a queue: how many
messages of a stream were published but not yet read, sampled as the reader
takes them, and summarised as percentiles plus the fitted slope (messages per
second) that tells a queue that keeps up from one that grows without bound.
"""

from __future__ import annotations

import threading

import numpy as np

from neurolace.core.checks import check_int

__all__ = ["BACKLOG_GROWTH_MESSAGES", "BACKLOG_SAMPLE_INTERVAL_NS", "BacklogMeter", "LatencyLog", "summarise_ns"]

#: a fitted rise of at least this many messages over the measured window marks a backlog as growing
BACKLOG_GROWTH_MESSAGES = 10.0
#: least time between two depth samples of a queue (200 per second keep an hour in the ring)
BACKLOG_SAMPLE_INTERVAL_NS = 5_000_000


class LatencyLog:
    """The last ``capacity`` intervals in ns (older ones are overwritten) and a count of all."""

    def __init__(self, capacity: int = 65536) -> None:
        self.capacity = check_int(capacity, "capacity", minimum=1)
        self._values = np.zeros(self.capacity, dtype=np.int64)
        self.count = 0
        self._lock = threading.Lock()

    def add(self, interval_ns: int) -> None:
        with self._lock:
            self._values[self.count % self.capacity] = interval_ns
            self.count += 1

    def clear(self) -> None:
        with self._lock:
            self.count = 0

    def values_ns(self) -> np.ndarray:
        """Stored intervals, oldest first, shape (min(count, capacity),)."""
        with self._lock:
            if self.count <= self.capacity:
                return self._values[: self.count].copy()
            start = self.count % self.capacity
            return np.concatenate([self._values[start:], self._values[:start]])

    def summary_us(self) -> dict:
        return summarise_ns(self.values_ns())

    def __len__(self) -> int:
        return min(self.count, self.capacity)


def summarise_ns(values_ns: np.ndarray) -> dict:
    """n, p50, p99, max (µs) of intervals in ns; NaN when empty."""
    values = np.asarray(values_ns, dtype=np.float64)
    if values.size == 0:
        return {"n": 0, "p50_us": float("nan"), "p99_us": float("nan"), "max_us": float("nan")}
    p50, p99 = np.percentile(values, [50, 99]) / 1e3
    return {
        "n": int(values.size),
        "p50_us": float(p50),
        "p99_us": float(p99),
        "max_us": float(values.max() / 1e3),
    }


class BacklogMeter:
    """Depth of one queue over time: a ring of (time, depth) samples, at most one per ``interval_ns``
    (default :data:`BACKLOG_SAMPLE_INTERVAL_NS`).

    The reader calls :meth:`note` with the depth it saw when it took a message
    (messages published after that one and not yet read); :meth:`summary` gives
    depth percentiles, the least-squares slope of depth over time in messages
    per second, and a verdict:

    - ``"overflowing"``: messages were dropped in the window (the queue was full);
    - ``"growing"``: the fitted rise over the window is at least
      :data:`BACKLOG_GROWTH_MESSAGES` (the reader is slower than the writer);
    - ``"steady"``: otherwise (a reader that keeps up, or a bounded batch).
    """

    def __init__(self, *, interval_ns: int | None = None, capacity: int = 65536) -> None:
        interval_ns = BACKLOG_SAMPLE_INTERVAL_NS if interval_ns is None else interval_ns
        self.interval_ns = check_int(interval_ns, "interval_ns", minimum=0)
        self.capacity = check_int(capacity, "capacity", minimum=2)
        self._times_ns = np.zeros(self.capacity, dtype=np.int64)
        self._depths = np.zeros(self.capacity, dtype=np.int64)
        self.count = 0
        self._last_ns = -(2**62)
        self.dropped_at_reset = 0
        self._lock = threading.Lock()

    def note(self, time_ns: int, depth: int) -> None:
        """Record ``depth`` at ``time_ns`` unless the previous sample is younger than ``interval_ns``."""
        if time_ns - self._last_ns < self.interval_ns:
            return
        with self._lock:
            self._last_ns = time_ns
            slot = self.count % self.capacity
            self._times_ns[slot] = time_ns
            self._depths[slot] = depth
            self.count += 1

    def clear(self, dropped_so_far: int = 0) -> None:
        """Forget the samples (after a warm-up); ``dropped_so_far`` is the reader's drop count now."""
        with self._lock:
            self.count = 0
            self._last_ns = -(2**62)
            self.dropped_at_reset = int(dropped_so_far)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Times (ns) and depths (messages) of the stored samples, oldest first."""
        with self._lock:
            n = min(self.count, self.capacity)
            start = self.count % self.capacity if self.count > self.capacity else 0
            order = (np.arange(n) + start) % self.capacity
            return self._times_ns[order].copy(), self._depths[order].copy()

    def summary(self, dropped_total: int = 0) -> dict:
        """Depth p50/p99/max/last, slope (messages/s), window (s), drops since :meth:`clear`, verdict.

        Parameters
        ----------
        dropped_total : int
            The reader's drop count now (drops in the window are this minus the count at clear).
        """
        times_ns, depths = self.samples()
        dropped = max(int(dropped_total) - self.dropped_at_reset, 0)
        result = {
            "samples": int(depths.size),
            "depth_p50": float("nan"),
            "depth_p99": float("nan"),
            "depth_max": 0,
            "depth_last": 0,
            "slope_per_s": 0.0,
            "window_s": 0.0,
            "dropped": dropped,
        }
        if depths.size:
            p50, p99 = np.percentile(depths, [50, 99])
            result.update(depth_p50=float(p50), depth_p99=float(p99))
            result.update(depth_max=int(depths.max()), depth_last=int(depths[-1]))
        if depths.size >= 2:
            seconds = (times_ns - times_ns[0]) / 1e9
            window_s = float(seconds[-1])
            if window_s > 0:
                centred = seconds - seconds.mean()
                slope = float(np.dot(centred, depths - depths.mean()) / np.dot(centred, centred))
                result.update(slope_per_s=slope, window_s=window_s)
        rise = result["slope_per_s"] * result["window_s"]
        if dropped:
            verdict = "overflowing"
        elif rise >= BACKLOG_GROWTH_MESSAGES:
            verdict = "growing"
        else:
            verdict = "steady"
        result["verdict"] = verdict
        return result
