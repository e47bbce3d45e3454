"""Keystores and pairing (neurolace.link.keys): the file, revocation, and the man in the middle."""

from __future__ import annotations

import json
import os
import stat

import pytest

from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.link.errors import HandshakeError
from neurolace.link.keys import (
    PAIRING_PROLOGUE,
    DeviceIdentity,
    Keystore,
    comparison_code,
    ephemeral_pairing,
    pair,
)
from neurolace.link.noise import HandshakeState
from neurolace.link.session import initiate, respond


def test_keystore_round_trips_through_a_0600_file(tmp_path):
    implant, host = ephemeral_pairing()
    implant.revoke("host")
    spare = DeviceIdentity.generate().public_key
    implant.add_peer("spare host", spare, paired_at="2026-01-01T00:00:00+00:00")
    path = implant.save(tmp_path / "keys" / "implant.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.joinpath("keys").iterdir()] == ["implant.json"]  # no temporary left
    loaded = Keystore.load(path)
    assert loaded.name == "implant" and loaded.public_key == implant.public_key
    assert loaded.identity.private_bytes() == implant.identity.private_bytes()
    assert loaded.peers == implant.peers
    assert loaded.status(host.public_key) == "revoked"
    assert "private" not in repr(loaded.identity)
    assert implant.identity.private_bytes().hex() not in repr(loaded)


def test_a_loaded_store_saves_its_changes(tmp_path):
    implant, host = ephemeral_pairing()
    path = implant.save(tmp_path / "implant.json")
    Keystore.load(path).revoke(host.public_key)
    assert Keystore.load(path).status(host.public_key) == "revoked"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _corruptions(document: dict):
    yield "not JSON", b"{not json"
    yield "not JSON", b"\xff\xfe"
    yield "'format'", json.dumps({**document, "format": "something else"}).encode()
    yield "version", json.dumps({**document, "version": 99}).encode()
    yield "'private_key'", json.dumps({**document, "private_key": "!!"}).encode()
    yield "'private_key'", json.dumps({**document, "private_key": "AAAA"}).encode()
    other_key = document["peers"][0]["public_key"]
    yield "does not belong", json.dumps({**document, "public_key": other_key}).encode()
    yield "'peers'", json.dumps({**document, "peers": {}}).encode()
    peer = document["peers"][0]
    yield "paired_at", json.dumps({**document, "peers": [{**peer, "paired_at": "yesterday"}]}).encode()
    yield "'revoked'", json.dumps({**document, "peers": [{**peer, "revoked": "no"}]}).encode()
    yield "name", json.dumps({**document, "peers": [{**peer, "name": ""}]}).encode()
    yield "share", json.dumps({**document, "peers": [peer, {**peer, "name": "again"}]}).encode()
    yield "name", json.dumps({**document, "name": 5}).encode()


def test_a_corrupt_keystore_is_refused_naming_the_file(tmp_path):
    implant, _ = ephemeral_pairing()
    document = implant.to_json()
    path = tmp_path / "implant.json"
    for what, data in _corruptions(document):
        path.write_bytes(data)
        with pytest.raises(FormatError, match=f"keystore '{path}'.*{what}"):
            Keystore.load(path)
    with pytest.raises(FileNotFoundError):
        Keystore.load(tmp_path / "missing.json")


def test_revoke_and_peer_checks():
    implant, host = ephemeral_pairing()
    with pytest.raises(InvalidInputError, match="no paired peer 'nobody'.*'host'"):
        implant.revoke("nobody")
    with pytest.raises(InvalidInputError, match="its own key"):
        implant.add_peer("me", implant.public_key)
    with pytest.raises(InvalidInputError, match="32 bytes"):
        implant.add_peer("short", b"\x01" * 31)
    with pytest.raises(InvalidInputError, match="save needs a path"):
        implant.save()
    # re-pairing the same key under a new name replaces the record, and is not revoked
    implant.revoke("host")
    implant.add_peer("host again", host.public_key)
    assert [peer.name for peer in implant.peers] == ["host again"]
    assert implant.status(host.public_key) == "paired"


def test_pairing_codes_match_and_each_side_stores_the_other():
    implant, host = Keystore("implant 7"), Keystore("tablet")
    shown = []
    def confirm(implant_code, host_code):
        shown.append((implant_code, host_code))
        return True

    result = pair(implant, host, confirm)
    assert result.confirmed and shown == [(result.implant_code, result.host_code)]
    assert result.implant_code == result.host_code
    assert len(result.implant_code) == 6 and result.implant_code.isdigit()
    assert implant.find("tablet").public_key == host.public_key
    assert host.find("implant 7").public_key == implant.public_key
    # and the paired pair can hold a session
    message1, pending = initiate(host, "implant 7")
    message2, session = respond(implant, message1)
    assert pending.finish(message2).handshake_hash == session.handshake_hash


def test_a_declined_pairing_stores_nothing():
    implant, host = Keystore("implant"), Keystore("host")
    result = pair(implant, host, lambda implant_code, host_code: False)
    assert not result.confirmed and implant.peers == () and host.peers == ()


class ManInTheMiddle:
    """Runs its own XX handshake with each side, relaying the payloads (the device names)."""

    def __init__(self) -> None:
        self.identity = DeviceIdentity.generate()
        self.towards_host = HandshakeState("XX", initiator=False, static=self.identity.private_key,
                                           prologue=PAIRING_PROLOGUE)
        self.towards_implant = HandshakeState("XX", initiator=True, static=self.identity.private_key,
                                              prologue=PAIRING_PROLOGUE)

    def __call__(self, message: bytes, to_implant: bool) -> bytes:
        if to_implant:
            payload = self.towards_host.read_message(message)
            return self.towards_implant.write_message(payload)
        payload = self.towards_implant.read_message(message)
        return self.towards_host.write_message(payload)


def test_a_man_in_the_middle_gives_different_codes_and_is_not_paired():
    implant, host = Keystore("implant"), Keystore("host")
    mitm = ManInTheMiddle()
    result = pair(implant, host, lambda implant_code, host_code: implant_code == host_code, relay=mitm)
    assert mitm.towards_host.finished and mitm.towards_implant.finished  # the attack itself went through
    assert result.implant_code == comparison_code(mitm.towards_implant.handshake_hash)
    assert result.host_code == comparison_code(mitm.towards_host.handshake_hash)
    assert result.implant_code != result.host_code
    assert not result.confirmed and implant.peers == () and host.peers == ()


def test_without_the_comparison_the_man_in_the_middle_would_be_paired():
    # why the user's confirmation matters: a blind "yes" stores the attacker's key on both sides
    implant, host = Keystore("implant"), Keystore("host")
    mitm = ManInTheMiddle()
    result = pair(implant, host, lambda implant_code, host_code: True, relay=mitm)
    assert result.confirmed and implant.find("host").public_key == mitm.identity.public_key


def test_a_tampered_pairing_message_is_refused():
    implant, host = Keystore("implant"), Keystore("host")

    def flip_message_2(message: bytes, to_implant: bool) -> bytes:
        return message if to_implant else message[:-1] + bytes([message[-1] ^ 1])

    with pytest.raises(HandshakeError) as raised:
        pair(implant, host, lambda implant_code, host_code: True, relay=flip_message_2)
    assert raised.value.reason == "bad_handshake" and implant.peers == () and host.peers == ()


def test_comparison_code_known_answer():
    assert comparison_code(bytes(32)) == "000000"
    assert comparison_code((10**6 + 42).to_bytes(8, "big") + bytes(24)) == "000042"
