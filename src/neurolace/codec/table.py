"""The recording's own value table: int16 samples <-> dense grid codes.

N1 clips use 1,023 distinct int16 values on an uneven grid (mostly 64 apart,
sometimes 63, 65 or 128; see the data's PROVENANCE.md). The codec never
assumes that grid: it collects the distinct values of each recording, and maps
every value to a *grid code* that keeps the spacing roughly linear (a gap of
twice the smallest step becomes two codes), so a linear predictor works on
the codes as it would on the ADC's own output. The table is stored compactly
in the file (first value, smallest step, gaps relative to that step).
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from neurolace.codec.bitpack import ByteReader, encode_signed_varint, encode_varint
from neurolace.codec.entropy import RangeDecoder, RangeEncoder, categorical, decode_symbols
from neurolace.codec.errors import CodecError

__all__ = ["ValueTable"]

#: gap symbols are coded relative to the most common gap in [-GAP_HALF_WIDTH, GAP_HALF_WIDTH], else escaped
GAP_HALF_WIDTH = 15


class ValueTable:
    """Sorted distinct int16 values of a recording and their grid codes.

    Parameters
    ----------
    values : ndarray of int16, shape (n_values,)
        Strictly increasing distinct sample values.

    Attributes
    ----------
    values : ndarray of int16, shape (n_values,)
    grid_codes : ndarray of int64, shape (n_values,)
        Code of each value: 0 for the first, then ``round(gap / step)`` (at
        least 1) added per gap, where ``step`` is the smallest gap.
    n_codes : int
        ``grid_codes[-1] + 1``.
    """

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.int64)
        assert values.ndim == 1 and values.size >= 1 and np.all(np.diff(values) > 0)
        self.values = values.astype(np.int16)
        gaps = np.diff(values)
        self.step = int(gaps.min()) if gaps.size else 1
        code_gaps = np.maximum((2 * gaps + self.step) // (2 * self.step), 1)
        self.grid_codes = np.concatenate([[0], np.cumsum(code_gaps)]).astype(np.int64)
        self.n_codes = int(self.grid_codes[-1]) + 1
        self._code_of_value = None

    @classmethod
    def from_samples(cls, samples: np.ndarray) -> ValueTable:
        """Table of the distinct values in ``samples`` (any shape, int16); at least one sample."""
        # a boolean scatter over the 65,536 values, in numba: numpy's fancy assignment first widens
        # the indices to intp (0.14 ms per N1 clip against 0.03 ms; bincount 0.24 ms)
        seen = _seen_kernel(np.ascontiguousarray(samples, dtype=np.int16).reshape(-1).view(np.uint16))
        return cls(np.flatnonzero(np.concatenate([seen[32768:], seen[:32768]])) - 32768)

    def to_codes(self, samples: np.ndarray) -> np.ndarray:
        """Grid codes of int16 samples (int64, same shape); every sample must be in the table."""
        if self._code_of_value is None:
            lookup = np.full(65536, -1, dtype=np.int32)  # indexed by the sample's bits as uint16
            lookup[self.values.view(np.uint16)] = self.grid_codes
            self._code_of_value = lookup
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        codes, bad = _codes_kernel(samples.reshape(-1).view(np.uint16), self._code_of_value)
        if bad >= 0:
            raise CodecError(f"sample value {int(samples.reshape(-1)[bad])} is not in the codec's value table")
        return codes.reshape(samples.shape)

    def to_samples(self, codes: np.ndarray) -> np.ndarray:
        """int16 samples of grid codes; codes that name no value raise :class:`CodecError`."""
        lookup = np.full(self.n_codes, _NO_VALUE, dtype=np.int32)  # codes in a gap of the grid name no value
        lookup[self.grid_codes] = self.values
        codes = np.asarray(codes, dtype=np.int64)
        samples, status = _samples_kernel(np.ascontiguousarray(codes).reshape(-1), lookup)
        if status == _OUTSIDE:
            raise CodecError("corrupt frame: a decoded code lies outside the value table")
        if status == _IN_GAP:
            raise CodecError("corrupt frame: a decoded code falls in a gap of the value table")
        return samples.reshape(codes.shape)

    def to_bytes(self) -> bytes:
        """Serialise: count, first value, step, modal gap, then range-coded gap deviations."""
        gaps = np.diff(self.values.astype(np.int64))
        modal = int(np.bincount(gaps).argmax()) if gaps.size else 1
        head = encode_varint(self.values.size) + encode_signed_varint(int(self.values[0]))
        head += encode_varint(self.step) + encode_varint(modal)
        if not gaps.size:
            return head
        deviation = gaps - modal
        inside = np.abs(deviation) <= GAP_HALF_WIDTH
        symbols = np.where(inside, deviation + GAP_HALF_WIDTH, 2 * GAP_HALF_WIDTH + 1)
        encoder = RangeEncoder()
        encoder.encode(symbols.astype(np.int32), _gap_model(symbols))
        escaped = gaps[~inside]
        if escaped.size:
            encoder.encode((escaped - 1).astype(np.int32), _escape_model())
        words = encoder.get_compressed()
        counts = np.bincount(symbols, minlength=2 * GAP_HALF_WIDTH + 2)
        return head + _encode_counts(counts) + encode_varint(words.size) + words.tobytes()

    @classmethod
    def from_reader(cls, reader: ByteReader) -> ValueTable:
        n_values = reader.varint(maximum=65536)
        if n_values < 1:
            raise CodecError("corrupt value table: it lists no values")
        first = reader.signed_varint(maximum_magnitude=32768)
        step = reader.varint(maximum=65535)
        modal = reader.varint(maximum=65535)
        if n_values == 1:
            values = np.array([first])
        else:
            counts = _decode_counts(reader, 2 * GAP_HALF_WIDTH + 2)
            n_words = reader.varint(maximum=1 << 20)
            words = np.frombuffer(reader.take(4 * n_words), dtype=np.uint32)
            decoder = RangeDecoder(words)
            symbols = decode_symbols(decoder, _gap_model_from_counts(counts), n_values - 1)
            gaps = symbols - GAP_HALF_WIDTH + modal
            escaped = symbols == 2 * GAP_HALF_WIDTH + 1
            if escaped.any():
                raw = decode_symbols(decoder, _escape_model(), int(escaped.sum()))
                gaps[escaped] = raw + 1
            values = first + np.concatenate([[0], np.cumsum(gaps)])
        if values.size > 1 and np.any(np.diff(values) <= 0) or values[0] < -32768 or values[-1] > 32767:
            raise CodecError("corrupt value table: values are not strictly increasing int16")
        table = cls(values)
        if table.step != step:
            raise CodecError("corrupt value table: the stored step does not match the values")
        return table


@functools.cache
def _escape_model():
    """Uniform model of an escaped gap, 1..65535 (built once: 65,535 weights cost ~0.1 ms per table)."""
    return categorical(np.ones(65535, dtype=np.int64))


_NO_VALUE = -(1 << 16)
_OUTSIDE = 1
_IN_GAP = 2


@numba.njit(cache=True, nogil=True)
def _samples_kernel(codes, lookup):  # pragma: no cover - numba
    """(int16 samples of ``codes``, 0 or the worst problem: _OUTSIDE the table before _IN_GAP of it).

    One pass instead of numpy's min, max, gather, min and astype: measured
    0.07-0.08 ms against 0.16-0.17 ms per N1 clip.
    """
    samples = np.empty(codes.size, dtype=np.int16)
    status = 0
    for t in range(codes.size):
        code = codes[t]
        if code < 0 or code >= lookup.size:
            return samples, _OUTSIDE
        value = lookup[code]
        if value == _NO_VALUE:
            status = _IN_GAP  # keep looking: a code outside the table is reported first
            value = 0
        samples[t] = value
    return samples, status


@numba.njit(cache=True, nogil=True)
def _seen_kernel(bits):  # pragma: no cover - numba
    """Which of the 65,536 uint16 bit patterns occur in ``bits``."""
    seen = np.zeros(65536, dtype=np.bool_)
    for t in range(bits.size):
        seen[bits[t]] = True
    return seen


@numba.njit(cache=True, nogil=True)
def _codes_kernel(bits, lookup):  # pragma: no cover - numba
    """(int64 codes of the samples' uint16 bit patterns, position of the first sample not in the table or -1).

    One pass instead of numpy's XOR temporary, gather and min check, and the codes
    come out as int64, which the predictor kernels take without another copy:
    measured 0.07 ms against 0.13 ms per N1 clip with that copy.
    """
    codes = np.empty(bits.size, dtype=np.int64)
    for t in range(bits.size):
        code = lookup[bits[t]]
        if code < 0:
            return codes, t
        codes[t] = code
    return codes, -1


def _gap_model(symbols: np.ndarray):
    return _gap_model_from_counts(np.bincount(symbols, minlength=2 * GAP_HALF_WIDTH + 2))


def _gap_model_from_counts(counts: np.ndarray):
    return categorical(counts)


def _encode_counts(counts: np.ndarray) -> bytes:
    """Sparse list of the non-zero counts: how many, then (index, count) pairs."""
    present = np.flatnonzero(counts)
    return encode_varint(present.size) + b"".join(
        encode_varint(int(index)) + encode_varint(int(counts[index])) for index in present
    )


def _decode_counts(reader: ByteReader, n_counts: int) -> np.ndarray:
    counts = np.zeros(n_counts, dtype=np.int64)
    for _ in range(reader.varint(maximum=n_counts)):
        index = reader.varint(maximum=n_counts - 1)
        counts[index] = reader.varint(maximum=1 << 32)
    return counts
