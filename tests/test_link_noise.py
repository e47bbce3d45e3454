"""The Noise handshake (neurolace.link.noise) against an independent implementation, and on bad input.

The reference is the ``noiseprotocol`` package (a separate implementation of
revision 34): our initiator with its responder and the other way round, for
IK and XX over SHA256 and BLAKE2s, with equal handshake hashes, byte-equal
messages under fixed keys, and transport ciphertexts that open both ways.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolace.core.errors import InvalidInputError
from neurolace.link.errors import AuthenticationError, HandshakeError, LinkError
from neurolace.link.noise import (
    MAX_MESSAGE_BYTES,
    CipherState,
    HandshakeState,
    SymmetricState,
    chachapoly_nonce,
    protocol_name,
    public_key_bytes,
    rekey,
)

from noise_reference import reference_party

PATTERNS = ("IK", "XX")
HASHES = ("SHA256", "BLAKE2s")
PROLOGUE = b"neurolace test prologue"


def _key(seed: int) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _theirs(pattern, hash_name, *, initiator, static, remote_static=None, ephemeral=None):
    return reference_party(protocol_name(pattern, hash_name), initiator=initiator, static=static,
                           prologue=PROLOGUE, remote_static=remote_static, ephemeral=ephemeral)


def _run(ours: HandshakeState, theirs) -> list[tuple[bytes, bytes]]:
    """Drive both to the end; return (message, payload received) for each message."""
    log = []
    index = 0
    while not ours.finished:
        payload = f"payload {index}".encode()
        if ours.my_turn:
            message = ours.write_message(payload)
            received = bytes(theirs.read_message(message))
        else:
            message = bytes(theirs.write_message(payload))
            received = ours.read_message(message)
        assert received == payload
        log.append((message, received))
        index += 1
    assert theirs.handshake_finished
    return log


def _pair(pattern, hash_name, ours_initiator, *, fixed_ephemerals=False):
    our_static, their_static = _key(1), _key(2)
    our_ephemeral, their_ephemeral = (_key(3), _key(4)) if fixed_ephemerals else (None, None)
    # IK: the initiator knows the responder's static key in advance
    ours = HandshakeState(
        pattern, initiator=ours_initiator, static=our_static, prologue=PROLOGUE, hash_name=hash_name,
        remote_static=public_key_bytes(their_static) if (pattern == "IK" and ours_initiator) else None,
        ephemeral=our_ephemeral,
    )
    theirs = _theirs(
        pattern, hash_name, initiator=not ours_initiator, static=their_static, ephemeral=their_ephemeral,
        remote_static=public_key_bytes(our_static) if (pattern == "IK" and not ours_initiator) else None,
    )
    return ours, theirs


@pytest.mark.parametrize("ours_initiator", [True, False], ids=["ours-initiator", "theirs-initiator"])
@pytest.mark.parametrize("hash_name", HASHES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_handshake_interoperates_with_noiseprotocol(pattern, hash_name, ours_initiator):
    ours, theirs = _pair(pattern, hash_name, ours_initiator)
    log = _run(ours, theirs)
    assert len(log) == {"IK": 2, "XX": 3}[pattern]
    assert ours.handshake_hash == bytes(theirs.get_handshake_hash())
    assert ours.remote_static == public_key_bytes(_key(2))
    send, receive = ours.transport_keys()
    our_send, our_receive = CipherState(send), CipherState(receive)
    # their transport: implicit nonces from 0, empty AD; ours: explicit nonce n, AD b""
    for nonce in range(3):
        plaintext = f"frame {nonce}".encode() * (nonce + 1)
        assert bytes(theirs.decrypt(our_send.encrypt(nonce, b"", plaintext))) == plaintext
        theirs_sealed = bytes(theirs.encrypt(plaintext))
        assert our_receive.decrypt(nonce, b"", theirs_sealed) == plaintext
        assert our_receive.encrypt(nonce, b"", plaintext) == theirs_sealed  # the same bytes


@pytest.mark.filterwarnings("ignore:One of ephemeral keypairs is already set")
@pytest.mark.parametrize("hash_name", HASHES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_messages_are_byte_equal_to_noiseprotocol_under_fixed_keys(pattern, hash_name):
    ours, theirs = _pair(pattern, hash_name, True, fixed_ephemerals=True)
    log = _run(ours, theirs)
    # the same keys on the same sides in a second run give the same bytes from the reference alone
    reference_initiator = _theirs(pattern, hash_name, initiator=True, static=_key(1), ephemeral=_key(3),
                                  remote_static=public_key_bytes(_key(2)) if pattern == "IK" else None)
    reference_responder = _theirs(pattern, hash_name, initiator=False, static=_key(2), ephemeral=_key(4))
    for index, (message, _) in enumerate(log):
        writer, reader = (reference_initiator, reference_responder) if index % 2 == 0 else (
            reference_responder, reference_initiator)
        reference = bytes(writer.write_message(f"payload {index}".encode()))
        reader.read_message(reference)
        assert message == reference
    expected_lengths = {"IK": [96 + 9, 48 + 9], "XX": [32 + 9, 96 + 9, 64 + 9]}[pattern]
    assert [len(message) for message, _ in log] == expected_lengths


def test_rekey_and_nonce_encoding_match_the_reference():
    ours, theirs = _pair("XX", "SHA256", False)
    _run(ours, theirs)
    _, receive = ours.transport_keys()
    for nonce in range(3):
        theirs.encrypt(b"x")
    theirs.rekey_outbound_cipher()  # their CipherState keeps its nonce (3) across Rekey()
    sealed = bytes(theirs.encrypt(b"after rekey"))
    assert CipherState(rekey(receive)).decrypt(3, b"", sealed) == b"after rekey"
    with pytest.raises(AuthenticationError):
        CipherState(receive).decrypt(3, b"", sealed)
    assert chachapoly_nonce(1) == bytes(4) + b"\x01" + bytes(7)


def test_protocol_names_and_the_initial_hash():
    assert protocol_name("IK") == b"Noise_IK_25519_ChaChaPoly_SHA256"
    # exactly 32 bytes: used as it is, not hashed
    assert SymmetricState(protocol_name("IK")).handshake_hash == protocol_name("IK")
    assert len(SymmetricState(protocol_name("IK", "BLAKE2s"), "BLAKE2s").handshake_hash) == 32
    with pytest.raises(InvalidInputError, match="pattern"):
        protocol_name("NN")


def _ik(responder_key=None):
    """An IK initiator to responder_key's owner (default: _key(2)) and a responder holding _key(2)."""
    initiator = HandshakeState("IK", initiator=True, static=_key(1), prologue=PROLOGUE,
                               remote_static=public_key_bytes(responder_key or _key(2)))
    responder = HandshakeState("IK", initiator=False, static=_key(2), prologue=PROLOGUE)
    return initiator, responder


