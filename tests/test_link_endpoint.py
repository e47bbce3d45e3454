"""The link endpoint: sealed frames out, payloads in, each refusal counted by reason."""

from __future__ import annotations

import math

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolace.core.errors import InvalidInputError
from neurolace.link import (
    HEADER_BYTES,
    MAX_BODY_BYTES,
    REJECT_REASONS,
    SEAL_OVERHEAD_BYTES,
    AuthenticationError,
    ChannelSettings,
    LinkChannel,
    ReplayError,
    StreamType,
    build_header,
    ephemeral_pairing,
    initiate,
    respond,
)
from neurolace.link.endpoint import MAX_PAYLOAD_BYTES, Delivered, LinkEndpoint
from neurolace.link.governor import FRAME_OVERHEAD_BYTES


class ToySealer:
    """Test-only sealer: ChaCha20-Poly1305 under a fixed key, each nonce opens once (no window)."""

    def __init__(self, key: bytes = bytes(range(32))) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._opened: set[int] = set()

    def seal(self, nonce: int, header: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(nonce.to_bytes(12, "little"), plaintext, header)

    def open(self, nonce: int, header: bytes, body: bytes) -> bytes:
        if nonce in self._opened:
            raise ReplayError("replayed", f"sequence {nonce} opened already")
        try:
            plaintext = self._aead.decrypt(nonce.to_bytes(12, "little"), body, header)
        except InvalidTag:
            raise AuthenticationError("tag_mismatch") from None
        self._opened.add(nonce)
        return plaintext


def toy_pair():
    return LinkEndpoint(ToySealer(), name="implant"), LinkEndpoint(ToySealer(), name="host")


def session_pair(**options):
    """Implant and host endpoints with a real Noise_IK session, its messages carried in HANDSHAKE frames."""
    implant_store, host_store = ephemeral_pairing()
    implant, host = LinkEndpoint(None, name="implant"), LinkEndpoint(None, name="host")
    message1, pending = initiate(host_store, implant_store.public_key, **options)
    (first,) = implant.receive(host.send(StreamType.HANDSHAKE, message1, 0))
    message2, implant.sealer = respond(implant_store, first.payload, **options)
    (second,) = host.receive(implant.send(StreamType.HANDSHAKE, message2, 0))
    host.sealer = pending.finish(second.payload)
    return implant, host


# -- sending and receiving ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [toy_pair, session_pair])
def test_payloads_arrive_in_order_with_their_clock(make):
    implant, host = make()
    payloads = [bytes([index]) * (index * 7) for index in range(30)]
    wire = b"".join(
        implant.send(StreamType.FEATURES, payload, 391 * index) for index, payload in enumerate(payloads)
    )
    delivered = []
    for start in range(0, len(wire), 97):  # any chunking
        delivered += host.receive(wire[start : start + 97])
    assert [item.payload for item in delivered] == payloads
    assert [item.sample_clock for item in delivered] == [391 * index for index in range(30)]
    assert all(item.stream is StreamType.FEATURES for item in delivered)
    assert host.stats()["rejected_total"] == 0


def test_sealed_frames_hide_the_payload_and_handshake_frames_do_not():
    implant, _ = toy_pair()
    secret = b"the participant's spike counts" * 4
    sealed = implant.send(StreamType.EVENTS, secret, 0)
    assert secret not in sealed and len(sealed) == HEADER_BYTES + len(secret) + SEAL_OVERHEAD_BYTES
    handshake = implant.send(StreamType.HANDSHAKE, b"noise message", 0)
    assert handshake[HEADER_BYTES:] == b"noise message"


def test_sequence_numbers_count_per_direction_and_restart_with_a_new_sealer():
    implant, _ = toy_pair()
    sequences = [int.from_bytes(implant.send(StreamType.RAW, b"x", 0)[4:12], "little") for _ in range(3)]
    assert sequences == [0, 1, 2]
    implant.sealer = ToySealer(bytes(32))
    assert int.from_bytes(implant.send(StreamType.RAW, b"x", 0)[4:12], "little") == 0


def test_the_session_picks_the_sequence_and_the_key_epochs_follow():
    implant, host = session_pair(rekey_frames=1024, window_size=64)
    delivered = 0
    for index in range(2100):
        delivered += len(host.receive(implant.send(StreamType.FEATURES, index.to_bytes(4, "little"), index)))
    assert delivered == 2100
    stats = host.stats()
    assert stats["session"]["rekeys_received"] == 2 and implant.stats()["session"]["rekeys_sent"] == 2


def test_governor_frame_overhead_is_header_plus_tag():
    assert FRAME_OVERHEAD_BYTES == HEADER_BYTES + SEAL_OVERHEAD_BYTES
    assert MAX_PAYLOAD_BYTES == MAX_BODY_BYTES - SEAL_OVERHEAD_BYTES


# -- refusals, counted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [toy_pair, session_pair])
def test_every_flipped_bit_of_a_sealed_frame_is_refused(make):
    """Known answer: header bits -> bad_header (garbage in the sync word), body bits -> tag_mismatch."""
    implant, host = make()
    victim = implant.send(StreamType.STIM, b"amplitude 20 uA, 100 pulses", 5000)
    counts = {"garbage": 0, "bad_header": 0, "tag_mismatch": 0}
    for bit in range(len(victim) * 8):
        damaged = bytearray(victim)
        damaged[bit // 8] ^= 1 << (bit % 8)
        before = host.rejected
        assert host.receive(bytes(damaged)) == [], bit
        reason = "garbage" if bit < 16 else "bad_header" if bit < HEADER_BYTES * 8 else "tag_mismatch"
        assert host.rejected - before == {reason: 1}, (bit, host.rejected - before)
        counts[reason] += 1
        (follower,) = host.receive(implant.send(StreamType.STIM, b"stop", 5100 + bit))  # the session goes on
        assert follower.payload == b"stop"
    body_bits = (len(victim) - HEADER_BYTES) * 8
    assert counts == {"garbage": 16, "bad_header": (HEADER_BYTES - 2) * 8, "tag_mismatch": body_bits}
    (intact,) = host.receive(victim)  # the intact frame still opens (late, inside the window), once
    assert intact.payload.startswith(b"amplitude") and host.receive(victim) == []


def test_back_to_back_damaged_headers_are_counted_each():
    implant, host = toy_pair()
    frames = [bytearray(implant.send(StreamType.FEATURES, bytes(40), index)) for index in range(5)]
    for frame in frames:
        frame[9] ^= 0x01
    assert host.receive(b"".join(frames)) == []
    assert host.rejected == {"bad_header": 5}


def test_a_replayed_frame_is_refused_and_a_late_one_opens_once():
    implant, host = session_pair(window_size=32)
    frames = [implant.send(StreamType.FEATURES, bytes([index]), index) for index in range(100)]
    late = frames.pop(70)
    for frame in frames:
        host.receive(frame)
    assert [item.sequence for item in host.receive(late)] == [70]  # late, inside the window
    assert host.receive(late) == [] and host.receive(frames[90]) == []
    assert host.receive(frames[10]) == []  # behind the window
    rejected = host.stats()["rejected"]
    assert rejected["replayed"] == 2 and rejected["too_old"] == 1


def test_a_sealed_frame_without_a_session_is_no_session():
    implant, _ = toy_pair()
    host = LinkEndpoint(None, name="host")
    assert host.receive(implant.send(StreamType.ACK, b"ack", 0)) == []
    assert host.stats()["rejected"]["no_session"] == 1
    with pytest.raises(InvalidInputError, match="host: cannot send a sealed CONTROL frame before a session"):
        host.send(StreamType.CONTROL, b"x", 0)


def test_a_frame_under_another_key_and_a_short_body_are_tag_mismatch():
    implant, host = toy_pair()
    host.sealer = ToySealer(bytes(32))
    assert host.receive(implant.send(StreamType.RAW, b"raw", 0)) == []
    short = build_header(StreamType.RAW, 1, 0, 3) + b"abc"
    assert host.receive(short) == []
    assert host.stats()["rejected"]["tag_mismatch"] == 2


def test_garbage_truncation_and_downgrade_are_counted_and_the_next_frame_goes_on():
    implant, host = toy_pair()
    one, two, three = (implant.send(StreamType.FEATURES, bytes(50), index) for index in range(3))
    downgraded = build_header(StreamType.FEATURES, 9, 0, 66, version=0) + bytes(66)
    stream = b"\x00junk" + one[:40] + downgraded + two + b"\xa5\x4e" * 3 + three
    delivered = host.receive(stream)
    assert [item.sample_clock for item in delivered] == [1, 2]
    assert {reason: count for reason, count in host.rejected.items() if count} == {
        "garbage": 1, "truncated": 1, "unknown_version": 1, "bad_header": 3,  # one a bare sync word
    }
    host.receive(one[:30])
    host.finish()
    assert host.stats()["rejected"]["truncated"] == 2


def test_send_checks_its_inputs():
    implant, _ = toy_pair()
    with pytest.raises(InvalidInputError, match="stream must be a StreamType, got 99"):
        implant.send(99, b"", 0)
    with pytest.raises(InvalidInputError, match="payload must be bytes"):
        implant.send(StreamType.RAW, "text", 0)
    with pytest.raises(InvalidInputError, match="payload of 65521 bytes is above the 65520-byte maximum"):
        implant.send(StreamType.RAW, bytes(MAX_PAYLOAD_BYTES + 1), 0)
    assert len(implant.send(StreamType.RAW, bytes(MAX_PAYLOAD_BYTES), 0)) == HEADER_BYTES + MAX_BODY_BYTES
    with pytest.raises(InvalidInputError, match="sample_clock must be an integer"):
        implant.send(StreamType.RAW, b"", 1.5)
    with pytest.raises(InvalidInputError, match="sealer must have seal"):
        LinkEndpoint(object(), name="x")


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_IMPLANT, _HOST = toy_pair()
_GENUINE = [_IMPLANT.send(StreamType.FEATURES, bytes([index]) * 20, index) for index in range(4)]


@PROPERTY
@given(st.lists(st.one_of(st.binary(max_size=80), st.sampled_from(_GENUINE)), max_size=8), st.integers(1, 64))
def test_any_bytes_never_raise_and_every_refusal_has_a_reason(pieces, chunk):
    host = LinkEndpoint(ToySealer(), name="host")
    data = b"".join(pieces)
    delivered = []
    for start in range(0, len(data), chunk):
        delivered += host.receive(data[start : start + chunk])
    host.finish()
    genuine_payloads = {bytes([index]) * 20 for index in range(4)}
    assert all(item.payload in genuine_payloads for item in delivered)
    assert len({item.sequence for item in delivered}) == len(delivered)  # each opens once
    assert set(host.rejected) <= set(REJECT_REASONS)


# -- through the lossy radio, with the real session -------------------------------------------------


def test_bursty_loss_reordering_and_duplicates_are_survived():
    implant, host = session_pair()
    settings = ChannelSettings.for_loss(
        0.1, 4.0, reorder_probability=0.05, duplicate_probability=0.05, bit_error_rate=2e-6, jitter_ms=4.0
    )
    radio = LinkChannel(settings, seed=12, name="uplink")
    delivered: list[Delivered] = []
    n = 3000
    for index in range(n):
        now_s = index * 0.02
        radio.send(implant.send(StreamType.FEATURES, index.to_bytes(4, "little") * 100, index * 391), now_s)
        for packet in radio.receive(now_s):
            delivered += host.receive(packet)
    for packet in radio.drain():
        delivered += host.receive(packet)
    indices = [int.from_bytes(item.payload[:4], "little") for item in delivered]
    assert len(set(indices)) == len(indices)  # nothing twice
    assert all(item.payload == item.payload[:4] * 100 for item in delivered)  # nothing damaged
    assert sorted(indices) != indices  # reordered frames opened too
    stats, channel = host.stats(), radio.stats()
    # each packet the radio delivered is accounted for once: opened, or refused with its reason
    assert channel["delivered"] == len(delivered) + stats["rejected_total"]
    assert 0 < stats["rejected"]["replayed"] <= channel["duplicated"]  # a duplicate is a replay
    assert stats["rejected"]["tag_mismatch"] + stats["rejected"]["bad_header"] > 0  # bit errors
    assert set(stats["rejected"]) - {reason for reason, count in stats["rejected"].items() if count} >= {
        "no_session", "unknown_version", "unknown_stream", "oversized",
    }
    loss_sd = math.sqrt(0.1 * 0.9 * (1 + 0.722) / (1 - 0.722) / n)  # Gilbert's chain, rho = 1 - p_gb - p_bg
    assert abs(len(delivered) / n - 0.9) < 5 * loss_sd + 0.01  # + the frames bit errors spoil


def test_stats_and_repr():
    implant, host = toy_pair()
    host.receive(implant.send(StreamType.FEATURES, b"abc", 0) + b"x")
    stats = host.stats()
    assert stats["delivered"] == 1 and stats["delivered_by_stream"] == {"features": 1}
    assert stats["bytes_received"] == HEADER_BYTES + 3 + 16 + 1 and stats["payload_bytes_delivered"] == 3
    assert set(stats["rejected"]) == set(REJECT_REASONS)
    assert implant.stats()["sent_by_stream"] == {"features": 1}
    assert stats["rejected"]["garbage"] == 1 and stats["rejected_total"] == 1
    assert repr(host) == "LinkEndpoint('host', ToySealer, sent=0, delivered=1, rejected=1)"
