"""The Noise Protocol Framework handshake (revision 34): IK and XX over 25519, ChaChaPoly, SHA256 or BLAKE2s.

This module owns the protocol logic of the Noise specification (Perrin,
"The Noise Protocol Framework", revision 34, 2018), written from the spec:
:class:`CipherState` (section 5.1), :class:`SymmetricState` (5.2) with
``Split()``, :class:`HandshakeState` (5.3) for the two patterns the link uses,
and ``REKEY`` (11.3). Every primitive comes from ``cryptography``: X25519 for
DH, ChaCha20-Poly1305 for the cipher, SHA-256 or BLAKE2s for the hash, and its
HKDF for Noise's HKDF (section 4.3 defines it as RFC 5869 HKDF with the
chaining key as salt and an empty info string, which is what
``cryptography``'s :class:`~cryptography.hazmat.primitives.kdf.hkdf.HKDF`
computes).

Patterns (section 7.5)::

    IK:                          XX:
      <- s                         -> e
      ...                          <- e, ee, s, es
      -> e, es, s, ss              -> s, se
      <- e, ee, se

IK is the link's session handshake (the host knows the implant's static key
from pairing); XX is pairing (neither side knows the other). Anything wrong
with a handshake message (length, a tag that does not verify, a low-order
point, a message out of turn) raises ``HandshakeError("bad_handshake")``, and
the handshake state is then dead (section 5.3: the handshake is aborted).

Nonce encoding of ChaChaPoly (section 12.3): 32 bits of zeros, then the 64-bit
nonce little-endian. Nonce ``2**64 - 1`` is reserved (REKEY uses it).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from neurolace.core.checks import check_in
from neurolace.core.errors import InvalidInputError
from neurolace.link.errors import AuthenticationError, HandshakeError

__all__ = [
    "DH_BYTES",
    "HASH_NAMES",
    "KEY_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_NONCE",
    "PATTERNS",
    "TAG_BYTES",
    "CipherState",
    "HandshakeState",
    "SymmetricState",
    "chachapoly_nonce",
    "protocol_name",
    "public_key_bytes",
    "rekey",
]

#: bytes of an X25519 public key and of a DH output (Noise's DHLEN)
DH_BYTES = 32
#: bytes of a cipher key
KEY_BYTES = 32
#: bytes of the ChaCha20-Poly1305 tag
TAG_BYTES = 16
#: the largest Noise message (section 3)
MAX_MESSAGE_BYTES = 65535
#: the reserved nonce: never used for a message, only by REKEY
MAX_NONCE = 2**64 - 1

#: the hash functions this module speaks, by their Noise names (HASHLEN is 32 for both)
HASH_NAMES = ("SHA256", "BLAKE2s")
_HASHES = {"SHA256": lambda: hashes.SHA256(), "BLAKE2s": lambda: hashes.BLAKE2s(32)}

#: handshake patterns: (pre-messages of the responder, message patterns); the initiator sends first
PATTERNS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "IK": (("s",), (("e", "es", "s", "ss"), ("e", "ee", "se"))),
    "XX": ((), (("e",), ("e", "ee", "s", "es"), ("s", "se"))),
}

_ZEROS = bytes(32)


def protocol_name(pattern: str, hash_name: str = "SHA256") -> bytes:
    """The Noise protocol name, e.g. ``b"Noise_IK_25519_ChaChaPoly_SHA256"``."""
    check_in(pattern, "pattern", tuple(PATTERNS))
    check_in(hash_name, "hash_name", HASH_NAMES)
    return f"Noise_{pattern}_25519_ChaChaPoly_{hash_name}".encode("ascii")


def chachapoly_nonce(nonce: int) -> bytes:
    """The 12-byte ChaCha20-Poly1305 nonce of Noise's 64-bit ``nonce``: 4 zero bytes, then ``nonce`` LE."""
    return b"\x00\x00\x00\x00" + nonce.to_bytes(8, "little")


def rekey(key: bytes) -> bytes:
    """Noise's REKEY(k) for ChaChaPoly: the first 32 bytes of ENCRYPT(k, 2**64 - 1, b"", 32 zero bytes)."""
    return ChaCha20Poly1305(key).encrypt(chachapoly_nonce(MAX_NONCE), _ZEROS, b"")[:KEY_BYTES]


def _hash(hash_name: str, data: bytes) -> bytes:
    digest = hashes.Hash(_HASHES[hash_name]())
    digest.update(data)
    return digest.finalize()


