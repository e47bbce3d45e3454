"""Stimulation commands on the wire: a pulse train, who asked, when, signed with the clinician's key.

A command is a :class:`StimCommand` (a :class:`~neurolace.stim.pulses.PulseTrain`, a
command id, the host's ``issued_ns`` and the clinician's id) encoded as::

    b"NLSC" | version (1 byte, 1) | body length (uint32, big-endian) | body | Ed25519 signature (64 bytes)

The body is canonical JSON (sorted keys, no spaces, UTF-8)
``{"clinician_id", "command_id", "issued_ns", "train": {...the pattern schema's train fields}}``.
The signature covers everything before it, magic and version included, so a command cannot
be re-labelled as another version. Signatures are Ed25519 from ``cryptography`` (RFC 8032);
nothing here is hand-rolled.

The host signs with :func:`sign_command`; the implant's interlock verifies with
:func:`verify_command` against the public keys of the clinicians it knows, *before*
it parses the train, and refuses with a :class:`~neurolace.stim.errors.CommandError`
whose ``reason`` says why (:data:`COMMAND_REFUSALS`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from neurolace.core.errors import InvalidInputError
from neurolace.stim.errors import CommandError, PatternError
from neurolace.stim.pulses import PulseTrain

__all__ = [
    "COMMAND_MAGIC",
    "COMMAND_REFUSALS",
    "COMMAND_VERSION",
    "MAX_COMMAND_BYTES",
    "StimCommand",
    "encode_command",
    "load_clinician_key",
    "public_key_from_text",
    "public_key_text",
    "save_clinician_key",
    "sign_command",
    "verify_command",
]

COMMAND_MAGIC = b"NLSC"
COMMAND_VERSION = 1
_HEADER = struct.Struct(">4sBI")
SIGNATURE_BYTES = 64
#: A command larger than this is refused before any parsing (a train's JSON is a few hundred bytes).
MAX_COMMAND_BYTES = 4096
_MAX_ID_CHARS = 64
_MAX_NS = (1 << 63) - 1
#: why :func:`verify_command` refuses bytes (the ``reason`` of its :class:`CommandError`)
COMMAND_REFUSALS = ("malformed", "unknown_version", "unknown_clinician", "bad_signature", "bad_train")


def _refuse(reason: str, message: str) -> CommandError:
    assert reason in COMMAND_REFUSALS, reason
    return CommandError(message, reason=reason)


def _check_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_ID_CHARS or not value.isprintable() \
            or value != value.strip():
        raise InvalidInputError(f"{name} must be 1 to {_MAX_ID_CHARS} printable characters, got {value!r:.80}")
    return value


@dataclass(frozen=True)
class StimCommand:
    """One stimulation request from a clinician's session.

    Attributes
    ----------
    train : PulseTrain
    command_id : str
        Unique per command (the interlock refuses a repeated id as a replay).
    issued_ns : int
        When the host issued it, ns on the clock the implant and host agree on (the link's).
    clinician_id : str
        Whose key signs it.
    """

    train: PulseTrain
    command_id: str
    issued_ns: int
    clinician_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.train, PulseTrain):
            raise InvalidInputError(f"train must be a PulseTrain, got {type(self.train).__name__}")
        _check_id(self.command_id, "command_id")
        _check_id(self.clinician_id, "clinician_id")
        if isinstance(self.issued_ns, bool) or not isinstance(self.issued_ns, int) \
                or not 0 <= self.issued_ns <= _MAX_NS:
            raise InvalidInputError(f"issued_ns must be an integer in [0, 2**63), got {self.issued_ns!r}")

    def body(self) -> bytes:
        """The canonical JSON body the signature covers."""
        values = {"clinician_id": self.clinician_id, "command_id": self.command_id,
                  "issued_ns": self.issued_ns, "train": self.train.to_dict()}
        return json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def encode_command(command: StimCommand) -> bytes:
    """The signed-part bytes of ``command``: magic, version, length and body (no signature)."""
    body = command.body()
    return _HEADER.pack(COMMAND_MAGIC, COMMAND_VERSION, len(body)) + body


def sign_command(
    train: PulseTrain,
    clinician_key: Ed25519PrivateKey,
    *,
    clinician_id: str,
    issued_ns: int,
    command_id: str | None = None,
) -> bytes:
    """Build, encode and sign a command on the host; the bytes go to the implant as a STIM frame.

    Parameters
    ----------
    train : PulseTrain
    clinician_key : Ed25519PrivateKey
        The clinician's private key.
    clinician_id : str
        The name the implant knows the clinician's public key by.
    issued_ns : int
        Now, in ns, on the link's clock.
    command_id : str, optional
        Default: 128 random bits in hex.

    Returns
    -------
    bytes
        ``encode_command(...) + signature``.
    """
    if not isinstance(clinician_key, Ed25519PrivateKey):
        raise InvalidInputError(f"clinician_key must be an Ed25519PrivateKey, got {type(clinician_key).__name__}")
    command = StimCommand(train, secrets.token_hex(16) if command_id is None else command_id, issued_ns,
                          clinician_id)
    signed = encode_command(command)
    return signed + clinician_key.sign(signed)


def _strict_object(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def verify_command(data: bytes, clinician_keys: Mapping[str, Ed25519PublicKey]) -> StimCommand:
    """Check framing and signature, then parse: the :class:`StimCommand` in ``data``.

    Raises
    ------
    CommandError
        With ``reason`` one of :data:`COMMAND_REFUSALS`: malformed framing or body, a version this
        side does not speak, a clinician it does not know, a signature that does not verify, or a
        train that is not a train (bad fields, named).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _refuse("malformed", f"a command must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_COMMAND_BYTES:
        raise _refuse("malformed", f"a command is at most {MAX_COMMAND_BYTES} bytes, got {len(data)}")
    if len(data) < _HEADER.size + SIGNATURE_BYTES:
        raise _refuse("malformed", f"a command is at least {_HEADER.size + SIGNATURE_BYTES} bytes, got {len(data)}")
    magic, version, length = _HEADER.unpack_from(data)
    if magic != COMMAND_MAGIC:
        raise _refuse("malformed", f"not a stimulation command (magic {magic!r})")
    if version != COMMAND_VERSION:
        raise _refuse("unknown_version", f"command version {version} (this side speaks {COMMAND_VERSION})")
    if _HEADER.size + length + SIGNATURE_BYTES != len(data):
        raise _refuse("malformed", f"body length {length} does not match the {len(data)} bytes received")
    signed, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
    try:
        values = json.loads(signed[_HEADER.size:].decode("utf-8"), object_pairs_hook=_strict_object,
                            parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _refuse("malformed", f"command body is not canonical JSON: {error}") from None
    if not isinstance(values, dict) or set(values) != {"clinician_id", "command_id", "issued_ns", "train"}:
        raise _refuse("malformed", "command body must hold exactly clinician_id, command_id, issued_ns, train")
    clinician_id = values["clinician_id"]
    key = clinician_keys.get(clinician_id) if isinstance(clinician_id, str) else None
    if key is None:
        raise _refuse("unknown_clinician", f"no key for clinician {clinician_id!r:.80}")
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        raise _refuse("bad_signature", f"signature does not verify under clinician {clinician_id!r}'s key") from None
    try:
        train = PulseTrain.from_dict(values["train"])
        return StimCommand(train, values["command_id"], values["issued_ns"], clinician_id)
    except PatternError as error:
        raise _refuse("bad_train", f"train: {error}") from None
    except InvalidInputError as error:
        raise _refuse("malformed", str(error)) from None


# --- clinician keys -----------------------------------------------------------------------------
def public_key_text(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The raw 32-byte public key in base64 (what the implant's clinician list stores)."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse :func:`public_key_text`'s output; errors say what was wrong."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise InvalidInputError(f"public key must be base64, got {text!r:.60}") from None
    if len(raw) != 32:
        raise InvalidInputError(f"public key must be 32 bytes (raw Ed25519), got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def save_clinician_key(key: Ed25519PrivateKey, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600, atomically; keep it like a password file."""
    from neurolace.io.atomic import atomic_output

    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with atomic_output(path, overwrite=overwrite) as temporary:
        os.chmod(temporary, 0o600)  # before the private key is in it
        temporary.write_bytes(pem)
    return Path(path)


def load_clinician_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Read a key :func:`save_clinician_key` wrote."""
    from neurolace.io.paths import check_input_file

    data = check_input_file(path, "clinician key file").read_bytes()
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(f"{path} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInputError(f"{path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key
