"""One side of the link: frames out of payloads and payloads out of bytes, sealed, every refusal counted.

A :class:`LinkEndpoint` composes the frame format (:mod:`neurolace.link.frames`)
with a ``Sealer`` (:class:`~neurolace.link.session.SecureSession`, or any
object with ``seal`` and ``open``). It owns the sending side's sequence
numbers and the receiving side's frame reader, and nothing about the session's
keys or the payloads' meaning.

- :meth:`LinkEndpoint.send` gives the next frame's bytes: the body sealed
  under the frame's own 28-byte header as associated data and its sequence
  number as the nonce, or, for ``HANDSHAKE`` frames, the handshake message as
  is (there is no session yet to seal it).
- :meth:`LinkEndpoint.receive` takes bytes as they come off the radio, in any
  chunking, and returns what opened. It never raises on bad input: each
  refusal (a frame the reader refused, a tag that does not verify, a replay,
  a sealed frame before any session) is counted by its reason and the next
  frame goes on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from neurolace.core.checks import check_int
from neurolace.core.errors import InvalidInputError
from neurolace.link.errors import REJECT_REASONS, AuthenticationError, LinkError
from neurolace.link.frames import MAX_BODY_BYTES, FrameReader, StreamType, pack_header
from neurolace.link.session import SEAL_OVERHEAD_BYTES, Sealer

__all__ = ["MAX_PAYLOAD_BYTES", "Delivered", "LinkEndpoint"]

#: the largest payload of a sealed frame (a handshake frame's may be 16 bytes longer)
MAX_PAYLOAD_BYTES = MAX_BODY_BYTES - SEAL_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class Delivered:
    """A payload that arrived and opened.

    Attributes
    ----------
    stream : StreamType
    sequence : int
        The frame's sequence number (unique per direction and session for sealed frames).
    sample_clock : int
        Implant sample index of the first sample the payload covers.
    payload : bytes
        The plaintext (a ``HANDSHAKE`` frame's: the handshake message).
    """

    stream: StreamType
    sequence: int
    sample_clock: int
    payload: bytes


class LinkEndpoint:
    """One side of the link: seals what it sends, opens what it receives, counts what it refuses.

    Parameters
    ----------
    sealer : Sealer or None
        The session (``seal(nonce, header, plaintext)``, ``open(nonce, header, body)``), or None
        before a handshake finished (then only ``HANDSHAKE`` frames go out, and sealed frames
        that come in are refused as ``"no_session"``). Assign :attr:`sealer` when a session is
        up. A sealer with ``next_sequence()`` (a :class:`~neurolace.link.session.SecureSession`)
        picks each frame's sequence number (so it can jump to a new key epoch); otherwise the
        endpoint counts from 0 for each sealer.
    name : str
        For the stats and the repr (``"implant"``, ``"host"``).

    Attributes
    ----------
    reader : FrameReader
        The receiving side's frame reader.
    sent, delivered : int
        Frames sent; payloads delivered.

    Examples
    --------
    >>> implant, host = LinkEndpoint(None, name="implant"), LinkEndpoint(None, name="host")
    >>> wire = implant.send(StreamType.HANDSHAKE, b"hello", sample_clock=0)
    >>> host.receive(b"noise" + wire)[0].payload
    b'hello'
    >>> host.receive(implant.send(StreamType.HANDSHAKE, b"again", 10)[:-1]), host.rejected
    ([], Counter({'garbage': 1}))
    """

    def __init__(self, sealer: Sealer | None, *, name: str) -> None:
        self.name = str(name)
        self.reader = FrameReader()
        self._refused: Counter = Counter()  # refusals after the reader: opening the body
        self._sealer: Sealer | None = None
        self._next_sequence = 0
        #: sequence number of the last sealed frame sent (None before the first)
        self.last_sequence: int | None = None
        self._handshake_sequence = 0
        self.sealer = sealer
        self.sent = self.delivered = 0
        self.bytes_sent = self.bytes_received = 0
        self.payload_bytes_sent = self.payload_bytes_delivered = 0
        self.sent_by_stream: Counter = Counter()
        self.delivered_by_stream: Counter = Counter()

    # -- the session -------------------------------------------------------------------------------
    @property
    def sealer(self) -> Sealer | None:
        return self._sealer

    @sealer.setter
    def sealer(self, sealer: Sealer | None) -> None:
        methods = [callable(getattr(sealer, method, None)) for method in ("seal", "open")]
        if sealer is not None and not all(methods):
            raise InvalidInputError(f"sealer must have seal() and open(), got {type(sealer).__name__}")
        self._sealer = sealer
        self._next_sequence = 0  # a new session has new keys: its nonces start again

    # -- sending -----------------------------------------------------------------------------------
    def _sequence_for(self, stream: StreamType) -> int:
        if stream is StreamType.HANDSHAKE:
            return self._handshake_sequence
        if self._sealer is None:
            raise InvalidInputError(
                f"{self.name}: cannot send a sealed {stream.name} frame before a session is up"
            )
        next_sequence = getattr(self._sealer, "next_sequence", None)
        return next_sequence() if callable(next_sequence) else self._next_sequence

    def send(self, stream: StreamType | int, payload: bytes, sample_clock: int) -> bytes:
        """The next frame's bytes: ``payload`` sealed (unless ``stream`` is ``HANDSHAKE``).

        Parameters
        ----------
        stream : StreamType
            What the payload is.
        payload : bytes-like
            At most :data:`MAX_PAYLOAD_BYTES` (a handshake message: :data:`MAX_BODY_BYTES`).
        sample_clock : int
            Implant sample index of the first sample the payload covers (signed 64-bit).

        Returns
        -------
        frame : bytes
            ``HEADER_BYTES`` + body, to put on the radio.
        """
        try:
            stream = StreamType(stream)
        except ValueError:
            raise InvalidInputError(f"stream must be a StreamType, got {stream!r}") from None
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"payload must be bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        sealed = stream is not StreamType.HANDSHAKE
        limit = MAX_PAYLOAD_BYTES if sealed else MAX_BODY_BYTES
        if len(payload) > limit:
            raise InvalidInputError(
                f"payload of {len(payload)} bytes is above the {limit}-byte maximum of a frame"
            )
        if type(sample_clock) is not int or not -(2**63) <= sample_clock < 2**63:  # the common case, checked fast
            sample_clock = check_int(sample_clock, "sample_clock", minimum=-(2**63), maximum=2**63 - 1)
        sequence = self._sequence_for(stream)
        body_length = len(payload) + SEAL_OVERHEAD_BYTES if sealed else len(payload)
        header = pack_header(stream, sequence, sample_clock, body_length)
        if sealed:
            body = self._sealer.seal(sequence, header, payload)
            if len(body) != body_length:
                raise InvalidInputError(
                    f"the sealer returned {len(body)} bytes for a {len(payload)}-byte payload; "
                    f"expected {body_length} (payload + {SEAL_OVERHEAD_BYTES}-byte tag)"
                )
            self._next_sequence = sequence + 1
            self.last_sequence = sequence
        else:
            body = payload
            self._handshake_sequence += 1
        frame = header + body
        self.sent += 1
        self.sent_by_stream[stream.name.lower()] += 1
        self.bytes_sent += len(frame)
        self.payload_bytes_sent += len(payload)
        return frame

    # -- receiving ---------------------------------------------------------------------------------
    def _open(self, frame) -> bytes:
        if frame.stream is StreamType.HANDSHAKE:
            return frame.body
        if self._sealer is None:
            raise AuthenticationError("no_session", f"a sealed {frame.stream.name} frame before any session")
        if len(frame.body) < SEAL_OVERHEAD_BYTES:
            raise AuthenticationError("tag_mismatch", f"a {len(frame.body)}-byte body cannot hold a tag")
        return self._sealer.open(frame.sequence, frame.header_bytes(), frame.body)

    def receive(self, data: bytes) -> list[Delivered]:
        """Take bytes off the radio (any chunking); return the payloads that opened, in order.

        Parameters
        ----------
        data : bytes-like
            The next bytes received.

        Returns
        -------
        list of Delivered
            Refused frames are left out and counted in :attr:`rejected` by reason.
        """
        frames = self.reader.feed(data)
        self.bytes_received += len(data)
        delivered = []
        for frame in frames:
            try:
                payload = self._open(frame)
            except LinkError as error:
                self._refused[error.reason] += 1
                continue
            delivered.append(Delivered(frame.stream, frame.sequence, frame.sample_clock, payload))
            self.delivered_by_stream[frame.stream.name.lower()] += 1
            self.payload_bytes_delivered += len(payload)
        self.delivered += len(delivered)
        return delivered

    def finish(self) -> None:
        """The byte stream ended: a partial frame left in the reader is counted as ``"truncated"``."""
        self.reader.finish()

    # -- report ------------------------------------------------------------------------------------
    @property
    def rejected(self) -> Counter:
        """Refusals by reason: the reader's and the session's."""
        return self.reader.rejected + self._refused

    def stats(self) -> dict:
        """Counters as plain numbers: frames and bytes each way, refusals by reason (every reason).

        Keys: ``name``, ``sent``, ``delivered``, ``rejected`` (a dict over all of
        :data:`~neurolace.link.errors.REJECT_REASONS`), ``rejected_total``, ``sent_by_stream``,
        ``delivered_by_stream``, ``bytes_sent``, ``bytes_received``, ``payload_bytes_sent``,
        ``payload_bytes_delivered``, ``buffered_bytes``; and ``session`` (the sealer's
        ``report()``) when the sealer has one.
        """
        rejected = self.rejected
        stats = {
            "name": self.name,
            "sent": self.sent,
            "delivered": self.delivered,
            "rejected": {reason: int(rejected[reason]) for reason in REJECT_REASONS},
            "rejected_total": int(sum(rejected.values())),
            "sent_by_stream": dict(self.sent_by_stream),
            "delivered_by_stream": dict(self.delivered_by_stream),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "payload_bytes_sent": self.payload_bytes_sent,
            "payload_bytes_delivered": self.payload_bytes_delivered,
            "buffered_bytes": self.reader.buffered_bytes,
        }
        report = getattr(self._sealer, "report", None)
        if callable(report):
            stats["session"] = report()
        return stats

    def __repr__(self) -> str:
        session = type(self._sealer).__name__ if self._sealer is not None else "no session"
        return (
            f"LinkEndpoint({self.name!r}, {session}, sent={self.sent}, delivered={self.delivered}, "
            f"rejected={sum(self.rejected.values())})"
        )
