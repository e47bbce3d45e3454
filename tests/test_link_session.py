"""The sealed session (neurolace.link.session) and the replay window (neurolace.link.replay).

Known answers: what the session seals opens under noiseprotocol's transport
and the other way round; every flipped bit is refused; a frame opens once,
late frames inside the window open, frames behind it do not; keys move to
the next epoch by frame count and by time and frames of the old epoch still
open across the boundary; unpaired and revoked hosts are refused.
"""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolace.core.errors import InvalidInputError
from neurolace.link.errors import AuthenticationError, HandshakeError, LinkError, ReplayError
from neurolace.link.keys import Keystore, ephemeral_pairing
from neurolace.link.noise import protocol_name
from neurolace.link.replay import ReplayWindow
from neurolace.link.session import (
    LINK_PROLOGUE,
    SEAL_OVERHEAD_BYTES,
    SecureSession,
    initiate,
    respond,
)

from noise_reference import reference_party

HEADER = bytes(range(28))


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _sessions(**options):
    implant_store, host_store = ephemeral_pairing()
    message1, pending = initiate(host_store, "implant", **options)
    message2, implant = respond(implant_store, message1, **options)
    return pending.finish(message2), implant


def _header(sequence: int) -> bytes:
    return HEADER[:4] + sequence.to_bytes(8, "little") + HEADER[12:]


def _send(session: SecureSession, plaintext: bytes) -> tuple[int, bytes, bytes]:
    sequence = session.next_sequence()
    header = _header(sequence)
    return sequence, header, session.seal(sequence, header, plaintext)


# -- the replay window ------------------------------------------------------------------------------


def test_window_refuses_replays_inside_and_old_numbers_outside():
    window = ReplayWindow(size=8)
    for sequence in (0, 1, 2, 10):
        window.check(sequence)
        window.accept(sequence)
    with pytest.raises(ReplayError, match="already accepted") as raised:
        window.check(10)
    assert raised.value.reason == "replayed"
    with pytest.raises(ReplayError, match="behind the replay window") as raised:
        window.check(2)  # 10 - 2 = 8: just outside a window of 8
    assert raised.value.reason == "too_old"
    window.check(3)  # inside, never seen: a late frame
    window.accept(3)
    with pytest.raises(ReplayError, match="already accepted"):
        window.accept(3)
    assert window.highest == 10 and window.lowest == 3


def test_window_jump_beyond_its_size_forgets_everything_behind():
    window = ReplayWindow(size=4)
    window.accept(5)
    window.accept(1000)
    for sequence in (5, 996):
        with pytest.raises(ReplayError, match="behind"):
            window.check(sequence)
    window.accept(999)
    window.accept(997)
    with pytest.raises(ReplayError, match="already"):
        window.check(999)


def test_window_matches_a_set_of_accepted_numbers():
    rng = random.Random(7)
    window, accepted, size = ReplayWindow(size=64), set(), 64
    for sequence in (rng.randrange(0, 600) for _ in range(3000)):
        highest = max(accepted, default=None)
        if highest is not None and sequence <= highest - size:
            expected = "too_old"
        elif sequence in accepted:
            expected = "replayed"
        else:
            expected = None
        try:
            window.accept(sequence)
            got = None
            accepted.add(sequence)
        except ReplayError as exc:
            got = exc.reason
        assert got == expected, sequence


def test_window_size_is_checked():
    with pytest.raises(InvalidInputError, match="size"):
        ReplayWindow(size=0)


# -- sealing and opening ----------------------------------------------------------------------------


def test_session_seals_and_opens_both_ways():
    host, implant = _sessions()
    assert host.handshake_hash == implant.handshake_hash
    assert host.peer_public != implant.peer_public
    sequence, header, body = _send(host, b"stim command")
    assert len(body) == len(b"stim command") + SEAL_OVERHEAD_BYTES
    assert implant.open(sequence, header, body) == b"stim command"
    sequence, header, body = _send(implant, b"features")
    assert host.open(sequence, header, body) == b"features"
    assert host.report()["sealed"] == 1 and host.report()["opened"] == 1
    assert host.initiator and not implant.initiator


