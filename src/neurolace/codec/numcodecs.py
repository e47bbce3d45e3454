"""The neurolace lossless codec as a numcodecs codec, so zarr arrays can store N1-like data with it.

:class:`NeurolaceCodec` (``codec_id = "neurolace"``) wraps :class:`~neurolace.codec.NeuralCodec`:
each zarr chunk is coded as one neurolace stream of bare samples (value table, per-channel
predictor and residual model in the stream's header, then CRC-checked frames), so every chunk
decodes on its own and the codec's configuration holds nothing the decoder needs.

zarr pads a partial chunk (the end of an array) with its fill value; coded with the data, that run
would bend each channel's residual model (an N1 clip in one 131072-sample chunk, a third of it
padding, measured 3.09x instead of 3.56x). So a chunk ending in at least ``MIN_TRIMMED_ROWS``
identical rows stores that row once and codes only the rows before it. Chunk layout::

    b"NLZC" | version u8 (1) | n_columns varint | n_tail_rows varint | [tail row: n_columns <i2] |
    CRC32 u32 of the bytes before it | neurolace stream (NeuralCodec.encode) of the other rows

Chunks are read time first: a chunk of shape ``(n_samples, n_channels)`` is coded as that many
samples of that many channels; a 1-D chunk is one channel; a chunk of more dimensions is coded as
``(shape[0], prod(shape[1:]))`` in its memory (C) order. Only native-order int16 is accepted:
the codec is lossless on int16 alone, and a silent fallback to a general-purpose compressor would
make ``"neurolace"`` in an array's metadata mean two formats. Store other arrays of the same group
(timestamps, properties) with another compressor (SpikeInterface:
``compressor_by_dataset={"traces": NeurolaceCodec()}``).

Importing this module registers the codec with :func:`numcodecs.registry.register_codec`; a
process that opens an array without importing neurolace finds it through the
``numcodecs.codecs`` entry point ``neurolace = "neurolace.codec.numcodecs:NeurolaceCodec"``.
This module imports numcodecs (extra ``batch``); nothing imports it at ``import neurolace`` time.

The wrapper lives in the codec package (capability layer), not in :mod:`neurolace.io`: io is the
foundation layer and may not import the codec it wraps.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ensure_ndarray_like, ndarray_copy
from numcodecs.registry import register_codec

from neurolace.codec.bitpack import ByteReader, encode_varint
from neurolace.codec.errors import CodecError
from neurolace.codec.lpc import MAX_ORDER
from neurolace.codec.neural import DEFAULT_FRAME_SAMPLES, NeuralCodec

__all__ = ["CHUNK_MAGIC", "CODEC_ID", "MAX_CHUNK_CHANNELS", "MIN_TRIMMED_ROWS", "NeurolaceCodec"]

CODEC_ID = "neurolace"
CHUNK_MAGIC = b"NLZC"
CHUNK_VERSION = 1
#: most columns one chunk may have: the stream header stores the channel count up to 2**16
MAX_CHUNK_CHANNELS = 1 << 16
#: a run of identical final rows at least this long (3.3 ms at 19.5 kHz) is stored as one row
MIN_TRIMMED_ROWS = 64
_CONFIG_KEYS = ("mode", "max_order", "frame_samples")


class NeurolaceCodec(Codec):
    """numcodecs codec for int16 chunks, lossless, with the neurolace codec's ratio.

    Parameters
    ----------
    mode : {"context", "fast"}, default "context"
        Coding mode of :class:`~neurolace.codec.NeuralCodec` (context: best ratio; fast: one
        histogram per channel).
    max_order : int, default 32
        Highest linear-predictor order tried per channel (0..64).
    frame_samples : int, default 32768
        Samples per channel in each CRC-checked frame inside a chunk (chunks of fewer rows are
        one frame).

    Examples
    --------
    >>> import zarr
    >>> samples = np.arange(4000, dtype=np.int16).reshape(1000, 4) % 64
    >>> array = zarr.array(samples, chunks=(500, 4), compressor=NeurolaceCodec())
    >>> bool((array[:] == samples).all())
    True
    """

    codec_id = CODEC_ID

    def __init__(
        self, *, mode: str = "context", max_order: int = MAX_ORDER, frame_samples: int = DEFAULT_FRAME_SAMPLES
    ) -> None:
        self._codec = NeuralCodec(frame_samples=frame_samples, max_order=max_order, mode=mode)
        self.mode = self._codec.mode
        self.max_order = self._codec.max_order
        self.frame_samples = self._codec.frame_samples

    def encode(self, buf: Any) -> bytes:
        """Compress one chunk.

        Parameters
        ----------
        buf : ndarray of int16, shape (n_samples,) or (n_samples, n_channels, ...)
            C-contiguous (or any non-F-ordered layout, which is copied to C order).

        Returns
        -------
        bytes
            The chunk layout of the module docstring: rows (n_samples, prod(shape[1:])).

        Raises
        ------
        CodecError
            Not native int16, a Fortran-ordered chunk, or more than 65,536 columns.
        """
        array = ensure_ndarray_like(buf)
        if array.dtype != np.dtype(np.int16):
            raise CodecError(
                f"the {CODEC_ID!r} numcodecs codec stores native-order int16 only (it is lossless on int16 "
                f"alone), got dtype {array.dtype.str!r}; give this array another compressor"
            )
        if array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous:
            raise CodecError(
                f"the {CODEC_ID!r} codec reads chunks time first in C order; create the zarr array with "
                "order='C' (got a Fortran-ordered chunk)"
            )
        n_rows = array.shape[0] if array.ndim else 1
        samples = np.ascontiguousarray(array).reshape(n_rows, int(np.prod(array.shape[1:], dtype=np.int64)))
        if samples.shape[1] > MAX_CHUNK_CHANNELS:
            raise CodecError(
                f"a chunk may have at most {MAX_CHUNK_CHANNELS} columns (channels), got {samples.shape[1]} "
                f"from chunk shape {array.shape}; use smaller chunks along the channel axis"
            )
        n_tail = _constant_tail_rows(samples)
        header = CHUNK_MAGIC + bytes([CHUNK_VERSION]) + encode_varint(samples.shape[1]) + encode_varint(n_tail)
        if n_tail:
            header += samples[-1].astype("<i2").tobytes()
        head = samples[: samples.shape[0] - n_tail]
        return header + struct.pack("<I", zlib.crc32(header)) + self._codec.encode(head)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        """Decompress one chunk.

        Parameters
        ----------
        buf : bytes-like
            :meth:`encode` output.
        out : writeable buffer, optional
            Destination of exactly the decoded size (zarr passes the chunk's slot).

        Returns
        -------
        ndarray of int16, shape (n_samples, n_channels)
            Or ``out``, filled, when given.
        """
        samples = _decode_chunk(ensure_bytes(buf), self._codec)
        if out is None:
            return samples
        destination = ensure_ndarray_like(out)
        if destination.nbytes != samples.nbytes:
            raise CodecError(
                f"the decoded chunk has {samples.nbytes} bytes but the output buffer has {destination.nbytes}"
            )
        return ndarray_copy(samples, destination)

    def get_config(self) -> dict:
        """``{"id": "neurolace", "mode": ..., "max_order": ..., "frame_samples": ...}`` (JSON-ready)."""
        return {"id": self.codec_id, **{key: getattr(self, key) for key in _CONFIG_KEYS}}

    @classmethod
    def from_config(cls, config: dict) -> "NeurolaceCodec":
        """The codec of a :meth:`get_config` dictionary (``"id"`` optional)."""
        options = dict(config)
        options.pop("id", None)
        unknown = sorted(set(options) - set(_CONFIG_KEYS))
        if unknown:
            raise CodecError(
                f"unknown {CODEC_ID!r} codec option(s) {unknown}; the options are {list(_CONFIG_KEYS)}"
            )
        return cls(**options)

    def __repr__(self) -> str:
        return f"NeurolaceCodec(mode={self.mode!r}, max_order={self.max_order}, frame_samples={self.frame_samples})"


def _constant_tail_rows(samples: np.ndarray) -> int:
    """Length of the run of rows equal to the last row, if at least MIN_TRIMMED_ROWS, else 0."""
    n_rows = samples.shape[0]
    if n_rows < MIN_TRIMMED_ROWS or samples.shape[1] == 0:
        return 0
    differing = np.flatnonzero(np.any(samples != samples[-1], axis=1))
    n_tail = n_rows - (int(differing[-1]) + 1 if differing.size else 0)
    return n_tail if n_tail >= MIN_TRIMMED_ROWS else 0


def _decode_chunk(data: bytes, codec: NeuralCodec) -> np.ndarray:
    """Samples (n_rows, n_columns) of one chunk in the layout of the module docstring."""
    if data[:4] != CHUNK_MAGIC:
        raise CodecError(f"not a neurolace zarr chunk: it starts with {data[:4]!r}, expected {CHUNK_MAGIC!r}")
    reader = ByteReader(data, "neurolace zarr chunk header")
    reader.take(4)
    (version,) = reader.unpack("<B")
    if version != CHUNK_VERSION:
        raise CodecError(f"unsupported neurolace zarr chunk version {version}; this build reads {CHUNK_VERSION}")
    n_columns = reader.varint(maximum=MAX_CHUNK_CHANNELS)
    n_tail = reader.varint(maximum=1 << 40)
    tail_row = np.frombuffer(reader.take(2 * n_columns), dtype="<i2") if n_tail else None
    (stored_crc,) = reader.unpack("<I")
    if zlib.crc32(data[: reader.position - 4]) != stored_crc:
        raise CodecError("corrupt neurolace zarr chunk header: checksum mismatch")
    head = codec.decode(data[reader.position :])
    if head.shape[1] != n_columns:
        raise CodecError(
            f"corrupt neurolace zarr chunk: the header says {n_columns} columns, the stream holds {head.shape[1]}"
        )
    if not n_tail:
        return head
    if n_tail * n_columns > 1 << 34:
        raise CodecError(f"corrupt neurolace zarr chunk header: {n_tail} x {n_columns} tail samples is implausible")
    return np.concatenate([head, np.broadcast_to(tail_row.astype(np.int16), (n_tail, n_columns))])


register_codec(NeurolaceCodec)
