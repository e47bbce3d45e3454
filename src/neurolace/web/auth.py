"""Who is asking: signed expiring tokens, users with roles, and the small JSON store they live in.

Tokens are ``nl1.<payload>.<signature>``: the payload is base64url JSON
(``sub`` user name, ``role``, ``iat``/``exp`` in Unix seconds, ``jti`` a random
id) and the signature is HMAC-SHA256 over ``nl1.<payload>`` with a 32-byte
secret kept in the data directory (mode 0600). That is the whole of a JWT with
one fixed algorithm, written with the standard library's :mod:`hmac` because
it is twenty lines and needs no dependency; comparison uses
:func:`hmac.compare_digest`, and the algorithm is not read from the token, so
the classic "alg: none" and key-confusion attacks do not apply.

Tokens live at most :data:`MAX_TOKEN_LIFETIME_S` (30 days); a longer, infinite
or NaN lifetime is refused where it is asked for. :meth:`WebStore.revoke_tokens`
ends every token of a user issued so far; :meth:`WebStore.revoke_token` ends one
token (logout) by its ``jti``, kept in the store with the token's expiry so the
set of revoked ids is pruned as they expire.

Passwords (optional: a dev user can live on printed tokens alone) are stored
as scrypt (:func:`hashlib.scrypt`, memory-hard; Percival, 2009, RFC 7914) with
a random salt, the parameters written in the hash string
(``scrypt$n=16384,r=8,p=1$<salt hex>$<hash hex>``), so they can be raised
later without breaking stored hashes. Hashes of the earlier PBKDF2-HMAC-SHA256
format still verify and are re-hashed with scrypt at the next successful
login. Every login runs one key derivation, with or without a password on
record and for unknown users alike (scrypt with the default parameters on a
dummy salt), so its timing does not tell which users exist or have
passwords. :class:`LoginLimiter` caps failed logins per user name and per
client address.

The store is one JSON file, ``users.json``, in the data directory (default
``./out/web``): users (name, role, participant id, password hash),
participants (who may see their data when no site's consent records govern,
read by :func:`neurolace.web.access.can_view`) and the ids of single revoked
tokens with their expiry. Every change is a read-modify-write
under an exclusive file lock (``users.json.lock``, :func:`fcntl.flock`) ending
in an atomic rename, so a ``neurolace serve --create-user`` beside a running
server loses nobody's change; the server notices the new file (inode, size,
mtime) at its next read and tells its listeners (the dashboard's open
WebSockets re-check their access then).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import numbers
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.io.atomic import atomic_output
from neurolace.privacy.locking import Listeners

__all__ = [
    "DEFAULT_TOKEN_LIFETIME_S",
    "MAX_TOKEN_LIFETIME_S",
    "ROLES",
    "AuthError",
    "LoginLimiter",
    "bearer_token",
    "request_user",
    "TokenClaims",
    "TokenSigner",
    "User",
    "WebStore",
    "check_lifetime",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "check_password",
    "default_data_dir",
    "hash_password",
    "needs_rehash",
]

#: roles a user can have
ROLES = ("participant", "clinician", "researcher")

#: tokens last 12 hours unless asked otherwise (a clinic day)
DEFAULT_TOKEN_LIFETIME_S = 12 * 3600.0
#: longest token life accepted (30 days): a project choice, so a leaked token dies within a month
MAX_TOKEN_LIFETIME_S = 30 * 24 * 3600.0

_TOKEN_PREFIX = "nl1"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: scrypt cost of new password hashes: N=2**14, r=8, p=1 (16 MiB, about 50 ms on one core; the
#: interactive-login parameters of Percival's scrypt paper and OWASP's password storage guidance)
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
#: largest scrypt parameters a stored hash may ask for (a hand-edited users.json cannot make a login cost 1 GB)
_SCRYPT_MAX_MEMORY_BYTES = 256 * 2**20
_SCRYPT_MAX_P = 16
_SCRYPT_HASH_BYTES = 32
#: iterations of the legacy PBKDF2 hashes (verified and migrated, never written)
_PBKDF2_ITERATIONS = 120_000


class AuthError(NeurolaceError):
    """A request that cannot be authenticated (401), is not allowed (403) or comes too often (429).

    Attributes
    ----------
    status : int
        HTTP status the web layer answers with.
    reason : str
        What is wrong, safe to show to the caller.
    retry_after_s : float or None
        For 429: seconds until the next attempt may succeed.
    """

    def __init__(self, reason: str, *, status: int = 401, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class User:
    """A dashboard user.

    Attributes
    ----------
    name : str
    role : {"participant", "clinician", "researcher"}
    participant_id : str or None
        For a participant: whose data is theirs.
    """

    name: str
    role: str
    participant_id: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "participant_id": self.participant_id}


@dataclass(frozen=True)
class TokenClaims:
    """The verified content of a token."""

    subject: str
    role: str
    issued_s: float
    expires_s: float
    token_id: str


def default_data_dir() -> Path:
    """``$NEUROLACE_WEB_DIR`` if set, else ``./out/web``: where users, the token secret and scores live."""
    return Path(os.environ.get("NEUROLACE_WEB_DIR", "out/web"))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when there is none)."""
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def request_user(store: WebStore, request) -> User:
    """The user of a request's bearer token, or an HTTP error (401 with ``WWW-Authenticate: Bearer``, ...)."""
    from fastapi import HTTPException

    try:
        return store.authenticate(bearer_token(request.headers.get("authorization")))
    except AuthError as exc:
        raise HTTPException(exc.status, detail=exc.reason, headers={"WWW-Authenticate": "Bearer"}) from exc