def _noise_pair(ours_initiator: bool):
    """Our IK side and noiseprotocol's, handshake done; return (our SecureSession, their connection)."""
    implant_store, host_store = ephemeral_pairing()
    their_store = implant_store if ours_initiator else host_store
    theirs = reference_party(protocol_name("IK"), initiator=not ours_initiator, prologue=LINK_PROLOGUE,
                             static=their_store.identity.private_key,
                             remote_static=None if ours_initiator else implant_store.public_key)
    if ours_initiator:
        message1, pending = initiate(host_store, implant_store.public_key)
        assert len(bytes(theirs.read_message(message1))) == 8  # the host's timestamp, as a Noise payload
        session = pending.finish(bytes(theirs.write_message()))
    else:  # their host sends the timestamp payload the implant requires
        message2, session = respond(implant_store, bytes(theirs.write_message(time.time_ns().to_bytes(8, "big"))))
        theirs.read_message(message2)
    assert session.handshake_hash == bytes(theirs.get_handshake_hash())
    return session, theirs


@pytest.mark.parametrize("ours_initiator", [True, False], ids=["ours-host", "ours-implant"])
def test_session_transport_matches_noiseprotocol_with_empty_associated_data(ours_initiator):
    session, theirs = _noise_pair(ours_initiator)
    for nonce in range(4):
        plaintext = b"frame %d" % nonce
        assert session.next_sequence() == nonce
        assert bytes(theirs.decrypt(session.seal(nonce, b"", plaintext))) == plaintext
        assert session.open(nonce, b"", bytes(theirs.encrypt(plaintext))) == plaintext


def test_a_flipped_bit_in_body_or_header_is_refused_and_counted():
    host, implant = _sessions()
    sequence, header, body = _send(host, b"0123456789")
    for bit in range(len(body) * 8):
        tampered = bytearray(body)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(AuthenticationError) as raised:
            implant.open(sequence, header, bytes(tampered))
        assert raised.value.reason == "tag_mismatch"
    for bit in range(len(header) * 8):
        tampered = bytearray(header)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(AuthenticationError, match="does not verify"):
            implant.open(sequence, bytes(tampered), body)
    with pytest.raises(AuthenticationError):
        implant.open(sequence + 1, header, body)  # the nonce is authenticated too
    assert implant.rejected["tag_mismatch"] == (len(body) + len(header)) * 8 + 1
    assert implant.open(sequence, header, body) == b"0123456789"  # forgeries did not move the window


def test_replays_inside_and_outside_the_window_are_refused_and_late_frames_open_once():
    host, implant = _sessions(window_size=64, rekey_frames=1024)
    frames = [_send(host, b"frame %d" % index) for index in range(200)]
    order = list(range(200))
    rng = random.Random(3)
    for start in range(0, 200, 20):  # reordered within blocks of 20: late, never too late
        block = order[start : start + 20]
        rng.shuffle(block)
        order[start : start + 20] = block
    for index in order:
        assert implant.open(*frames[index]) == b"frame %d" % index
    with pytest.raises(ReplayError) as raised:
        implant.open(*frames[199])
    assert raised.value.reason == "replayed"
    with pytest.raises(ReplayError) as raised:
        implant.open(*frames[100])
    assert raised.value.reason == "too_old"
    assert implant.report()["rejected"]["replayed"] == 1 and implant.report()["rejected"]["too_old"] == 1
    assert implant.opened == 200


def test_wrong_keys_are_refused():
    host, _ = _sessions()
    _, stranger = _sessions()
    sequence, header, body = _send(host, b"secret")
    with pytest.raises(AuthenticationError, match="does not verify"):
        stranger.open(sequence, header, body)


def test_seal_refuses_to_reuse_a_nonce():
    host, _ = _sessions()
    host.seal(5, HEADER, b"a")
    for nonce in (5, 4):
        with pytest.raises(InvalidInputError, match="never used twice"):
            host.seal(nonce, HEADER, b"b")
    with pytest.raises(InvalidInputError, match="nonce must be"):
        host.seal(2**64 - 1, HEADER, b"b")
    assert host.next_sequence() == 6


# -- rekeying ---------------------------------------------------------------------------------------


