"""The audit log: who did what to whose data, append-only, hash-chained, with signed checkpoints.

Every access, export, consent change, key operation, login and stimulation command
becomes one line of JSON in ``site/audit.log``::

    {"action": "access", "actor": "dr_lee", "details": {"purpose": "clinician_view"},
     "hash": "9c1f...", "participant_id": "P001", "prev": "41aa...", "seq": 17, "time_ns": 1719...}

``hash`` is SHA-256 over the canonical JSON of the entry without ``hash`` (sorted keys,
no spaces, ASCII), and ``prev`` is the hash of the entry before (:data:`GENESIS_HASH` for
the first), so every entry vouches for all before it. Every ``checkpoint_every`` entries,
on :meth:`AuditLog.checkpoint` and on :meth:`AuditLog.close`, a ``checkpoint`` entry is
appended whose details hold the chain head (``head``, the previous entry's hash), the
count of entries before it and an Ed25519 signature over the whole entry (without its
hash). The signed head of the last checkpoint is also kept beside the log in
``audit.head`` (replaced atomically at each checkpoint, signed too): it is what
``neurolace audit head`` prints for safe keeping off the site.

Appends are thread- and process-safe: each one holds an exclusive ``flock`` on the log's
own append handle, reads what other processes appended since it last looked, and is
``fsync``'d before :meth:`AuditLog.append` returns.

What :func:`verify_log` detects, and says where (line and seq) and how:

- ``edited``: an entry whose content no longer matches its hash (any field changed).
- ``deleted``: an entry whose ``prev`` is not the hash of the entry before it (a gap in
  the seqs, or an entry removed and the rest renumbered). Reported at the entry after
  the hole.
- ``inserted``: an entry that is not part of the chain (a forged entry, or a copy of one
  elsewhere in the log: a replay).
- ``reordered``: a chained entry that stands out of its place in the file.
- ``bad_signature``: a checkpoint (or ``audit.head``) whose signature does not verify with
  the public key, i.e. it or anything before it was rewritten with the hashes recomputed.
- ``truncated``: entries removed from the end, up to and including the last checkpoint
  (the signed ``audit.head`` counts further than the log goes), or ``audit.head`` deleted
  from a log that holds checkpoints.
- ``malformed``: a line that is not an entry (not JSON, missing fields, cut short).
- ``unsigned_tail`` (only when ``require_signed_tail``): entries after the last checkpoint.

What it cannot detect:

- Changes to the unsigned tail (entries after the last checkpoint) made with the hashes
  recomputed, and whole entries removed from the end of that tail: nothing signed covers
  them yet. :attr:`AuditReport.unsigned_tail` says how many entries that is; checkpoint
  often (``checkpoint_every``) or call :meth:`AuditLog.checkpoint` to keep it short.
- Anything done by someone holding the signing key ``audit_signing.key``: they can
  rewrite the whole log, re-sign every checkpoint and the head. Only a head (and the
  public key) kept off the site exposes that: compare with ``verify_log(...,
  expected_head=...)`` (``neurolace audit verify LOG --head FILE``).
- A rollback of the log and ``audit.head`` together to an older, consistent state:
  the same off-site head exposes it.
- Rewritten entries before a checkpoint with the hashes recomputed are reported at the
  checkpoint (``bad_signature``), not at the entry that was changed.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from neurolace.core.checks import check_int
from neurolace.core.errors import InvalidInputError
from neurolace.io.atomic import OutputExistsError
from neurolace.privacy.errors import AuditError
from neurolace.privacy.site import (
    AUDIT_LOG_FILE,
    AUDIT_PUBLIC_KEY_FILE,
    AUDIT_SIGNING_KEY_FILE,
    SECRET_FILE_MODE,
    check_participant_id,
    make_private_dir,
    resolve_site_dir,
    write_secret_file,
)

__all__ = [
    "AUDIT_ACTIONS",
    "CHECKPOINT_ACTION",
    "GENESIS_HASH",
    "PROBLEM_KINDS",
    "AuditLog",
    "AuditProblem",
    "AuditReport",
    "entry_hash",
    "head_path_for",
    "read_entries",
    "read_head",
    "verify_head",
    "verify_log",
]

AUDIT_ACTIONS = (
    "access",
    "access_refused",
    "export",
    "consent_grant",
    "consent_withdraw",
    "key_create",
    "key_open",
    "key_shred",
    "login",
    "login_failed",
    "logout",
    "token_revoked",
    "stim_delivered",
    "stim_refused",
    "record_start",
    "record_end",
    "channel_setting",
)
"""The actions :meth:`AuditLog.append` accepts (``channel_setting``: a channel mask or threshold changed live)."""

CHECKPOINT_ACTION = "checkpoint"
"""The action of the signed checkpoint entries the log writes itself (never through ``append``)."""

GENESIS_HASH = "0" * 64
"""The ``prev`` of the first entry."""

PROBLEM_KINDS = (
    "edited", "deleted", "inserted", "reordered", "bad_signature", "truncated", "malformed", "unsigned_tail",
)

ENTRY_FIELDS = frozenset({"seq", "time_ns", "action", "actor", "participant_id", "details", "prev", "hash"})
HEAD_FIELDS = frozenset({"version", "log", "seq", "count", "hash", "time_ns", "key_id", "signature"})
MAX_ACTOR_CHARS = 200
_CHECKPOINT_CONTEXT = b"neurolace audit checkpoint v1\n"
_HEAD_CONTEXT = b"neurolace audit head v1\n"
_HEX = frozenset("0123456789abcdef")
_READ_BLOCK_BYTES = 1 << 16


# -- hashing and signing ---------------------------------------------------------------------------
def _canonical(value) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, ASCII only, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def _sha256_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


def entry_hash(entry: dict) -> str:
    """SHA-256 (hex) over the canonical JSON of ``entry`` without its ``hash`` field."""
    return _sha256_hex(_canonical({key: value for key, value in entry.items() if key != "hash"}))


def _checkpoint_message(entry: dict) -> bytes:
    """What a checkpoint's signature covers: the entry without ``hash`` and without the signature."""
    unsigned = {key: value for key, value in entry.items() if key != "hash"}
    unsigned["details"] = {key: value for key, value in entry["details"].items() if key != "signature"}
    return _CHECKPOINT_CONTEXT + _canonical(unsigned)