def check_name(value: str, name: str) -> str:
    """A user or participant name: 1-64 characters of letters, digits, ``_ . -``."""
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise InvalidInputError(f"{name} must be 1-64 characters of letters, digits, '_', '.', '-'; got {value!r}")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    return role


def check_lifetime(lifetime_s: float, name: str = "lifetime_s") -> float:
    """A token lifetime in seconds: a finite number in ``(0, MAX_TOKEN_LIFETIME_S]``."""
    if isinstance(lifetime_s, bool) or not isinstance(lifetime_s, numbers.Real):
        raise InvalidInputError(f"{name} must be a number of seconds, got {lifetime_s!r:.40}")
    value = float(lifetime_s)
    if not (math.isfinite(value) and 0 < value <= MAX_TOKEN_LIFETIME_S):
        raise InvalidInputError(f"{name} must be a finite number of seconds in (0, {MAX_TOKEN_LIFETIME_S:g}] "
                                f"(at most 30 days), got {value!r}")
    return value


class TokenSigner:
    """Issues and verifies ``nl1`` tokens with one HMAC-SHA256 secret.

    Parameters
    ----------
    secret : bytes
        At least 32 bytes.
    lifetime_s : float
        Default validity of issued tokens.
    """

    def __init__(self, secret: bytes, *, lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S) -> None:
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise InvalidInputError("token secret must be at least 32 bytes")
        self._secret = secret
        self.lifetime_s = check_lifetime(lifetime_s)

    def _signature(self, signed_part: str) -> str:
        return _b64encode(hmac.new(self._secret, signed_part.encode("ascii"), hashlib.sha256).digest())

    def issue(self, user: User, *, lifetime_s: float | None = None, now_s: float | None = None) -> str:
        """A token for ``user`` valid ``lifetime_s`` seconds (at most 30 days) from ``now_s`` (default: now)."""
        now_s = time.time() if now_s is None else float(now_s)
        lifetime_s = self.lifetime_s if lifetime_s is None else check_lifetime(lifetime_s)
        # iat to the microsecond, so a revocation in the same second tells earlier from later tokens
        payload = {"sub": user.name, "role": user.role, "iat": round(now_s, 6), "exp": now_s + lifetime_s,
                   "jti": secrets.token_hex(8)}
        signed_part = f"{_TOKEN_PREFIX}.{_b64encode(json.dumps(payload, separators=(',', ':')).encode())}"
        return f"{signed_part}.{self._signature(signed_part)}"

    def verify(self, token: str | None, *, now_s: float | None = None) -> TokenClaims:
        """The claims of a valid token; :class:`AuthError` (401) saying why otherwise."""
        if not token:
            raise AuthError("missing token: send 'Authorization: Bearer <token>' (get one from /api/login)")
        if not isinstance(token, str) or len(token) > 4096:
            raise AuthError("malformed token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_PREFIX:
            raise AuthError("malformed token: expected 'nl1.<payload>.<signature>'")
        signed_part = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._signature(signed_part), parts[2]):
            raise AuthError("invalid token signature")
        try:
            payload = json.loads(_b64decode(parts[1]))
            claims = TokenClaims(str(payload["sub"]), str(payload["role"]), float(payload["iat"]),
                                 float(payload["exp"]), str(payload["jti"]))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise AuthError("malformed token payload") from exc
        if not (math.isfinite(claims.issued_s) and math.isfinite(claims.expires_s)):
            raise AuthError("malformed token payload")
        now_s = time.time() if now_s is None else float(now_s)
        if now_s >= claims.expires_s:
            raise AuthError(f"token expired {now_s - claims.expires_s:.0f} s ago; log in again")
        return claims