def test_rekey_by_frame_count_opens_across_the_boundary_with_late_old_frames():
    host, implant = _sessions(window_size=32, rekey_frames=64)
    frames = [_send(host, b"%d" % index) for index in range(230)]
    assert host.send_epoch == 3 and host.rekeys_sent == 3
    # frames 60..63 (epoch 0) arrive after 64..69 (epoch 1): still inside the window, old key kept
    order = list(range(60)) + list(range(64, 70)) + list(range(60, 64)) + list(range(70, 230))
    for index in order:
        assert implant.open(*frames[index]) == b"%d" % index
    assert implant.rekeys_received == 3 and implant.receive_epoch == 3
    assert implant.receive_epochs_held == (3,)  # epoch 2's key is gone: 229 - 31 >= 192, epoch 3's first


def test_old_epoch_key_is_held_only_while_the_window_can_reach_it():
    host, implant = _sessions(window_size=32, rekey_frames=64)
    frames = [_send(host, b"x") for _ in range(128)]
    for index in range(64):
        implant.open(*frames[index])
    implant.open(*frames[64])
    assert implant.receive_epochs_held == (0, 1)
    implant.open(*frames[64 + 31])  # window now 64 .. 95: no epoch 0 frame can pass it
    assert implant.receive_epochs_held == (1,)
    with pytest.raises(ReplayError, match="behind"):
        implant.open(*frames[63])


def test_rekey_by_time_jumps_to_the_next_epoch_and_late_frames_still_open():
    host_clock, implant_clock = FakeClock(), FakeClock()
    implant_store, host_store = ephemeral_pairing()
    message1, pending = initiate(host_store, "implant", rekey_s=600.0, clock=host_clock)
    message2, implant = respond(implant_store, message1, rekey_s=600.0, clock=implant_clock)
    host = pending.finish(message2)
    early = [_send(host, b"early %d" % index) for index in range(10)]
    host_clock.now_s += 600.0
    assert host.next_sequence() == host.rekey_frames  # the next epoch's first sequence
    late = [_send(host, b"late %d" % index) for index in range(5)]
    assert host.send_epoch == 1 and host.rekeys_sent == 1
    assert host.next_sequence() == host.rekey_frames + 5  # no second jump: the new epoch is fresh
    for frame in early[:7] + late + early[7:]:  # three old-epoch frames arrive after the new epoch
        implant.open(*frame)
    assert implant.rekeys_received == 1 and implant.opened == 15
    with pytest.raises(ReplayError) as raised:
        implant.open(*early[8])  # the old epoch keeps its own window: a replay there is still caught
    assert raised.value.reason == "replayed"
    assert implant.receive_epochs_held == (0, 1)
    newer = [_send(host, b"newer") for _ in range(implant.window_size)]
    for frame in newer:
        implant.open(*frame)
    assert implant.receive_epochs_held == (1,)  # a window's width into the new epoch: old key erased
    with pytest.raises(ReplayError) as raised:
        implant.open(*early[0])
    assert raised.value.reason == "too_old"
    # both directions rekey independently: the implant's own sends stay in epoch 0
    assert implant.send_epoch == 0 and implant.next_sequence() == 0


def test_a_forged_frame_far_ahead_neither_rekeys_nor_moves_the_window():
    host, implant = _sessions(window_size=32, rekey_frames=64, max_epoch_skip=4)
    sequence, header, body = _send(host, b"genuine")
    for forged in (64 * 3, 64 * 100, 2**63):
        with pytest.raises(AuthenticationError):
            implant.open(forged, _header(forged), body)
    assert implant.receive_epoch == 0 and implant.rekeys_received == 0
    assert implant.open(sequence, header, body) == b"genuine"
    with pytest.raises(InvalidInputError, match="epochs ahead"):
        host.seal(64 * 10, HEADER, b"too far")


def test_session_options_are_checked():
    with pytest.raises(InvalidInputError, match="rekey_frames"):
        _sessions(window_size=128, rekey_frames=64)
    implant_store, host_store = ephemeral_pairing()
    with pytest.raises(InvalidInputError, match="unknown session options"):
        initiate(host_store, "implant", rekey_every=5)


# -- handshake drivers: pairing is enforced ---------------------------------------------------------