def _head_message(head: dict) -> bytes:
    return _HEAD_CONTEXT + _canonical({key: value for key, value in head.items() if key != "signature"})


def _key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _sha256_hex(raw)[:16]


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signature_ok(public_key: Ed25519PublicKey, signature_b64, message: bytes) -> bool:
    if not isinstance(signature_b64, str):
        return False
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _load_signing_key(key_path: Path) -> Ed25519PrivateKey:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AuditError(
            f"audit signing key {key_path} is readable by others (mode {mode:04o}); "
            f"run 'chmod 600 {key_path}' and keep it private"
        )
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise AuditError(
            f"audit signing key {key_path} is not an unencrypted PEM private key: {exc}"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"audit signing key {key_path} is not an Ed25519 key")
    return key


def _load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise AuditError(
            f"audit public key {path} not found (give the key the log was signed with)"
        ) from None
    except ValueError as exc:
        raise AuditError(f"audit public key {path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"audit public key {path} is not an Ed25519 key")
    return key


def _signing_key(key_path: Path) -> Ed25519PrivateKey:
    """Load the signing key at ``key_path``, creating it (0600) and its ``.pub`` when absent."""
    if not key_path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            write_secret_file(key_path, pem, overwrite=False)
        except OutputExistsError:  # another process created it meanwhile: use theirs
            pass
    key = _load_signing_key(key_path)
    public_path = key_path.with_suffix(".pub")
    pem = _public_pem(key.public_key())
    if not public_path.exists():
        write_secret_file(public_path, pem)
    elif public_path.read_bytes().strip() != pem.strip():
        raise AuditError(f"audit public key {public_path} does not belong to the signing key {key_path}")
    return key


def head_path_for(log_path: str | os.PathLike) -> Path:
    """Where the signed head of ``log_path`` lives: beside it, suffix ``.head`` (``audit.head``)."""
    return Path(log_path).with_suffix(".head")


# -- parsing ---------------------------------------------------------------------------------------
def _is_hash(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_entry(raw: bytes) -> dict | None:
    """The entry on one line, or None when the line is not a well-formed entry."""
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or set(entry) != ENTRY_FIELDS:
        return None
    pid = entry["participant_id"]
    if not (
        _is_int(entry["seq"]) and entry["seq"] >= 0 and _is_int(entry["time_ns"])
        and isinstance(entry["action"], str) and isinstance(entry["actor"], str)
        and (pid is None or isinstance(pid, str)) and isinstance(entry["details"], dict)
        and _is_hash(entry["prev"]) and _is_hash(entry["hash"])
    ):
        return None
    return entry


def _reverse_lines(descriptor: int, size: int) -> Iterator[bytes]:
    """The lines of the first ``size`` bytes of a file, last first (what follows the last newline first)."""
    position, pending = size, b""
    while position > 0:
        start = max(0, position - _READ_BLOCK_BYTES)
        pending = os.pread(descriptor, position - start, start) + pending
        position = start
        pieces = pending.split(b"\n")
        pending = pieces[0] if position > 0 else b""
        yield from reversed(pieces[1:] if position > 0 else pieces)


def read_entries(path: str | os.PathLike) -> Iterator[tuple[int, dict | None]]:
    """``(line number, entry)`` for each line of the log (entry None for a malformed line).

    Raises
    ------
    AuditError
        The log does not exist.
    """
    log_path = Path(path)
    if not log_path.exists():
        raise AuditError(f"audit log {log_path} not found")
    with open(log_path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, _parse_entry(raw)


def read_head(path: str | os.PathLike) -> dict:
    """A signed head file (``audit.head``, or a copy kept off the site) as a dict; signature not checked.

    Raises
    ------
    AuditError
        The file does not exist or is not a head.
    """
    head_file = Path(path)
    try:
        head = json.loads(head_file.read_bytes())
    except FileNotFoundError:
        raise AuditError(f"no signed head {head_file} (a log has one from its first checkpoint)") from None
    except (ValueError, RecursionError) as exc:
        raise AuditError(f"signed head {head_file} is not JSON: {exc}") from exc
    if not isinstance(head, dict) or set(head) != HEAD_FIELDS:
        raise AuditError(f"signed head {head_file} must hold the fields {', '.join(sorted(HEAD_FIELDS))}")
    return head


def verify_head(log_path: str | os.PathLike, *, public_key_path: str | os.PathLike | None = None) -> dict:
    """The signed head of the log at ``log_path`` after checking its signature (what to escrow off the site).

    Raises
    ------
    AuditError
        No head yet, or its signature does not verify with the public key
        (default: ``audit_signing.pub`` beside the log).
    """
    log = Path(log_path)
    head_file = head_path_for(log)
    head = read_head(head_file)
    key_path = Path(public_key_path) if public_key_path is not None else log.parent / AUDIT_PUBLIC_KEY_FILE
    if not _signature_ok(_load_public_key(key_path), head["signature"], _head_message(head)):
        raise AuditError(f"signed head {head_file} does not verify with the public key {key_path}")
    return head


# -- the log ---------------------------------------------------------------------------------------
class AuditLog:
    """An append-only, hash-chained audit log with Ed25519-signed checkpoints.

    Parameters
    ----------
    path : str or path-like
        The log file (JSON lines), created 0600 (its folder 0700) when absent.
    signing_key_path : str or path-like, optional
        The Ed25519 private key (PEM, mode 0600), created when absent with its public key
        beside it (suffix ``.pub``). Default: ``audit_signing.key`` beside the log.
    checkpoint_every : int
        A signed checkpoint after this many entries (1 to 1,000,000).

    Examples
    --------
    >>> log = AuditLog.for_site("out/site")                                 # doctest: +SKIP
    >>> log.append("access", actor="dr_lee", participant_id="P001")         # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        signing_key_path: str | os.PathLike | None = None,
        checkpoint_every: int = 64,
    ) -> None:
        self.checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=1, maximum=1_000_000)
        self.path = Path(path)
        if self.path.is_dir():
            raise InvalidInputError(f"audit log path {self.path} is a directory")
        self.head_path = head_path_for(self.path)
        self.signing_key_path = (
            Path(signing_key_path) if signing_key_path is not None
            else self.path.parent / AUDIT_SIGNING_KEY_FILE
        )
        self.public_key_path = self.signing_key_path.with_suffix(".pub")
        if not self.path.parent.exists():
            make_private_dir(self.path.parent)
        self._key = _signing_key(self.signing_key_path)
        self._key_id = _key_id(self._key.public_key())
        self._lock = threading.Lock()
        self._descriptor: int | None = None
        self._open()

    @classmethod
    def for_site(cls, site_dir: str | os.PathLike | None = None, **options) -> AuditLog:
        """The log of a site directory (``site/audit.log``, key ``site/audit_signing.key``)."""
        site = resolve_site_dir(site_dir)
        return cls(site / AUDIT_LOG_FILE, signing_key_path=site / AUDIT_SIGNING_KEY_FILE, **options)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, checkpoint_every={self.checkpoint_every})"

    # state --------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._descriptor = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, SECRET_FILE_MODE
        )
        self._inode = os.fstat(self._descriptor).st_ino
        self._pid = os.getpid()
        self._reader = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self._offset = -1  # nothing known yet: the first refresh scans the tail

    def _refresh(self) -> None:
        """Under the lock: learn the last seq, hash and checkpoint, reading only what is new."""
        size = os.fstat(self._reader).st_size
        if 0 <= self._offset <= size:
            lines = os.pread(self._reader, size - self._offset, self._offset).split(b"\n")
            for raw in lines:
                self._learn(_parse_entry(raw) if raw.strip() else None)
        else:
            self._last_seq, self._last_hash, self._last_checkpoint_seq = -1, GENESIS_HASH, -1
            found_last = False
            for raw in _reverse_lines(self._reader, size):
                entry = _parse_entry(raw) if raw.strip() else None
                if entry is None:
                    continue
                if not found_last:
                    self._last_seq, self._last_hash, found_last = entry["seq"], entry["hash"], True
                if entry["action"] == CHECKPOINT_ACTION:
                    self._last_checkpoint_seq = entry["seq"]
                    break
        self._partial_line = size > 0 and os.pread(self._reader, 1, size - 1) != b"\n"
        self._offset = size

    def _learn(self, entry: dict | None) -> None:
        if entry is None:
            return
        self._last_seq, self._last_hash = entry["seq"], entry["hash"]
        if entry["action"] == CHECKPOINT_ACTION:
            self._last_checkpoint_seq = entry["seq"]

    def _write(self, action: str, actor: str, participant_id: str | None, details: dict) -> dict:
        """Under the lock, after :meth:`_refresh`: chain, hash, append and fsync one entry."""
        entry = {
            "seq": self._last_seq + 1,
            "time_ns": time.time_ns(),
            "action": action,
            "actor": actor,
            "participant_id": participant_id,
            "details": details,
            "prev": self._last_hash,
        }
        if action == CHECKPOINT_ACTION:
            entry["details"] = {
                "head": self._last_hash, "count": entry["seq"], "key_id": self._key_id,
            }
            signature = self._key.sign(_checkpoint_message(entry))
            entry["details"]["signature"] = base64.b64encode(signature).decode("ascii")
        entry["hash"] = entry_hash(entry)
        line = _canonical(entry) + b"\n"
        if self._partial_line:  # a writer died mid-line: end that line so ours stands alone
            line = b"\n" + line
        written = os.write(self._descriptor, line)
        if written != len(line):
            raise AuditError(f"audit log {self.path}: short write ({written} of {len(line)} bytes)")
        os.fsync(self._descriptor)
        self._offset += len(line)
        self._partial_line = False
        self._learn(entry)
        if action == CHECKPOINT_ACTION:
            self._write_head(entry)
        return entry

    def _write_head(self, checkpoint: dict) -> None:
        head = {
            "version": 1,
            "log": self.path.name,
            "seq": checkpoint["seq"],
            "count": checkpoint["seq"] + 1,
            "hash": checkpoint["hash"],
            "time_ns": checkpoint["time_ns"],
            "key_id": self._key_id,
        }
        head["signature"] = base64.b64encode(self._key.sign(_head_message(head))).decode("ascii")
        write_secret_file(self.head_path, json.dumps(head, sort_keys=True, indent=1) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This object's thread lock and an exclusive flock on the log (other objects and processes)."""
        with self._lock:
            if self._descriptor is None:
                raise AuditError(f"audit log {self.path} is closed")
            try:
                inode = os.stat(self.path).st_ino
            except FileNotFoundError:
                inode = None
            # a moved or replaced log: follow the path; a forked child: its own handles, since a
            # flock belongs to the open file the parent shares and would not exclude the parent
            if inode != self._inode or os.getpid() != self._pid:
                self._close_descriptors()
                self._open()
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    # public -------------------------------------------------------------------------------------
    def append(self, action: str, *, actor: str, participant_id: str | None = None, **details) -> dict:
        """Append one entry, fsync'd; a signed checkpoint follows every ``checkpoint_every`` entries.

        Parameters
        ----------
        action : str
            One of :data:`AUDIT_ACTIONS`.
        actor : str
            Who did it (a user name, ``"cli"``, a service name); 1 to 200 characters.
        participant_id : str, optional
            Whose data it concerns.
        **details
            JSON-serialisable facts about the action (a purpose, a file name, a reason).

        Returns
        -------
        dict
            The entry as written (``seq``, ``time_ns``, ``action``, ``actor``, ``participant_id``,
            ``details``, ``prev``, ``hash``).

        Raises
        ------
        InvalidInputError
            An unknown action, an empty actor, a bad participant id, details that are not JSON.
        AuditError
            The log is closed or cannot be written.
        """
        if action not in AUDIT_ACTIONS:
            raise InvalidInputError(f"audit action must be one of {', '.join(AUDIT_ACTIONS)}; got {action!r}")
        if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR_CHARS:
            raise InvalidInputError(
                f"actor must be a non-empty string of at most {MAX_ACTOR_CHARS} characters, got {actor!r}"
            )
        if participant_id is not None:
            check_participant_id(participant_id)
        try:
            _canonical(details)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"audit details must be JSON-serialisable (no NaN): {exc}") from exc
        details = json.loads(_canonical(details))  # a private copy, as it will be read back
        with self._locked():
            self._refresh()
            entry = self._write(action, actor, participant_id, details)
            if self._last_seq - self._last_checkpoint_seq >= self.checkpoint_every:
                self._write(CHECKPOINT_ACTION, "audit", None, {})
        return entry

    def checkpoint(self) -> dict | None:
        """Append a signed checkpoint now and update ``audit.head``; None if nothing is new since the last."""
        with self._locked():
            self._refresh()
            if self._last_seq == self._last_checkpoint_seq or self._last_seq < 0:
                return None
            return self._write(CHECKPOINT_ACTION, "audit", None, {})

    def close(self) -> None:
        """Sign what was appended since the last checkpoint, then close the log (idempotent)."""
        if self._descriptor is None:
            return
        self.checkpoint()
        with self._lock:
            self._close_descriptors()

    def _close_descriptors(self) -> None:
        for descriptor in (self._descriptor, self._reader):
            if descriptor is not None:
                os.close(descriptor)
        self._descriptor = self._reader = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:  # no checkpoint here: never sign from a finaliser
        try:
            self._close_descriptors()
        except (AttributeError, OSError):
            pass


# -- verification ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditProblem:
    """One thing wrong with a log: where (1-based line, None for the head file), which seq, what."""

    line: int | None
    seq: int | None
    kind: str
    message: str


@dataclass(frozen=True)
class AuditReport:
    """The outcome of :func:`verify_log`: ``ok`` when no problem was found.

    ``unsigned_tail`` counts the entries after the last signed checkpoint: intact as far as
    the chain shows, but covered by no signature yet.
    """

    ok: bool
    n_entries: int
    n_checkpoints: int
    problems: list[AuditProblem] = field(default_factory=list)
    unsigned_tail: int = 0

    def to_dict(self) -> dict:
        """The report as plain JSON-ready data."""
        return asdict(self)


@dataclass
class _Line:
    line: int
    entry: dict
    hash_ok: bool

    @property
    def seq(self) -> int:
        return self.entry["seq"]

    @property
    def hash(self) -> str:
        return self.entry["hash"]


def _build_chain(lines: list[_Line], problems: list[AuditProblem], signed) -> list[_Line]:
    """Follow the ``prev`` links from the genesis; report where the chain breaks (``deleted``).

    Where several entries claim the same predecessor, the one the chain goes on from wins,
    then one vouched for by a signature (``signed(record)``), then the expected seq, then the
    nearest line after the predecessor.
    """
    successors: dict[str, list[_Line]] = {}
    for record in lines:
        successors.setdefault(record.entry["prev"], []).append(record)
    referenced = {record.entry["prev"] for record in lines}
    chain: list[_Line] = []
    used: set[int] = set()
    head_hash, head_seq, head_line = GENESIS_HASH, -1, 0
    while len(used) < len(lines):
        candidates = [record for record in successors.get(head_hash, ()) if record.line not in used]
        if candidates:
            chosen = min(candidates, key=lambda r: (
                r.hash not in referenced, not signed(r), r.seq != head_seq + 1, r.line < head_line, r.line))
        else:
            later = [r for r in lines if r.line not in used and r.seq > head_seq]
            if not later:
                break
            chosen = min(later, key=lambda r: (r.seq, r.line))
            if chosen.seq > head_seq + 1:
                missing = (f"seq {head_seq + 1}" if chosen.seq == head_seq + 2
                           else f"seqs {head_seq + 1} to {chosen.seq - 1}")
                problems.append(AuditProblem(chosen.line, chosen.seq, "deleted",
                                             f"{missing} missing before this entry"))
            elif chosen.hash_ok:
                problems.append(AuditProblem(
                    chosen.line, chosen.seq, "deleted",
                    f"its prev is not the hash of seq {head_seq}: an entry before it was removed or replaced",
                ))
        chain.append(chosen)
        used.add(chosen.line)
        head_hash, head_line = chosen.hash, chosen.line
        head_seq = chosen.seq if (chosen.hash_ok or chosen.seq == head_seq + 1) else head_seq + 1
    return chain


def _report_reordered(chain: list[_Line], problems: list[AuditProblem]) -> None:
    """Chained entries outside the longest run standing in file order are out of place."""
    # patience sorting: tails[k] is the chain index ending the lowest-lined increasing run of length k + 1
    tails: list[int] = []
    tail_lines: list[int] = []
    previous = [-1] * len(chain)
    for index, record in enumerate(chain):
        position = bisect.bisect_left(tail_lines, record.line)
        previous[index] = tails[position - 1] if position > 0 else -1
        if position == len(tails):
            tails.append(index)
            tail_lines.append(record.line)
        else:
            tails[position] = index
            tail_lines[position] = record.line
    in_order: set[int] = set()
    index = tails[-1] if tails else -1
    while index >= 0:
        in_order.add(index)
        index = previous[index]
    for index, record in enumerate(chain):
        if index not in in_order:
            before = f" (line {chain[index - 1].line})" if index > 0 else ""
            after = f"after seq {chain[index - 1].seq}{before}" if index > 0 else "first"
            problems.append(AuditProblem(record.line, record.seq, "reordered",
                                         f"entry is out of place: it belongs {after}"))


def _check_head(head: dict, name: str, public_key, chain: list[_Line], n_lines: int,
                problems: list[AuditProblem]) -> None:
    if public_key is not None and not _signature_ok(public_key, head.get("signature"), _head_message(head)):
        problems.append(AuditProblem(None, head.get("seq"), "bad_signature",
                                     f"{name} does not verify with the public key"))
        return
    if not _is_int(head.get("seq")) or not _is_hash(head.get("hash")):
        problems.append(AuditProblem(None, None, "malformed", f"{name} has no seq and hash"))
        return
    at = [record for record in chain if record.seq == head["seq"]]
    if not at:
        last = chain[-1].seq if chain else None
        ends = f"ends at seq {last}" if last is not None else "holds no entry"
        problems.append(AuditProblem(
            n_lines + 1, head["seq"], "truncated",
            f"{name} covers {head['seq'] + 1} entries through the checkpoint at seq {head['seq']}, "
            "but the log "
            f"{ends}: entries were removed from its end"))
    elif at[0].hash != head["hash"]:
        problems.append(AuditProblem(at[0].line, head["seq"], "edited",
                                     f"the entry at seq {head['seq']} is not the checkpoint {name} signed"))


def verify_log(
    path: str | os.PathLike,
    *,
    public_key_path: str | os.PathLike | None = None,
    require_signed_tail: bool = False,
    expected_head: dict | str | os.PathLike | None = None,
) -> AuditReport:
    """Walk an audit log and report every entry that was edited, deleted, inserted or reordered.

    Parameters
    ----------
    path : str or path-like
        The log.
    public_key_path : str or path-like, optional
        The Ed25519 public key (PEM) that checks the checkpoints and the head.
        Default: ``audit_signing.pub`` beside the log.
    require_signed_tail : bool
        Report the entries after the last checkpoint (``unsigned_tail``) as a problem.
    expected_head : dict or path, optional
        A head kept off the site (:func:`read_head` output, or its file): the log must
        still hold that checkpoint, unchanged.

    Returns
    -------
    AuditReport
        ``ok`` and the problems, each with its line, seq, kind and a message.

    Raises
    ------
    AuditError
        The log does not exist, or the public key is needed and missing or unreadable.
    """
    log_path = Path(path)
    lines: list[_Line] = []
    problems: list[AuditProblem] = []
    try:
        data = log_path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"audit log {log_path} not found") from None
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        entry = _parse_entry(raw)
        if entry is None:
            cut = number == len(raw_lines) and not data.endswith(b"\n")
            problems.append(AuditProblem(number, None, "malformed",
                                         "the last line is cut short" if cut else "not an audit entry"))
            continue
        lines.append(_Line(number, entry, entry_hash(entry) == entry["hash"]))

    head_file = head_path_for(log_path)
    head, head_problem = None, None
    if head_file.exists():
        try:
            head = read_head(head_file)
        except AuditError as exc:
            head_problem = AuditProblem(None, None, "malformed", str(exc))
    key_path = (Path(public_key_path) if public_key_path is not None
                else log_path.parent / AUDIT_PUBLIC_KEY_FILE)
    needs_key = (head_file.exists() or expected_head is not None
                 or any(record.entry["action"] == CHECKPOINT_ACTION for record in lines))
    public_key = _load_public_key(key_path) if needs_key else None
    signatures: dict[int, bool] = {}

    def signed(record: _Line) -> bool:
        """True for a checkpoint whose signature verifies with the public key."""
        if record.entry["action"] != CHECKPOINT_ACTION:
            return False
        if record.line not in signatures:
            signatures[record.line] = _signature_ok(
                public_key, record.entry["details"].get("signature"), _checkpoint_message(record.entry))
        return signatures[record.line]

    chain = _build_chain(lines, problems, signed)
    on_chain = {record.line for record in chain}
    by_hash = {record.hash: record for record in chain}
    for record in lines:
        if record.line not in on_chain:
            copy = by_hash.get(record.hash)
            problems.append(AuditProblem(record.line, record.seq, "inserted",
                                         f"a copy of line {copy.line}" if copy is not None
                                         else "not part of the hash chain (forged)"))
        elif not record.hash_ok:
            problems.append(AuditProblem(record.line, record.seq, "edited",
                                         "content does not match its hash"))
    _report_reordered(chain, problems)

    checkpoints = [index for index, record in enumerate(chain) if record.entry["action"] == CHECKPOINT_ACTION]
    last_signed = -1
    for index in checkpoints:
        record = chain[index]
        if signed(record):
            last_signed = index
        else:
            problems.append(AuditProblem(
                record.line, record.seq, "bad_signature",
                "checkpoint signature does not verify: it or the chain before it was rewritten"))
    unsigned_tail = len(chain) - 1 - last_signed
    if require_signed_tail and unsigned_tail > 0:
        first = chain[last_signed + 1]
        problems.append(AuditProblem(first.line, first.seq, "unsigned_tail",
                                     f"{unsigned_tail} entries from here on are covered by no checkpoint"))

    if head_problem is not None:
        problems.append(head_problem)
    elif head is not None:
        _check_head(head, head_file.name, public_key, chain, len(raw_lines), problems)
    elif checkpoints:
        problems.append(AuditProblem(None, None, "truncated",
                                     f"{head_file.name} is missing though the log holds checkpoints "
                                     "(deleted, perhaps to hide a cut)"))
    if expected_head is not None:
        head = expected_head if isinstance(expected_head, dict) else read_head(expected_head)
        _check_head(head, "the escrowed head", public_key, chain, len(raw_lines), problems)

    problems.sort(key=lambda p: (p.line if p.line is not None else 0, PROBLEM_KINDS.index(p.kind)))
    return AuditReport(ok=not problems, n_entries=len(lines), n_checkpoints=len(checkpoints),
                       problems=problems, unsigned_tail=unsigned_tail)
