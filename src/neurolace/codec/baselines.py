"""Reference codecs measured beside neurolace's own: general-purpose and audio compressors.

Each wraps a maintained library behind the codec interface of
:mod:`neurolace.codec.conformance` (``name``, ``encode(samples) -> bytes``,
``decode(data) -> samples``) and stores the array shape in a small header, so
all of them round-trip the same inputs and pass :func:`check_codec`. Library
errors on bad input come out as :class:`CodecError`.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib

import numpy as np

from neurolace.codec.bitpack import ByteReader, encode_varint
from neurolace.codec.errors import CodecError
from neurolace.codec.table import ValueTable

__all__ = ["Bz2Codec", "FlacCodec", "LzmaCodec", "PcodecCodec", "ZlibCodec", "ZstdCodec", "baseline_codecs"]


def _as_samples(samples: np.ndarray) -> np.ndarray:
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        raise CodecError(
            f"samples must be a numpy array of int16, got {getattr(samples, 'dtype', type(samples).__name__)}"
        )
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise CodecError(f"samples must have shape (n_samples, n_channels), got shape {samples.shape}")
    return np.ascontiguousarray(samples)


class _ShapedCodec:
    """Shared envelope: a 4-byte tag, the shape as varints, then the library's payload."""

    name = ""
    tag = b""

    def encode(self, samples: np.ndarray) -> bytes:
        samples = _as_samples(samples)
        head = self.tag + encode_varint(samples.shape[0]) + encode_varint(samples.shape[1])
        return head + self._compress(samples)

    def decode(self, data: bytes) -> np.ndarray:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CodecError(f"compressed data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if data[:4] != self.tag:
            raise CodecError(f"not a {self.name} stream: it starts with {data[:4]!r}, expected {self.tag!r}")
        reader = ByteReader(data, f"{self.name} header")
        reader.take(4)
        n_samples = reader.varint(maximum=1 << 34)
        n_channels = reader.varint(maximum=1 << 16)
        if n_samples * n_channels > 1 << 34:
            raise CodecError(f"corrupt {self.name} header: implausible shape ({n_samples}, {n_channels})")
        try:
            samples = self._decompress(data[reader.position :], n_samples, n_channels)
        except CodecError:
            raise
        except Exception as exc:  # noqa: BLE001 - each library has its own exception types
            raise CodecError(f"corrupt {self.name} payload: {exc}") from None
        if samples.shape != (n_samples, n_channels):
            raise CodecError(
                f"corrupt {self.name} payload: decoded shape {samples.shape} != {(n_samples, n_channels)}"
            )
        return samples

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _compress(self, samples: np.ndarray) -> bytes:
        raise NotImplementedError

    def _decompress(self, payload: bytes, n_samples: int, n_channels: int) -> np.ndarray:
        raise NotImplementedError


class _BytesCodec(_ShapedCodec):
    """General-purpose byte compressor over the little-endian int16 samples."""

    def _compress(self, samples: np.ndarray) -> bytes:
        return self._pack(samples.astype("<i2").tobytes())

    def _decompress(self, payload: bytes, n_samples: int, n_channels: int) -> np.ndarray:
        raw = self._unpack(payload, 2 * n_samples * n_channels)
        if len(raw) != 2 * n_samples * n_channels:
            raise CodecError(
                f"corrupt {self.name} payload: {len(raw)} bytes decoded, {2 * n_samples * n_channels} expected"
            )
        return np.frombuffer(raw, dtype="<i2").astype(np.int16).reshape(n_samples, n_channels)


class ZlibCodec(_BytesCodec):
    """zlib (DEFLATE) at level 9."""

    name, tag = "zlib-9", b"NLZL"

    def _pack(self, raw: bytes) -> bytes:
        return zlib.compress(raw, 9)

    def _unpack(self, payload: bytes, size: int) -> bytes:
        decompressor = zlib.decompressobj()
        out = decompressor.decompress(payload, size + 1)
        if not decompressor.eof:
            raise CodecError("corrupt zlib-9 payload: the stream is truncated")
        return out


class Bz2Codec(_BytesCodec):
    """bzip2 at level 9."""

    name, tag = "bz2-9", b"NLBZ"

    def _pack(self, raw: bytes) -> bytes:
        return bz2.compress(raw, 9)

    def _unpack(self, payload: bytes, size: int) -> bytes:
        return bz2.decompress(payload)


class LzmaCodec(_BytesCodec):
    """xz / LZMA2 at preset 9 extreme."""

    name, tag = "lzma-9e", b"NLXZ"

    def _pack(self, raw: bytes) -> bytes:
        return lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)

    def _unpack(self, payload: bytes, size: int) -> bytes:
        return lzma.decompress(payload)