def test_an_unpaired_host_is_refused():
    implant_store, _ = ephemeral_pairing()
    stranger = Keystore("stranger")
    message1, _ = initiate(stranger.identity, implant_store.public_key)
    with pytest.raises(HandshakeError, match="unpaired") as raised:
        respond(implant_store, message1)
    assert raised.value.reason == "unpaired"


def test_a_revoked_host_is_refused_and_the_host_refuses_a_revoked_implant():
    implant_store, host_store = ephemeral_pairing()
    message1, _ = initiate(host_store, "implant")
    implant_store.revoke("host")
    with pytest.raises(HandshakeError) as raised:
        respond(implant_store, message1)
    assert raised.value.reason == "revoked"
    host_store.revoke(implant_store.public_key)
    with pytest.raises(HandshakeError) as raised:
        initiate(host_store, implant_store.public_key)
    assert raised.value.reason == "revoked"


def test_a_handshake_for_another_implant_and_a_bad_reply_are_refused():
    implant_store, host_store = ephemeral_pairing()
    other_implant, _ = ephemeral_pairing()
    message1, pending = initiate(host_store, "implant")
    with pytest.raises(HandshakeError) as raised:
        respond(other_implant, message1)
    assert raised.value.reason == "bad_handshake"
    message2, _ = respond(implant_store, message1)
    tampered = bytes([message2[0] ^ 1]) + message2[1:]
    with pytest.raises(HandshakeError, match="bad_handshake|refused|low-order"):
        pending.finish(tampered)
    with pytest.raises(HandshakeError, match="aborted"):
        pending.finish(message2)


def test_each_handshake_gives_fresh_keys():
    implant_store, host_store = ephemeral_pairing()
    hashes = set()
    for _ in range(3):
        message1, pending = initiate(host_store, "implant")
        message2, implant = respond(implant_store, message1)
        hashes.add(pending.finish(message2).handshake_hash)
    assert len(hashes) == 3


# -- property tests ---------------------------------------------------------------------------------

_IMPLANT_STORE, _HOST_STORE = ephemeral_pairing()


@settings(max_examples=200, deadline=None)
@given(message=st.binary(max_size=200))
def test_arbitrary_bytes_as_message_1_give_only_link_errors(message):
    try:
        respond(_IMPLANT_STORE, message)
    except LinkError as exc:
        assert isinstance(exc, HandshakeError)


@settings(max_examples=200, deadline=None)
@given(
    nonce=st.one_of(st.integers(0, 200), st.integers(0, 2**64 + 5), st.integers(-5, -1)),
    header=st.binary(max_size=40),
    body=st.binary(max_size=80),
)
def test_arbitrary_sealed_bodies_give_only_link_errors(nonce, header, body):
    host, implant = _SESSIONS
    try:
        implant.open(nonce, header, body)
    except LinkError:
        pass
    else:  # pragma: no cover - a forgery that opened would be a break of ChaCha20-Poly1305
        raise AssertionError("an arbitrary body opened")


_SESSIONS = _sessions(window_size=32, rekey_frames=64, max_epoch_skip=8)


def test_handshake_message_sizes_are_fixed():
    # the endpoint carries message 1 and 2 as HANDSHAKE frame bodies: sizes it can rely on
    implant_store, host_store = ephemeral_pairing()
    message1, pending = initiate(host_store, "implant")
    message2, _ = respond(implant_store, message1)
    assert (len(message1), len(message2)) == (96 + 8, 48)  # message 1 carries the 8-byte timestamp
    assert isinstance(pending.finish(message2), SecureSession)


def test_a_replayed_handshake_message_1_is_refused_and_the_live_session_goes_on():
    """A recorded message 1 played again must not make the implant answer (and drop its working session)."""
    implant_store, host_store = ephemeral_pairing()
    message1, pending = initiate(host_store, "implant")
    message2, implant_session = respond(implant_store, message1)
    host_session = pending.finish(message2)
    with pytest.raises(HandshakeError) as refused:
        respond(implant_store, message1)
    assert refused.value.reason == "replayed"
    # the live session still carries frames, and a fresh handshake from the host is answered
    header = b"h" * 28
    assert implant_session.open(0, header, host_session.seal(0, header, b"still up")) == b"still up"
    newer, _ = initiate(host_store, "implant")
    assert len(respond(implant_store, newer)[0]) == 48
