"""Link frames: the wire format byte for byte, the parser's refusals, the reader's resynchronisation."""

from __future__ import annotations

import textwrap
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolace.core.errors import InvalidInputError
from fuzz_helpers import run_atheris
from neurolace.link import (
    FRAME_SYNC,
    HEADER_BYTES,
    LINK_VERSION,
    MAX_BODY_BYTES,
    REJECT_REASONS,
    Frame,
    FrameError,
    FrameReader,
    LinkError,
    StreamType,
    build_header,
    parse_frame,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

frame_strategy = st.builds(
    Frame,
    version=st.just(LINK_VERSION),
    stream=st.sampled_from(list(StreamType)),
    sequence=st.integers(0, 2**64 - 1),
    sample_clock=st.integers(-(2**63), 2**63 - 1),
    body=st.binary(max_size=300),
)


def frame(sequence=0, body=b"body", stream=StreamType.FEATURES, sample_clock=1000, version=LINK_VERSION):
    return Frame(version, stream, sequence, sample_clock, body)


def feed_in_chunks(reader, data, cuts):
    """Feed ``data`` split at the (sorted, deduplicated) ``cuts``; return all frames."""
    edges = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    frames = []
    for start, stop in zip(edges[:-1], edges[1:]):
        frames += reader.feed(data[start:stop])
    return frames


# -- the wire format ------------------------------------------------------------------------------


def test_header_layout_known_answer():
    header = build_header(StreamType.STIM, 0x0102030405060708, -2, 300)
    fields = b"\xa5\x4e" + bytes([1, 4]) + bytes.fromhex("0807060504030201")
    fields += (2**64 - 2).to_bytes(8, "little") + (300).to_bytes(4, "little")
    assert len(fields) == 24 and HEADER_BYTES == 28
    assert header == fields + zlib.crc32(fields).to_bytes(4, "little")
    assert FRAME_SYNC == b"\xa5\x4e"


def test_stream_type_values_are_the_spec():
    assert {stream.name: int(stream) for stream in StreamType} == {
        "RAW": 1, "EVENTS": 2, "FEATURES": 3, "STIM": 4, "ACK": 5, "CONTROL": 6, "HANDSHAKE": 7,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stream", 256, "stream must be <= 255"),
        ("sequence", -1, "sequence must be >= 0"),
        ("sequence", 2**64, "sequence must be <="),
        ("sample_clock", 2**63, "sample_clock must be <="),
        ("body_length", 2**32, "body_length must be <="),
        ("version", 1.0, "version must be an integer"),
    ],
)
def test_build_header_refuses_values_that_do_not_fit(field, value, message):
    arguments = dict(stream=StreamType.RAW, sequence=0, sample_clock=0, body_length=0, version=1)
    arguments[field] = value
    with pytest.raises(InvalidInputError, match=message):
        build_header(**arguments)


def test_frame_repr_and_header_bytes():
    one = frame(sequence=9, body=b"abc")
    assert one.to_bytes() == one.header_bytes() + b"abc"
    assert repr(one) == "Frame(version=1, stream=FEATURES, sequence=9, sample_clock=1000, body=3 bytes)"


@PROPERTY
@given(frame_strategy)
def test_round_trip(one):
    assert parse_frame(one.to_bytes()) == one
    reader = FrameReader()
    assert reader.feed(one.to_bytes()) == [one]
    assert not reader.rejected and reader.buffered_bytes == 0


# -- the parser's refusals ----------------------------------------------------------------------


def _with_crc(fields: bytes) -> bytes:
    return fields + zlib.crc32(fields).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (b"", "truncated", "0 bytes is shorter than a 28-byte frame header"),
        (frame().to_bytes()[:-1], "truncated", "declares a 4-byte body, 3 present"),
        (frame().to_bytes() + b"x", "garbage", "1 bytes after the frame"),
        (b"\x00" * 40, "garbage", "no frame sync word"),
        (frame().to_bytes()[:5] + b"\xff" + frame().to_bytes()[6:], "bad_header", "checksum mismatch"),
        (build_header(StreamType.RAW, 0, 0, MAX_BODY_BYTES + 1), "oversized", "65537 bytes is above"),
        (build_header(StreamType.RAW, 0, 0, 0, version=2), "unknown_version", "version 2 is not supported"),
        (build_header(0, 0, 0, 0), "unknown_stream", "stream type 0 is unknown"),
        (build_header(8, 0, 0, 0), "unknown_stream", "stream type 8 is unknown"),
    ],
)
def test_parse_frame_refusals(data, reason, message):
    with pytest.raises(FrameError, match=message) as caught:
        parse_frame(data)
    assert caught.value.reason == reason


def test_parse_frame_refuses_a_non_bytes_argument():
    with pytest.raises(InvalidInputError, match="data must be bytes"):
        parse_frame("text")
    with pytest.raises(InvalidInputError, match="data must be bytes"):
        FrameReader().feed([1, 2])


def test_a_maximum_body_parses():
    big = frame(body=bytes(MAX_BODY_BYTES))
    assert parse_frame(big.to_bytes()) == big