def _scrypt_maxmem(n: int, r: int, p: int) -> int:
    """Memory limit :func:`hashlib.scrypt` must be given for these parameters (OpenSSL's own accounting)."""
    return 128 * r * (n + p + 2) + 2**16


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=_scrypt_maxmem(n, r, p),
                          dklen=_SCRYPT_HASH_BYTES)


def _check_scrypt_parameters(n: int, r: int, p: int) -> bool:
    """Whether ``(n, r, p)`` is a valid scrypt cost no larger than this store computes for one login."""
    return (n > 1 and n & (n - 1) == 0 and 1 <= r and 1 <= p <= _SCRYPT_MAX_P
            and 128 * r * (n + p) <= _SCRYPT_MAX_MEMORY_BYTES)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n=<n>,r=<r>,p=<p>$<salt hex>$<hash hex>`` of ``password`` (16-byte random salt, 32-byte hash).

    Parameters
    ----------
    password : str
        At least 8 characters.
    n, r, p : int
        scrypt's CPU/memory cost (a power of two), block size and parallelism; at least the
        defaults (:data:`SCRYPT_N`, :data:`SCRYPT_R`, :data:`SCRYPT_P`), at most 256 MiB of memory.
    """
    if not isinstance(password, str) or len(password) < 8:
        raise InvalidInputError("password must be at least 8 characters")
    for name, value in (("n", n), ("r", r), ("p", p)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"scrypt {name} must be an integer, got {value!r:.40}")
    if not (_check_scrypt_parameters(n, r, p) and n >= SCRYPT_N and r >= SCRYPT_R and p >= SCRYPT_P):
        raise InvalidInputError(f"scrypt parameters must be n a power of two >= {SCRYPT_N}, r >= {SCRYPT_R}, "
                                f"p in [{SCRYPT_P}, {_SCRYPT_MAX_P}], using at most 256 MiB; got n={n}, r={r}, p={p}")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password.encode(), salt, n, r, p)
    return f"scrypt$n={n},r={r},p={p}${salt.hex()}${digest.hex()}"


def _parse_hash(stored: str | None) -> tuple[str, tuple[int, ...], bytes, str] | None:
    """``(scheme, parameters, salt, expected hex)`` of a stored hash, None when it is not a usable one."""
    try:
        scheme, parameters_text, salt_hex, expected = (stored or "").split("$")
        salt = bytes.fromhex(salt_hex)
        if scheme == "scrypt":
            fields = dict(item.split("=", 1) for item in parameters_text.split(","))
            if set(fields) != {"n", "r", "p"}:
                return None
            parameters = (int(fields["n"]), int(fields["r"]), int(fields["p"]))
            return (scheme, parameters, salt, expected) if _check_scrypt_parameters(*parameters) else None
        if scheme == "pbkdf2_sha256":
            iterations = int(parameters_text)
            return (scheme, (iterations,), salt, expected) if 0 < iterations <= 10 * _PBKDF2_ITERATIONS else None
    except (ValueError, AttributeError):
        return None
    return None


#: salt of the key derivation run for users without a usable password hash (its result is thrown away)
_DUMMY_SALT = bytes(16)


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a stored hash: scrypt (:func:`hash_password`) or legacy PBKDF2.

    One key derivation runs on every call: the stored one, or, when there is no
    usable hash (unknown user, no password on record, a mangled string), scrypt
    with the default parameters on a dummy salt, so the answer takes as long for
    a user without a password as for a wrong one. False for a non-string password.
    """
    candidate = password.encode("utf-8", "replace") if isinstance(password, str) else b""
    parsed = _parse_hash(stored) if isinstance(password, str) else None
    if parsed is None:
        _scrypt(candidate, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return False
    scheme, parameters, salt, expected = parsed
    if scheme == "scrypt":
        digest = _scrypt(candidate, salt, *parameters)
    else:
        digest = hashlib.pbkdf2_hmac("sha256", candidate, salt, parameters[0])
    return hmac.compare_digest(digest.hex(), expected)


def needs_rehash(stored: str | None) -> bool:
    """Whether a stored hash should be replaced at the next successful login.

    True for legacy PBKDF2 hashes and for scrypt hashes weaker than the current
    defaults; False for None (no password on record) and current scrypt hashes.
    """
    if stored is None:
        return False
    parsed = _parse_hash(stored)
    if parsed is None or parsed[0] != "scrypt":
        return True
    n, r, p = parsed[1]
    return n < SCRYPT_N or r < SCRYPT_R or p < SCRYPT_P


class LoginLimiter:
    """Failed logins counted per user name and per client address over a sliding window.

    A name or an address with ``max_failures_*`` failures within the last
    ``window_s`` seconds is refused (:class:`AuthError`, status 429, with
    ``retry_after_s``) before its password is even checked; a successful
    login clears that name's failures. The defaults (10 failures per name,
    50 per address, per 5 minutes) are this project's choice; NIST SP 800-63B
    (Grassi et al., 2017, section 5.2.2) asks for no more than 100 consecutive
    failures on one account.

    Parameters
    ----------
    max_failures_per_user, max_failures_per_address : int
    window_s : float
    clock : callable returning seconds, optional
        Monotonic clock (tests pass a fake one).
    """

    _MAX_KEYS = 10_000

    def __init__(self, *, max_failures_per_user: int = 10, max_failures_per_address: int = 50,
                 window_s: float = 300.0, clock=time.monotonic) -> None:
        self.limits = {"user": int(max_failures_per_user), "address": int(max_failures_per_address)}
        self.window_s = float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: collections.OrderedDict[tuple[str, str], collections.deque] = collections.OrderedDict()

    def _recent(self, key: tuple[str, str], now_s: float) -> collections.deque:
        times = self._failures.get(key)
        if times is None:
            return collections.deque()
        while times and now_s - times[0] >= self.window_s:
            times.popleft()
        return times

    def check(self, user: str, address: str) -> None:
        """Raise :class:`AuthError` (429) if ``user`` or ``address`` used up its failures."""
        now_s = self._clock()
        with self._lock:
            for kind, value in (("user", user), ("address", address)):
                times = self._recent((kind, value), now_s)
                if len(times) >= self.limits[kind]:
                    retry_after_s = max(1.0, self.window_s - (now_s - times[0]))
                    raise AuthError(f"too many failed logins for this {kind}: try again in {retry_after_s:.0f} s",
                                    status=429, retry_after_s=retry_after_s)

    def failed(self, user: str, address: str) -> None:
        """Count one failed login of ``user`` from ``address``."""
        now_s = self._clock()
        with self._lock:
            for key in (("user", user), ("address", address)):
                times = self._recent(key, now_s)
                times.append(now_s)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self._MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, user: str) -> None:
        """Forget the failures of ``user`` (their address keeps its count)."""
        with self._lock:
            self._failures.pop(("user", user), None)


