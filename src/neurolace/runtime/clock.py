"""Pacing on the monotonic clock, and the jitter of a periodic loop.

:class:`Pacer` wakes a loop every ``period_ns`` on an absolute schedule (so
errors do not accumulate), records how late each wake-up was (the loop's
jitter) and, when the loop falls more than ``max_lag_periods`` behind,
skips ahead instead of bursting to catch up, counting the skipped periods.
"""

from __future__ import annotations

from neurolace.core.checks import check_int
from neurolace.runtime.bus import wait_until_ns
from neurolace.runtime.latency import LatencyLog
from neurolace.runtime.messages import now_ns

__all__ = ["PACER_SPIN_NS", "Pacer"]

#: How long before a tick a source stops sleeping and spins (``time.sleep(0)``) for a precise
#: wake-up. Spinning every 1 ms block re-requests the interpreter lock about ten times a
#: block, taking it from the dsp and decoder threads. Measured on the 1024-channel latency
#: benchmark (20 s runs alternating spin / sleep, the 2-core machine loaded 2-3): the implant's
#: thread took 0.09-0.12 of a core spinning 100 µs, 0.06-0.07 sleeping only, while the wake-up
#: lateness p99 (0.7-6 ms) was set by the machine's load either way. (A later paired run of
#: the whole runtime before and after this release, under the corrected AVX2 emulation, put
#: the implant at 0.10-0.11 of a core either way, so the saving is not always there.) A
#: source's block is stamped when it is published, so a later wake-up shifts no measured
#: latency; hence no spin.
PACER_SPIN_NS = 0


class Pacer:
    """An absolute-schedule periodic clock.

    Parameters
    ----------
    period_ns : int
        Loop period in ns.
    realtime : bool
        False runs as fast as possible (``wait`` returns at once, no jitter recorded).
    max_lag_periods : int
        Re-synchronise when this many periods behind.
    """

    def __init__(self, period_ns: int, *, realtime: bool = True, max_lag_periods: int = 50) -> None:
        self.period_ns = check_int(period_ns, "period_ns", minimum=1)
        self.realtime = bool(realtime)
        self.max_lag_periods = check_int(max_lag_periods, "max_lag_periods", minimum=1)
        self.start_ns: int | None = None
        self.tick = 0
        self.skipped_periods = 0
        self.lateness = LatencyLog()

    def wait(self) -> int:
        """Sleep until the next tick; return the tick's index."""
        if self.start_ns is None:
            self.start_ns = now_ns()
        if self.realtime:
            deadline = self.start_ns + self.tick * self.period_ns
            wait_until_ns(deadline, spin_ns=PACER_SPIN_NS)
            late_ns = now_ns() - deadline
            self.lateness.add(late_ns)
            if late_ns > self.max_lag_periods * self.period_ns:
                skip = late_ns // self.period_ns
                self.skipped_periods += int(skip)
                self.start_ns += int(skip) * self.period_ns
        index = self.tick
        self.tick += 1
        return index

    def jitter_summary(self) -> dict:
        """Lateness of the wake-ups (µs): p50, p99, max; skipped periods."""
        return {**self.lateness.summary_us(), "skipped_periods": self.skipped_periods}