@PROPERTY
@given(st.binary(max_size=200))
def test_parse_frame_raises_only_frame_errors(data):
    try:
        parse_frame(data)
    except FrameError as error:
        assert error.reason in REJECT_REASONS


# -- the reader ----------------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_reader_takes_any_bytes_in_any_chunking(data, cuts):
    reader = FrameReader()
    frames = feed_in_chunks(reader, data, cuts)
    reader.finish()
    for one in frames:  # a frame it returns was in the input
        assert one.to_bytes() in data
    assert set(reader.rejected) <= set(REJECT_REASONS)
    assert reader.buffered_bytes == 0


@PROPERTY
@given(
    st.lists(st.tuples(st.binary(max_size=60), frame_strategy), min_size=1, max_size=6),
    st.binary(max_size=60),
    st.lists(st.integers(0, 5000), max_size=10),
)
def test_every_frame_between_garbage_is_recovered(pieces, tail, cuts):
    stream = b"".join(garbage + one.to_bytes() for garbage, one in pieces) + tail
    reader = FrameReader()
    frames = feed_in_chunks(reader, stream, cuts)
    reader.finish()
    assert frames == [one for _, one in pieces]
    assert set(reader.rejected) <= {"garbage", "bad_header", "truncated"}
    runs = sum(1 for garbage, _ in pieces if garbage) + bool(tail)
    sync_words = sum(garbage.count(FRAME_SYNC) for garbage, _ in pieces) + tail.count(FRAME_SYNC)
    assert sum(reader.rejected.values()) <= runs + sync_words  # a run of garbage counts once


def test_garbage_run_counts_once_and_the_buffer_stays_small():
    reader = FrameReader()
    garbage = bytes(range(256)).replace(FRAME_SYNC, b"") * 4000  # ~1 MB, a partial sync word at most
    assert reader.feed(garbage) == []
    assert reader.buffered_bytes <= 1
    assert reader.feed(garbage + frame(1).to_bytes()) == [frame(1)]
    assert reader.rejected == {"garbage": 1}


def test_the_buffer_never_holds_more_than_one_maximum_frame():
    reader = FrameReader()
    pending = build_header(StreamType.RAW, 0, 0, MAX_BODY_BYTES)
    reader.feed(pending + bytes(MAX_BODY_BYTES - 1))
    assert reader.buffered_bytes == HEADER_BYTES + MAX_BODY_BYTES - 1
    reader.feed(b"\x00" * 10)  # completes it, the rest is garbage
    assert reader.frames == 1 and reader.buffered_bytes == 0


@pytest.mark.parametrize("cuts", [[], list(range(0, 200, 7)), [121], [100, 121, 130]])
def test_a_frame_cut_short_by_lost_bytes_does_not_swallow_the_next(cuts):
    """[121] splits the next frame's sync word between two chunks."""
    first, second, third = frame(1, bytes(range(200))), frame(2, b"second"), frame(3, b"third")
    stream = first.to_bytes()[:120] + second.to_bytes() + third.to_bytes()
    reader = FrameReader()
    assert feed_in_chunks(reader, stream, cuts) == [second, third]
    assert reader.rejected == {"truncated": 1}


def is_subsequence(short, long):
    remaining = iter(long)
    return all(any(item == candidate for candidate in remaining) for item in short)


@PROPERTY
@given(
    st.lists(st.tuples(frame_strategy, st.one_of(st.none(), st.integers(1, 400))), min_size=1, max_size=6),
    st.lists(st.integers(0, 3000), max_size=12),
)
def test_frames_after_one_cut_short_are_recovered(pieces, cuts):
    """Lost bytes at a frame's end: every intact frame after it still comes out, in any chunking.

    A cut frame whose lost bytes the next fragment makes up exactly comes out too (only the AEAD
    can tell), so the intact frames are a subsequence of what comes out.
    """
    stream = b""
    intact = []
    for one, lost_bytes in pieces:
        data = one.to_bytes()
        if lost_bytes is None:
            stream += data
            intact.append(one)
        else:
            stream += data[: max(0, len(data) - lost_bytes)]
    for chunked in (False, True):
        reader = FrameReader()
        frames = feed_in_chunks(reader, stream, cuts if chunked else [])
        reader.finish()
        assert is_subsequence(intact, frames), (chunked, frames, intact)
        assert set(reader.rejected) <= {"truncated", "bad_header", "garbage"}


def test_a_lost_tail_shorter_than_a_header_is_found_with_the_next_bytes():
    first, second = frame(1, bytes(100)), frame(2, b"second")
    stream = first.to_bytes()[:-10] + second.to_bytes()  # second's header begins 10 bytes before first "ends"
    reader = FrameReader()
    returned = [one for cut in range(0, len(stream), 3) for one in reader.feed(stream[cut : cut + 3])]
    assert returned[-1] == second and returned[0].sequence == 1 and returned[0] != first
    reader.finish()
    assert reader.buffered_bytes == 0