class ZstdCodec(_BytesCodec):
    """Zstandard at level 19."""

    name, tag = "zstd-19", b"NLZS"

    def _pack(self, raw: bytes) -> bytes:
        import zstandard

        return zstandard.ZstdCompressor(level=19, write_checksum=True).compress(raw)

    def _unpack(self, payload: bytes, size: int) -> bytes:
        import zstandard

        return zstandard.ZstdDecompressor().decompress(payload, max_output_size=size + 1)


class PcodecCodec(_ShapedCodec):
    """pcodec on the recording's dense value-table codes (the "10-bit codes" of N1 data), per channel.

    The value table is stored with neurolace's own table format; each channel's
    codes (uint16) go through ``pcodec.standalone.simple_compress`` with default settings.
    """

    name, tag = "pcodec", b"NLPC"

    def _compress(self, samples: np.ndarray) -> bytes:
        from pcodec import ChunkConfig, standalone

        if samples.size == 0:
            return b""
        table = ValueTable.from_samples(samples)
        index = np.searchsorted(table.values, samples).astype(np.uint16)
        out = bytearray(table.to_bytes())
        for channel in range(samples.shape[1]):
            chunk = standalone.simple_compress(np.ascontiguousarray(index[:, channel]), ChunkConfig())
            out += encode_varint(len(chunk)) + chunk
        return bytes(out)

    def _decompress(self, payload: bytes, n_samples: int, n_channels: int) -> np.ndarray:
        from pcodec import standalone

        if n_samples * n_channels == 0:
            return np.zeros((n_samples, n_channels), dtype=np.int16)
        reader = ByteReader(payload, "pcodec payload")
        table = ValueTable.from_reader(reader)
        out = np.empty((n_samples, n_channels), dtype=np.int16)
        for channel in range(n_channels):
            chunk = reader.take(reader.varint(maximum=len(payload)))
            index = np.asarray(standalone.simple_decompress(chunk))
            if index.shape != (n_samples,) or (index.size and index.max() >= table.values.size):
                raise CodecError("corrupt pcodec payload: decoded codes do not fit the value table")
            out[:, channel] = table.values[index.astype(np.int64)]
        return out


class FlacCodec(_ShapedCodec):
    """FLAC (libFLAC through the ``soundfile`` binding), compression level 8; at most 8 channels."""

    name, tag = "flac", b"NLFL"

    def _compress(self, samples: np.ndarray) -> bytes:
        import soundfile

        if samples.shape[1] > 8:
            raise CodecError(f"FLAC holds at most 8 channels, got {samples.shape[1]}")
        if samples.shape[0] == 0:
            return b""
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, 48000, format="FLAC", subtype="PCM_16", compression_level=1.0)
        return buffer.getvalue()

    def _decompress(self, payload: bytes, n_samples: int, n_channels: int) -> np.ndarray:
        import soundfile

        if n_samples == 0:
            return np.zeros((0, n_channels), dtype=np.int16)
        samples, _ = soundfile.read(io.BytesIO(payload), dtype="int16", always_2d=True)
        return samples


def baseline_codecs(*, include_flac: bool = True) -> list:
    """One instance of every reference codec (FLAC only when ``soundfile`` imports)."""
    codecs = [ZlibCodec(), Bz2Codec(), LzmaCodec(), ZstdCodec(), PcodecCodec()]
    if include_flac:
        try:
            import soundfile  # noqa: F401
        except (ImportError, OSError):
            return codecs
        codecs.append(FlacCodec())
    return codecs
