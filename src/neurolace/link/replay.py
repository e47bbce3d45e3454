"""The receive-side replay window: each sequence number opens at most once, late frames still open.

A sliding window over the last ``size`` sequence numbers, as IPsec's
anti-replay window (RFC 4303 section 3.4.3 and appendix A) and DTLS's
(RFC 6347 section 4.1.2.6): the highest sequence accepted so far is the
window's right edge; bit ``i`` of an integer bitmask says whether
``highest - i`` was accepted. A number above the edge is new; one inside the
window opens if its bit is clear; one behind the window is refused as too old
(it cannot be told from a replay any more). Each call costs one shift and one
mask of a ``size``-bit integer: constant per frame for a fixed window.

The window is only moved by :meth:`ReplayWindow.accept`, which the session
calls *after* the frame's tag verified, so a forged frame with a huge sequence
number cannot slide the window and lock genuine frames out.
"""

from __future__ import annotations

from neurolace.core.checks import check_int
from neurolace.link.errors import ReplayError

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """Sliding anti-replay bitmap over the last ``size`` sequence numbers.

    Parameters
    ----------
    size : int
        How many sequence numbers below the highest accepted one are remembered (>= 1).

    Attributes
    ----------
    highest : int or None
        The highest sequence number accepted so far (None before the first).

    Examples
    --------
    >>> window = ReplayWindow(size=4)
    >>> for sequence in (0, 2, 1):
    ...     window.check(sequence); window.accept(sequence)
    >>> window.check(1)
    Traceback (most recent call last):
    ...
    neurolace.link.errors.ReplayError: sequence 1 was already accepted
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = check_int(size, "size", minimum=1)
        self._full = (1 << self.size) - 1
        self._bits = 0
        self.highest: int | None = None

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, highest={self.highest})"

    @property
    def lowest(self) -> int:
        """The lowest sequence number that can still be accepted (0 before the first)."""
        return 0 if self.highest is None else max(0, self.highest - self.size + 1)

    def check(self, sequence: int) -> None:
        """Refuse ``sequence`` if it was accepted already or is behind the window; change nothing.

        Raises
        ------
        ReplayError
            ``"replayed"`` (accepted before, inside the window) or ``"too_old"`` (behind it).
        """
        if self.highest is None or sequence > self.highest:
            return
        offset = self.highest - sequence
        if offset >= self.size:
            raise ReplayError(
                "too_old", f"sequence {sequence} is behind the replay window (lowest accepted {self.lowest})"
            )
        if (self._bits >> offset) & 1:
            raise ReplayError("replayed", f"sequence {sequence} was already accepted")

    def accept(self, sequence: int) -> None:
        """Mark ``sequence`` as accepted (after its tag verified), sliding the window if it is the newest.

        Raises
        ------
        ReplayError
            As :meth:`check`: accepting is refused for a number that would not pass it.
        """
        self.check(sequence)
        if self.highest is None:
            self.highest, self._bits = sequence, 1
        elif sequence > self.highest:
            shift = sequence - self.highest
            self._bits = ((self._bits << shift) | 1) & self._full if shift < self.size else 1
            self.highest = sequence
        else:
            self._bits |= 1 << (self.highest - sequence)