def test_only_a_header_that_has_arrived_cuts_a_frame():
    """A lost tail seen only once the next header is whole: the reader waits for it, not longer."""
    first, second = frame(1, bytes(100)), frame(2, b"x" * 50)
    stream = first.to_bytes()[:60] + second.to_bytes()
    reader = FrameReader()
    assert reader.feed(stream[:70]) == []  # second's header incomplete: first still pending
    assert reader.feed(stream[70:]) == [second]
    assert reader.rejected == {"truncated": 1}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (build_header(StreamType.RAW, 5, 0, 40, version=0), "unknown_version"),
        (build_header(StreamType.RAW, 5, 0, 40, version=2), "unknown_version"),
        (build_header(99, 5, 0, 40), "unknown_stream"),
    ],
)
def test_unknown_version_or_stream_is_refused_and_its_body_skipped(header, reason):
    body = FRAME_SYNC + b"\x00" * 38  # a body that looks like garbage is not counted again
    reader = FrameReader()
    frames = reader.feed(frame(1).to_bytes() + header + body + frame(2).to_bytes())
    assert frames == [frame(1), frame(2)]
    assert reader.rejected == {reason: 1}


def test_oversized_header_is_refused_without_waiting_for_its_body():
    reader = FrameReader()
    oversized = build_header(StreamType.RAW, 5, 0, 2**32 - 1)
    assert reader.feed(oversized + b"\x01" * 500 + frame(2).to_bytes()) == [frame(2)]
    assert reader.rejected == {"oversized": 1}


def test_finish_counts_a_partial_frame_as_truncated():
    reader = FrameReader()
    reader.feed(frame(1).to_bytes() + frame(2).to_bytes()[:-2])
    reader.finish()
    assert reader.rejected == {"truncated": 1} and reader.buffered_bytes == 0
    reader.feed(frame(1).to_bytes() + FRAME_SYNC)  # a bare sync word after a frame
    reader.finish()
    assert reader.rejected == {"truncated": 2}
    reader.feed(b"junk\xa5")  # a garbage run ending in half a sync word is one refusal
    reader.finish()
    assert reader.rejected == {"truncated": 2, "garbage": 1}
    partial = build_header(StreamType.RAW, 0, 0, 10, version=9) + b"abc"
    reader.feed(partial)
    reader.finish()
    assert reader.rejected["unknown_version"] == 1


def test_every_flipped_header_bit_is_refused_and_the_next_frame_recovered():
    """Known answer: a header bit flip is "bad_header", or "garbage" where it hits the sync word."""
    victim, after = frame(7, bytes(range(64))).to_bytes(), frame(8).to_bytes()
    for bit in range(HEADER_BYTES * 8):
        damaged = bytearray(victim)
        damaged[bit // 8] ^= 1 << (bit % 8)
        reader = FrameReader()
        assert reader.feed(bytes(damaged) + after) == [frame(8)], bit
        expected = "garbage" if bit < 16 else "bad_header"
        assert reader.rejected == {expected: 1}, (bit, reader.rejected)


def test_a_flipped_body_bit_passes_the_reader_unchanged_in_length():
    """The CRC covers the header only: the body's integrity is the AEAD's (endpoint tests)."""
    victim = frame(7, bytes(range(64)))
    damaged = bytearray(victim.to_bytes())
    damaged[HEADER_BYTES + 10] ^= 0x10
    (got,) = FrameReader().feed(bytes(damaged))
    assert got.sequence == 7 and got.body != victim.body and len(got.body) == len(victim.body)


def test_reader_repr():
    reader = FrameReader()
    reader.feed(b"xx" + frame().to_bytes())
    assert repr(reader) == "FrameReader(frames=1, bytes_fed=34, buffered=0, rejected={'garbage': 1})"


def test_link_errors_are_neurolace_errors():
    assert issubclass(FrameError, LinkError)
    with pytest.raises(ValueError, match="unknown link reject reason"):
        FrameError("nonsense")


# -- coverage-guided fuzzing (atheris, in a subprocess, bounded) -----------------------------------

ATHERIS_TARGET = textwrap.dedent(
    """
    import sys
    import atheris

    with atheris.instrument_imports(include=["neurolace.link"]):
        from neurolace.link import FrameError, FrameReader, parse_frame

    def target(data):
        try:
            parse_frame(data)
        except FrameError:
            pass
        reader = FrameReader()
        split = len(data) // 3
        frames = reader.feed(data[:split]) + reader.feed(data[split:])
        reader.finish()
        for frame in frames:
            assert frame.to_bytes() in data

    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
    """
)


def test_atheris_coverage_guided_fuzzing(tmp_path):
    seeds = {
        "two_frames": b"xy" + frame(1).to_bytes() + frame(2, bytes(40)).to_bytes()[:50],
        "refusals": build_header(9, 0, 0, 3, version=2) + b"abc" + frame(3).to_bytes(),
    }
    run_atheris(ATHERIS_TARGET, seeds, tmp_path, runs=4000, max_len=2048)
