"""Link frames: the wire format, the one-frame parser and the resynchronising stream reader.

This module owns the bytes of a frame and nothing about what its body means
(sealing is the session's job, the payload the codec's or the chain's). The
format (little-endian, docs/link.md)::

    offset size field
    0      2    sync  b"\\xA5\\x4E"             FRAME_SYNC
    2      1    version                       LINK_VERSION = 1
    3      1    stream type                   StreamType
    4      8    sequence, u64                 per direction and session; the AEAD nonce
    12     8    sample clock, i64             implant sample index of the first sample covered
    20     4    body length, u32              at most MAX_BODY_BYTES
    24     4    CRC-32 (zlib) of bytes 0..23  resynchronisation only, not security
    28     n    body

:func:`parse_frame` takes exactly one frame. :class:`FrameReader` takes a byte
stream in any chunking, one that loses, corrupts and inserts bytes, and gives
back the frames it holds: it looks for the sync word, checks the header CRC,
and after garbage starts again at the next sync word whose header checks. What
it refuses it counts by reason (:data:`~neurolace.link.errors.REJECT_REASONS`).
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

from neurolace.core.checks import check_int
from neurolace.core.errors import InvalidInputError
from neurolace.link.errors import FrameError

__all__ = [
    "FRAME_SYNC",
    "HEADER_BYTES",
    "LINK_VERSION",
    "MAX_BODY_BYTES",
    "SUPPORTED_VERSIONS",
    "Frame",
    "FrameReader",
    "StreamType",
    "build_header",
    "pack_header",
    "parse_frame",
]

#: the two bytes every frame starts with
FRAME_SYNC = b"\xa5\x4e"
#: the frame format version this side writes
LINK_VERSION = 1
#: the versions this side reads; a frame of any other version is refused ("unknown_version")
SUPPORTED_VERSIONS = frozenset({1})
#: bytes of a frame header, the CRC included
HEADER_BYTES = 28
#: the largest body a frame may declare; a larger length is refused ("oversized")
MAX_BODY_BYTES = 65536

_FIELDS = struct.Struct("<2sBBQqI")  # sync, version, stream, sequence, sample clock, body length
_CRC = struct.Struct("<I")
_CRC_OFFSET = _FIELDS.size
assert _CRC_OFFSET + _CRC.size == HEADER_BYTES
_SYNC_FIRST = FRAME_SYNC[0]
#: a good header starting after a frame's own sync word (in its header too) means the frame lost bytes
_SCAN_START = len(FRAME_SYNC)


class StreamType(IntEnum):
    """What a frame's body carries; every type but ``HANDSHAKE`` is sealed."""

    RAW = 1  # codec raw frames (the streaming codec)
    EVENTS = 2  # spike events
    FEATURES = 3  # binned features
    STIM = 4  # stimulation commands
    ACK = 5  # acknowledgements
    CONTROL = 6  # control messages
    HANDSHAKE = 7  # a Noise handshake message, unsealed


_STREAM_VALUES = frozenset(int(stream) for stream in StreamType)


def build_header(
    stream: int, sequence: int, sample_clock: int, body_length: int, *, version: int = LINK_VERSION
) -> bytes:
    """Return the 28-byte header of a frame, its CRC included.

    Every value that fits its field is written, also those a receiver refuses
    (an unknown version or stream type, a length above :data:`MAX_BODY_BYTES`),
    so tests and the attack bench can forge them; senders keep to the format
    through :class:`Frame` and the endpoint.

    Parameters
    ----------
    stream : StreamType or int
        Stream type, 0..255.
    sequence : int
        Sequence number, 0..2**64 - 1.
    sample_clock : int
        Implant sample index of the first sample the body covers, signed 64-bit.
    body_length : int
        Bytes of the body, 0..2**32 - 1.
    version : int, default :data:`LINK_VERSION`
        Frame format version, 0..255.

    Returns
    -------
    header : bytes, length :data:`HEADER_BYTES`
    """
    return pack_header(
        check_int(stream, "stream", minimum=0, maximum=0xFF),
        check_int(sequence, "sequence", minimum=0, maximum=2**64 - 1),
        check_int(sample_clock, "sample_clock", minimum=-(2**63), maximum=2**63 - 1),
        check_int(body_length, "body_length", minimum=0, maximum=2**32 - 1),
        check_int(version, "version", minimum=0, maximum=0xFF),
    )


