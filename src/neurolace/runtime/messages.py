"""Messages that travel on a bus: a numpy payload plus its provenance.

Every message carries three clocks, so latency is measured rather than guessed
(the BRAND data-synchronisation rule: stamp each hop, keep the source clock):

- ``sample_index``: the source's sample clock, index of the first sample the
  payload covers (for a feature bin, the first sample of the bin);
- ``origin_ns``: monotonic time (``time.monotonic_ns``) at which the last
  sample the payload depends on was available, carried unchanged from the
  source through every node, so ``effector apply time - origin_ns`` is the
  end-to-end latency excluding the bin width;
- ``timestamp_ns``: monotonic time at which this message was published, so
  ``receive time - timestamp_ns`` is the latency of one hop.

The wire format (:func:`encode` / :func:`decode`) is a fixed 44-byte header,
the stream name, the dtype and shape, then the raw array bytes: no JSON of
floats, no pickle, and decoding is a zero-copy ``numpy.frombuffer``.
``time.monotonic_ns`` is CLOCK_MONOTONIC on Linux, shared by all processes of
one machine; across machines only ``timestamp_ns`` hop latencies need a shared
clock, end-to-end latencies stay on the source machine.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

import numpy as np

from neurolace.core.errors import FormatError, InvalidInputError

__all__ = ["WIRE_MAGIC", "Message", "decode", "encode", "now_ns"]

WIRE_MAGIC = b"NLM1"
# magic, sequence, timestamp_ns, origin_ns, sample_index, n_dims, dtype length, stream length, flags
_HEADER = struct.Struct("<4sqqqqHHHH")
_MAX_DIMS = 8

now_ns = time.monotonic_ns


@dataclass(slots=True)
class Message:
    """One payload on one stream.

    Parameters
    ----------
    stream : str
        Stream name, ``"node.port"``.
    payload : ndarray
        The data, time-first where it has a time axis: raw samples shape
        ``(n_samples, n_channels)``, one feature bin shape ``(n_features,)``,
        a velocity shape ``(2,)`` or ``(3,)`` (vx, vy[, click]).
    sequence : int
        Per-stream counter from 0; a gap means a message was dropped.
    sample_index : int
        Source sample clock of the first sample the payload covers.
    origin_ns : int
        Monotonic ns at which the newest source sample behind this payload was available.
    timestamp_ns : int
        Monotonic ns at which this message was published (set by the bus).
    """

    stream: str
    payload: np.ndarray
    sequence: int = 0
    sample_index: int = 0
    origin_ns: int = 0
    timestamp_ns: int = 0
    received_ns: int = field(default=0, compare=False)

    def derive(self, stream: str, payload: np.ndarray, *, sample_index: int | None = None) -> Message:
        """A new message computed from this one: same source clock and origin, new stream and payload."""
        return Message(
            stream=stream,
            payload=payload,
            sample_index=self.sample_index if sample_index is None else int(sample_index),
            origin_ns=self.origin_ns,
        )

    @property
    def hop_latency_ns(self) -> int:
        """Receive time minus publish time (0 until the message was received)."""
        return self.received_ns - self.timestamp_ns if self.received_ns else 0


def encode(message: Message) -> bytes:
    """Serialise ``message`` to bytes: header, stream name, dtype, shape, raw array bytes."""
    payload = np.asarray(message.payload)
    if not payload.flags.c_contiguous:
        payload = np.ascontiguousarray(payload)
    if payload.dtype.hasobject:
        raise InvalidInputError(
            f"payload of stream {message.stream!r} must be a numeric array, got dtype object"
        )
    if payload.ndim > _MAX_DIMS:
        raise InvalidInputError(f"payload must have at most {_MAX_DIMS} dimensions, got {payload.ndim}")
    stream = message.stream.encode()
    dtype = payload.dtype.str.encode()
    header = _HEADER.pack(
        WIRE_MAGIC,
        message.sequence,
        message.timestamp_ns,
        message.origin_ns,
        message.sample_index,
        payload.ndim,
        len(dtype),
        len(stream),
        0,
    )
    shape = struct.pack(f"<{payload.ndim}q", *payload.shape)
    return b"".join((header, stream, dtype, shape, payload.tobytes()))


def decode(data: bytes | memoryview) -> Message:
    """Inverse of :func:`encode`; the payload is a read-only view on ``data``."""
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise FormatError(f"message is {len(view)} bytes, shorter than its {_HEADER.size}-byte header")
    magic, sequence, timestamp_ns, origin_ns, sample_index, ndim, dtype_length, stream_length, _ = (
        _HEADER.unpack_from(view)
    )
    if magic != WIRE_MAGIC:
        raise FormatError(f"message does not start with {WIRE_MAGIC!r} (got {bytes(magic)!r})")
    if ndim > _MAX_DIMS:
        raise FormatError(f"message claims {ndim} dimensions, at most {_MAX_DIMS} are allowed")
    offset = _HEADER.size
    stream = bytes(view[offset : offset + stream_length]).decode()
    offset += stream_length
    try:
        dtype = np.dtype(bytes(view[offset : offset + dtype_length]).decode())
    except (TypeError, UnicodeDecodeError) as exc:
        raise FormatError(f"message of stream {stream!r} has an unreadable dtype: {exc}") from exc
    offset += dtype_length
    if len(view) < offset + 8 * ndim:
        raise FormatError(f"message of stream {stream!r} is truncated in its shape")
    shape = struct.unpack_from(f"<{ndim}q", view, offset)
    offset += 8 * ndim
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(view) - offset != expected:
        raise FormatError(
            f"message of stream {stream!r} should carry {expected} payload bytes for shape {shape} "
            f"and dtype {dtype}, got {len(view) - offset}"
        )
    payload = np.frombuffer(view[offset:], dtype=dtype).reshape(shape)
    return Message(
        stream=stream,
        payload=payload,
        sequence=sequence,
        sample_index=sample_index,
        origin_ns=origin_ns,
        timestamp_ns=timestamp_ns,
    )
