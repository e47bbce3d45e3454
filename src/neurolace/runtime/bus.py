"""Buses carry messages between nodes: the in-process bus and the common interface.

A bus has streams named ``"node.port"``. :meth:`Bus.publish` stamps a message
with its per-stream sequence number and publish time; :meth:`Bus.subscribe`
returns a :class:`Subscription` on one or more streams that any thread can
read. A subscription never blocks the publisher: when its queue is full the
oldest message is dropped and counted (``dropped``), so a slow reader (a
dashboard, a recorder on a slow disk) cannot stall the loop.

Each queue-mode subscription also measures its **backlog** per stream
(:class:`~neurolace.runtime.latency.BacklogMeter`): when the reader takes a
message, the depth is the newest sequence number the subscription has seen on
that stream minus the one taken, i.e. the messages still waiting behind it
(sampled at most every 5 ms). :meth:`Subscription.backlog` reports depth
percentiles, the fitted slope in messages per second and whether the queue is
``steady``, ``growing`` or ``overflowing``; a reader that keeps up reports a
depth near 0 and a slope near 0. On Redis the depth counts what the last read
fetched from the broker, which takes everything waiting, up to ``maxlen``.

Two reading modes:

- ``"queue"``: every message in order (a decoder reading features);
- ``"latest"``: only the newest message matters (a participant watching the
  cursor, a dashboard); older ones are superseded, which is not a loss.

:func:`open_bus` picks the implementation from a URL: ``None`` or
``"inprocess://"`` for :class:`InProcessBus`, ``"redis://host:port"`` for
:class:`~neurolace.runtime.redis_bus.RedisBus`.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Iterable
from typing import Self

from neurolace.core.checks import check_in, check_int
from neurolace.core.errors import InvalidInputError
from neurolace.runtime.latency import BacklogMeter
from neurolace.runtime.messages import Message, now_ns

__all__ = ["DEFAULT_QUEUE_LENGTH", "Bus", "InProcessBus", "Subscription", "open_bus", "wait_until_ns"]

#: messages a subscription holds before it drops the oldest (about 1 s of 1 ms raw blocks)
DEFAULT_QUEUE_LENGTH = 1024


class Subscription:
    """A reader of one or more streams.

    Attributes
    ----------
    streams : tuple of str
        The streams read.
    dropped : int
        Messages lost: dropped from a full queue, or missing from the sequence
        numbers (a message dropped upstream or by the broker).
    received : int
        Messages handed to the reader.
    refused : dict of str to int
        Entries refused by reason (``forged``, ``replayed``; see
        :mod:`neurolace.runtime.bus_auth`); only a shared bus refuses any.
    """

    def __init__(self, streams: Iterable[str], *, maxlen: int, mode: str) -> None:
        self.streams = tuple(streams)
        if not self.streams:
            raise InvalidInputError("a subscription needs at least one stream")
        self.maxlen = check_int(maxlen, "maxlen", minimum=1)
        self.mode = check_in(mode, "mode", ("queue", "latest"))
        self.dropped = 0
        self.received = 0
        self.superseded = 0
        self.refused: dict[str, int] = {}
        #: messages put in this queue (counted by the in-process bus, which the stepped clock needs)
        self.delivered = 0
        self._next_sequence: dict[str, int] = {}
        #: newest sequence number seen per stream (set as messages enter the queue)
        self._newest_sequence: dict[str, int] = {}
        self._backlog = {stream: BacklogMeter() for stream in self.streams}
        #: count sequence gaps as losses (a broker that trims streams); the in-process bus counts at the queue
        self._count_gaps = True
        self.closed = False

    def _account(self, message: Message) -> None:
        """Count a sequence gap on ``message``'s stream as dropped messages."""
        expected = self._next_sequence.get(message.stream)
        if self._count_gaps and expected is not None and message.sequence > expected:
            if self.mode == "queue":
                self.dropped += message.sequence - expected
            else:
                self.superseded += message.sequence - expected
        self._next_sequence[message.stream] = message.sequence + 1
        self.received += 1
        newest = self._newest_sequence.get(message.stream, message.sequence)
        self._backlog[message.stream].note(message.received_ns, newest - message.sequence)

    def backlog(self) -> dict[str, dict]:
        """Per stream: depth p50/p99/max/last, slope (messages/s), drops and verdict since the last reset.

        Drops are those of the whole subscription (its streams share one queue).
        """
        return {stream: meter.summary(self.dropped) for stream, meter in self._backlog.items()}

    def reset_backlog(self) -> None:
        """Forget the depth samples and drops so far (after a warm-up)."""
        for meter in self._backlog.values():
            meter.clear(self.dropped)

    def get(self, timeout_s: float | None = None) -> Message | None:
        """The next message, waiting up to ``timeout_s`` (None: forever); None on timeout."""
        raise NotImplementedError

    def latest(self) -> Message | None:
        """The newest message waiting (older ones are discarded), or None; never blocks."""
        raise NotImplementedError

    def pending(self) -> int:
        """Messages waiting to be read (0 when unknown)."""
        return 0

    def close(self) -> None:
        self.closed = True

    def __iter__(self):
        while not self.closed:
            message = self.get(timeout_s=0.1)
            if message is not None:
                yield message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(streams={list(self.streams)}, mode={self.mode!r}, "
            f"received={self.received}, dropped={self.dropped})"
        )


