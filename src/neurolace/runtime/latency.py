"""Latency logs: fixed-size buffers of nanosecond intervals and their percentiles.

Recording a latency must cost less than the thing measured, so a
:class:`LatencyLog` is a preallocated int64 ring (no allocation per message);
percentiles are computed once, at the end of a run.
"""

from __future__ import annotations

import threading

import numpy as np

from neurolace.core.checks import check_int

__all__ = ["LatencyLog", "summarise_ns"]


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