def _hkdf(hash_name: str, chaining_key: bytes, input_key_material: bytes, n_outputs: int) -> list[bytes]:
    """Noise's HKDF (section 4.3): ``n_outputs`` blocks of 32 bytes (RFC 5869 with salt = chaining key)."""
    output = HKDF(algorithm=_HASHES[hash_name](), length=32 * n_outputs, salt=chaining_key, info=b"").derive(
        input_key_material
    )
    return [output[32 * index : 32 * (index + 1)] for index in range(n_outputs)]


def _bytes(value, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


class CipherState:
    """A cipher key and a message counter (Noise section 5.1), over ChaCha20-Poly1305.

    Parameters
    ----------
    key : bytes, optional
        32-byte key; without one, encryption is the identity (as Noise defines it before the first MixKey).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._aead: ChaCha20Poly1305 | None = None
        self.key: bytes | None = None
        self.nonce = 0
        if key is not None:
            self.initialize_key(key)

    def __repr__(self) -> str:
        return f"CipherState(has_key={self.has_key()}, nonce={self.nonce})"

    def initialize_key(self, key: bytes | None) -> None:
        """InitializeKey(k): set the key (``None`` for empty) and reset the counter to 0."""
        if key is not None and len(key) != KEY_BYTES:
            raise InvalidInputError(f"key must be {KEY_BYTES} bytes, got {len(key)}")
        self.key = None if key is None else bytes(key)
        self._aead = None if key is None else ChaCha20Poly1305(self.key)
        self.nonce = 0

    def has_key(self) -> bool:
        """HasKey()."""
        return self.key is not None

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(n)."""
        self.nonce = int(nonce)

    def encrypt(self, nonce: int, associated_data: bytes, plaintext: bytes) -> bytes:
        """ENCRYPT(k, n, ad, plaintext) at an explicit ``nonce``: ciphertext followed by the 16-byte tag."""
        if self._aead is None:
            raise InvalidInputError("encrypt needs a key; this cipher state has none")
        if not 0 <= nonce < MAX_NONCE:
            raise InvalidInputError(f"nonce must be in 0 .. 2**64 - 2, got {nonce}")
        return self._aead.encrypt(chachapoly_nonce(nonce), plaintext, associated_data)

    def decrypt(self, nonce: int, associated_data: bytes, ciphertext: bytes) -> bytes:
        """DECRYPT(k, n, ad, ciphertext) at an explicit ``nonce``.

        Raises
        ------
        AuthenticationError
            ``"tag_mismatch"``: the tag does not verify (or the nonce is out of range).
        """
        if self._aead is None:
            raise AuthenticationError("no_session", "decrypt needs a key; this cipher state has none")
        if not 0 <= nonce < MAX_NONCE or len(ciphertext) < TAG_BYTES:
            raise AuthenticationError("tag_mismatch", "ciphertext shorter than its tag or nonce out of range")
        try:
            return self._aead.decrypt(chachapoly_nonce(nonce), ciphertext, associated_data)
        except InvalidTag:
            raise AuthenticationError("tag_mismatch", "the AEAD tag does not verify") from None

    def encrypt_with_ad(self, associated_data: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd(ad, plaintext): encrypt at the counter and advance it; identity without a key."""
        if self._aead is None:
            return bytes(plaintext)
        if self.nonce >= MAX_NONCE:
            raise InvalidInputError("this cipher state has used all its nonces")
        ciphertext = self.encrypt(self.nonce, associated_data, plaintext)
        self.nonce += 1
        return ciphertext

    def decrypt_with_ad(self, associated_data: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd(ad, ciphertext): decrypt at the counter, advance it only on success."""
        if self._aead is None:
            return bytes(ciphertext)
        if self.nonce >= MAX_NONCE:
            raise AuthenticationError("tag_mismatch", "this cipher state has used all its nonces")
        plaintext = self.decrypt(self.nonce, associated_data, ciphertext)
        self.nonce += 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): replace the key by REKEY(k); the counter is kept (section 11.3)."""
        if self.key is None:
            raise InvalidInputError("rekey needs a key; this cipher state has none")
        nonce = self.nonce
        self.initialize_key(rekey(self.key))
        self.nonce = nonce


class SymmetricState:
    """Chaining key, handshake hash and a cipher state (Noise section 5.2).

    Parameters
    ----------
    name : bytes
        The protocol name; hashed (or zero-padded, if it fits in 32 bytes) into the first ``h``.
    hash_name : {"SHA256", "BLAKE2s"}
    """

    def __init__(self, name: bytes, hash_name: str = "SHA256") -> None:
        self.hash_name = check_in(hash_name, "hash_name", HASH_NAMES)
        self.handshake_hash = name.ljust(32, b"\x00") if len(name) <= 32 else _hash(hash_name, name)
        self.chaining_key = self.handshake_hash
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey(ikm): ``ck, temp_k = HKDF(ck, ikm, 2)``; the cipher gets ``temp_k``."""
        self.chaining_key, temp_key = _hkdf(self.hash_name, self.chaining_key, input_key_material, 2)
        self.cipher.initialize_key(temp_key)

    def mix_hash(self, data: bytes) -> None:
        """MixHash(data): ``h = HASH(h || data)``."""
        self.handshake_hash = _hash(self.hash_name, self.handshake_hash + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash(plaintext): encrypt with ``h`` as associated data, then mix the ciphertext in."""
        ciphertext = self.cipher.encrypt_with_ad(self.handshake_hash, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash(ciphertext); raises AuthenticationError if the tag does not verify."""
        plaintext = self.cipher.decrypt_with_ad(self.handshake_hash, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): the two transport cipher states (initiator to responder, responder to initiator)."""
        first, second = _hkdf(self.hash_name, self.chaining_key, b"", 2)
        return CipherState(first), CipherState(second)


def public_key_bytes(private: X25519PrivateKey) -> bytes:
    """The 32-byte raw public key of an X25519 private key."""
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class HandshakeState:
    """One side of a Noise handshake (section 5.3) for pattern IK or XX.

    Parameters
    ----------
    pattern : {"IK", "XX"}
    initiator : bool
        True for the side that sends the first message.
    static : X25519PrivateKey
        This side's static key pair.
    remote_static : bytes, optional
        The peer's 32-byte static public key, known in advance: required for the initiator of IK
        (the responder's key is a pre-message), refused otherwise.
    prologue : bytes
        Data both sides must agree on (mixed into the handshake hash), e.g. a link version string.
    hash_name : {"SHA256", "BLAKE2s"}
    ephemeral : X25519PrivateKey, optional
        A fixed ephemeral key, for known-answer tests only; a fresh one is generated otherwise.

    Attributes
    ----------
    remote_static : bytes or None
        The peer's static public key, once known (read from a handshake message or given).
    finished : bool
        True once every message of the pattern was written or read.

    Examples
    --------
    >>> from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    >>> host, implant = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    >>> from neurolace.link.noise import public_key_bytes
    >>> initiator = HandshakeState("IK", initiator=True, static=host, remote_static=public_key_bytes(implant))
    >>> responder = HandshakeState("IK", initiator=False, static=implant)
    >>> _ = responder.read_message(initiator.write_message())
    >>> _ = initiator.read_message(responder.write_message())
    >>> initiator.handshake_hash == responder.handshake_hash
    True
    """

    def __init__(
        self,
        pattern: str,
        *,
        initiator: bool,
        static: X25519PrivateKey,
        remote_static: bytes | None = None,
        prologue: bytes = b"",
        hash_name: str = "SHA256",
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        pre_messages, messages = PATTERNS[check_in(pattern, "pattern", tuple(PATTERNS))]
        if not isinstance(static, X25519PrivateKey):
            raise InvalidInputError(f"static must be an X25519PrivateKey, got {type(static).__name__}")
        if ephemeral is not None and not isinstance(ephemeral, X25519PrivateKey):
            raise InvalidInputError(f"ephemeral must be an X25519PrivateKey, got {type(ephemeral).__name__}")
        needs_remote = initiator and "s" in pre_messages
        if needs_remote != (remote_static is not None):
            what = "requires" if needs_remote else "takes no"
            role = "initiator" if initiator else "responder"
            raise InvalidInputError(f"the {role} of {pattern} {what} remote_static")
        if remote_static is not None:
            remote_static = _bytes(remote_static, "remote_static")
            if len(remote_static) != DH_BYTES:
                raise InvalidInputError(f"remote_static must be {DH_BYTES} bytes, got {len(remote_static)}")
        self.pattern = pattern
        self.initiator = bool(initiator)
        self.protocol_name = protocol_name(pattern, hash_name)
        self._messages: Sequence[tuple[str, ...]] = messages
        self._static = static
        self._static_public = public_key_bytes(static)
        self._ephemeral = ephemeral
        self._remote_ephemeral: bytes | None = None
        self.remote_static = remote_static
        self._symmetric = SymmetricState(self.protocol_name, hash_name)
        self._symmetric.mix_hash(_bytes(prologue, "prologue"))
        for token in pre_messages:  # only the responder's static key ("<- s") in the patterns here
            assert token == "s"
            self._symmetric.mix_hash(self.remote_static if self.initiator else self._static_public)
        self._index = 0
        self._failed = False

    def __repr__(self) -> str:
        state = "failed" if self._failed else ("finished" if self.finished else f"message {self._index + 1}")
        role = "initiator" if self.initiator else "responder"
        return f"HandshakeState({self.protocol_name.decode()}, {role}, {state})"

    @property
    def finished(self) -> bool:
        return self._index == len(self._messages)

    @property
    def handshake_hash(self) -> bytes:
        """GetHandshakeHash(): ``h``, the same on both sides once the handshake finished."""
        return self._symmetric.handshake_hash

    @property
    def my_turn(self) -> bool:
        """True when this side writes the next message (initiators write messages 1, 3, ...)."""
        return not self.finished and (self._index % 2 == 0) == self.initiator

    def _dh(self, private: X25519PrivateKey, public: bytes) -> bytes:
        try:
            return private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError:  # cryptography refuses an all-zero shared secret (a low-order point)
            raise HandshakeError("bad_handshake", "a handshake public key is a low-order point") from None

    def _mix_dh(self, token: str) -> None:
        # "es": the initiator's ephemeral with the responder's static; "se" the other way round
        local, remote = token[0], token[1]
        if not self.initiator:
            local, remote = remote, local
        private = self._ephemeral if local == "e" else self._static
        public = self._remote_ephemeral if remote == "e" else self.remote_static
        self._symmetric.mix_key(self._dh(private, public))

    def _check_turn(self, writing: bool) -> None:
        if self._failed:
            raise HandshakeError("bad_handshake", "this handshake failed earlier and was aborted")
        if self.finished:
            raise HandshakeError("bad_handshake", "the handshake is already finished")
        if self.my_turn != writing:
            verb = "read" if writing else "write"
            raise HandshakeError(
                "bad_handshake", f"out of turn: this side must {verb} message {self._index + 1}"
            )

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage(payload): the next handshake message, with ``payload`` encrypted if a key is set."""
        self._check_turn(writing=True)
        payload = _bytes(payload, "payload")
        message = bytearray()
        for token in self._messages[self._index]:
            if token == "e":
                if self._ephemeral is None:
                    self._ephemeral = X25519PrivateKey.generate()
                public = public_key_bytes(self._ephemeral)
                message += public
                self._symmetric.mix_hash(public)
            elif token == "s":
                message += self._symmetric.encrypt_and_hash(self._static_public)
            else:
                self._mix_dh(token)
        message += self._symmetric.encrypt_and_hash(payload)
        if len(message) > MAX_MESSAGE_BYTES:
            self._failed = True
            raise InvalidInputError(f"handshake message of {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}")
        self._index += 1
        return bytes(message)

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage(message): process the peer's next message and return its decrypted payload.

        Raises
        ------
        HandshakeError
            ``"bad_handshake"``: not bytes, too long or short, a tag that does not verify, a
            low-order key, or out of turn. The handshake is aborted.
        """
        self._check_turn(writing=False)
        try:
            return self._read(message)
        except HandshakeError:
            self._failed = True
            raise
        except (AuthenticationError, InvalidInputError) as exc:
            self._failed = True
            what = f"handshake message {self._index + 1} refused: {exc}"
            raise HandshakeError("bad_handshake", what) from None

    def _read(self, message) -> bytes:
        message = _bytes(message, "handshake message")
        if len(message) > MAX_MESSAGE_BYTES:
            what = f"handshake message of {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}"
            raise HandshakeError("bad_handshake", what)
        position = 0

        def take(n_bytes: int) -> bytes:
            nonlocal position
            if len(message) - position < n_bytes:
                raise HandshakeError("bad_handshake", f"handshake message {self._index + 1} is truncated")
            chunk = message[position : position + n_bytes]
            position += n_bytes
            return chunk

        for token in self._messages[self._index]:
            if token == "e":
                self._remote_ephemeral = take(DH_BYTES)
                self._symmetric.mix_hash(self._remote_ephemeral)
            elif token == "s":
                sealed = take(DH_BYTES + (TAG_BYTES if self._symmetric.cipher.has_key() else 0))
                self.remote_static = self._symmetric.decrypt_and_hash(sealed)
            else:
                self._mix_dh(token)
        rest = message[position:]
        if self._symmetric.cipher.has_key() and len(rest) < TAG_BYTES:
            raise HandshakeError("bad_handshake", f"handshake message {self._index + 1} is truncated")
        payload = self._symmetric.decrypt_and_hash(rest)
        self._index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """Split() once finished: (initiator-to-responder, responder-to-initiator) cipher states."""
        if not self.finished or self._failed:
            raise HandshakeError("bad_handshake", "split before the handshake finished")
        return self._symmetric.split()

    def transport_keys(self) -> tuple[bytes, bytes]:
        """This side's (send key, receive key) from Split(), 32 bytes each."""
        first, second = self.split()
        send, receive = (first, second) if self.initiator else (second, first)
        return send.key, receive.key
