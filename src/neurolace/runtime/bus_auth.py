"""Who may speak on a shared bus: the session key, message tags, refusals, and Redis credentials.

A Redis server is reachable by every client that knows its address (and its
password, if it has one), so the Redis bus does not trust what it reads. Every
entry it publishes carries a tag, HMAC-SHA256 (RFC 2104, FIPS 180-4) under a
per-session key of 32 random bytes, over a domain string, the entry's Redis key
(prefix and stream name) and the whole wire message (:mod:`neurolace.runtime.
messages`, whose header holds the stream name and the per-stream sequence). A
reader recomputes the tag and refuses the entry when it is missing or differs
(``forged``: written without the key, altered, or moved to another stream), and
refuses a sequence number at or below the newest it accepted on that stream
(``replayed``: a genuine entry added again). Refusals are counted by reason
(:data:`REFUSAL_REASONS`) and reported as a ``bus_refused`` warning event the
first time and then at most once a second (:class:`RefusalCounter`).

The key comes from, in order: the bus's ``key`` argument, a key file (64 hex
digits, readable by its owner only), or the environment variable
:data:`BUS_KEY_ENV` (hex), which is how ``neurolace run --processes`` hands the
key it drew for a run to its child processes. Redis credentials come from the
URL (``redis://user:password@host:port``) or, so that no secret sits in a
session file or on a command line, from :data:`REDIS_USERNAME_ENV` and
:data:`REDIS_PASSWORD_ENV`; :func:`redact_url` is the only form of a URL that
is ever printed or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

from neurolace.core.errors import InvalidInputError, NeurolaceError

__all__ = [
    "whole_graph_bus_key",
    "BUS_KEY_ENV",
    "BusCredentialsError",
    "KEY_BYTES",
    "REDIS_PASSWORD_ENV",
    "REDIS_USERNAME_ENV",
    "REFUSAL_REASONS",
    "MessageAuthenticator",
    "RefusalCounter",
    "new_bus_key",
    "parse_bus_key",
    "read_key_file",
    "redact_url",
    "redis_credentials",
    "resolve_bus_key",
    "split_credentials",
    "write_key_file",
]

#: environment variable holding the session's bus key as 64 hex digits
BUS_KEY_ENV = "NEUROLACE_BUS_KEY"
#: environment variables holding the Redis user and password when the URL carries none
REDIS_USERNAME_ENV = "NEUROLACE_REDIS_USERNAME"
REDIS_PASSWORD_ENV = "NEUROLACE_REDIS_PASSWORD"
#: length of a bus key (and of a tag), bytes
KEY_BYTES = 32
#: why a reader refused a bus entry: the keys of every ``refused`` count
REFUSAL_REASONS = (
    "forged",    # no tag, or a tag that does not verify under the session key (also: moved to another stream)
    "replayed",  # a genuine entry whose sequence number this reader already accepted on that stream
)

_DOMAIN = b"neurolace-bus-entry-v1\x00"


def new_bus_key() -> bytes:
    """A fresh session key: 32 bytes from the operating system's random source."""
    return secrets.token_bytes(KEY_BYTES)


def parse_bus_key(text: str, *, source: str) -> bytes:
    """The key written as 64 hex digits in ``text``; ``source`` names where it came from in errors."""
    digits = text.strip()
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise InvalidInputError(
            f"the bus key in {source} must be {2 * KEY_BYTES} hex digits ({KEY_BYTES} random bytes), "
            f"got {len(digits)} characters that are not such a key"
        )
    return key


def read_key_file(path: str | os.PathLike) -> bytes:
    """Read a key file: 64 hex digits, a regular file that only its owner may read or write (0600)."""
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        raise InvalidInputError(
            f"bus key file {path} does not exist; create one with "
            f"neurolace.runtime.bus_auth.write_key_file({str(path)!r})"
        ) from None
    if not stat.S_ISREG(status.st_mode):
        raise InvalidInputError(f"bus key file {path} is not a regular file")
    if status.st_mode & 0o077:
        raise InvalidInputError(
            f"bus key file {path} may be read by other users (mode {stat.S_IMODE(status.st_mode):04o}); "
            f"run chmod 600 {path}"
        )
    return parse_bus_key(path.read_text(encoding="ascii", errors="replace"), source=f"key file {path}")


def write_key_file(path: str | os.PathLike, key: bytes | None = None) -> bytes:
    """Write ``key`` (default: a new one) to a new file of mode 0600; refuse an existing file."""
    key = new_bus_key() if key is None else bytes(key)
    if len(key) != KEY_BYTES:
        raise InvalidInputError(f"a bus key is {KEY_BYTES} bytes, got {len(key)}")
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInputError(f"bus key file {path} already exists; a key is never overwritten") from None
    with os.fdopen(descriptor, "w", encoding="ascii") as stream:
        stream.write(key.hex() + "\n")
    return key


