"""Device identities, the keystore of paired peers, and pairing by numeric comparison.

Each device (an implant, a host) has one static X25519 key pair, its
identity. A :class:`Keystore` holds it together with the peers the device was
paired with: a name, the peer's static public key, when it was paired, and
whether it was revoked since. The implant refuses a session handshake from a
host that is not in its keystore ("unpaired") or was revoked ("revoked").

Pairing (:func:`pair`) is a Noise_XX handshake between two devices that know
nothing of each other. Each side turns its own handshake hash into a 6-digit
comparison code (:func:`comparison_code`); both devices show their code and the
user confirms they match, as Bluetooth's numeric comparison does. A man in
the middle has to run a separate handshake with each side, so the two
handshake hashes, and with them the codes, differ (but for a 1 in 10**6
chance). Only after the confirmation does each side store the other's key.

The keystore file is JSON (one device's private key in base64, so it is
written atomically with mode 0600 and must be kept like a password file)::

    {"format": "neurolace-keystore", "version": 1, "name": "implant",
     "private_key": "<base64>", "public_key": "<base64>",
     "peers": [{"name": "host", "public_key": "<base64>",
                "paired_at": "2026-01-01T12:00:00+00:00", "revoked": false}]}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.io.atomic import atomic_output
from neurolace.link.errors import HandshakeError
from neurolace.link.noise import DH_BYTES, HandshakeState, public_key_bytes

__all__ = [
    "KEYSTORE_FORMAT",
    "PAIRING_PROLOGUE",
    "DeviceIdentity",
    "Keystore",
    "PairedPeer",
    "PairingResult",
    "comparison_code",
    "ephemeral_pairing",
    "pair",
]

KEYSTORE_FORMAT = "neurolace-keystore"
_KEYSTORE_VERSION = 1
#: mixed into the pairing handshake hash, so a pairing code cannot be a session's or another protocol's
PAIRING_PROLOGUE = b"neurolace pairing v1"
_MAX_NAME_CHARS = 64
#: peer states :meth:`Keystore.status` returns
PEER_STATES = ("paired", "unpaired", "revoked")


def _check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME_CHARS or not name.isprintable():
        raise InvalidInputError(
            f"{what} must be a printable, non-empty string of at most {_MAX_NAME_CHARS} characters, "
            f"got {name!r}"
        )
    return name


def _check_public_key(public_key: Any, name: str = "public_key") -> bytes:
    if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != DH_BYTES:
        raise InvalidInputError(
            f"{name} must be {DH_BYTES} bytes (a raw X25519 public key), got {public_key!r:.60}"
        )
    return bytes(public_key)


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class DeviceIdentity:
    """A device's static X25519 key pair.

    Parameters
    ----------
    private_key : X25519PrivateKey

    Attributes
    ----------
    private_key : X25519PrivateKey
    public_key : bytes
        The raw 32-byte public key (what a peer stores at pairing).
    """

    def __init__(self, private_key: X25519PrivateKey) -> None:
        if not isinstance(private_key, X25519PrivateKey):
            raise InvalidInputError(
                f"private_key must be an X25519PrivateKey, got {type(private_key).__name__}"
            )
        self.private_key = private_key
        self.public_key = public_key_bytes(private_key)

    @classmethod
    def generate(cls) -> DeviceIdentity:
        """A fresh identity from the operating system's random source."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> DeviceIdentity:
        """The identity of a raw 32-byte X25519 private key."""
        if not isinstance(private_bytes, (bytes, bytearray)) or len(private_bytes) != DH_BYTES:
            raise InvalidInputError(f"private_bytes must be {DH_BYTES} bytes")
        return cls(X25519PrivateKey.from_private_bytes(bytes(private_bytes)))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (for the keystore file only)."""
        return self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def __repr__(self) -> str:  # never the private key
        return f"DeviceIdentity(public_key={self.public_key.hex()[:16]}...)"


@dataclass(frozen=True)
class PairedPeer:
    """A peer in a keystore.

    Attributes
    ----------
    name : str
    public_key : bytes
        The peer's raw 32-byte static public key.
    paired_at : str
        ISO 8601 time of pairing, UTC.
    revoked : bool
        True once the peer was revoked; a revoked peer's handshake is refused.
    """

    name: str
    public_key: bytes
    paired_at: str
    revoked: bool = False

    def __repr__(self) -> str:
        state = "revoked" if self.revoked else "paired"
        return f"PairedPeer({self.name!r}, {self.public_key.hex()[:16]}..., {state} {self.paired_at})"


class Keystore:
    """One device's identity and its paired peers, optionally kept in a JSON file.

    Parameters
    ----------
    name : str
        This device's name (sent to the peer at pairing; the peer stores this device under it).
    identity : DeviceIdentity, optional
        A fresh one is generated if omitted.
    peers : iterable of PairedPeer
    path : str or path-like, optional
        The keystore file. When set, every change (pairing, revocation) is saved to it at once.

    Examples
    --------
    >>> implant, host = ephemeral_pairing()
    >>> implant.status(host.public_key), host.status(implant.public_key)
    ('paired', 'paired')
    >>> _ = implant.revoke("host")
    >>> implant.status(host.public_key)
    'revoked'
    """

    def __init__(
        self,
        name: str,
        identity: DeviceIdentity | None = None,
        *,
        peers=(),
        path: str | os.PathLike | None = None,
    ) -> None:
        self.name = _check_name(name)
        self.identity = DeviceIdentity.generate() if identity is None else identity
        if not isinstance(self.identity, DeviceIdentity):
            raise InvalidInputError(f"identity must be a DeviceIdentity, got {type(identity).__name__}")
        self._peers: dict[str, PairedPeer] = {}
        #: newest handshake timestamp (ns) seen from, or sent to, each peer public key; kept in memory only
        self.handshake_times_ns: dict[bytes, int] = {}
        for peer in peers:
            self._store(peer)
        self.path = None if path is None else Path(path)

    def __repr__(self) -> str:
        return f"Keystore({self.name!r}, {self.identity!r}, {len(self._peers)} peers, path={self.path})"

    @property
    def public_key(self) -> bytes:
        """This device's raw 32-byte static public key."""
        return self.identity.public_key

    @property
    def peers(self) -> tuple[PairedPeer, ...]:
        """The paired peers, revoked ones included, in pairing order."""
        return tuple(self._peers.values())

    def _store(self, peer: PairedPeer) -> None:
        # one record per name and per key: re-pairing replaces what was there
        for name in [name for name, old in self._peers.items() if old.public_key == peer.public_key]:
            del self._peers[name]
        self._peers.pop(peer.name, None)
        self._peers[peer.name] = peer

    def _changed(self) -> None:
        if self.path is not None:
            self.save()

    def find(self, name_or_public: str | bytes) -> PairedPeer | None:
        """The peer of that name or raw public key, or None."""
        if isinstance(name_or_public, str):
            return self._peers.get(name_or_public)
        if not isinstance(name_or_public, (bytes, bytearray, memoryview)):
            raise InvalidInputError(
                f"a peer is found by name (str) or public key (bytes), got {type(name_or_public).__name__}"
            )
        for peer in self._peers.values():
            if peer.public_key == bytes(name_or_public):
                return peer
        return None

    def status(self, public_key: bytes) -> str:
        """``"paired"``, ``"revoked"`` or ``"unpaired"``: what this store says of a static public key."""
        peer = self.find(_check_public_key(public_key))
        return "unpaired" if peer is None else ("revoked" if peer.revoked else "paired")

    def add_peer(self, name: str, public_key: bytes, *, paired_at: str | None = None) -> PairedPeer:
        """Store a peer (after a confirmed pairing); replaces a peer of the same name or key."""
        peer = PairedPeer(
            _check_name(name, "peer name"),
            _check_public_key(public_key),
            paired_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if peer.public_key == self.public_key:
            raise InvalidInputError("a device cannot pair with its own key")
        self._store(peer)
        self._changed()
        return peer

    def revoke(self, name_or_public: str | bytes) -> PairedPeer:
        """Mark a peer (by name or raw public key) revoked; its handshakes are refused from now on.

        Raises
        ------
        InvalidInputError
            No such peer.
        """
        peer = self.find(name_or_public)
        if peer is None:
            known = ", ".join(repr(name) for name in self._peers) or "none"
            raise InvalidInputError(f"no paired peer {name_or_public!r:.70} to revoke (paired: {known})")
        peer = replace(peer, revoked=True)
        self._peers[peer.name] = peer
        self._changed()
        return peer

    # -- the file -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The keystore as the JSON object of its file (contains the private key)."""
        return {
            "format": KEYSTORE_FORMAT,
            "version": _KEYSTORE_VERSION,
            "name": self.name,
            "private_key": _encode(self.identity.private_bytes()),
            "public_key": _encode(self.public_key),
            "peers": [
                {"name": peer.name, "public_key": _encode(peer.public_key), "paired_at": peer.paired_at,
                 "revoked": peer.revoked}
                for peer in self._peers.values()
            ],
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the keystore atomically, mode 0600; ``path`` becomes the store's file.

        Returns
        -------
        Path
            The file written.
        """
        if path is None and self.path is None:
            raise InvalidInputError("save needs a path: this keystore has no file yet")
        target = Path(path) if path is not None else self.path
        text = json.dumps(self.to_json(), indent=2) + "\n"
        with atomic_output(target) as temporary:
            os.chmod(temporary, 0o600)  # before the private key is in it
            temporary.write_text(text, encoding="utf-8")
        os.chmod(target, 0o600)
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> Keystore:
        """Read a keystore file; changes to the returned store are saved back to it.

        Raises
        ------
        FormatError
            The file is not a valid keystore (the message names the file and what is wrong).
        FileNotFoundError
            There is no such file.
        """
        path = Path(path)
        raw = path.read_bytes()

        def refuse(what: str) -> FormatError:
            return FormatError(f"keystore {str(path)!r} is corrupt or not a keystore: {what}")

        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise refuse(f"not JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != KEYSTORE_FORMAT:
            raise refuse(f"its 'format' is not {KEYSTORE_FORMAT!r}")
        if document.get("version") != _KEYSTORE_VERSION:
            version = document.get("version")
            raise refuse(f"version {version!r}; this neurolace reads version {_KEYSTORE_VERSION}")

        def key(record: dict, field: str) -> bytes:
            value = record.get(field)
            try:
                data = base64.b64decode(value, validate=True) if isinstance(value, str) else None
            except (binascii.Error, ValueError):
                data = None
            if data is None or len(data) != DH_BYTES:
                raise refuse(f"{field!r} is not {DH_BYTES} bytes of base64")
            return data

        try:
            identity = DeviceIdentity.from_private_bytes(key(document, "private_key"))
            if identity.public_key != key(document, "public_key"):
                raise refuse("'public_key' does not belong to 'private_key'")
            peers = document.get("peers")
            if not isinstance(peers, list):
                raise refuse("'peers' is not a list")
            records = []
            for index, record in enumerate(peers):
                if not isinstance(record, dict):
                    raise refuse(f"peer {index} is not an object")
                paired_at = record.get("paired_at")
                try:
                    datetime.fromisoformat(paired_at)
                except (TypeError, ValueError):
                    raise refuse(f"peer {index} 'paired_at' {paired_at!r} is not an ISO 8601 time") from None
                if not isinstance(record.get("revoked"), bool):
                    raise refuse(f"peer {index} 'revoked' is not true or false")
                records.append(PairedPeer(_check_name(record.get("name"), f"peer {index} name"),
                                          key(record, "public_key"), paired_at, record["revoked"]))
            if len({peer.name for peer in records}) != len(records) or len(
                {peer.public_key for peer in records}
            ) != len(records):
                raise refuse("two peers share a name or a key")
            return cls(_check_name(document.get("name")), identity, peers=records, path=path)
        except InvalidInputError as exc:
            raise refuse(str(exc)) from None


# -- pairing ----------------------------------------------------------------------------------------


def comparison_code(handshake_hash: bytes) -> str:
    """The 6-digit code the user compares: the first 8 bytes of the handshake hash, big-endian, mod 10**6."""
    return f"{int.from_bytes(bytes(handshake_hash)[:8], 'big') % 1_000_000:06d}"


@dataclass(frozen=True)
class PairingResult:
    """What :func:`pair` found.

    Attributes
    ----------
    implant_code, host_code : str
        The 6-digit codes each side showed.
    confirmed : bool
        What ``confirm`` decided; only then were the keys stored.
    implant_peer, host_peer : PairedPeer or None
        The record the implant stored of the host and the host of the implant (None if not confirmed).
    """

    implant_code: str
    host_code: str
    confirmed: bool
    implant_peer: PairedPeer | None = None
    host_peer: PairedPeer | None = None


def _peer_name(payload: bytes) -> str:
    try:
        return _check_name(payload.decode("utf-8"), "peer name")
    except (UnicodeDecodeError, InvalidInputError):
        raise HandshakeError(
            "bad_handshake", "the pairing message does not carry a valid device name"
        ) from None


def _no_relay(message: bytes, to_implant: bool) -> bytes:
    return message


def pair(
    implant_store: Keystore,
    host_store: Keystore,
    confirm: Callable[[str, str], bool],
    *,
    relay: Callable[[bytes, bool], bytes] | None = None,
) -> PairingResult:
    """Pair an implant and a host in memory: Noise_XX, numeric comparison, then both store the other's key.

    The host initiates. The implant's name travels (encrypted) in message 2 and the
    host's in message 3, so each side stores the other under the name it gave itself.

    Parameters
    ----------
    implant_store, host_store : Keystore
    confirm : callable (implant_code, host_code) -> bool
        The user's decision after comparing the two codes; keys are stored only if it returns True.
    relay : callable (message, to_implant) -> bytes, optional
        Carries each handshake message (the radio); the identity by default. A test puts a man in
        the middle here.

    Returns
    -------
    PairingResult

    Raises
    ------
    HandshakeError
        ``"bad_handshake"``: a message was altered on the way.
    """
    for store, name in ((implant_store, "implant_store"), (host_store, "host_store")):
        if not isinstance(store, Keystore):
            raise InvalidInputError(f"{name} must be a Keystore, got {type(store).__name__}")
    relay = _no_relay if relay is None else relay
    host = HandshakeState("XX", initiator=True, static=host_store.identity.private_key,
                          prologue=PAIRING_PROLOGUE)
    implant = HandshakeState("XX", initiator=False, static=implant_store.identity.private_key,
                             prologue=PAIRING_PROLOGUE)
    implant.read_message(relay(host.write_message(), True))
    message2 = relay(implant.write_message(implant_store.name.encode()), False)
    implant_name = _peer_name(host.read_message(message2))
    host_name = _peer_name(implant.read_message(relay(host.write_message(host_store.name.encode()), True)))
    implant_code, host_code = comparison_code(implant.handshake_hash), comparison_code(host.handshake_hash)
    if not bool(confirm(implant_code, host_code)):
        return PairingResult(implant_code, host_code, False)
    implant_peer = implant_store.add_peer(host_name, implant.remote_static)
    host_peer = host_store.add_peer(implant_name, host.remote_static)
    return PairingResult(implant_code, host_code, True, implant_peer, host_peer)


def ephemeral_pairing(implant_name: str = "implant", host_name: str = "host") -> tuple[Keystore, Keystore]:
    """Fresh identities for an implant and a host, paired in memory (the in-process demo).

    Returns
    -------
    implant_store, host_store : Keystore
        Not saved anywhere; the implant's store lists the host and the host's the implant.
    """
    implant_store, host_store = Keystore(implant_name), Keystore(host_name)
    result = pair(implant_store, host_store, lambda implant_code, host_code: implant_code == host_code)
    assert result.confirmed  # the same process on both ends: no one in the middle
    return implant_store, host_store
