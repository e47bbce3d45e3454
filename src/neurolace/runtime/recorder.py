"""The session recorder: an append-only, checksummed, crash-safe file of every message, then NWB.

File layout (little-endian)::

    file header : b"NLREC1\\n\\x00" | u32 n | n bytes of JSON (session, streams, clock) | u32 crc32(JSON)
    block       : b"NLBK" | u32 payload_bytes | u32 n_messages | u32 crc32(payload) | u64 block_index
                  payload = n_messages x (u32 length | encoded message)     (see runtime.messages.encode)

The writer buffers messages for ``block_ms`` and appends one block at a time
(``write`` then ``fsync``), so a process killed at any instant leaves every
block written before the kill intact; only the block being assembled (and
possibly a torn last block, which its checksum rejects) is lost. Reading stops
at the first block whose magic, length or CRC-32 is wrong and reports what
follows it (:class:`RecoveryReport`). :func:`record_to_nwb` converts a file to
NWB (one ``TimeSeries`` per stream) when a run ends.

Into the vault: give :class:`RecordWriter` a :class:`neurolace.privacy.vault.VaultRef` instead
of a path and the same bytes go into an encrypted vault stream, the file header as chunk 0
and each block as one sealed, ``fsync``'d chunk, so a killed run still loses at most the
block being assembled. :func:`read_record`, :func:`recover_record` and
:func:`record_to_nwb` take a ``VaultRef`` too; the NWB file of a vault record is built in
memory (h5py on a ``BytesIO``) and stored in the vault, so no clear byte reaches the disk.
A vault stream decrypted whole (``neurolace vault cat``) is a plain record file.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import threading
import time
import warnings
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.privacy.vault import VaultRef
from neurolace.runtime.messages import Message, decode, encode

__all__ = ["FILE_MAGIC", "NWB_KIND", "RECORD_KIND", "RecordWriter", "RecoveryReport", "next_free_record_path",
           "read_record", "record_to_nwb", "recover_record"]

FILE_MAGIC = b"NLREC1\n\x00"
BLOCK_MAGIC = b"NLBK"
_BLOCK = struct.Struct("<4sIIIQ")
_LENGTH = struct.Struct("<I")
#: largest block a reader accepts (guards against a corrupt length field)
MAX_BLOCK_BYTES = 1 << 30


#: vault stream kinds of a record and of its NWB export
RECORD_KIND = "record"
NWB_KIND = "nwb"


def next_free_record_path(path: str | Path | VaultRef) -> Path | VaultRef:
    """``path`` if nothing is there, else the first free ``STEM.N.SUFFIX`` beside it (N = 1, 2, ...).

    The recorder writes a re-run or a restart of a session to a new numbered file, so the record
    of an earlier (perhaps crashed) run is never lost. A vault entry gets the same numbering
    among the participant's entries.
    """
    if isinstance(path, VaultRef):
        ref, name = path, Path(path.name)
        candidate, number = ref, 0
        while candidate.vault.exists(candidate.participant_id, candidate.name):
            number += 1
            candidate = ref.vault.ref(ref.participant_id, f"{name.stem}.{number}{name.suffix}")
        return candidate
    path = Path(path)
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}.{number}{path.suffix}")
    return candidate


class _FileSink:
    """Blocks appended to a plain file (O_APPEND, one write each)."""

    def __init__(self, path: Path, fsync: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        try:  # never truncate: an existing record may be the only copy of a crashed run
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            raise InvalidInputError(
                f"record {path} already exists; a record is never overwritten (choose a new path, "
                f"or see next_free_record_path)"
            ) from None

    def write(self, data: bytes) -> None:
        os.write(self._fd, data)  # one write: O_APPEND keeps blocks whole and in order
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class _VaultSink:
    """Blocks sealed as chunks of a vault stream (one chunk each, fsync'd by the vault writer)."""

    def __init__(self, ref: VaultRef, fsync: bool) -> None:
        self.ref = ref
        self._writer = ref.vault.writer(
            ref.participant_id, ref.name, kind=RECORD_KIND, metadata={"format": "neurolace-record"},
            fsync=fsync,
        )

    def write(self, data: bytes) -> None:
        self._writer.write_chunk(data)

    def close(self) -> None:
        self._writer.close()


class RecordWriter:
    """Append messages to a record file in checksummed blocks.

    Parameters
    ----------
    path : path or VaultRef
        The file, created on open (an existing one is refused); or a vault entry
        (``vault.ref(participant_id, name)``), written as an encrypted stream.
    header : dict
        JSON-serialisable description of the session.
    block_ms : float
        Longest time a message waits in memory before its block is written.
    block_bytes : int
        A block is written as soon as it holds this many bytes.
    fsync : bool
        ``fsync`` after every block (survives a power cut, not only a kill).
    """

    def __init__(
        self,
        path: str | Path | VaultRef,
        *,
        header: dict | None = None,
        block_ms: float = 100.0,
        block_bytes: int = 4 << 20,
        fsync: bool = True,
    ) -> None:
        self.block_ms = float(block_ms)
        self.block_bytes = int(block_bytes)
        self.fsync = bool(fsync)
        if isinstance(path, VaultRef):
            self.path = path
            self._sink = _VaultSink(path, self.fsync)
        else:
            self.path = Path(path)
            self._sink = _FileSink(self.path, self.fsync)
        text = json.dumps({"format": "neurolace-record", "version": 1, **(header or {})}).encode()
        self._sink.write(FILE_MAGIC + _LENGTH.pack(len(text)) + text + _LENGTH.pack(zlib.crc32(text)))
        self._parts: list[bytes] = []
        self._buffered_bytes = 0
        self._first_ns: int | None = None
        self.blocks = 0
        self.messages = 0
        self.bytes_written = 0
        self._lock = threading.Lock()

    def append(self, message: Message) -> None:
        """Buffer one message; write the block if it is old or big enough."""
        data = encode(message)
        with self._lock:
            self._parts.append(_LENGTH.pack(len(data)))
            self._parts.append(data)
            self._buffered_bytes += len(data) + 4
            if self._first_ns is None:
                self._first_ns = time.monotonic_ns()
            due = time.monotonic_ns() - self._first_ns >= self.block_ms * 1e6
            if due or self._buffered_bytes >= self.block_bytes:
                self._write_block()

    def poll(self) -> None:
        """Write the pending block if it has waited ``block_ms`` (call when idle)."""
        with self._lock:
            if self._first_ns is not None and time.monotonic_ns() - self._first_ns >= self.block_ms * 1e6:
                self._write_block()

    def _write_block(self) -> None:
        if not self._parts:
            return
        payload = b"".join(self._parts)
        n_messages = len(self._parts) // 2
        header = _BLOCK.pack(BLOCK_MAGIC, len(payload), n_messages, zlib.crc32(payload), self.blocks)
        self._sink.write(header + payload)
        self.blocks += 1
        self.messages += n_messages
        self.bytes_written += len(header) + len(payload)
        self._parts = []
        self._buffered_bytes = 0
        self._first_ns = None

    def close(self) -> None:
        with self._lock:
            if self._sink is None:
                return
            self._write_block()
            self._sink.close()
            self._sink = None


@dataclass
class RecoveryReport:
    """What :func:`recover_record` found.

    Attributes
    ----------
    header : dict
    good_blocks : int
        Blocks read intact.
    messages : int
        Messages in them.
    good_bytes : int
        Length of the intact prefix of the file.
    discarded_bytes : int
        Bytes after it (a torn or corrupt block and everything following).
    problem : str
        Why reading stopped ("" for a clean end of file).
    """

    header: dict
    good_blocks: int
    messages: int
    good_bytes: int
    discarded_bytes: int
    problem: str = ""
    streams: dict[str, list[Message]] = field(default_factory=dict, repr=False)

    @property
    def clean(self) -> bool:
        return not self.problem

    def describe(self) -> str:
        text = f"{self.good_blocks} blocks, {self.messages} messages intact ({self.good_bytes} bytes)"
        if self.problem:
            text += f"; {self.discarded_bytes} bytes after them discarded: {self.problem}"
        return text


def recover_record(path: str | Path | VaultRef) -> RecoveryReport:
    """Read every intact block of a record file; stop at the first bad one and report the rest.

    The file is memory-mapped and the payloads are views on it, so a long
    raw recording is not copied into memory; do not truncate the file while
    the report is in use (appending, as a running recorder does, is fine).

    ``path`` may be a vault entry (:class:`~neurolace.privacy.vault.VaultRef`): its chunks
    are authenticated and decrypted in memory, one block each; the stream of a killed run
    (no last chunk) reads up to its last whole block and says so in ``problem``.

    Raises
    ------
    FormatError
        The file header itself is missing or corrupt (nothing can be recovered).
    """
    if isinstance(path, VaultRef):
        return _recover_from_vault(path)
    path = Path(path)
    data = _map(path)  # memory-mapped: payloads are views on the file, not copies
    header, offset = _parse_file_header(data, path)
    streams: dict[str, list[Message]] = defaultdict(list)
    blocks = messages = 0
    problem = ""
    while offset < len(data):
        decoded, end, problem = _parse_block(data, offset, blocks)
        if problem:
            break
        for message in decoded:
            streams[message.stream].append(message)
        blocks += 1
        messages += len(decoded)
        offset = end
    return RecoveryReport(
        header=header,
        good_blocks=blocks,
        messages=messages,
        good_bytes=offset,
        discarded_bytes=len(data) - offset,
        problem=problem,
        streams=dict(streams),
    )


def _parse_file_header(data, where) -> tuple[dict, int]:
    """The record's JSON header and the offset of its first block; FormatError naming ``where``."""
    if data[: len(FILE_MAGIC)] != FILE_MAGIC:
        raise FormatError(
            f"{where} is not a neurolace record file (expected it to start with {FILE_MAGIC!r})"
        )
    offset = len(FILE_MAGIC)
    if len(data) < offset + 4:
        raise FormatError(f"{where}: record header is truncated")
    (length,) = _LENGTH.unpack_from(data, offset)
    offset += 4
    text = data[offset : offset + length]
    if len(text) != length or len(data) < offset + length + 4:
        raise FormatError(f"{where}: record header is truncated")
    (crc,) = _LENGTH.unpack_from(data, offset + length)
    if zlib.crc32(text) != crc:
        raise FormatError(f"{where}: record header fails its CRC-32 check")
    return json.loads(text), offset + length + 4


def _parse_block(data, offset: int, expected_index: int) -> tuple[list[Message], int, str]:
    """Messages of the block at ``offset``, the offset after it, and "" (or why it is bad)."""
    if len(data) - offset < _BLOCK.size:
        return [], offset, f"torn block header at byte {offset} ({len(data) - offset} bytes)"
    magic, size, count, checksum, index = _BLOCK.unpack_from(data, offset)
    if magic != BLOCK_MAGIC:
        return [], offset, f"bad block magic at byte {offset}"
    if index != expected_index:
        return [], offset, f"block {expected_index} expected at byte {offset}, found index {index}"
    if size > MAX_BLOCK_BYTES or offset + _BLOCK.size + size > len(data):
        return [], offset, f"block {index} at byte {offset} is truncated (needs {size} payload bytes)"
    payload = memoryview(data)[offset + _BLOCK.size : offset + _BLOCK.size + size]
    if zlib.crc32(payload) != checksum:
        return [], offset, f"block {index} at byte {offset} fails its CRC-32 check"
    try:
        decoded = _split_messages(payload, count)
    except FormatError as exc:
        return [], offset, f"block {index} at byte {offset}: {exc}"
    return decoded, offset + _BLOCK.size + size, ""


def _recover_from_vault(ref: VaultRef) -> RecoveryReport:
    """:func:`recover_record` of a vault stream: chunk 0 is the file header, each later chunk one block."""
    streams: dict[str, list[Message]] = defaultdict(list)
    blocks = messages = good_bytes = 0
    problem = ""
    with ref.vault.reader(ref.participant_id, ref.name, strict=False) as reader:
        chunks = iter(reader)
        first = next(chunks, None)
        if first is None:
            raise FormatError(f"{ref}: the record header is missing ({reader.problem or 'empty stream'})")
        header, end = _parse_file_header(first, ref)
        if end != len(first):
            raise FormatError(f"{ref}: {len(first) - end} stray bytes after the record header")
        good_bytes = len(first)
        for chunk in chunks:
            decoded, end, problem = _parse_block(chunk, 0, blocks)
            if not problem and end != len(chunk):
                problem = f"block {blocks}: {len(chunk) - end} stray bytes after it in its chunk"
            if problem:
                problem = f"chunk {blocks + 1}: {problem}"
                break
            for message in decoded:
                streams[message.stream].append(message)
            blocks += 1
            messages += len(decoded)
            good_bytes += len(chunk)
        discarded = reader.discarded_bytes
        if not problem:
            problem = reader.problem
    return RecoveryReport(
        header=header,
        good_blocks=blocks,
        messages=messages,
        good_bytes=good_bytes,
        discarded_bytes=discarded,
        problem=problem,
        streams=dict(streams),
    )


def _map(path: Path):
    """The file's bytes, memory-mapped read-only (an empty file gives ``b""``)."""
    with open(path, "rb") as stream:
        if os.fstat(stream.fileno()).st_size == 0:
            return b""
        return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)


