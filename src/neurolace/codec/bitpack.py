"""Byte-level helpers of the codec's formats: LEB128 varints and a bounds-checked reader.

Every read goes through :class:`ByteReader`, which raises
:class:`~neurolace.codec.errors.CodecError` (never ``IndexError`` or
``struct.error``) when the data end early, so garbage input cannot escape as
another exception type.
"""

from __future__ import annotations

import struct

from neurolace.codec.errors import CodecError

__all__ = ["ByteReader", "encode_signed_varint", "encode_varint"]


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, high bit set on all but the last byte."""
    assert value >= 0
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_signed_varint(value: int) -> bytes:
    """Zig-zag mapped signed LEB128 (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...)."""
    return encode_varint(2 * value if value >= 0 else -2 * value - 1)


class ByteReader:
    """Sequential reader over a bytes object that reports truncation as :class:`CodecError`.

    Parameters
    ----------
    data : bytes
        The buffer to read.
    what : str
        Name of the structure being read, used in error messages.
    """

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.position = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.position

    def take(self, n_bytes: int) -> bytes:
        if n_bytes < 0 or self.position + n_bytes > len(self.data):
            raise CodecError(
                f"truncated {self.what}: needed {n_bytes} more bytes at offset {self.position}, "
                f"only {max(len(self.data) - self.position, 0)} remain"
            )
        chunk = self.data[self.position : self.position + n_bytes]
        self.position += n_bytes
        return bytes(chunk)

    def unpack(self, layout: str) -> tuple:
        return struct.unpack(layout, self.take(struct.calcsize(layout)))

    def varint(self, *, maximum: int = 2**63) -> int:
        value = 0
        shift = 0
        while True:
            (byte,) = self.take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise CodecError(
                    f"corrupt {self.what}: a varint at offset {self.position} is longer than 9 bytes"
                )
        if value > maximum:
            raise CodecError(f"corrupt {self.what}: value {value} exceeds the limit {maximum}")
        return value

    def signed_varint(self, *, maximum_magnitude: int = 2**62) -> int:
        raw = self.varint()
        value = raw >> 1 if not raw & 1 else -((raw + 1) >> 1)
        if abs(value) > maximum_magnitude:
            raise CodecError(f"corrupt {self.what}: value {value} exceeds the limit +-{maximum_magnitude}")
        return value