def pack_header(stream: int, sequence: int, sample_clock: int, body_length: int,
                version: int = LINK_VERSION) -> bytes:
    """:func:`build_header` for values already checked (the endpoint's send path: one frame a bin per stream).

    No range checks: ``struct`` still refuses a value that does not fit its field.
    """
    fields = _FIELDS.pack(FRAME_SYNC, version, stream, sequence, sample_clock, body_length)
    return fields + _CRC.pack(zlib.crc32(fields))


@dataclass(frozen=True, slots=True)
class Frame:
    """One link frame: its header fields and its body (sealed: ciphertext + tag).

    Attributes
    ----------
    version : int
        Frame format version.
    stream : StreamType
        What the body carries.
    sequence : int
        Per-direction sequence number (the AEAD nonce of a sealed frame).
    sample_clock : int
        Implant sample index of the first sample covered.
    body : bytes
        The body, at most :data:`MAX_BODY_BYTES`.
    """

    version: int
    stream: StreamType
    sequence: int
    sample_clock: int
    body: bytes
    #: the header as received (a parsed frame keeps it, so opening it does not rebuild it)
    header: bytes | None = field(default=None, compare=False, repr=False)

    def header_bytes(self) -> bytes:
        """The 28-byte header of this frame (the AEAD associated data of a sealed frame)."""
        if self.header is not None:
            return self.header
        return build_header(
            self.stream, self.sequence, self.sample_clock, len(self.body), version=self.version
        )

    def to_bytes(self) -> bytes:
        """The frame on the wire: header then body."""
        return self.header_bytes() + bytes(self.body)

    def __repr__(self) -> str:
        stream = self.stream.name if isinstance(self.stream, StreamType) else str(self.stream)
        return (
            f"Frame(version={self.version}, stream={stream}, sequence={self.sequence}, "
            f"sample_clock={self.sample_clock}, body={len(self.body)} bytes)"
        )


def _check_header(data, offset: int) -> tuple[int, int, int, int, int]:
    """Check the header at ``offset`` (HEADER_BYTES available); return its fields or raise FrameError.

    The checks go in the order a receiver can trust them: the sync word, the
    CRC (after which the fields are what the sender wrote), the length, then
    the version and the stream type.
    """
    sync, version, stream, sequence, sample_clock, body_length = _FIELDS.unpack_from(data, offset)
    if sync != FRAME_SYNC:
        raise FrameError("garbage", f"no frame sync word at byte {offset} (got {sync.hex()})")
    (crc,) = _CRC.unpack_from(data, offset + _CRC_OFFSET)
    if zlib.crc32(data[offset : offset + _CRC_OFFSET]) != crc:
        raise FrameError("bad_header", f"frame header checksum mismatch at byte {offset}")
    if body_length > MAX_BODY_BYTES:
        raise FrameError(
            "oversized", f"frame body of {body_length} bytes is above the {MAX_BODY_BYTES}-byte maximum"
        )
    if version not in SUPPORTED_VERSIONS:
        raise FrameError(
            "unknown_version",
            f"frame version {version} is not supported (supported: {sorted(SUPPORTED_VERSIONS)})",
        )
    if stream not in _STREAM_VALUES:
        raise FrameError("unknown_stream", f"frame stream type {stream} is unknown")
    return version, stream, sequence, sample_clock, body_length


def _check_bytes(data, name: str) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"{name} must be bytes, bytearray or memoryview, got {type(data).__name__}")


def parse_frame(data: bytes) -> Frame:
    """Parse exactly one frame.

    Parameters
    ----------
    data : bytes-like
        One whole frame, nothing before or after it.

    Returns
    -------
    Frame

    Raises
    ------
    FrameError
        With ``reason`` ``"truncated"`` (shorter than its header or its declared
        body), ``"garbage"`` (no sync word, or bytes after the frame),
        ``"bad_header"``, ``"oversized"``, ``"unknown_version"`` or ``"unknown_stream"``.
    """
    _check_bytes(data, "data")
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise FrameError("truncated", f"{len(data)} bytes is shorter than a {HEADER_BYTES}-byte frame header")
    version, stream, sequence, sample_clock, body_length = _check_header(data, 0)
    end = HEADER_BYTES + body_length
    if len(data) < end:
        present = len(data) - HEADER_BYTES
        raise FrameError("truncated", f"frame declares a {body_length}-byte body, {present} present")
    if len(data) > end:
        raise FrameError("garbage", f"{len(data) - end} bytes after the frame")
    return Frame(version, StreamType(stream), sequence, sample_clock, data[HEADER_BYTES:], data[:HEADER_BYTES])


