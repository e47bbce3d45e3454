"""The vault: envelope encryption of a site's files, chunked AEAD streams, crypto-shredding.

Keys (envelope encryption)
--------------------------
* The **site key** (32 random bytes) is stored in ``site.json`` wrapped (ChaCha20-Poly1305)
  under a key derived from the site passphrase with scrypt (memory-hard; ``n = 2**15, r = 8,
  p = 1`` by default, the random 16-byte salt and the parameters in ``site.json``). The wrap's
  authentication tag is the check value: a wrong passphrase fails it and is reported as
  :class:`~neurolace.privacy.errors.WrongPassphraseError`. The passphrase comes from the
  caller, else the environment variable ``NEUROLACE_SITE_PASSPHRASE``, else the OS keyring
  (service ``"neurolace"``, user name the site directory's absolute path; optional extra
  ``keyring``).
* Each participant has a **data key** (32 random bytes) in ``keys/<pid>.key``, wrapped by the
  site key with the participant id as associated data (a key file copied to another id fails).
* **Shredding** a participant records the id in ``site.json``'s ``"shredded"`` list, then
  overwrites the key file with random bytes and unlinks it. Their files stay on disk and can
  never be decrypted again; opening one raises :class:`~neurolace.privacy.errors.ShreddedError`.

Stream file format (``vault/<pid>/<name>``, little-endian)
----------------------------------------------------------
::

    magic        8 bytes   b"NLVAULT" + version byte 0x01
    stream id   16 bytes   random, fresh for every stream
    u32 n                  length of the sealed header
    header       n bytes   ChaCha20-Poly1305(subkey, nonce(0, HEADER), JSON, AD = magic + stream id)
                           JSON: {"participant_id", "name", "kind", "metadata", "created_ns"}
    chunk *      u32 length | ciphertext (plaintext + 16-byte tag)
                 ciphertext = ChaCha20-Poly1305(subkey, nonce(index, last), plaintext,
                              AD = stream id + u64 index + u8 last + SHA-256(magic .. header))

    subkey       = HKDF-SHA256(data key, salt = stream id, info = "neurolace vault stream v1" 0 pid)
    nonce(i, f)  = u64 i | u32 f   with f = 0 (chunk), 1 (last chunk), 2 (header)

The per-stream subkey means nonces never repeat across streams (each stream id gives a new
key, and within a stream each (index, flag) is used once). Binding the index and the last
flag detects reordered and dropped chunks and a truncated stream (no chunk marked last); the
header hash and the subkey detect a chunk spliced from another stream; the participant id
in the key derivation detects a file moved to another participant. Every failure is an
:class:`~neurolace.privacy.errors.IntegrityError` naming the file and the chunk index.

A writer appends to ``<name>.partial``, ``fsync`` s every chunk, and at :meth:`VaultWriter.close`
seals an empty chunk marked last and renames the file to ``<name>``. A killed writer leaves
the ``.partial``: ``vault.reader(pid, name, strict=False)`` reads it up to its last whole
chunk (this is what the recorder relies on). The plaintext never touches the disk.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import threading
import json
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from neurolace.core.checks import check_int
from neurolace.core.errors import InvalidInputError
from neurolace.privacy.errors import (
    IntegrityError,
    KeyMissingError,
    PrivacyError,
    ShreddedError,
    WrongPassphraseError,
)
from neurolace.privacy.locking import locked
from neurolace.privacy.site import (
    KEYS_DIR,
    PARTIAL_SUFFIX,
    PASSPHRASE_ENV,
    SITE_FILE,
    VAULT_DIR,
    check_name,
    check_participant_id,
    make_private_dir,
    resolve_site_dir,
    write_secret_file,
)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "KEYRING_SERVICE",
    "MAGIC",
    "EntryMissingError",
    "Vault",
    "VaultEntry",
    "VaultReader",
    "VaultRef",
    "VaultWriter",
    "default_actor",
    "keyring_username",
    "resolve_passphrase",
]

MAGIC = b"NLVAULT\x01"
KEYRING_SERVICE = "neurolace"
DEFAULT_CHUNK_BYTES = 1 << 20
#: largest chunk plaintext a writer accepts and a reader believes (guards a corrupt length field)
MAX_CHUNK_BYTES = 1 << 30
_TAG_BYTES = 16
_STREAM_ID_BYTES = 16
_KEY_BYTES = 32
_LENGTH = struct.Struct("<I")
_NONCE = struct.Struct("<QI")
_INDEX_FLAG = struct.Struct("<QB")
_FLAG_CHUNK, _FLAG_LAST, _FLAG_HEADER = 0, 1, 2
_MAX_HEADER_BYTES = 1 << 20
_SITE_FORMAT = "neurolace-vault-site"
_KEY_FORMAT = "neurolace-vault-key"
_SITE_KEY_AD = b"neurolace vault site key v1"
_DATA_KEY_AD = b"neurolace vault data key v1\x00"
_STREAM_INFO = b"neurolace vault stream v1\x00"
_SCRYPT_N_RANGE = (2, 1 << 20)

AuditHook = Callable[..., object]
_SITE_THREAD_LOCK = threading.RLock()


class EntryMissingError(PrivacyError, FileNotFoundError):
    """The vault holds no entry of that name for the participant."""


@dataclass(frozen=True)
class VaultEntry:
    """One stream in a participant's vault directory (see :meth:`Vault.list`).

    Attributes
    ----------
    name : str
    kind : str
        What the stream holds (e.g. ``"record"``, ``"nwb"``, ``"scores"``); ``""`` when unreadable.
    size_bytes : int
        Size of the encrypted file on disk.
    created_ns : int
        Wall-clock creation time (ns since the epoch), from the authenticated header.
    complete : bool
        False for a ``.partial`` stream whose writer never closed (a killed run).
    problem : str
        Why the header could not be read ("" when it was).
    """

    name: str
    kind: str
    size_bytes: int
    created_ns: int
    complete: bool = True
    problem: str = ""


@dataclass(frozen=True)
class VaultRef:
    """A stream in a vault, where an API takes a file path or a vault entry (the recorder)."""

    vault: Vault
    participant_id: str
    name: str

    def __str__(self) -> str:
        return f"vault entry {self.participant_id}/{self.name} of site {self.vault.site_dir}"


def keyring_username(site_dir: str | os.PathLike) -> str:
    """The keyring user name under which a site's passphrase is kept: its absolute path."""
    return str(Path(site_dir).resolve())


