"""The neurolace lossless codec as a numcodecs codec, so zarr arrays can store N1-like data with it.

:class:`NeurolaceCodec` (``codec_id = "neurolace"``) wraps :class:`~neurolace.codec.NeuralCodec`:
each zarr chunk is coded as one neurolace stream of bare samples (value table, per-channel
predictor and residual model in the stream's header, then CRC-checked frames), so every chunk
decodes on its own and the codec's configuration holds nothing the decoder needs.

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

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ensure_ndarray_like, ndarray_copy
from numcodecs.registry import register_codec

from neurolace.codec.errors import CodecError
from neurolace.codec.lpc import MAX_ORDER
from neurolace.codec.neural import DEFAULT_FRAME_SAMPLES, NeuralCodec

__all__ = ["CODEC_ID", "MAX_CHUNK_CHANNELS", "NeurolaceCodec"]

CODEC_ID = "neurolace"
#: most columns one chunk may have: the stream header stores the channel count up to 2**16
MAX_CHUNK_CHANNELS = 1 << 16
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
            A neurolace stream of bare samples, shape (n_samples, prod(shape[1:])).

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
        return self._codec.encode(samples)

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
        samples = self._codec.decode(ensure_bytes(buf))
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


register_codec(NeurolaceCodec)
