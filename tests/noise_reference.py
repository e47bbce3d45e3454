"""The independent Noise implementation the link tests compare against (the ``noiseprotocol`` package).

A missing reference is an error with the install line, never a skip.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

try:
    from noise.connection import Keypair, NoiseConnection
except ImportError as exc:
    raise ImportError(
        "the link tests need the reference Noise implementation: pip install 'noiseprotocol>=0.3,<1' "
        "(it is in the test extra)"
    ) from exc


def private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def reference_party(name: bytes, *, initiator: bool, static: X25519PrivateKey, prologue: bytes,
                    remote_static: bytes | None = None, ephemeral: X25519PrivateKey | None = None):
    """A started noiseprotocol handshake for protocol ``name``, with the given keys."""
    connection = NoiseConnection.from_name(name)
    connection.set_as_initiator() if initiator else connection.set_as_responder()
    connection.set_prologue(prologue)
    connection.set_keypair_from_private_bytes(Keypair.STATIC, private_bytes(static))
    if remote_static is not None:
        connection.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote_static)
    if ephemeral is not None:
        connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, private_bytes(ephemeral))
    connection.start_handshake()
    return connection