def default_actor() -> str:
    """Who is acting when no one is named: the OS user name (``uid:N`` where it has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container without a passwd entry
        return f"uid:{os.getuid()}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text, what: str, path: Path) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"{path}: {what} is not valid base64") from exc


def _check_scrypt_n(value, name: str = "scrypt_n") -> int:
    number = check_int(value, name, minimum=_SCRYPT_N_RANGE[0], maximum=_SCRYPT_N_RANGE[1])
    if number & (number - 1):
        raise InvalidInputError(f"{name} must be a power of two, got {number}")
    return number


def _derive_wrapping_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=_KEY_BYTES, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _stream_subkey(data_key: bytes, stream_id: bytes, participant_id: str) -> ChaCha20Poly1305:
    key = HKDF(
        algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=stream_id,
        info=_STREAM_INFO + participant_id.encode("ascii"),
    ).derive(data_key)
    return ChaCha20Poly1305(key)


def _header_hash(prefix: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(prefix)
    return digest.finalize()


def _chunk_ad(stream_id: bytes, index: int, last: bool, header_hash: bytes) -> bytes:
    return stream_id + _INDEX_FLAG.pack(index, int(last)) + header_hash


def resolve_passphrase(site_dir: Path, passphrase: str | None) -> str:
    """``passphrase``, else ``$NEUROLACE_SITE_PASSPHRASE``, else the OS keyring.

    Raises
    ------
    KeyMissingError
        None of the three gives one (the message names the variable and the keyring entry).
    """
    if passphrase is not None:
        if not isinstance(passphrase, str) or not passphrase:
            raise InvalidInputError("passphrase must be a non-empty string")
        return passphrase
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    from_keyring = _keyring_passphrase(site_dir)
    if from_keyring:
        return from_keyring
    raise KeyMissingError(
        f"no passphrase for site {site_dir}: set {PASSPHRASE_ENV}, or keep it in the OS keyring "
        f"(service {KEYRING_SERVICE!r}, user {keyring_username(site_dir)!r}; "
        f"pip install 'neurolace[keyring]')"
    )


def _keyring_passphrase(site_dir: Path) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:  # the optional extra is not installed: the keyring is simply not a source
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, keyring_username(site_dir))
    except KeyringError:  # no usable backend on this machine
        return None


def _write_all(descriptor: int, parts: list[bytes]) -> None:
    total = sum(len(part) for part in parts)
    written = os.writev(descriptor, parts)
    if written != total:  # a short write (rare on regular files): finish it
        rest = b"".join(parts)[written:]
        while rest:
            rest = rest[os.write(descriptor, rest):]


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Vault:
    """An open site vault: the unwrapped site key and the site directory.

    Make one with :meth:`create` (a new site) or :meth:`open` (an existing one); see the
    module docstring for the key hierarchy and the stream format.

    Parameters
    ----------
    site_dir : Path
    site_key : bytes
    audit : callable, optional
        ``audit(action, *, actor, participant_id=None, **details)`` (the signature of
        ``AuditLog.append``), called for key operations.
    """

    def __init__(self, site_dir: Path, site_key: bytes, *, audit: AuditHook | None = None) -> None:
        self.site_dir = Path(site_dir)
        self._site_aead = ChaCha20Poly1305(site_key)
        self.audit = audit

    def __repr__(self) -> str:
        return f"Vault(site_dir={str(self.site_dir)!r}, participants={len(self.participants())})"

    # site ---------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        site_dir: str | os.PathLike | None,
        passphrase: str | None = None,
        *,
        scrypt_n: int = 2**15,
        scrypt_r: int = 8,
        scrypt_p: int = 1,
        audit: AuditHook | None = None,
        actor: str | None = None,
    ) -> Vault:
        """Create the vault of a new site: a random site key wrapped under the passphrase.

        Parameters
        ----------
        site_dir : path or None
            The site directory (None: :func:`~neurolace.privacy.site.default_site_dir`); made 0700.
        passphrase : str, optional
            None: from ``NEUROLACE_SITE_PASSPHRASE`` or the keyring, as :meth:`open`.
        scrypt_n, scrypt_r, scrypt_p : int
            scrypt cost (``n`` a power of two; memory is ``128 * r * n`` bytes).

        Raises
        ------
        InvalidInputError
            The site already has a vault (it is never replaced), or a parameter is out of range.
        """
        site_dir = resolve_site_dir(site_dir)
        n = _check_scrypt_n(scrypt_n)
        r = check_int(scrypt_r, "scrypt_r", minimum=1, maximum=64)
        p = check_int(scrypt_p, "scrypt_p", minimum=1, maximum=16)
        if (site_dir / SITE_FILE).exists():
            raise InvalidInputError(
                f"site {site_dir} already has a vault ({SITE_FILE}); a vault is never replaced"
            )
        passphrase = resolve_passphrase(site_dir, passphrase)
        make_private_dir(site_dir)
        make_private_dir(site_dir / KEYS_DIR)
        make_private_dir(site_dir / VAULT_DIR)
        salt = os.urandom(16)
        site_key = os.urandom(_KEY_BYTES)
        nonce = os.urandom(12)
        wrapped = ChaCha20Poly1305(_derive_wrapping_key(passphrase, salt, n, r, p)).encrypt(
            nonce, site_key, _SITE_KEY_AD
        )
        document = {
            "format": _SITE_FORMAT,
            "version": 1,
            "created_ns": time.time_ns(),
            "kdf": {"name": "scrypt", "n": n, "r": r, "p": p, "salt": _b64(salt)},
            "site_key": {"aead": "chacha20poly1305", "nonce": _b64(nonce), "wrapped": _b64(wrapped)},
            "shredded": [],
        }
        write_secret_file(site_dir / SITE_FILE, json.dumps(document, indent=1) + "\n", overwrite=False)
        vault = cls(site_dir, site_key, audit=audit)
        vault._audit("key_create", actor=actor, key="site")
        return vault

    @classmethod
    def open(
        cls,
        site_dir: str | os.PathLike | None,
        passphrase: str | None = None,
        *,
        audit: AuditHook | None = None,
        actor: str | None = None,
    ) -> Vault:
        """Open a site's vault: unwrap the site key with the passphrase.

        ``passphrase=None`` takes it from ``NEUROLACE_SITE_PASSPHRASE``, then from the OS keyring
        (service ``"neurolace"``, user :func:`keyring_username`) if the ``keyring`` package is installed.

        Raises
        ------
        KeyMissingError
            No vault in ``site_dir``, or no passphrase from any source (the message names both).
        WrongPassphraseError
            The passphrase does not unwrap the site key.
        IntegrityError
            ``site.json`` is not a vault site file.
        """
        site_dir = resolve_site_dir(site_dir)
        document = _read_site_file(site_dir)
        passphrase = resolve_passphrase(site_dir, passphrase)
        path = site_dir / SITE_FILE
        kdf, wrap = document["kdf"], document["site_key"]
        try:
            n = _check_scrypt_n(kdf["n"], f"{path}: kdf.n")
            r = check_int(kdf["r"], f"{path}: kdf.r", minimum=1, maximum=64)
            p = check_int(kdf["p"], f"{path}: kdf.p", minimum=1, maximum=16)
        except InvalidInputError as exc:
            raise IntegrityError(str(exc)) from None
        salt = _unb64(kdf["salt"], "kdf.salt", path)
        nonce = _unb64(wrap["nonce"], "site_key.nonce", path)
        wrapped = _unb64(wrap["wrapped"], "site_key.wrapped", path)
        if len(nonce) != 12:
            raise IntegrityError(f"{path}: site_key.nonce must be 12 bytes, got {len(nonce)}")
        try:
            site_key = ChaCha20Poly1305(_derive_wrapping_key(passphrase, salt, n, r, p)).decrypt(
                nonce, wrapped, _SITE_KEY_AD
            )
        except InvalidTag:
            if audit is not None:
                audit("access_refused", actor=actor or default_actor(), participant_id=None,
                      resource="site_key", reason="wrong passphrase", site=str(site_dir))
            raise WrongPassphraseError(
                f"the passphrase does not open the vault of site {site_dir} (or {path} was altered)"
            ) from None
        vault = cls(site_dir, site_key, audit=audit)
        vault._audit("key_open", actor=actor, key="site")
        return vault

    def _audit(self, action: str, *, actor: str | None, participant_id: str | None = None, **details) -> None:
        if self.audit is not None:
            self.audit(action, actor=actor or default_actor(), participant_id=participant_id,
                       site=str(self.site_dir), **details)

    def _site_lock(self):
        """Exclusive lock on the site's key operations, across threads and processes."""
        return locked(self.site_dir / (SITE_FILE + ".lock"), _SITE_THREAD_LOCK)

    def shredded(self) -> list[str]:
        """Participant ids whose data key was destroyed (read from ``site.json`` now)."""
        return list(_read_site_file(self.site_dir).get("shredded", []))

    # participants -------------------------------------------------------------------------------
    def _key_path(self, pid: str) -> Path:
        return self.site_dir / KEYS_DIR / f"{pid}.key"

    def participants(self) -> list[str]:
        """Participant ids with a data key, sorted (shredded ones are not listed)."""
        folder = self.site_dir / KEYS_DIR
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob("*.key"):
            with contextlib.suppress(InvalidInputError):
                found.append(check_participant_id(path.stem))
        return sorted(found)

    def add_participant(self, pid: str, *, actor: str | None = None) -> None:
        """Give participant ``pid`` a new random data key (wrapped by the site key).

        Raises
        ------
        InvalidInputError
            ``pid`` is malformed or already has a key.
        ShreddedError
            ``pid`` was shredded (an id is never reused).
        """
        pid = check_participant_id(pid)
        with self._site_lock():
            if pid in self.shredded():
                raise ShreddedError(
                    f"participant {pid} was shredded in site {self.site_dir}; an id is never reused"
                )
            path = self._key_path(pid)
            if path.exists():
                raise InvalidInputError(f"participant {pid} already has a data key in site {self.site_dir}")
            nonce = os.urandom(12)
            wrapped = self._site_aead.encrypt(
                nonce, os.urandom(_KEY_BYTES), _DATA_KEY_AD + pid.encode("ascii")
            )
            document = {"format": _KEY_FORMAT, "version": 1, "participant_id": pid,
                        "created_ns": time.time_ns(), "nonce": _b64(nonce), "wrapped": _b64(wrapped)}
            make_private_dir(self.site_dir / VAULT_DIR / pid)
            write_secret_file(path, json.dumps(document) + "\n", overwrite=False)
        self._audit("key_create", actor=actor, participant_id=pid, key="data")

    def _data_key(self, pid: str) -> bytes:
        pid = check_participant_id(pid)
        if pid in self.shredded():
            raise ShreddedError(
                f"participant {pid}'s data key was shredded in site {self.site_dir}: "
                f"their files can never be read"
            )
        path = self._key_path(pid)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyMissingError(
                f"participant {pid} has no data key in site {self.site_dir} ({path} is missing); "
                f"add them with `neurolace vault add-participant {pid}`"
            ) from None
        try:
            document = json.loads(text)
            nonce = _unb64(document["nonce"], "nonce", path)
            wrapped = _unb64(document["wrapped"], "wrapped", path)
            return self._site_aead.decrypt(nonce, wrapped, _DATA_KEY_AD + pid.encode("ascii"))
        except (ValueError, KeyError, TypeError, InvalidTag):
            raise IntegrityError(
                f"data key file {path} fails authentication: it was altered, or belongs to another "
                f"participant or site"
            ) from None

    def shred(self, pid: str, *, actor: str) -> None:
        """Destroy participant ``pid``'s data key (crypto-shredding): their files become unreadable.

        The id goes into ``site.json``'s ``"shredded"`` list first (so a crash half-way still
        refuses the files), then the key file is overwritten with random bytes, synced and unlinked.

        Raises
        ------
        ShreddedError
            Already shredded.
        KeyMissingError
            No such participant.
        """
        pid = check_participant_id(pid)
        if not isinstance(actor, str) or not actor:
            raise InvalidInputError(f"shred needs the actor who asked for it, got {actor!r}")
        with self._site_lock():
            document = _read_site_file(self.site_dir)
            if pid in document.get("shredded", []):
                raise ShreddedError(f"participant {pid} was already shredded in site {self.site_dir}")
            path = self._key_path(pid)
            if not path.exists():
                raise KeyMissingError(
                    f"participant {pid} has no data key in site {self.site_dir}; nothing to shred"
                )
            document.setdefault("shredded", []).append(pid)
            write_secret_file(self.site_dir / SITE_FILE, json.dumps(document, indent=1) + "\n")
            size = path.stat().st_size
            with open(path, "r+b") as stream:
                stream.write(os.urandom(max(size, 1)))
                stream.flush()
                os.fsync(stream.fileno())
            path.unlink()
            _fsync_dir(path.parent)
        self._audit("key_shred", actor=actor, participant_id=pid, key="data")

    # streams -----------------------------------------------------------------------------------
    def path(self, pid: str, name: str) -> Path:
        """The file of entry ``name`` of participant ``pid`` (checked: it cannot leave the vault)."""
        return self.site_dir / VAULT_DIR / check_participant_id(pid) / check_name(name)

    def ref(self, pid: str, name: str) -> VaultRef:
        """A :class:`VaultRef` to entry ``name`` of ``pid`` (names checked now)."""
        self.path(pid, name)
        return VaultRef(self, pid, name)

    def exists(self, pid: str, name: str) -> bool:
        """Whether entry ``name`` (finished or ``.partial``) exists for ``pid``."""
        path = self.path(pid, name)
        return path.exists() or path.with_name(path.name + PARTIAL_SUFFIX).exists()

    def writer(
        self,
        pid: str,
        name: str,
        *,
        kind: str,
        metadata: dict | None = None,
        fsync: bool = True,
        overwrite: bool = False,
    ) -> VaultWriter:
        """Start a new stream ``name`` for ``pid``; see :class:`VaultWriter`.

        Parameters
        ----------
        kind : str
            What the stream holds (``"record"``, ``"nwb"``, ...), 1 to 64 characters.
        metadata : dict, optional
            JSON-serialisable; sealed in the header with ``kind``.
        fsync : bool
            ``fsync`` after every chunk (survives a power cut, not only a kill).
        overwrite : bool
            Replace a finished entry of that name when the new one closes (default: refuse).

        Raises
        ------
        InvalidInputError
            The entry (or a ``.partial`` of it) exists, or an argument is malformed.
        KeyMissingError, ShreddedError
            ``pid`` has no data key.
        """
        path = self.path(pid, name)
        if not isinstance(kind, str) or not 1 <= len(kind) <= 64:
            raise InvalidInputError(f"kind must be a string of 1 to 64 characters, got {kind!r}")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInputError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        if not overwrite and path.exists():
            raise InvalidInputError(f"{self.ref(pid, name)} already exists; an entry is never overwritten")
        header = {"participant_id": pid, "name": name, "kind": kind, "metadata": metadata or {},
                  "created_ns": time.time_ns()}
        try:
            header_bytes = json.dumps(header, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from None
        if len(header_bytes) > _MAX_HEADER_BYTES:
            raise InvalidInputError(
                f"metadata is too large ({len(header_bytes)} bytes; at most {_MAX_HEADER_BYTES})"
            )
        data_key = self._data_key(pid)
        make_private_dir(path.parent)
        return VaultWriter(path, data_key, pid, header_bytes, fsync=fsync, overwrite=overwrite)

    def reader(self, pid: str, name: str, *, strict: bool = True) -> VaultReader:
        """Open stream ``name`` of ``pid`` (or its ``.partial`` if it never closed); see :class:`VaultReader`.

        Raises
        ------
        EntryMissingError
            No such entry.
        KeyMissingError, ShreddedError
            ``pid`` has no data key.
        IntegrityError
            The header fails authentication (altered, wrong key, another participant's file).
        """
        path = self.path(pid, name)
        if not path.exists():
            partial = path.with_name(path.name + PARTIAL_SUFFIX)
            if not partial.exists():
                raise EntryMissingError(f"{self.ref(pid, name)} does not exist ({path})")
            path = partial
        return VaultReader(path, self._data_key(pid), pid, name, strict=strict)

    def write_bytes(
        self, pid: str, name: str, data: bytes, *, kind: str, metadata: dict | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES, overwrite: bool = False,
    ) -> None:
        """Store ``data`` as stream ``name`` in chunks of ``chunk_bytes``, atomically (all or nothing)."""
        chunk_bytes = check_int(chunk_bytes, "chunk_bytes", minimum=1, maximum=MAX_CHUNK_BYTES)
        view = memoryview(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data)
        with self.writer(pid, name, kind=kind, metadata=metadata, overwrite=overwrite) as writer:
            for start in range(0, len(view), chunk_bytes):
                writer.write_chunk(view[start : start + chunk_bytes])

    def read_bytes(self, pid: str, name: str) -> bytes:
        """The whole plaintext of stream ``name`` (strict: any damage raises :class:`IntegrityError`)."""
        with self.reader(pid, name) as reader:
            return reader.read_all()

    def list(self, pid: str) -> list[VaultEntry]:
        """The streams of ``pid``, sorted by name; unfinished ones have ``complete=False``."""
        folder = self.site_dir / VAULT_DIR / check_participant_id(pid)
        data_key = self._data_key(pid)
        entries = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            name = path.name.removesuffix(PARTIAL_SUFFIX)
            try:
                check_name(name)
            except InvalidInputError:
                continue  # not a vault entry (e.g. a stray temporary file)
            try:
                with VaultReader(path, data_key, pid, name) as reader:
                    kind, created_ns, problem = reader.kind, reader.created_ns, ""
            except IntegrityError as exc:
                kind, created_ns, problem = "", 0, str(exc)
            entries.append(VaultEntry(name, kind, path.stat().st_size, created_ns,
                                      complete=not path.name.endswith(PARTIAL_SUFFIX), problem=problem))
        return entries


def _read_site_file(site_dir: Path) -> dict:
    path = site_dir / SITE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyMissingError(
            f"no vault in site {site_dir} ({path} is missing); "
            f"create one with `neurolace vault init --site {site_dir}`"
        ) from None
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path} is not valid JSON: {exc}") from None
    if (not isinstance(document, dict) or document.get("format") != _SITE_FORMAT
            or not isinstance(document.get("kdf"), dict) or not isinstance(document.get("site_key"), dict)
            or not isinstance(document.get("shredded", []), list)):
        raise IntegrityError(f"{path} is not a neurolace vault site file")
    if document.get("version") != 1:
        raise IntegrityError(
            f"{path}: vault version {document.get('version')!r} is not supported (this reads 1)"
        )
    return document