def _split_messages(payload: memoryview, count: int) -> list[Message]:
    found = []
    position = 0
    for _ in range(count):
        if position + 4 > len(payload):
            raise FormatError("message length runs past the block")
        (length,) = _LENGTH.unpack_from(payload, position)
        position += 4
        if position + length > len(payload):
            raise FormatError("message runs past the block")
        found.append(decode(payload[position : position + length]))
        position += length
    if position != len(payload):
        raise FormatError(f"{len(payload) - position} stray bytes after {count} messages")
    return found


def read_record(path: str | Path | VaultRef, *, strict: bool = True) -> RecoveryReport:
    """Read a record file or vault entry; with ``strict`` raise :class:`FormatError` if any part is damaged."""
    report = recover_record(path)
    if strict and not report.clean:
        raise FormatError(f"{path}: {report.describe()}; use recover_record to read the intact part")
    return report


def _nwb_name(stream: str) -> str:
    return stream.replace(".", "__").replace("/", "_")


def _block_iterator_class():
    from hdmf.data_utils import AbstractDataChunkIterator, DataChunk

    class BlockIterator(AbstractDataChunkIterator):
        """Raw blocks written to HDF5 in pieces of about 1 MiB, never the whole recording at once."""

        def __init__(self, blocks: list[np.ndarray]) -> None:
            self.blocks = blocks
            self.index = 0
            self.position = 0
            first = blocks[0]
            self._dtype = first.dtype
            self._shape = (sum(block.shape[0] for block in blocks), *first.shape[1:])
            self._rows_per_piece = max(1, (1 << 20) // max(first[0].nbytes, 1))

        def __iter__(self):
            return self

        def __next__(self) -> DataChunk:
            if self.index >= len(self.blocks):
                raise StopIteration
            piece, rows = [], 0
            while self.index < len(self.blocks) and rows < self._rows_per_piece:
                piece.append(self.blocks[self.index])
                rows += self.blocks[self.index].shape[0]
                self.index += 1
            selection = (slice(self.position, self.position + rows), *(slice(None) for _ in self._shape[1:]))
            self.position += rows
            return DataChunk(data=np.concatenate(piece, axis=0), selection=selection)

        def recommended_chunk_shape(self):
            return None

        def recommended_data_shape(self):
            return self._shape

        @property
        def dtype(self):
            return self._dtype

        @property
        def maxshape(self):
            return self._shape

    return BlockIterator


def _block_iterator(blocks: list[np.ndarray]):
    return _block_iterator_class()(blocks)


def record_to_nwb(
    record_path: str | Path | VaultRef,
    nwb_path: str | Path | VaultRef,
    *,
    raw_fs_hz: float = 19531.25,
    session_description: str = "neurolace runtime session",
) -> RecoveryReport:
    """Convert the intact part of a record file to NWB; return the recovery report.

    Each stream becomes a ``TimeSeries`` in ``acquisition`` named
    ``node__port``. Streams of 2-D blocks (raw samples) are written block by
    block along time with ``rate = raw_fs_hz`` when the source sample clock
    has no gap (else with per-sample timestamps); streams
    of 1-D payloads (features, cursor, ...) are stacked one row per message
    with the publish time in seconds since the first message. A companion
    ``node__port__sample_index`` series keeps the source clock of every row.

    Either side may be a vault entry (:class:`~neurolace.privacy.vault.VaultRef`). An NWB
    file going into the vault is built in memory (h5py on a ``BytesIO``, so the file must
    fit in memory) and stored as one encrypted stream of kind ``"nwb"``; no clear byte of
    it is written to disk.
    """
    import datetime as dt

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    from neurolace.io.atomic import atomic_output

    report = recover_record(record_path)
    first_ns = min((m[0].timestamp_ns for m in report.streams.values() if m), default=0)
    nwbfile = NWBFile(
        session_description=session_description,
        identifier=str(report.header.get("session", "neurolace")) + f"-{first_ns}",
        session_start_time=dt.datetime.now(dt.UTC),
        notes=json.dumps({"record_header": report.header, "recovery": report.describe()}),
    )
    for stream, messages in sorted(report.streams.items()):
        shapes = {m.payload.shape[1:] if m.payload.ndim == 2 else m.payload.shape for m in messages}
        if len(shapes) != 1:
            continue  # payload shape changed mid-stream: not a single TimeSeries
        name = _nwb_name(stream)
        description = f"stream {stream} recorded by the neurolace runtime"
        if messages[0].payload.ndim == 2:
            block_start = np.array([m.sample_index for m in messages], dtype=np.int64)
            block_length = np.array([m.payload.shape[0] for m in messages], dtype=np.int64)
            if np.array_equal(block_start[1:], block_start[:-1] + block_length[:-1]):
                # gap-free sample clock: stream the blocks into the file (no copy of the whole recording)
                data = _block_iterator([m.payload for m in messages])
                series = TimeSeries(
                    name=name,
                    data=data,
                    unit="n/a",
                    rate=float(raw_fs_hz),
                    starting_time=float(block_start[0] / raw_fs_hz),
                    description=description,
                )
            else:
                sample = np.concatenate([m.sample_index + np.arange(m.payload.shape[0]) for m in messages])
                series = TimeSeries(
                    name=name,
                    data=np.concatenate([m.payload for m in messages], axis=0),
                    unit="n/a",
                    timestamps=sample / raw_fs_hz,
                    description=description,
                )
            sample, timestamps = block_start, block_start / raw_fs_hz
            index_description = f"source sample clock of the first sample of each block of {name}"
        else:
            sample = np.array([m.sample_index for m in messages])
            timestamps = (np.array([m.timestamp_ns for m in messages]) - first_ns) / 1e9
            series = TimeSeries(
                name=name,
                data=np.stack([m.payload for m in messages]),
                unit="n/a",
                timestamps=timestamps,
                description=description,
            )
            index_description = f"source sample clock of each row of {name}"
        nwbfile.add_acquisition(series)
        nwbfile.add_acquisition(
            TimeSeries(
                name=name + "__sample_index",
                data=sample.astype(np.int64),
                unit="samples",
                timestamps=timestamps,
                description=index_description,
            )
        )
    if isinstance(nwb_path, VaultRef):
        import io

        import h5py

        memory = io.BytesIO()
        with h5py.File(memory, "w") as h5file, NWBHDF5IO(file=h5file, mode="w") as nwb_io:
            nwb_io.write(nwbfile)
        nwb_path.vault.write_bytes(
            nwb_path.participant_id, nwb_path.name, memory.getbuffer(), kind=NWB_KIND,
            metadata={"record": getattr(record_path, "name", str(record_path))},
        )
        return report
    with atomic_output(nwb_path) as temporary, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'", category=UserWarning)
        with NWBHDF5IO(str(temporary), "w") as nwb_io:
            nwb_io.write(nwbfile)
    return report