def resolve_bus_key(
    *,
    key: bytes | None = None,
    key_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes | None:
    """The session key from ``key``, else ``key_file``, else :data:`BUS_KEY_ENV`; None when none is set."""
    if key is not None:
        key = bytes(key)
        if len(key) != KEY_BYTES:
            raise InvalidInputError(f"a bus key is {KEY_BYTES} bytes, got {len(key)}")
        return key
    if key_file is not None:
        return read_key_file(key_file)
    text = (os.environ if environ is None else environ).get(BUS_KEY_ENV)
    if text:
        return parse_bus_key(text, source=f"the environment variable {BUS_KEY_ENV}")
    return None


def whole_graph_bus_key(*, key_file: str | os.PathLike | None = None) -> bytes:
    """The key of a bus that only this process's graph uses: the configured one, else a fresh one.

    A run of the whole graph in one process (``neurolace run`` without ``--nodes``, the latency
    bench, the dashboard's live session) shares its key with nobody, so it may draw its own.
    """
    return resolve_bus_key(key_file=key_file) or new_bus_key()


class MessageAuthenticator:
    """Tags and checks bus entries with HMAC-SHA256 under one session key.

    The tag covers ``domain || len(channel) || channel || data``: ``channel``
    is the entry's Redis key (so an entry moved to another stream or session
    prefix does not verify) and ``data`` the whole wire message, whose header
    carries the stream name and the sequence number.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise InvalidInputError(f"a bus key is {KEY_BYTES} bytes, got {len(key)}")
        self._key = bytes(key)
        self._bases: dict[bytes, hmac.HMAC] = {}

    def tag(self, channel: bytes, data: bytes | memoryview) -> bytes:
        """The 32-byte tag of ``data`` published under ``channel``."""
        base = self._bases.get(channel)
        if base is None:
            base = hmac.new(self._key, _DOMAIN + struct.pack("<H", len(channel)) + channel, hashlib.sha256)
            self._bases[channel] = base
        mac = base.copy()
        mac.update(data)
        return mac.digest()

    def verify(self, channel: bytes, data: bytes | memoryview, tag: bytes | None) -> bool:
        """True when ``tag`` is the tag of ``data`` under ``channel`` (compared in constant time)."""
        if tag is None or len(tag) != KEY_BYTES:
            return False
        return hmac.compare_digest(self.tag(channel, data), tag)

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(key=<{KEY_BYTES} bytes>)"


class RefusalCounter:
    """Counts refused entries by reason and warns the first time, then at most once per ``interval_s``.

    Parameters
    ----------
    log : callable, optional
        ``log(event, **fields)`` (a run's :class:`~neurolace.runtime.graph.RunLog`); the warning is the
        event ``bus_refused`` with the reason, the stream and the counts so far.
    interval_s : float
        Least time between two warnings.
    """

    def __init__(self, log: Callable[..., None] | None = None, *, interval_s: float = 1.0) -> None:
        self.log = log
        self.interval_s = float(interval_s)
        self.counts = dict.fromkeys(REFUSAL_REASONS, 0)
        self.warnings = 0
        self._last_warning_s: float | None = None
        self._lock = threading.Lock()

    def refuse(self, reason: str, stream: str) -> None:
        if reason not in self.counts:
            raise ValueError(f"unknown refusal reason {reason!r}; expected one of {REFUSAL_REASONS}")
        now_s = time.monotonic()
        with self._lock:
            self.counts[reason] += 1
            warn = self._last_warning_s is None or now_s - self._last_warning_s >= self.interval_s
            if warn:
                self._last_warning_s = now_s
                self.warnings += 1
                counts = dict(self.counts)
        if warn and self.log is not None:
            self.log("bus_refused", reason=reason, stream=stream, refused=counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _with_userinfo(parts: urllib.parse.SplitResult, userinfo: str) -> str:
    """The URL of ``parts`` with ``userinfo`` (``user:password``, or empty for none) before the host."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    netloc = (f"{userinfo}@" if userinfo else "") + host + port
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (the only form of a bus URL that is shown)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return _with_userinfo(parts, f"{urllib.parse.unquote(parts.username or '')}:***")


def redis_credentials(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``username`` / ``password`` keyword arguments from the environment, for a URL that carries none."""
    environ = os.environ if environ is None else environ
    parts = urllib.parse.urlsplit(url)
    credentials = {}
    if parts.password is None and environ.get(REDIS_PASSWORD_ENV):
        credentials["password"] = environ[REDIS_PASSWORD_ENV]
        if not parts.username and environ.get(REDIS_USERNAME_ENV):
            credentials["username"] = environ[REDIS_USERNAME_ENV]
    return credentials


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without user and password, and the environment that carries them instead."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and not parts.username:
        return url, {}
    environment = {}
    if parts.password is not None:
        environment[REDIS_PASSWORD_ENV] = urllib.parse.unquote(parts.password)
    if parts.username:
        environment[REDIS_USERNAME_ENV] = urllib.parse.unquote(parts.username)
    return _with_userinfo(parts, ""), environment


class BusCredentialsError(NeurolaceError):
    """The Redis server refused the bus's user name or password (the message never shows the password)."""