class VaultWriter:
    """Appends sealed chunks to a new stream; made by :meth:`Vault.writer`.

    Each :meth:`write_chunk` is one ``writev`` of ``u32 length | ciphertext`` and (by default)
    an ``fsync``, so a process killed at any instant keeps every chunk written before it.
    :meth:`close` seals an empty chunk marked last and renames ``<name>.partial`` to ``<name>``.
    As a context manager it closes on success and removes the ``.partial`` on an exception
    (a half-written stream is never published).

    Attributes
    ----------
    path : Path
        The finished file (``<name>``).
    chunks : int
        Data chunks written.
    plaintext_bytes : int
        Bytes given to :meth:`write_chunk`.
    """

    def __init__(
        self, path: Path, data_key: bytes, pid: str, header_bytes: bytes, *, fsync: bool, overwrite: bool
    ) -> None:
        self.path = path
        self.partial_path = path.with_name(path.name + PARTIAL_SUFFIX)
        self.fsync = bool(fsync)
        self._overwrite = overwrite
        self._stream_id = os.urandom(_STREAM_ID_BYTES)
        self._aead = _stream_subkey(data_key, self._stream_id, pid)
        sealed = self._aead.encrypt(_NONCE.pack(0, _FLAG_HEADER), header_bytes, MAGIC + self._stream_id)
        prefix = MAGIC + self._stream_id + _LENGTH.pack(len(sealed)) + sealed
        self._header_hash = _header_hash(prefix)
        try:
            self._fd: int | None = os.open(
                self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
            )
        except FileExistsError:
            raise InvalidInputError(
                f"{self.partial_path} exists: a write of {path.name} was interrupted; "
                f"read what it holds with reader(..., strict=False) and remove it before writing again"
            ) from None
        self.chunks = 0
        self.plaintext_bytes = 0
        self.bytes_written = len(prefix)
        _write_all(self._fd, [prefix])
        self._sync()

    def _sync(self) -> None:
        if self.fsync:
            os.fsync(self._fd)

    def _seal(self, data, last: bool) -> None:
        if self._fd is None:
            raise InvalidInputError(f"the writer of {self.path} is closed")
        if len(data) > MAX_CHUNK_BYTES:
            raise InvalidInputError(f"a chunk holds at most {MAX_CHUNK_BYTES} bytes, got {len(data)}")
        index = self.chunks
        ciphertext = self._aead.encrypt(
            _NONCE.pack(index, _FLAG_LAST if last else _FLAG_CHUNK), bytes(data),
            _chunk_ad(self._stream_id, index, last, self._header_hash),
        )
        _write_all(self._fd, [_LENGTH.pack(len(ciphertext)), ciphertext])
        self._sync()
        self.bytes_written += _LENGTH.size + len(ciphertext)
        self.chunks += 1

    def write_chunk(self, data: bytes) -> None:
        """Seal ``data`` as the next chunk, append it and (with ``fsync``) sync it to disk."""
        self._seal(data, last=False)
        self.plaintext_bytes += len(data)

    def close(self) -> None:
        """Seal the last chunk, sync, and publish the stream as ``<name>`` (idempotent)."""
        if self._fd is None:
            return
        self._seal(b"", last=True)
        self.chunks -= 1  # the terminating chunk is not a data chunk
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        if self._overwrite:
            os.replace(self.partial_path, self.path)
        else:
            try:
                os.link(self.partial_path, self.path)  # fails if the name appeared meanwhile
            except FileExistsError:
                raise InvalidInputError(
                    f"{self.path} appeared while it was written; the stream is kept in {self.partial_path}"
                ) from None
            self.partial_path.unlink()
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Stop writing and remove the ``.partial`` (nothing is published)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.partial_path.unlink()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> VaultWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VaultReader:
    """Reads and authenticates a stream chunk by chunk; made by :meth:`Vault.reader`.

    The header is checked when the reader is made. Iterating yields each data chunk's
    plaintext (the empty last chunk :meth:`VaultWriter.close` seals is not yielded).
    With ``strict`` (the default) a bad chunk or a missing last chunk raises
    :class:`IntegrityError` naming the file and the chunk index; with ``strict=False``
    iteration stops at the first bad chunk and :attr:`problem` says what follows it.

    Attributes
    ----------
    path : Path
    participant_id, name, kind : str
    metadata : dict
    created_ns : int
    chunks_read : int
        Data chunks authenticated so far.
    good_bytes : int
        Length of the file's authenticated prefix so far.
    discarded_bytes : int
        After a non-strict read stopped: bytes after ``good_bytes``.
    problem : str
        Why a non-strict read stopped ("" if the stream ended with its last chunk).
    complete : bool
        The last chunk was read.
    """

    def __init__(self, path: Path, data_key: bytes, pid: str, name: str, *, strict: bool = True) -> None:
        self.path = Path(path)
        self.strict = bool(strict)
        self._file = open(self.path, "rb")
        try:
            self._read_header(data_key, pid, name)
        except BaseException:
            self._file.close()
            raise
        self.chunks_read = 0
        self.discarded_bytes = 0
        self.problem = ""
        self.complete = False
        self._iterated = False

    def _fail(self, message: str) -> IntegrityError:
        return IntegrityError(f"{self.path}: {message}")

    def _read_header(self, data_key: bytes, pid: str, name: str) -> None:
        fixed = self._file.read(len(MAGIC) + _STREAM_ID_BYTES + _LENGTH.size)
        if fixed[: len(MAGIC) - 1] != MAGIC[:-1]:
            raise self._fail(f"not a neurolace vault stream (expected it to start with {MAGIC[:-1]!r})")
        if len(fixed) < len(MAGIC) + _STREAM_ID_BYTES + _LENGTH.size:
            raise self._fail("stream header is truncated")
        if fixed[len(MAGIC) - 1] != MAGIC[-1]:
            raise self._fail(f"vault stream version {fixed[len(MAGIC) - 1]} is not supported (this reads 1)")
        self.stream_id = fixed[len(MAGIC) : len(MAGIC) + _STREAM_ID_BYTES]
        (length,) = _LENGTH.unpack_from(fixed, len(MAGIC) + _STREAM_ID_BYTES)
        if not _TAG_BYTES <= length <= _MAX_HEADER_BYTES + _TAG_BYTES:
            raise self._fail(f"stream header length {length} is impossible (the file was altered)")
        sealed = self._file.read(length)
        if len(sealed) != length:
            raise self._fail("stream header is truncated")
        self._aead = _stream_subkey(data_key, self.stream_id, pid)
        try:
            text = self._aead.decrypt(_NONCE.pack(0, _FLAG_HEADER), sealed, MAGIC + self.stream_id)
        except InvalidTag:
            raise self._fail(
                f"stream header fails authentication: the file was altered, or it is not participant {pid}'s "
                f"(wrong key)"
            ) from None
        header = json.loads(text)
        if header.get("participant_id") != pid or header.get("name") != name:
            raise self._fail(
                f"stream belongs to {header.get('participant_id')}/{header.get('name')}, not {pid}/{name} "
                f"(a file was renamed or moved)"
            )
        self._header_hash = _header_hash(fixed + sealed)
        self.participant_id = pid
        self.name = name
        self.kind = header["kind"]
        self.metadata = header["metadata"]
        self.created_ns = int(header["created_ns"])
        self.good_bytes = len(fixed) + length

    @property
    def clean(self) -> bool:
        """The stream was read to its last chunk with no problem."""
        return self.complete and not self.problem

    def __iter__(self) -> Iterator[bytes]:
        if self._iterated:
            raise InvalidInputError(f"{self.path}: a VaultReader is read once; open a new one")
        self._iterated = True
        return self._chunks()

    def _stop(self, message: str, *, size: int) -> None:
        """Record why reading stopped; raise in strict mode."""
        self.problem = message
        self.discarded_bytes = size - self.good_bytes
        if self.strict:
            raise self._fail(message)

    def _chunks(self) -> Iterator[bytes]:
        size = os.fstat(self._file.fileno()).st_size
        index = 0
        while True:
            where = f"after chunk {index - 1}" if index else "after its header (no chunk)"
            prefix = self._file.read(_LENGTH.size)
            if not prefix:
                self._stop(f"stream truncated {where}: its last chunk is missing (the writer did not close)",
                           size=size)
                return
            if len(prefix) < _LENGTH.size:
                self._stop(f"stream truncated inside the length of chunk {index}", size=size)
                return
            (length,) = _LENGTH.unpack(prefix)
            if not _TAG_BYTES <= length <= MAX_CHUNK_BYTES + _TAG_BYTES:
                self._stop(f"chunk {index} has an impossible length {length} (the file was altered)",
                           size=size)
                return
            ciphertext = self._file.read(length)
            if len(ciphertext) != length:
                self._stop(f"stream truncated inside chunk {index} ({len(ciphertext)} of {length} bytes)",
                           size=size)
                return
            plaintext, last = self._open_chunk(index, ciphertext)
            if plaintext is None:
                self._stop(
                    f"chunk {index} fails authentication (a flipped bit, chunks reordered, "
                    f"a chunk from another stream, or a wrong key)", size=size,
                )
                return
            self.good_bytes += _LENGTH.size + length
            if last:
                self.complete = True
                if self.good_bytes != size:
                    self._stop(f"{size - self.good_bytes} bytes after the last chunk (chunk {index})",
                               size=size)
                if plaintext:
                    self.chunks_read += 1
                    yield plaintext
                return
            self.chunks_read += 1
            yield plaintext
            index += 1

    def _open_chunk(self, index: int, ciphertext: bytes) -> tuple[bytes | None, bool]:
        for last in (False, True):
            try:
                plaintext = self._aead.decrypt(
                    _NONCE.pack(index, _FLAG_LAST if last else _FLAG_CHUNK), ciphertext,
                    _chunk_ad(self.stream_id, index, last, self._header_hash),
                )
            except InvalidTag:
                continue
            return plaintext, last
        return None, False

    def read_all(self) -> bytes:
        """Every chunk's plaintext joined (strictness as the reader's)."""
        return b"".join(self)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VaultReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