class FrameReader:
    """Frames out of a byte stream that loses, corrupts and inserts bytes.

    Feed it the bytes as they come, in any chunking; each :meth:`feed` returns
    the frames completed so far. The reader looks for :data:`FRAME_SYNC` and
    takes a frame only where the header CRC checks; it refuses and counts
    (in :attr:`rejected`, by reason):

    - ``"garbage"``: a run of bytes that is no frame, counted once a run;
    - ``"bad_header"``: a sync word whose header CRC fails (a corrupted
      header), counted each time; the search goes on from the next byte, and
      the bytes skipped up to the next good header (the damaged frame's body)
      are not counted again as garbage. A sync word inside garbage is a
      ``"bad_header"`` too (one a 65536 bytes of random garbage);
    - ``"oversized"``: a good header declaring more than :data:`MAX_BODY_BYTES`;
      the header is dropped and the search goes on after it (its body is not
      waited for, nor counted again as garbage);
    - ``"unknown_version"``, ``"unknown_stream"``: a good header this side does
      not speak; the frame's body is skipped;
    - ``"truncated"``: a frame cut short by lost bytes. A frame's body is
      ciphertext or a handshake message and never holds a good header, so one
      that does (anywhere after its sync word) is taken as a frame whose tail
      was lost, and the reader starts again at that header: the next frame is
      recovered, not swallowed. A header that has not fully arrived when the
      frame completes is looked for again when the next bytes come (the frame
      is returned at once; the session will refuse its body). When the lost
      bytes are made up by the next frame's fragment exactly, the cut frame
      cannot be told from a whole one and is returned: the AEAD refuses it.
      :meth:`finish` counts a partial frame left at the end as truncated too.

    The reader holds at most one maximum frame (``HEADER_BYTES + MAX_BODY_BYTES``
    bytes) between calls.

    Attributes
    ----------
    rejected : collections.Counter
        Refusals by reason.
    frames : int
        Frames returned so far.
    bytes_fed : int
        Bytes fed so far.

    Examples
    --------
    >>> frame = Frame(LINK_VERSION, StreamType.FEATURES, 7, 1000, b"body").to_bytes()
    >>> reader = FrameReader()
    >>> reader.feed(b"noise" + frame[:10])
    []
    >>> reader.feed(frame[10:])
    [Frame(version=1, stream=FEATURES, sequence=7, sample_clock=1000, body=4 bytes)]
    >>> dict(reader.rejected)
    {'garbage': 1}
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._in_refusal = False  # the bytes being skipped were already counted
        self._scan_from = _SCAN_START  # where the pending frame's scan for a header inside it resumes
        self._resume = 0  # where parsing goes on: past the tail below, while it is kept
        self._recheck: int | None = None  # a returned frame's last bytes, kept: a header may begin there
        self.rejected: Counter = Counter()
        self.frames = 0
        self.bytes_fed = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for a frame not yet complete (not the < 28 bytes of a returned frame's tail kept)."""
        return len(self._buffer) - self._resume

    def _refuse(self, reason: str) -> None:
        self.rejected[reason] += 1

    def _skip_garbage(self) -> None:
        """Bytes are dropped here: count a run of them once, unless they follow a refused header."""
        if not self._in_refusal:
            self._refuse("garbage")
            self._in_refusal = True

    def _embedded_header(self, data, start: int, stop: int, available: int) -> tuple[int | None, int]:
        """Find a good header starting in ``[start, stop)``, wholly inside the ``available`` bytes.

        Returns the position of the first one (or None) and where a later scan
        has to resume: ``stop`` when every position was checked, else the first
        sync word (or last-byte half of one) whose header has not fully arrived.
        """
        while True:
            search_end = min(stop + 1, available)  # a sync word starting at stop - 1 ends at stop
            position = data.find(FRAME_SYNC, start, search_end)
            if position < 0:  # a last byte may begin a sync word the next chunk completes
                last = search_end - 1
                waiting = search_end == available and last >= start and data[last] == _SYNC_FIRST
                return None, last if waiting else stop
            if position + HEADER_BYTES > available:
                return None, position
            try:
                _check_header(data, position)
            except FrameError as error:
                if error.reason != "bad_header":
                    return position, position  # the CRC holds: a header, refused or not
                start = position + 1
            else:
                return position, position

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes of the stream; return the frames they complete.

        Parameters
        ----------
        data : bytes-like
            The next bytes, any length (an empty chunk returns no frame).

        Returns
        -------
        frames : list of Frame
            In stream order.
        """
        _check_bytes(data, "data")
        self.bytes_fed += len(data)
        buffer = self._buffer
        buffer += data
        available = len(buffer)
        frames: list[Frame] = []
        position, recheck = self._resume, self._recheck
        scan_from = self._scan_from  # offset in the frame pending at byte 0 scanned already
        self._scan_from = _SCAN_START
        view = memoryview(buffer)
        try:
            while True:
                if recheck is not None:
                    # the frame returned last ended with bytes a header may begin at (its tail was lost)
                    cut, resume = self._embedded_header(buffer, recheck, position, available)
                    if cut is None and resume < position:
                        break  # that header has not fully arrived yet
                    if cut is not None:
                        self._in_refusal = False
                        position, scan_from = cut, _SCAN_START
                    recheck = None
                if position >= available:
                    break
                if not buffer.startswith(FRAME_SYNC, position):
                    found = buffer.find(FRAME_SYNC, position)
                    if found < 0:  # keep a last byte that may begin a sync word
                        found = available - 1 if buffer[available - 1] == _SYNC_FIRST else available
                    if found > position:
                        self._skip_garbage()
                        position, scan_from = found, _SCAN_START
                        continue
                if available - position < HEADER_BYTES:
                    break
                refusal = None
                try:
                    version, stream, sequence, sample_clock, body_length = _check_header(view, position)
                except FrameError as error:
                    if error.reason in ("bad_header", "oversized"):
                        # no body to wait for: search on after the sync word (a bad CRC may be a false
                        # sync before a real header) or after the header; what is skipped is this refusal's
                        self._refuse(error.reason)
                        self._in_refusal = True
                        position += 1 if error.reason == "bad_header" else HEADER_BYTES
                        scan_from = _SCAN_START
                        continue
                    refusal = error.reason  # unknown version or stream: skip the body
                    body_length = _FIELDS.unpack_from(view, position)[-1]
                end = position + HEADER_BYTES + body_length
                stop = min(end, available)
                cut, resume = self._embedded_header(buffer, position + scan_from, stop, available)
                if cut is not None:  # a header inside the body: this frame lost its tail
                    self._refuse(refusal or "truncated")
                    self._in_refusal = False
                    position, scan_from = cut, _SCAN_START
                    continue
                if end > available:
                    self._scan_from = resume - position
                    break
                self._in_refusal = False
                if refusal is not None:
                    self._refuse(refusal)
                else:
                    header = bytes(view[position : position + HEADER_BYTES])
                    body = bytes(view[position + HEADER_BYTES : end])
                    frames.append(Frame(version, StreamType(stream), sequence, sample_clock, body, header))
                if resume < end:  # a header may begin in the body's last bytes: look again with more
                    recheck = resume
                position, scan_from = end, _SCAN_START
        finally:
            view.release()
        keep_from = position if recheck is None else recheck
        del buffer[:keep_from]
        self._resume, self._recheck = position - keep_from, None if recheck is None else 0
        self.frames += len(frames)
        assert len(buffer) <= HEADER_BYTES + MAX_BODY_BYTES, len(buffer)
        return frames

    def finish(self) -> list[Frame]:
        """The stream has ended: count a partial frame left over as ``"truncated"``; return no frame.

        A partial frame whose header was refused (unknown version or stream) is
        counted by that reason; a partial sync word at the end of a garbage run
        is part of that run. The reader is then empty and ready for a new stream.
        """
        leftover = self._buffer[self._resume :]  # a returned frame's kept tail is not left over
        left = len(leftover)
        if left >= HEADER_BYTES or (left and not self._in_refusal):
            reason = "truncated"
            if left >= HEADER_BYTES:
                try:
                    _check_header(leftover, 0)
                except FrameError as error:
                    reason = error.reason
            self._refuse(reason)
        self._buffer.clear()
        self._in_refusal = False
        self._scan_from = _SCAN_START
        self._resume, self._recheck = 0, None
        return []

    def __repr__(self) -> str:
        return (
            f"FrameReader(frames={self.frames}, bytes_fed={self.bytes_fed}, buffered={len(self._buffer)}, "
            f"rejected={dict(self.rejected)})"
        )
