"""The neurolace lossless codec for int16 neural samples, and its file format.

Pipeline per channel (see docs/codec.md for the measurements behind each step):

1. value table: the recording's distinct values -> grid codes (:mod:`.table`);
2. linear prediction with a per-channel, order-selected, quantised predictor
   (:mod:`.lpc`), history reset at each frame so frames decode independently;
3. residuals entropy coded with the channel's own quantised histogram
   (:mod:`.histogram`): in "context" mode (default) multiplied by per-code
   popularity weights given the predicted code (:mod:`.context`) and coded by
   the numba rANS coder of :mod:`.rans`; in "fast" mode by constriction's range coder.

File layout (all integers little-endian or LEB128 varints)::

    b"NLXC" | version u8 (1) | envelope u8 | mode u8 | envelope fields | n_channels | n_samples |
    frame_samples | value table | per channel: predictor, residual model[, code weights] | header CRC32 u32
    then per frame: sync b"\\xa7N" | frame index u32 | payload length | CRC32 u32 | payload

Mode 0 is fast (constriction payload), 2 context (rANS payload, :mod:`.rans`); mode 1, the first
context mode (constriction, one call per sample), is no longer written but still decoded.

The CRC32 of a frame covers its index, length and payload; every frame is a
resynchronisation point (it needs only the file header), so a lost or corrupt
frame costs that frame alone: :func:`salvage` returns the rest.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from neurolace.codec.bitpack import ByteReader, encode_varint
from neurolace.codec.context import (
    MAX_CONTEXT_SYMBOLS,
    CodeWeights,
    decode_with_context,
    fit_code_weights,
    model_cache,
)
from neurolace.codec.entropy import RangeDecoder, RangeEncoder, decode_symbols
from neurolace.codec.errors import CodecError
from neurolace.codec.histogram import ResidualModel, level_weights
from neurolace.codec.lpc import (
    MAX_ORDER,
    LinearPredictor,
    fit_predictor,
    prediction_residual,
    prediction_synthesis,
)
from neurolace.codec.rans import (
    FrameDecoder,
    PairCounts,
    RowTable,
    base_frequencies,
    encode_frame,
    ideal_bits,
)
from neurolace.codec.table import ValueTable
from neurolace.core.checks import check_in, check_int
from neurolace.core.errors import FormatError

__all__ = [
    "DEFAULT_FRAME_SAMPLES",
    "FORMAT_VERSION",
    "MAGIC",
    "NeuralCodec",
    "SalvageResult",
    "decode_wav",
    "encode_wav",
    "frame_offsets",
    "salvage",
]

MAGIC = b"NLXC"
FORMAT_VERSION = 1
FRAME_SYNC = b"\xa7N"
#: samples per channel in one independently decodable frame of a file (1.68 s at 19.5 kHz)
DEFAULT_FRAME_SAMPLES = 32768
#: coding modes: "context" codes each sample given its predicted code (best ratio; numba rANS coder,
#: :mod:`.rans`); "fast" codes residuals with one histogram per channel (constriction, vectorised)
MODES = ("context", "fast")
#: mode byte of the file header. 1 is the first context mode (constriction, one call per sample): no
#: longer written, still decoded; 2 is the context mode with the rANS coder of :mod:`.rans`.
_MODE_IDS = {"fast": 0, "context": 2}
_LEGACY_CONTEXT_MODE_ID = 1
#: most probability-row entries (codes x (alphabet + 1), int32) one channel may reserve in context mode (16 MiB)
MAX_TABLE_ENTRIES = 1 << 22
#: refuse headers that claim more samples than this (per file, all channels), so garbage cannot exhaust memory
MAX_TOTAL_SAMPLES = 1 << 34

_ENVELOPE_RAW = 0  # bare samples, no WAV around them
#: most channels one stream holds (the header's limit, checked on both sides)
MAX_CHANNELS = 1 << 16
_ENVELOPE_CANONICAL_WAV = 1  # 44-byte PCM header rebuilt from (n_channels, fs_hz, data size)
_ENVELOPE_STORED_WAV = 2  # header bytes stored verbatim


@dataclass
class _Envelope:
    kind: int = _ENVELOPE_RAW
    fs_hz: int = 0
    header_bytes: bytes = b""
    trailer_bytes: bytes = b""


@dataclass
class SalvageResult:
    """What :func:`salvage` recovered from a damaged file.

    Attributes
    ----------
    samples : ndarray of int16, shape (n_samples, n_channels)
        Decoded samples; samples of lost frames are 0.
    lost_frames : list of int
        Indices of frames that were missing or failed their checksum.
    valid : ndarray of bool, shape (n_samples,)
        False where the sample belongs to a lost frame.
    frame_samples : int
        Samples per channel in each frame.
    """

    samples: np.ndarray
    lost_frames: list[int] = field(default_factory=list)
    valid: np.ndarray | None = None
    frame_samples: int = DEFAULT_FRAME_SAMPLES


def canonical_wav_header(n_channels: int, fs_hz: int, data_size_bytes: int) -> bytes:
    """The plain 44-byte RIFF/WAVE header of 16-bit PCM (fmt chunk of 16 bytes, then data)."""
    block_align = 2 * n_channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        n_channels,
        fs_hz,
        fs_hz * block_align,
        block_align,
        16,
        b"data",
        data_size_bytes,
    )


class NeuralCodec:
    """Lossless codec for int16 neural samples: value table, linear prediction, range coding.

    Parameters
    ----------
    frame_samples : int
        Samples per channel in each independently decodable frame (>= 1).
    max_order : int
        Highest linear-predictor order the encoder tries (0..64).
    mode : {"context", "fast"}
        "context" (default) adds the per-code popularity model of :mod:`.context`
        (about 2 % smaller files), coded by the numba rANS coder of :mod:`.rans`;
        "fast" codes one histogram per channel with constriction's range coder.

    Examples
    --------
    >>> codec = NeuralCodec()
    >>> samples = np.zeros((1000, 2), dtype=np.int16)
    >>> np.array_equal(codec.decode(codec.encode(samples)), samples)
    True
    """

    name = "neurolace"

    def __init__(
        self, *, frame_samples: int = DEFAULT_FRAME_SAMPLES, max_order: int = MAX_ORDER, mode: str = "context"
    ) -> None:
        self.frame_samples = check_int(frame_samples, "frame_samples", minimum=1, maximum=1 << 30)
        self.max_order = check_int(max_order, "max_order", minimum=0, maximum=64)
        check_in(mode, "mode", MODES)
        self.mode = mode
        self.name = "neurolace" if mode == "context" else "neurolace-fast"

    def __repr__(self) -> str:
        return (
            f"NeuralCodec(frame_samples={self.frame_samples}, max_order={self.max_order}, mode={self.mode!r})"
        )

    def encode(self, samples: np.ndarray) -> bytes:
        """Compress int16 samples.

        Parameters
        ----------
        samples : ndarray of int16, shape (n_samples, n_channels) or (n_samples,)
            A 1-D array is one channel; it decodes as shape (n_samples, 1).

        Returns
        -------
        bytes
        """
        return self._encode(_check_samples(samples), _Envelope())

    def decode(self, data: bytes) -> np.ndarray:
        """Decompress :meth:`encode` output to int16, shape (n_samples, n_channels)."""
        return _decode(data, strict=True)[0]

    def encode_wav(self, wav_bytes: bytes) -> bytes:
        """Compress a whole 16-bit PCM WAV file, header and trailing chunks included."""
        return encode_wav(
            wav_bytes, frame_samples=self.frame_samples, max_order=self.max_order, mode=self.mode
        )

    def decode_wav(self, data: bytes) -> bytes:
        """Rebuild the exact WAV file given to :meth:`encode_wav`."""
        return decode_wav(data)

    def _encode(self, samples: np.ndarray, envelope: _Envelope) -> bytes:
        n_samples, n_channels = samples.shape
        out = bytearray(MAGIC)
        out += bytes([FORMAT_VERSION, envelope.kind, _MODE_IDS[self.mode]])
        if envelope.kind == _ENVELOPE_CANONICAL_WAV:
            out += encode_varint(envelope.fs_hz)
        elif envelope.kind == _ENVELOPE_STORED_WAV:
            out += encode_varint(len(envelope.header_bytes)) + envelope.header_bytes
        if envelope.kind != _ENVELOPE_RAW:
            out += encode_varint(len(envelope.trailer_bytes)) + envelope.trailer_bytes
        out += encode_varint(n_channels) + encode_varint(n_samples) + encode_varint(self.frame_samples)
        frames: list[bytes] = []
        if n_samples and n_channels:
            table = ValueTable.from_samples(samples)
            out += table.to_bytes()
            codes = table.to_codes(samples)
            channels = []
            for channel in range(n_channels):
                channel_codes = np.ascontiguousarray(codes[:, channel], dtype=np.int64)
                predictor = fit_predictor(channel_codes, max_order=self.max_order)
                residual = prediction_residual(channel_codes, predictor, table.n_codes, self.frame_samples)
                model = ResidualModel.fit(residual)
                out += predictor.to_bytes() + model.to_bytes()
                if self.mode == "context":
                    symbols = residual - model.low  # in [0, n_symbols): the model was fitted on this residual
                    predictions = channel_codes - residual
                    weights, row_table = _choose_code_weights(
                        channel_codes, symbols, predictions, model, table.n_codes
                    )
                    out += weights.to_bytes()
                else:
                    symbols, predictions, row_table = model.symbols(residual), None, None
                channels.append((symbols, predictions, model, row_table))
            for index, start in enumerate(range(0, n_samples, self.frame_samples)):
                stop = start + self.frame_samples
                if self.mode == "context":
                    payload = encode_frame(
                        [
                            (symbols[start:stop], predictions[start:stop], row_table)
                            for symbols, predictions, _, row_table in channels
                        ]
                    )
                else:
                    encoder = RangeEncoder()
                    for symbols, _, model, _ in channels:
                        encoder.encode(symbols[start:stop], model.model())
                    payload = encoder.get_compressed().tobytes()
                frames.append(_frame_bytes(index, payload))
        out += struct.pack("<I", zlib.crc32(out))
        return bytes(out) + b"".join(frames)


def _row_table(model: ResidualModel, weights: CodeWeights, n_codes: int) -> RowTable:
    """The rANS probability rows of one channel (one plain row when ``weights`` is empty)."""
    code_weights = weights.integer_weights(n_codes) if weights.levels.size else None
    return RowTable(base_frequencies(level_weights(model.levels)), model.low, code_weights, n_codes)


def _context_fits(model: ResidualModel, n_codes: int) -> bool:
    """Whether the per-prediction rows of a channel stay within the alphabet and memory bounds."""
    return model.n_symbols <= MAX_CONTEXT_SYMBOLS and n_codes * (model.n_symbols + 1) <= MAX_TABLE_ENTRIES


def _choose_code_weights(
    codes: np.ndarray, symbols: np.ndarray, predictions: np.ndarray, model: ResidualModel, n_codes: int
) -> tuple[CodeWeights, RowTable]:
    """The fitted code weights and their rows if they pay for themselves on this channel, else the plain row.

    The test is exact: code length under the quantised rows (plus the bytes that
    store the weights) against code length under the plain histogram row.
    """
    n_samples = symbols.size
    empty = CodeWeights(0, np.zeros(0, dtype=np.int64))
    plain = _row_table(model, empty, n_codes)
    if n_samples == 0 or not _context_fits(model, n_codes):
        return empty, plain
    pairs = PairCounts(symbols, predictions, model.n_symbols)
    weights = fit_code_weights(codes, predictions, model, n_codes, pairs=pairs)
    context = _row_table(model, weights, n_codes)
    context_bits, plain_bits = ideal_bits(symbols, predictions, context, plain, pairs=pairs)
    context_bits += 8 * len(weights.to_bytes())
    return (weights, context) if context_bits < plain_bits else (empty, plain)


def _check_samples(samples: np.ndarray) -> np.ndarray:
    if not isinstance(samples, np.ndarray):
        raise CodecError(f"samples must be a numpy array of int16, got {type(samples).__name__}")
    if samples.dtype != np.int16:
        raise CodecError(
            f"samples must have dtype int16 (the codec is lossless on int16 only), got {samples.dtype}"
        )
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise CodecError(f"samples must have shape (n_samples, n_channels), got shape {samples.shape}")
    if samples.shape[1] > MAX_CHANNELS:  # the decoder's header check: a file it could never read is not written
        raise CodecError(f"samples have {samples.shape[1]} channels; the format holds at most {MAX_CHANNELS}")
    return np.ascontiguousarray(samples)


def _frame_bytes(index: int, payload: bytes) -> bytes:
    body = struct.pack("<I", index) + encode_varint(len(payload))
    return FRAME_SYNC + body + struct.pack("<I", zlib.crc32(payload, zlib.crc32(body))) + payload


def encode_wav(
    wav_bytes: bytes,
    *,
    frame_samples: int = DEFAULT_FRAME_SAMPLES,
    max_order: int = MAX_ORDER,
    mode: str = "context",
) -> bytes:
    """Compress a whole 16-bit PCM WAV file, keeping every byte around the samples.

    Parameters
    ----------
    wav_bytes : bytes
        The complete file.
    frame_samples, max_order, mode
        See :class:`NeuralCodec`.

    Raises
    ------
    CodecError
        Not a WAV file, or one the codec cannot hold losslessly (float, 24-bit,
        compressed, truncated); the message names the problem.
    """
    from neurolace.io.wav import parse_wav_header

    if not isinstance(wav_bytes, (bytes, bytearray, memoryview)):
        raise CodecError(f"wav_bytes must be bytes, got {type(wav_bytes).__name__}")
    try:
        header = parse_wav_header(bytes(wav_bytes))
    except FormatError as exc:
        raise CodecError(f"cannot encode this WAV losslessly: {exc}") from None
    start = header.data_offset
    samples = np.frombuffer(bytes(wav_bytes), dtype="<i2", count=header.data_size_bytes // 2, offset=start)
    samples = samples.reshape(-1, header.n_channels)
    envelope = _Envelope(trailer_bytes=header.trailer_bytes)
    if header.header_bytes == canonical_wav_header(header.n_channels, header.fs_hz, header.data_size_bytes):
        envelope.kind = _ENVELOPE_CANONICAL_WAV
        envelope.fs_hz = header.fs_hz
    else:
        envelope.kind = _ENVELOPE_STORED_WAV
        envelope.header_bytes = header.header_bytes
    codec = NeuralCodec(frame_samples=frame_samples, max_order=max_order, mode=mode)
    return codec._encode(np.ascontiguousarray(samples.astype(np.int16)), envelope)


def decode_wav(data: bytes) -> bytes:
    """Rebuild the exact WAV file compressed by :func:`encode_wav`.

    Raises
    ------
    CodecError
        Truncated, corrupt or foreign data, or a file made from bare samples.
    """
    samples, envelope = _decode(data, strict=True)
    return _wav_from(samples, envelope)


def _wav_from(samples: np.ndarray, envelope: _Envelope) -> bytes:
    if envelope.kind == _ENVELOPE_RAW:
        raise CodecError("this file holds bare samples, not a WAV file; decode it with NeuralCodec.decode")
    payload = samples.astype("<i2").tobytes()
    if envelope.kind == _ENVELOPE_CANONICAL_WAV:
        header = canonical_wav_header(samples.shape[1], envelope.fs_hz, len(payload))
    else:
        header = envelope.header_bytes
    return header + payload + envelope.trailer_bytes


def salvage(data: bytes) -> SalvageResult:
    """Decode what survives of a damaged file: every frame whose checksum holds.

    The file header must be intact (it carries the models). Frames that are
    missing, truncated or fail their CRC are listed in ``lost_frames`` and
    their samples set to 0; the decoder resynchronises on the next frame marker.
    """
    return _decode(data, strict=False)[0]


def _read_header(data: bytes):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"compressed data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise CodecError(f"not a neurolace codec file: it starts with {data[:4]!r}, expected {MAGIC!r}")
    reader = ByteReader(data, "codec file header")
    reader.take(4)
    version, kind, mode_id = reader.unpack("<BBB")
    if version != FORMAT_VERSION:
        raise CodecError(
            f"unsupported codec format version {version}; this build reads version {FORMAT_VERSION}"
        )
    if mode_id not in (*_MODE_IDS.values(), _LEGACY_CONTEXT_MODE_ID):
        raise CodecError(f"corrupt codec file header: unknown coding mode {mode_id}")
    envelope = _Envelope(kind=kind)
    if kind == _ENVELOPE_CANONICAL_WAV:
        envelope.fs_hz = reader.varint(maximum=0xFFFFFFFF)
    elif kind == _ENVELOPE_STORED_WAV:
        envelope.header_bytes = reader.take(reader.varint(maximum=len(data)))
    elif kind != _ENVELOPE_RAW:
        raise CodecError(f"corrupt codec file header: unknown envelope kind {kind}")
    if kind != _ENVELOPE_RAW:
        envelope.trailer_bytes = reader.take(reader.varint(maximum=len(data)))
    n_channels = reader.varint(maximum=MAX_CHANNELS)
    n_samples = reader.varint(maximum=MAX_TOTAL_SAMPLES)
    frame_samples = reader.varint(maximum=1 << 30)
    if n_channels * n_samples > MAX_TOTAL_SAMPLES or frame_samples < 1:
        raise CodecError(
            f"corrupt codec file header: {n_channels} channels x {n_samples} samples is implausible"
        )
    table = None
    channels = []
    if n_samples and n_channels:
        n_frames = -(-n_samples // frame_samples)
        if n_frames * 11 > len(data):
            raise CodecError(
                f"truncated codec file: the header announces {n_frames} frames but the file has {len(data)} bytes"
            )
        table = ValueTable.from_reader(reader)
        for _ in range(n_channels):
            predictor = LinearPredictor.from_reader(reader)
            model = ResidualModel.from_reader(reader)
            cache = None
            if mode_id == _LEGACY_CONTEXT_MODE_ID:
                weights = CodeWeights.from_reader(reader)
                if weights.levels.size:
                    if model.n_symbols > MAX_CONTEXT_SYMBOLS:
                        raise CodecError(
                            "corrupt codec file header: context model on a too-wide residual alphabet"
                        )
                    cache = model_cache(model, weights, table.n_codes)
            elif mode_id == _MODE_IDS["context"]:
                weights = CodeWeights.from_reader(reader)
                if weights.levels.size and not _context_fits(model, table.n_codes):
                    raise CodecError(
                        "corrupt codec file header: context model on a too-wide residual alphabet"
                    )
                cache = _row_table(model, weights, table.n_codes)
            channels.append((predictor, model, cache))
    (stored_crc,) = reader.unpack("<I")
    if zlib.crc32(data[: reader.position - 4]) != stored_crc:
        raise CodecError("corrupt codec file header: checksum mismatch")
    return reader, envelope, n_channels, n_samples, frame_samples, table, channels, mode_id


def _decode(data: bytes, *, strict: bool):
    reader, envelope, n_channels, n_samples, frame_samples, table, channels, mode_id = _read_header(data)
    data = reader.data
    if not (n_samples and n_channels):
        if strict and reader.remaining:
            raise CodecError(f"corrupt codec file: {reader.remaining} unexpected bytes after the header")
        samples = np.zeros((n_samples, n_channels), dtype=np.int16)
        return (
            (samples, envelope)
            if strict
            else (SalvageResult(samples, [], np.ones(n_samples, bool), frame_samples), envelope)
        )
    n_frames = -(-n_samples // frame_samples)
    # rANS frames decode straight into their codes; range-coded ones need residuals first
    residual = np.zeros((n_channels, n_samples) if mode_id != _MODE_IDS["context"] else (0, 0), dtype=np.int64)
    context_codes = np.zeros((n_channels, n_samples), dtype=np.int64)
    found = np.zeros(n_frames, dtype=bool)
    position = reader.position
    frame_index_expected = 0
    while position < len(data):
        frame = _read_frame(data, position)
        if frame is None:
            if strict:
                raise CodecError(
                    f"corrupt frame {frame_index_expected} at byte {position}: bad marker, length or checksum",
                    frame_index=frame_index_expected,
                )
            next_sync = data.find(FRAME_SYNC, position + 1)
            position = next_sync if next_sync >= 0 else len(data)
            continue
        index, payload, end = frame
        if index >= n_frames or found[index] or (strict and index != frame_index_expected):
            if strict:
                raise CodecError(
                    f"corrupt codec file: frame {index} where frame {frame_index_expected} was expected",
                    frame_index=index,
                )
            position = end
            continue
        start = index * frame_samples
        length = min(frame_samples, n_samples - start)
        try:
            if mode_id == _MODE_IDS["context"]:
                frame_decoder = FrameDecoder(payload)
                for channel, (predictor, _, row_table) in enumerate(channels):
                    frame_decoder.decode_channel(
                        length, predictor, row_table, out=context_codes[channel, start : start + length]
                    )
                frame_decoder.finish()
            else:
                _decode_range_coded_frame(
                    payload, channels, residual, context_codes, start, length, table.n_codes
                )
        except CodecError:
            if strict:
                raise
            position = end
            continue
        found[index] = True
        frame_index_expected = index + 1
        position = end
    lost = np.flatnonzero(~found).tolist()
    if strict and lost:
        raise CodecError(
            f"truncated codec file: frame {lost[0]} of {n_frames} is missing", frame_index=lost[0]
        )
    samples = np.empty((n_samples, n_channels), dtype=np.int16)
    for channel, (predictor, _, cache) in enumerate(channels):
        if cache is None:
            codes = prediction_synthesis(residual[channel], predictor, table.n_codes, frame_samples)
        else:
            codes = context_codes[channel]
        if lost:
            valid_codes = np.repeat(found, frame_samples)[:n_samples]
            codes = np.where(valid_codes, codes, table.grid_codes[0])
        samples[:, channel] = table.to_samples(codes)
    if strict:
        return samples, envelope
    valid = np.repeat(found, frame_samples)[:n_samples]
    samples[~valid] = 0
    return SalvageResult(samples, lost, valid, frame_samples), envelope


def _decode_range_coded_frame(payload, channels, residual, context_codes, start, length, n_codes) -> None:
    """One frame of the fast mode (and of the first context mode, format mode 1) from constriction's coder."""
    decoder = RangeDecoder(np.frombuffer(payload[: len(payload) // 4 * 4], dtype=np.uint32))
    try:
        for channel, (predictor, model, cache) in enumerate(channels):
            if cache is None:
                residual[channel, start : start + length] = (
                    decode_symbols(decoder, model.model(), length) + model.low
                )
            else:
                context_codes[channel, start : start + length] = decode_with_context(
                    decoder, length, predictor, cache, n_codes
                )
    except CodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - constriction reports invalid data with plain exceptions
        raise CodecError(f"corrupt compressed payload: the range decoder failed ({exc})") from None


def frame_offsets(data: bytes) -> list[int]:
    """Byte offset of every frame of an intact file, in order (for tools and tests that inspect frames)."""
    reader = _read_header(data)[0]
    offsets, position = [], reader.position
    while position < len(reader.data):
        frame = _read_frame(reader.data, position)
        if frame is None:
            raise CodecError(f"corrupt frame at byte {position}")
        offsets.append(position)
        position = frame[2]
    return offsets


def _read_frame(data: bytes, position: int):
    """(index, payload, end) of the frame at ``position``, or None when it is not a valid frame."""
    if data[position : position + 2] != FRAME_SYNC:
        return None
    reader = ByteReader(data, "frame")
    reader.position = position + 2
    try:
        body_start = reader.position
        (index,) = reader.unpack("<I")
        length = reader.varint(maximum=len(data))
        body = data[body_start : reader.position]
        (crc,) = reader.unpack("<I")
        payload = reader.take(length)
    except CodecError:
        return None
    if zlib.crc32(payload, zlib.crc32(body)) != crc:
        return None
    return index, payload, reader.position