class Bus:
    """Interface of every bus; see the module docstring."""

    url = "bus://"

    def __init__(self) -> None:
        self._sequences: dict[str, itertools.count] = {}
        self._sequence_lock = threading.Lock()

    def _next_sequence(self, stream: str) -> int:
        counter = self._sequences.get(stream)
        if counter is None:
            with self._sequence_lock:
                counter = self._sequences.setdefault(stream, itertools.count())
        return next(counter)

    def publish(self, message: Message) -> Message:
        """Stamp ``message`` (sequence, timestamp_ns) and deliver it; returns it."""
        raise NotImplementedError

    def subscribe(
        self, streams: str | Iterable[str], *, maxlen: int = DEFAULT_QUEUE_LENGTH, mode: str = "queue"
    ) -> Subscription:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; subscriptions stop returning messages."""

    def stats(self) -> dict:
        """Counters of the bus itself (reconnections, publish failures)."""
        return {}

    def barrier(self, name: str, parties: int, *, timeout_s: float = 60.0) -> None:
        """Wait until ``parties`` processes reached barrier ``name`` (one process: returns at once)."""
        if parties > 1:
            raise InvalidInputError(
                f"a barrier of {parties} processes needs a shared bus (redis://), not {self.url}"
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"


class _InProcessSubscription(Subscription):
    def __init__(self, bus: InProcessBus, streams: Iterable[str], *, maxlen: int, mode: str) -> None:
        super().__init__(streams, maxlen=maxlen, mode=mode)
        self._bus = bus
        self._queue: collections.deque[Message] = collections.deque()
        self._condition = threading.Condition(threading.Lock())
        self._count_gaps = False

    def _deliver(self, message: Message) -> None:
        with self._condition:
            if len(self._queue) >= self.maxlen:
                self._queue.popleft()  # drop the oldest, never block the publisher
                if self.mode == "queue":
                    self.dropped += 1
                else:
                    self.superseded += 1
            self._queue.append(message)
            self.delivered += 1
            self._newest_sequence[message.stream] = message.sequence
            self._condition.notify()

    def get(self, timeout_s: float | None = None) -> Message | None:
        with self._condition:
            if not self._queue:
                if self.closed:
                    return None
                self._condition.wait(timeout_s)
                if not self._queue:
                    return None
            message = self._queue.popleft()
        message = _received_copy(message)
        self._account(message)
        return message

    def latest(self) -> Message | None:
        with self._condition:
            if not self._queue:
                return None
            self.superseded += len(self._queue) - 1
            message = self._queue.pop()
            self._queue.clear()
        message = _received_copy(message)
        self._next_sequence[message.stream] = message.sequence + 1
        self.received += 1
        return message

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        with self._condition:
            self.closed = True
            self._condition.notify_all()
        self._bus._remove(self)


def _received_copy(message: Message) -> Message:
    """A shallow copy stamped with the receive time (the payload array is shared, read-only)."""
    return Message(
        stream=message.stream,
        payload=message.payload,
        sequence=message.sequence,
        sample_index=message.sample_index,
        origin_ns=message.origin_ns,
        timestamp_ns=message.timestamp_ns,
        received_ns=now_ns(),
    )


class InProcessBus(Bus):
    """Threads of one process hand each other references to read-only arrays; nothing to install.

    Publishing costs one lock and one deque append per subscriber; the payload
    is not copied, and it is made read-only so a reader cannot change what
    another reader sees.
    """

    url = "inprocess://"

    def __init__(self) -> None:
        super().__init__()
        self._subscribers: dict[str, list[_InProcessSubscription]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def publish(self, message: Message) -> Message:
        message.sequence = self._next_sequence(message.stream)
        if message.payload.flags.writeable:
            message.payload.flags.writeable = False
        message.timestamp_ns = now_ns()
        for subscription in self._subscribers.get(message.stream, ()):
            subscription._deliver(message)
        return message

    def subscribe(
        self, streams: str | Iterable[str], *, maxlen: int = DEFAULT_QUEUE_LENGTH, mode: str = "queue"
    ) -> Subscription:
        names = [streams] if isinstance(streams, str) else list(streams)
        subscription = _InProcessSubscription(self, names, maxlen=maxlen, mode=mode)
        with self._lock:
            for name in names:
                # copy-on-write so publish can iterate without taking the lock
                self._subscribers[name] = [*self._subscribers[name], subscription]
        return subscription

    def _remove(self, subscription: _InProcessSubscription) -> None:
        with self._lock:
            for name in subscription.streams:
                self._subscribers[name] = [s for s in self._subscribers[name] if s is not subscription]

    def close(self) -> None:
        with self._lock:
            subscriptions = {id(s): s for group in self._subscribers.values() for s in group}
        for subscription in subscriptions.values():
            subscription.close()


def open_bus(url: str | None = None, **options) -> Bus:
    """Open the bus named by ``url``: ``None``/``"inprocess://"`` or ``"redis://host:port[/db]"``."""
    if url is None or url in ("inprocess", "inprocess://"):
        return InProcessBus()
    if url.startswith(("redis://", "unix://", "rediss://")):
        from neurolace.runtime.redis_bus import RedisBus

        return RedisBus(url, **options)
    raise InvalidInputError(f"bus must be 'inprocess://' or a redis:// URL, got {url!r}")


def wait_until_ns(deadline_ns: int, *, spin_ns: int = 100_000) -> None:
    """Sleep until the monotonic clock reaches ``deadline_ns``: coarse sleep, then a short spin.

    ``time.sleep`` overshoots by 50-100 µs on a loaded Linux box, so we sleep
    to ``spin_ns`` before the deadline and yield-spin the rest (``spin_ns = 0``:
    sleep only, and accept the overshoot).
    """
    while True:
        remaining_ns = deadline_ns - now_ns()
        if remaining_ns <= 0:
            return
        if remaining_ns > spin_ns:
            time.sleep((remaining_ns - spin_ns) / 1e9)
        else:
            time.sleep(0)
