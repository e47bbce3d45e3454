"""The link's own error classes, each carrying the reason a frame or handshake was refused.

Everything the link refuses raises a :class:`LinkError` whose ``reason`` is one
of :data:`REJECT_REASONS`; receivers count refusals by that reason (the attack
bench and the dashboard report the counts) and go on with the next frame. No
other exception type may come out of the frame parser, the session or the
handshake on bad input: the property and fuzz tests hold them to it.
"""

from __future__ import annotations

from neurolace.core.errors import NeurolaceError

__all__ = [
    "REJECT_REASONS",
    "AuthenticationError",
    "FrameError",
    "HandshakeError",
    "LinkError",
    "ReplayError",
]

#: why a frame or a handshake message was refused: the keys of every ``rejected`` count
REJECT_REASONS = (
    "garbage",          # bytes between frames that are not a frame header (skipped while resynchronising)
    "bad_header",       # header checksum mismatch: corrupted header
    "truncated",        # the channel ended inside a frame
    "oversized",        # payload length above the maximum
    "unknown_version",  # a version this side does not speak (a downgrade attempt or an old peer)
    "unknown_stream",   # a stream type this side does not know
    "tag_mismatch",     # AEAD open failed: tampered, forged, corrupted or sealed under another key
    "replayed",         # sequence number already accepted inside the replay window
    "too_old",          # sequence number behind the replay window
    "no_session",       # a sealed frame before any handshake completed
    "bad_handshake",    # malformed handshake message or wrong handshake state
    "unpaired",         # handshake from a static key this side never paired with
    "revoked",          # handshake from a paired key that was revoked
)


class LinkError(NeurolaceError):
    """A frame or handshake message the link refused; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown link reject reason {reason!r}; expected one of {REJECT_REASONS}")
        self.reason = reason
        super().__init__(message or reason)


class FrameError(LinkError):
    """A frame that does not parse: garbage, bad header, truncated, oversized, unknown version or stream."""


class AuthenticationError(LinkError):
    """A frame whose AEAD tag does not verify under the session key (``tag_mismatch``, ``no_session``)."""


class ReplayError(LinkError):
    """A frame whose sequence number was already accepted or is behind the replay window."""


class HandshakeError(LinkError):
    """A handshake refused: malformed, out of order, from an unpaired or revoked device."""
