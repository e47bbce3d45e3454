"""The Redis Streams bus: nodes in separate processes or on separate machines.

Each stream ``node.port`` is a Redis stream ``{prefix}node.port`` whose
entries hold one field, ``m``, the message in the binary wire format of
:mod:`neurolace.runtime.messages` (44-byte header + raw array bytes; no JSON,
no pickle). ``XADD ... MAXLEN ~ N`` keeps each stream bounded, so the broker
drops the oldest entries, never the publisher; a reader that falls behind sees
a sequence gap and counts it as dropped.

A lost connection is re-established: a publish that fails is counted
(``publish_failures``) and the loop goes on; the next publish after
``reconnect_interval_s`` tries again. A reader retries on its next ``get``.
If the server restarted empty, readers start again from the new streams'
beginning. BRAND (the BrainGate real-time platform) uses the same Redis
Streams transport between its Python nodes.

A Redis server is shared with every client that can reach it, so the bus
authenticates (see :mod:`neurolace.runtime.bus_auth`): it logs in with the
user and password of the URL or of the environment, and every entry carries a
second field, ``t``, an HMAC-SHA256 tag under the session key bound to the
entry's Redis key and sequence number. A reader refuses, counts and reports
entries without a valid tag (``forged``) and sequence numbers it already
accepted (``replayed``); no node ever sees them. A bus without a key refuses to
start unless told ``authenticate=False``, which it warns about.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterable

from neurolace.core.errors import FormatError, InvalidInputError, NeurolaceError
from neurolace.runtime.bus import DEFAULT_QUEUE_LENGTH, Bus, Subscription
from neurolace.runtime.bus_auth import (
    BUS_KEY_ENV,
    REDIS_PASSWORD_ENV,
    BusCredentialsError,
    MessageAuthenticator,
    RefusalCounter,
    redact_url,
    redis_credentials,
    resolve_bus_key,
)
from neurolace.runtime.messages import Message, decode, encode, now_ns

__all__ = ["BusSecurityWarning", "RedisBus"]

_FIELD = b"m"
_TAG = b"t"


class BusSecurityWarning(UserWarning):
    """A Redis bus runs without message authentication (``authenticate=False``)."""


def _connection_errors():
    import redis

    return (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


class _RedisSubscription(Subscription):
    def __init__(self, bus: RedisBus, streams: Iterable[str], *, maxlen: int, mode: str) -> None:
        super().__init__(streams, maxlen=maxlen, mode=mode)
        self._bus = bus
        self._client = bus._new_client()
        self._keys = {bus.key(name): name for name in self.streams}
        #: newest sequence number accepted per stream (a sequence at or below it is a replay)
        self._accepted: dict[str, int] = {}
        self._last_ids: dict[bytes, bytes] = {}
        self._buffer: collections.deque[Message] = collections.deque()
        self.reconnects = 0
        self._connected = True
        self._start_positions()

    def _start_positions(self) -> None:
        """Read only what is published from now on (the newest existing entry id of each stream)."""
        for key in self._keys:
            try:
                newest = self._client.xrevrange(key, count=1)
            except _connection_errors():
                newest = []
                self._connected = False
            self._last_ids[key] = newest[0][0] if newest else b"0-0"
            # the next message expected: a gap from here on is a loss (trimmed by the broker)
            stream = self._keys[key]
            message = self._verified(key, newest[0][1])[0] if newest else None
            if message is not None or not newest:
                self._next_sequence[stream] = message.sequence + 1 if message is not None else 0

    def _verified(self, key: bytes, fields: dict) -> tuple[Message | None, str]:
        """The message of one entry of stream ``key`` and "", or None and why it is refused."""
        data = fields.get(_FIELD)
        authenticator = self._bus._authenticator
        if data is None:
            return None, "forged"
        if authenticator is not None and not authenticator.verify(key, data, fields.get(_TAG)):
            return None, "forged"
        try:
            message = decode(data)
        except FormatError:
            return None, "forged"
        if message.stream != self._keys[key]:
            return None, "forged"  # a tag binds the Redis key; this guards the unauthenticated bus too
        return message, ""

    def _admit(self, key: bytes, fields: dict) -> Message | None:
        """The message of a newly read entry, or None when it is refused (counted by reason)."""
        message, reason = self._verified(key, fields)
        stream = self._keys[key]
        if message is not None and self._bus._authenticator is not None:
            last = self._accepted.get(stream)
            if last is not None and message.sequence <= last:
                message, reason = None, "replayed"
            else:
                self._accepted[stream] = message.sequence
        if message is None:
            self.refused[reason] = self.refused.get(reason, 0) + 1
            self._bus.refusals.refuse(reason, stream)
        return message

    def _after_reconnect(self) -> None:
        """If the server lost its streams (restart without persistence), read the new ones from the start."""
        for key, last in self._last_ids.items():
            newest = self._client.xrevrange(key, count=1)
            if not newest or _id_tuple(newest[0][0]) < _id_tuple(last):
                self._last_ids[key] = b"0-0"

    def _fetch(self, block_ms: int | None, count: int) -> bool:
        try:
            if not self._connected:
                self._after_reconnect()
                self._connected = True
                self.reconnects += 1
                self._bus._note_reconnect()
            reply = self._client.xread(self._last_ids, count=count, block=block_ms)
        except _connection_errors():
            self._connected = False
            time.sleep(min((block_ms or 0) / 1e3, self._bus.reconnect_interval_s))
            return False
        for key, entries in reply or ():
            for entry_id, fields in entries:
                self._last_ids[key] = entry_id
                message = self._admit(key, fields)
                if message is None:
                    continue
                self._buffer.append(message)
                self._newest_sequence[message.stream] = message.sequence
                if len(self._buffer) > self.maxlen:
                    self._buffer.popleft()  # counted from the sequence gap
        return bool(reply)

    def get(self, timeout_s: float | None = None) -> Message | None:
        if not self._buffer and not self.closed:
            block_ms = 0 if timeout_s is None else max(int(timeout_s * 1e3), 1) if timeout_s > 0 else None
            self._fetch(block_ms, count=self.maxlen)
        if not self._buffer:
            return None
        message = self._buffer.popleft()
        message.received_ns = now_ns()
        self._account(message)
        return message

    def latest(self) -> Message | None:
        newest: Message | None = None
        try:
            for key in self._keys:
                entries = self._client.xrevrange(key, count=1)
                if entries and entries[0][0] != self._last_ids.get(key):
                    self._last_ids[key] = entries[0][0]
                    candidate = self._admit(key, entries[0][1])
                    if candidate is None:
                        continue
                    if newest is None or candidate.timestamp_ns > newest.timestamp_ns:
                        newest = candidate
        except _connection_errors():
            self._connected = False
            return None
        if newest is None:
            return None
        newest.received_ns = now_ns()
        self._buffer.clear()
        self.received += 1
        self._next_sequence[newest.stream] = newest.sequence + 1
        return newest

    def pending(self) -> int:
        return len(self._buffer)

    def close(self) -> None:
        self.closed = True
        try:
            self._client.close()
        except _connection_errors():
            pass


def _id_tuple(entry_id: bytes) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split(b"-")
    return int(milliseconds), int(sequence)


class RedisBus(Bus):
    """A bus on a Redis server (``redis://[user:password@]host:port[/db]``); needs the ``redis`` package.

    Parameters
    ----------
    url : str
        Server URL. A user and password in it, or else in the environment variables
        ``NEUROLACE_REDIS_USERNAME`` / ``NEUROLACE_REDIS_PASSWORD``, log in to the server;
        :attr:`url` keeps the URL with the password replaced by ``***``.
    prefix : str
        Key prefix of every stream (one namespace per session).
    stream_maxlen : int
        Approximate entries kept per stream (``XADD MAXLEN ~``).
    reconnect_interval_s : float
        Least time between two reconnection attempts of the publisher.
    connect_timeout_s : float
        Fail at start-up if the server does not answer within this time.
    key : bytes, optional
        The session key, 32 bytes (see :mod:`neurolace.runtime.bus_auth`).
    key_file : path, optional
        A file holding the key as 64 hex digits, mode 0600 (used when ``key`` is not given).
    authenticate : bool
        Tag and check every entry (default). Without ``key`` or ``key_file`` the key is read from
        ``NEUROLACE_BUS_KEY``; with none of them the bus refuses to start. ``False`` runs without
        message authentication and warns (:class:`BusSecurityWarning`).
    log : callable, optional
        ``log(event, **fields)``: where the ``bus_refused`` warning events go.

    Attributes
    ----------
    refusals : RefusalCounter
        Entries refused by every subscription of this bus, by reason (``forged``, ``replayed``).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "neurolace:",
        stream_maxlen: int = 10_000,
        reconnect_interval_s: float = 0.2,
        connect_timeout_s: float = 2.0,
        key: bytes | None = None,
        key_file: str | os.PathLike | None = None,
        authenticate: bool = True,
        log: Callable[..., None] | None = None,
    ) -> None:
        super().__init__()
        try:
            import redis
        except ImportError as exc:  # optional dependency
            raise InvalidInputError("the Redis bus needs the redis package: pip install 'redis>=5'") from exc
        self.url = redact_url(url)
        self._url = url
        self._credentials = redis_credentials(url)
        self.refusals = RefusalCounter(log)
        self.authenticated = bool(authenticate)
        self._authenticator = self._make_authenticator(key, key_file) if self.authenticated else None
        if not self.authenticated:
            text = (
                f"the Redis bus {self.url} runs without message authentication (authenticate = false): "
                "any client that can reach the server can publish messages the nodes will act on"
            )
            warnings.warn(text, BusSecurityWarning, stacklevel=2)
            if log is not None:
                log("bus_unauthenticated", bus=self.url)
        self.prefix = prefix
        self.stream_maxlen = int(stream_maxlen)
        self.reconnect_interval_s = float(reconnect_interval_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self._redis = redis
        self._client = self._new_client()
        try:
            self._client.ping()
        except redis.AuthenticationError as exc:
            raise self._credentials_error(exc) from None
        except _connection_errors() as exc:
            raise NeurolaceError(f"cannot reach the Redis server at {self.url}: {exc}") from None
        self._subscriptions: list[_RedisSubscription] = []
        self.publish_failures = 0
        self.reconnects = 0
        self._down_since: float | None = None
        self._next_attempt = 0.0
        self._stats_lock = threading.Lock()

    def _make_authenticator(self, key, key_file) -> MessageAuthenticator:
        key = resolve_bus_key(key=key, key_file=key_file)
        if key is None:
            raise NeurolaceError(
                f"the Redis bus {self.url} has no message key, so it cannot tell the session's messages "
                f"from forged ones: set {BUS_KEY_ENV} to 64 hex digits (the same in every process of "
                "the session), or name a key file in the session ([bus] key_file), or set "
                "[bus] authenticate = false to run without message authentication"
            )
        return MessageAuthenticator(key)

    def _credentials_error(self, exc: Exception) -> BusCredentialsError:
        parts = urllib.parse.urlsplit(self._url)
        user = parts.username or self._credentials.get("username") or "default"
        if parts.password is None and "password" not in self._credentials:
            return BusCredentialsError(
                f"the Redis server at {self.url} requires a password: give it in the URL "
                f"(redis://USER:PASSWORD@HOST:PORT) or in the environment variable {REDIS_PASSWORD_ENV}"
            )
        return BusCredentialsError(
            f"the Redis server at {self.url} refused the user {user!r} and its password: {exc}"
        )

    def _new_client(self):
        return self._redis.Redis.from_url(
            self._url,
            socket_connect_timeout=self.connect_timeout_s,
            socket_timeout=None,
            health_check_interval=0,
            **self._credentials,
        )

    def key(self, stream: str) -> bytes:
        return (self.prefix + stream).encode()

    def _note_reconnect(self) -> None:
        with self._stats_lock:
            self.reconnects += 1

    def publish(self, message: Message) -> Message:
        message.sequence = self._next_sequence(message.stream)
        if self._down_since is not None and time.monotonic() < self._next_attempt:
            self.publish_failures += 1  # server down: count and move on, never stall the loop
            return message
        message.timestamp_ns = now_ns()
        data = encode(message)
        key = self.key(message.stream)
        fields = {_FIELD: data}
        if self._authenticator is not None:
            fields[_TAG] = self._authenticator.tag(key, data)
        try:
            self._client.xadd(key, fields, maxlen=self.stream_maxlen, approximate=True)
        except _connection_errors():
            self.publish_failures += 1
            if self._down_since is None:
                self._down_since = time.monotonic()
            self._next_attempt = time.monotonic() + self.reconnect_interval_s
            return message
        if self._down_since is not None:
            self._down_since = None
            self._note_reconnect()
        return message

    def subscribe(
        self, streams: str | Iterable[str], *, maxlen: int = DEFAULT_QUEUE_LENGTH, mode: str = "queue"
    ) -> Subscription:
        names = [streams] if isinstance(streams, str) else list(streams)
        subscription = _RedisSubscription(self, names, maxlen=maxlen, mode=mode)
        self._subscriptions.append(subscription)
        return subscription

    def barrier(self, name: str, parties: int, *, timeout_s: float = 60.0) -> None:
        """Wait until ``parties`` processes called ``barrier(name, ...)`` on this server."""
        key = self.key(f"barrier:{name}")
        self._client.incr(key)
        self._client.expire(key, max(int(timeout_s) * 2, 60))
        deadline = time.monotonic() + timeout_s
        while int(self._client.get(key) or 0) < parties:
            if time.monotonic() > deadline:
                arrived = int(self._client.get(key) or 0)
                raise NeurolaceError(
                    f"only {arrived} of {parties} processes reached barrier {name!r} within {timeout_s:g} s"
                )
            time.sleep(0.005)

    def delete_streams(self, streams: Iterable[str]) -> None:
        """Remove streams from the server (start of a fresh session)."""
        keys = [self.key(name) for name in streams]
        if keys:
            self._client.delete(*keys)

    def stats(self) -> dict:
        return {
            "publish_failures": self.publish_failures,
            "reconnects": self.reconnects,
            "subscriber_reconnects": sum(s.reconnects for s in self._subscriptions),
            "authenticated": self.authenticated,
            "refused": dict(self.refusals.counts),
        }

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        try:
            self._client.close()
        except _connection_errors():
            pass