class WebStore:
    """Users, participants' sharing choices, revoked token ids and the token secret, in ``data_dir``.

    Parameters
    ----------
    data_dir : path
        Created if missing; holds ``users.json`` and ``secret.key``.
    token_lifetime_s : float
        Validity of the tokens :meth:`issue_token` hands out (at most :data:`MAX_TOKEN_LIFETIME_S`).
    """

    def __init__(self, data_dir: str | os.PathLike, *, token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S) -> None:
        check_lifetime(token_lifetime_s, "token_lifetime_s")
        self.data_dir = Path(data_dir)
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise InvalidInputError(f"data directory {self.data_dir} is a file; give a directory (it is created "
                                    "if missing)")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidInputError(f"cannot create data directory {self.data_dir}: a parent is a file") from exc
        self._lock = threading.RLock()
        self._listeners = Listeners()
        self._path = self.data_dir / "users.json"
        self._lock_path = self.data_dir / "users.json.lock"
        self._stamp = self._file_stamp()
        self._data = self._read()  # a corrupt store is refused before a secret is made
        self.signer = TokenSigner(self._load_secret(), lifetime_s=token_lifetime_s)

    # persistence ------------------------------------------------------------------------------
    def _load_secret(self) -> bytes:
        path = self.data_dir / "secret.key"
        if not path.exists():
            with atomic_output(path) as temporary:
                temporary.write_bytes(secrets.token_bytes(32))
                os.chmod(temporary, 0o600)
        secret = path.read_bytes()
        if len(secret) < 32:
            raise InvalidInputError(f"{path} holds {len(secret)} bytes; a token secret needs 32 (delete it to renew)")
        return secret

    def _file_stamp(self) -> tuple | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _read(self) -> dict:
        if not self._path.exists():
            return {"users": {}, "participants": {}, "revoked_tokens": {}}
        try:
            data = json.loads(self._path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidInputError(f"{self._path} is not valid JSON: {exc}") from exc
        if (not isinstance(data, dict) or not isinstance(data.setdefault("users", {}), dict)
                or not isinstance(data.setdefault("participants", {}), dict)
                or not isinstance(data.setdefault("revoked_tokens", {}), dict)):
            raise InvalidInputError(f"{self._path} must hold an object with 'users', 'participants' and "
                                    "'revoked_tokens' objects")
        return data

    def _write(self) -> None:
        with atomic_output(self._path) as temporary:
            temporary.write_text(json.dumps(self._data, indent=1, sort_keys=True))
            os.chmod(temporary, 0o600)

    @contextlib.contextmanager
    def _file_lock(self):
        """This process's lock and the exclusive lock on ``users.json.lock`` (other processes)."""
        with self._lock, open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _update(self, change) -> None:
        """Read ``users.json`` fresh, apply ``change(data)``, write it back, all under the file lock."""
        with self._file_lock():
            self._data = self._read()
            change(self._data)
            self._write()
            self._stamp = self._file_stamp()
        self._notify()

    def _current(self) -> dict:
        """The data, re-read first if another process replaced ``users.json`` since we last looked."""
        changed = False
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._data = self._read()
                self._stamp = stamp
                changed = True
        if changed:
            self._notify()
        return self._data

    def on_change(self, callback):
        """Call ``callback()`` after every change of users or sharing (ours, or another process's once seen).

        Returns a function that stops the calls.
        """
        return self._listeners.add(callback)

    def _notify(self) -> None:
        self._listeners.notify()

    # users ------------------------------------------------------------------------------------
    def create_user(self, name: str, role: str, *, participant_id: str | None = None,
                    password: str | None = None) -> User:
        """Add (or replace) a user; a participant needs ``participant_id`` (default: their name)."""
        check_name(name, "user name")
        check_role(role)
        if role == "participant":
            participant_id = check_name(participant_id or name, "participant id")
        elif participant_id is not None:
            raise InvalidInputError(f"only participants have a participant id; {name!r} is a {role}")
        record = {"role": role, "participant_id": participant_id,
                  "password": hash_password(password) if password else None}

        def change(data: dict) -> None:
            data["users"][name] = record
            if participant_id is not None:
                data["participants"].setdefault(participant_id, {"shared_with_roles": ["clinician"]})

        self._update(change)
        return User(name, role, participant_id)

    def _record(self, name: str) -> dict | None:
        if not isinstance(name, str):
            return None
        with self._lock:
            record = self._current()["users"].get(name)
        return record if isinstance(record, dict) else None

    def user(self, name: str) -> User | None:
        record = self._record(name)
        if record is None:
            return None
        return User(name, record.get("role"), record.get("participant_id"))

    def users(self) -> list[User]:
        with self._lock:
            names = sorted(self._current()["users"])
        return [self.user(name) for name in names]

    def login(self, name: str, password: str) -> User:
        """The user if ``password`` is theirs; :class:`AuthError` with one message for every failure.

        The key derivation runs once whatever the case (unknown user, no
        password on record, wrong or right password). A right password whose
        hash is legacy PBKDF2 (or weaker scrypt) is re-hashed with the current
        scrypt parameters (:func:`needs_rehash`), unless the password changed
        meanwhile.
        """
        record = self._record(name)
        stored = record.get("password") if record else None
        if not check_password(password, stored) or record is None:
            raise AuthError("unknown user or wrong password")
        if needs_rehash(stored):
            self._rehash(name, stored, hash_password(password))
        return User(name, record["role"], record.get("participant_id"))

    def _rehash(self, name: str, verified: str, rehashed: str) -> None:
        """Replace user ``name``'s password hash ``verified`` by ``rehashed`` (kept if it changed meanwhile)."""

        def change(data: dict) -> None:
            record = data["users"].get(name)
            if isinstance(record, dict) and record.get("password") == verified:
                record["password"] = rehashed

        self._update(change)

    def issue_token(self, user: User, *, lifetime_s: float | None = None, now_s: float | None = None) -> str:
        return self.signer.issue(user, lifetime_s=lifetime_s, now_s=now_s)

    def revoke_tokens(self, name: str, *, now_s: float | None = None) -> None:
        """End every token of user ``name`` issued until now (open WebSockets close at their next check)."""
        if self._record(name) is None:
            raise InvalidInputError(f"no user {name!r} in {self.data_dir}")
        not_before_s = time.time() if now_s is None else float(now_s)

        def change(data: dict) -> None:
            data["users"][name]["tokens_not_before_s"] = not_before_s

        self._update(change)

    def revoke_token(self, token: str, *, now_s: float | None = None) -> TokenClaims:
        """End this one token (logout); the user's other tokens stay valid. Returns its claims.

        The token's id (``jti``) is kept with its expiry; ids of tokens that have
        expired are pruned from the store on every revocation. A token that does
        not verify (forged, expired) raises :class:`AuthError`.
        """
        claims = self.signer.verify(token, now_s=now_s)
        now_s = time.time() if now_s is None else float(now_s)

        def change(data: dict) -> None:
            revoked = data["revoked_tokens"]
            for token_id in [k for k, expires_s in revoked.items()
                             if not isinstance(expires_s, (int, float)) or expires_s <= now_s]:
                del revoked[token_id]
            revoked[claims.token_id] = claims.expires_s

        self._update(change)
        return claims

    def revoked_token_ids(self) -> dict[str, float]:
        """Ids of single revoked tokens not yet pruned, with each one's expiry (Unix seconds)."""
        with self._lock:
            return dict(self._current()["revoked_tokens"])

    def authenticate(self, token: str | None, *, now_s: float | None = None) -> User:
        """The current user behind a valid token (a deleted user, changed role or revocation invalidates it)."""
        claims = self.signer.verify(token, now_s=now_s)
        with self._lock:
            data = self._current()
            record = data["users"].get(claims.subject)
            logged_out = claims.token_id in data["revoked_tokens"]
        if not isinstance(record, dict) or record.get("role") != claims.role:
            raise AuthError("token no longer valid: the user was removed or changed role")
        if claims.issued_s < float(record.get("tokens_not_before_s", 0.0)):
            raise AuthError("token revoked; log in again")
        if logged_out:
            raise AuthError("token revoked (logged out); log in again")
        return User(claims.subject, record["role"], record.get("participant_id"))

    def token_expires_s(self, token: str) -> float:
        """Unix time a (valid) token expires."""
        return self.signer.verify(token).expires_s

    # participants' sharing choices ------------------------------------------------------------
    def set_sharing(self, participant_id: str, shared_with_roles: list[str]) -> None:
        """Which roles (besides the participant) may see ``participant_id``'s data."""
        check_name(participant_id, "participant id")
        for role in shared_with_roles:
            check_role(role)

        def change(data: dict) -> None:
            data["participants"][participant_id] = {"shared_with_roles": sorted(set(shared_with_roles))}

        self._update(change)

    def sharing(self, participant_id: str) -> tuple[str, ...]:
        """Roles ``participant_id`` shares their data with (none for an unknown participant)."""
        with self._lock:
            record = self._current()["participants"].get(participant_id)
        return tuple(record.get("shared_with_roles", ())) if isinstance(record, dict) else ()

    def ensure_participant(self, participant_id: str, shared_with_roles: list[str]) -> None:
        """Register ``participant_id`` with these sharing choices unless already known."""
        check_name(participant_id, "participant id")
        for role in shared_with_roles:
            check_role(role)
        with self._lock:
            if participant_id in self._current()["participants"]:
                return

        def change(data: dict) -> None:
            data["participants"].setdefault(participant_id, {"shared_with_roles": sorted(set(shared_with_roles))})

        self._update(change)