def test_a_flipped_bit_anywhere_in_a_handshake_message_is_refused():
    initiator, _ = _ik()
    message1 = initiator.write_message(b"hello")
    for bit in range(len(message1) * 8):
        tampered = bytearray(message1)
        tampered[bit // 8] ^= 1 << (bit % 8)
        _, responder = _ik()
        with pytest.raises(HandshakeError) as raised:
            responder.read_message(bytes(tampered))
        assert raised.value.reason == "bad_handshake"
    initiator, responder = _ik()
    responder.read_message(initiator.write_message())
    message2 = responder.write_message()
    for bit in range(len(message2) * 8):
        tampered = bytearray(message2)
        tampered[bit // 8] ^= 1 << (bit % 8)
        initiator, responder = _ik()
        responder.read_message(initiator.write_message())
        responder.write_message()
        with pytest.raises(HandshakeError, match="refused|low-order"):
            initiator.read_message(bytes(tampered))


def test_truncated_extended_and_oversized_messages_are_refused():
    initiator, _ = _ik()
    message1 = initiator.write_message()
    for bad in (b"", message1[:31], message1[:-1], message1 + b"\x00", bytes(MAX_MESSAGE_BYTES + 1)):
        _, responder = _ik()
        with pytest.raises(HandshakeError) as raised:
            responder.read_message(bad)
        assert raised.value.reason == "bad_handshake"


def test_a_handshake_for_another_responder_key_or_prologue_is_refused():
    initiator, responder = _ik(responder_key=_key(9))
    with pytest.raises(HandshakeError, match="bad_handshake|refused"):
        responder.read_message(initiator.write_message())
    initiator, _ = _ik()
    other = HandshakeState("IK", initiator=False, static=_key(2), prologue=b"another link version")
    with pytest.raises(HandshakeError):
        other.read_message(initiator.write_message())


def test_low_order_ephemeral_is_refused():
    _, responder = _ik()
    with pytest.raises(HandshakeError, match="low-order"):
        responder.read_message(bytes(32) + bytes(64))
    responder = HandshakeState("XX", initiator=False, static=_key(2))
    responder.read_message(bytes(32))  # XX message 1 is the bare ephemeral; the DH comes with message 2
    with pytest.raises(HandshakeError, match="low-order"):
        responder.write_message()


def test_out_of_turn_and_after_failure_are_refused():
    initiator, responder = _ik()
    with pytest.raises(HandshakeError, match="out of turn"):
        responder.write_message()
    with pytest.raises(HandshakeError, match="out of turn"):
        initiator.read_message(bytes(48))
    with pytest.raises(HandshakeError):
        responder.read_message(b"garbage")
    with pytest.raises(HandshakeError, match="aborted"):
        responder.read_message(initiator.write_message())  # a failed handshake stays dead
    with pytest.raises(HandshakeError, match="split before"):
        initiator.split()


def test_a_finished_handshake_takes_no_more_messages():
    initiator, responder = _ik()
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    assert initiator.finished and responder.finished
    with pytest.raises(HandshakeError, match="already finished"):
        initiator.write_message()
    send, receive = initiator.transport_keys()
    assert (receive, send) == responder.transport_keys()


def test_constructor_checks_its_keys():
    with pytest.raises(InvalidInputError, match="requires remote_static"):
        HandshakeState("IK", initiator=True, static=_key(1))
    with pytest.raises(InvalidInputError, match="takes no remote_static"):
        HandshakeState("XX", initiator=True, static=_key(1), remote_static=bytes(32))
    with pytest.raises(InvalidInputError, match="X25519PrivateKey"):
        HandshakeState("XX", initiator=True, static=b"not a key")
    with pytest.raises(InvalidInputError, match="32 bytes"):
        HandshakeState("IK", initiator=True, static=_key(1), remote_static=bytes(31))


@settings(max_examples=150, deadline=None)
@given(message=st.binary(max_size=300), pattern=st.sampled_from(PATTERNS))
def test_arbitrary_bytes_as_message_1_give_only_link_errors(message, pattern):
    responder = HandshakeState(pattern, initiator=False, static=_key(2), prologue=PROLOGUE)
    try:
        responder.read_message(message)
        if pattern == "XX":
            responder.write_message()  # the DH with whatever arrived as the ephemeral
    except LinkError as exc:
        assert isinstance(exc, HandshakeError) and exc.reason == "bad_handshake"


@settings(max_examples=150, deadline=None)
@given(message=st.binary(max_size=300), pattern=st.sampled_from(PATTERNS))
def test_arbitrary_bytes_as_message_2_give_only_handshake_errors(message, pattern):
    initiator = HandshakeState(pattern, initiator=True, static=_key(1), prologue=PROLOGUE,
                               remote_static=public_key_bytes(_key(2)) if pattern == "IK" else None)
    initiator.write_message()
    with pytest.raises(HandshakeError) as raised:
        initiator.read_message(message)
    assert raised.value.reason == "bad_handshake"
