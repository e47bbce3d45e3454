"""Who is asking: signed expiring tokens, users with roles, and the small JSON store they live in.

Tokens are ``nl1.<payload>.<signature>``: the payload is base64url JSON
(``sub`` user name, ``role``, ``iat``/``exp`` in Unix seconds, ``jti`` a random
id) and the signature is HMAC-SHA256 over ``nl1.<payload>`` with a 32-byte
secret kept in the data directory (mode 0600). That is the whole of a JWT with
one fixed algorithm, written with the standard library's :mod:`hmac` because
it is twenty lines and needs no dependency; comparison uses
:func:`hmac.compare_digest`, and the algorithm is not read from the token, so
the classic "alg: none" and key-confusion attacks do not apply.

Passwords (optional: a dev user can live on printed tokens alone) are stored
as PBKDF2-HMAC-SHA256 with a random salt (:func:`hashlib.pbkdf2_hmac`).

The store is one JSON file, ``users.json``, in the data directory (default
``./out/web``), written atomically: users (name, role, participant id,
password hash) and participants (who may see their data, read by
:func:`neurolace.web.access.can_view`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.io.atomic import atomic_output

__all__ = [
    "DEFAULT_TOKEN_LIFETIME_S",
    "ROLES",
    "AuthError",
    "TokenClaims",
    "TokenSigner",
    "User",
    "WebStore",
    "check_password",
    "hash_password",
]

#: roles a user can have
ROLES = ("participant", "clinician", "researcher")

#: tokens last 12 hours unless asked otherwise (a clinic day)
DEFAULT_TOKEN_LIFETIME_S = 12 * 3600.0

_TOKEN_PREFIX = "nl1"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PBKDF2_ITERATIONS = 120_000


class AuthError(NeurolaceError):
    """A request that cannot be authenticated (status 401) or is not allowed (403).

    Attributes
    ----------
    status : int
        HTTP status the web layer answers with.
    reason : str
        What is wrong, safe to show to the caller.
    """

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


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


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_name(value: str, name: str) -> str:
    """A user or participant name: 1-64 characters of letters, digits, ``_ . -``."""
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise InvalidInputError(f"{name} must be 1-64 characters of letters, digits, '_', '.', '-'; got {value!r}")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    return role


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
        if not lifetime_s > 0:
            raise InvalidInputError(f"lifetime_s must be > 0 seconds, got {lifetime_s!r}")
        self._secret = secret
        self.lifetime_s = float(lifetime_s)

    def _signature(self, signed_part: str) -> str:
        return _b64encode(hmac.new(self._secret, signed_part.encode("ascii"), hashlib.sha256).digest())

    def issue(self, user: User, *, lifetime_s: float | None = None, now_s: float | None = None) -> str:
        """A token for ``user`` valid ``lifetime_s`` seconds from ``now_s`` (default: now)."""
        now_s = time.time() if now_s is None else float(now_s)
        lifetime_s = self.lifetime_s if lifetime_s is None else float(lifetime_s)
        payload = {"sub": user.name, "role": user.role, "iat": int(now_s), "exp": now_s + lifetime_s,
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
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError("malformed token payload") from exc
        now_s = time.time() if now_s is None else float(now_s)
        if now_s >= claims.expires_s:
            raise AuthError(f"token expired {now_s - claims.expires_s:.0f} s ago; log in again")
        return claims


def hash_password(password: str, *, iterations: int = _PBKDF2_ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`` of ``password``."""
    if not isinstance(password, str) or len(password) < 8:
        raise InvalidInputError("password must be at least 8 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (False for users without one)."""
    if not stored or not isinstance(password, str):
        return False
    try:
        scheme, iterations, salt, expected = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


class WebStore:
    """Users, participants' sharing choices and the token secret, in ``data_dir``.

    Parameters
    ----------
    data_dir : path
        Created if missing; holds ``users.json`` and ``secret.key``.
    token_lifetime_s : float
        Validity of the tokens :meth:`issue_token` hands out.
    """

    def __init__(self, data_dir: str | os.PathLike, *, token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.signer = TokenSigner(self._load_secret(), lifetime_s=token_lifetime_s)
        self._path = self.data_dir / "users.json"
        self._data = self._read()

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

    def _read(self) -> dict:
        if not self._path.exists():
            return {"users": {}, "participants": {}}
        try:
            data = json.loads(self._path.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{self._path} is not valid JSON: {exc}") from exc
        data.setdefault("users", {})
        data.setdefault("participants", {})
        return data

    def _write(self) -> None:
        with atomic_output(self._path) as temporary:
            temporary.write_text(json.dumps(self._data, indent=1, sort_keys=True))
            os.chmod(temporary, 0o600)

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
        with self._lock:
            self._data["users"][name] = record
            if participant_id is not None:
                self._data["participants"].setdefault(participant_id, {"shared_with_roles": ["clinician"]})
            self._write()
        return User(name, role, participant_id)

    def user(self, name: str) -> User | None:
        with self._lock:
            record = self._data["users"].get(name)
        if record is None:
            return None
        return User(name, record["role"], record.get("participant_id"))

    def users(self) -> list[User]:
        with self._lock:
            names = sorted(self._data["users"])
        return [self.user(name) for name in names]

    def login(self, name: str, password: str) -> User:
        """The user if ``password`` is theirs; :class:`AuthError` with one message for every failure."""
        with self._lock:
            record = self._data["users"].get(name) if isinstance(name, str) else None
        if record is None or not check_password(password, record.get("password")):
            raise AuthError("unknown user or wrong password")
        return User(name, record["role"], record.get("participant_id"))

    def issue_token(self, user: User, *, lifetime_s: float | None = None, now_s: float | None = None) -> str:
        return self.signer.issue(user, lifetime_s=lifetime_s, now_s=now_s)

    def authenticate(self, token: str | None, *, now_s: float | None = None) -> User:
        """The current user behind a valid token (a deleted user or changed role invalidates it)."""
        claims = self.signer.verify(token, now_s=now_s)
        user = self.user(claims.subject)
        if user is None or user.role != claims.role:
            raise AuthError("token no longer valid: the user was removed or changed role")
        return user

    # participants' sharing choices ------------------------------------------------------------
    def set_sharing(self, participant_id: str, shared_with_roles: list[str]) -> None:
        """Which roles (besides the participant) may see ``participant_id``'s data."""
        check_name(participant_id, "participant id")
        for role in shared_with_roles:
            check_role(role)
        with self._lock:
            self._data["participants"][participant_id] = {"shared_with_roles": sorted(set(shared_with_roles))}
            self._write()

    def sharing(self, participant_id: str) -> tuple[str, ...]:
        """Roles ``participant_id`` shares their data with (none for an unknown participant)."""
        with self._lock:
            record = self._data["participants"].get(participant_id)
        return tuple(record.get("shared_with_roles", ())) if record else ()

    def ensure_participant(self, participant_id: str, shared_with_roles: list[str]) -> None:
        """Register ``participant_id`` with these sharing choices unless already known."""
        with self._lock:
            if participant_id not in self._data["participants"]:
                self.set_sharing(participant_id, shared_with_roles)
