"""A seeded BLE-class radio between the implant and the host: throughput, latency, bursty loss, damage.

This module owns the simulated channel and nothing above it: it moves opaque
packets (one ``send`` is one radio packet, e.g. one link frame) from one side
to the other, one direction per :class:`LinkChannel` (make two for a duplex
link). What it does to them, in this order, each packet:

1. **Throughput.** The radio sends one packet at a time at
   ``throughput_kbps`` (default 1400 kbit/s, the application rate of BLE's 2M
   PHY); a packet waits while the radio is busy (counted ``queued``), and one
   that would wait longer than ``max_queue_ms`` is dropped (``dropped``).
2. **Bursty loss**, Gilbert-Elliott (Gilbert 1960, Elliott 1963): a two-state
   Markov chain, stepped once a packet, moves good -> bad with probability
   ``p_good_to_bad`` and bad -> good with ``p_bad_to_good``; a packet is lost
   with probability ``loss_good`` or ``loss_bad`` in each state. The bad
   state's stationary share is ``p_gb / (p_gb + p_bg)``; with ``loss_bad = 1``
   and ``loss_good = 0`` (Gilbert's model) bursts of loss last ``1 / p_bg``
   packets on average. :meth:`ChannelSettings.with_loss` sets the chain for a
   target mean loss rate and mean burst length.
3. **Bit corruption**: each bit flips independently with ``bit_error_rate``.
4. **Latency**: arrival = end of transmission + ``latency_ms`` + a uniform
   draw in ``[0, jitter_ms)``; packets stay in order (as BLE's link layer
   keeps them) unless
5. **reordered**: with ``reorder_probability`` a packet is held back until 1 to
   ``reorder_max_displacement`` later packets have arrived; and
6. **duplicated**: with ``duplicate_probability`` a second copy arrives right
   after the first (a retransmission whose acknowledgement was lost).

Time is the caller's: :meth:`LinkChannel.send` and :meth:`LinkChannel.receive`
take ``now_s`` (float seconds, never decreasing), so a stepped clock runs the
channel faster than real time and nothing sleeps. Every draw comes from one
:class:`numpy.random.Generator` (:func:`neurolace.core.random.check_rng`):
the same seed and the same calls give the same packets, byte for byte.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.core.checks import check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng

__all__ = ["BLE_2M_THROUGHPUT_KBPS", "ChannelSettings", "LinkChannel", "gilbert_elliott"]

#: application-level throughput of a BLE 2M PHY connection, kbit/s (the radio's default rate)
BLE_2M_THROUGHPUT_KBPS = 1400.0


def _check_probability(value: Any, name: str) -> float:
    number = check_nonnegative(value, name)
    if number > 1:
        raise InvalidInputError(f"{name} must be a probability in [0, 1], got {number!r}")
    return number


def gilbert_elliott(loss_rate: float, mean_burst_packets: float) -> tuple[float, float]:
    """Transition probabilities of Gilbert's model for a mean loss rate and burst length.

    With every packet lost in the bad state and none in the good one, the loss
    rate is the bad state's stationary share ``pi = p_gb / (p_gb + p_bg)`` and a
    burst lasts ``L = 1 / p_bg`` packets on average, so ``p_bg = 1 / L`` and
    ``p_gb = pi / (L (1 - pi))``.

    Parameters
    ----------
    loss_rate : float
        Mean fraction of packets lost, in [0, 1).
    mean_burst_packets : float
        Mean length of a run of lost packets, >= 1 and >= ``loss_rate / (1 - loss_rate)``
        (a higher rate needs longer bursts, since ``p_gb`` cannot exceed 1).

    Returns
    -------
    p_good_to_bad, p_bad_to_good : float
    """
    loss_rate = _check_probability(loss_rate, "loss_rate")
    if loss_rate >= 1:
        raise InvalidInputError(f"loss_rate must be below 1, got {loss_rate!r}")
    mean_burst_packets = check_positive(mean_burst_packets, "mean_burst_packets")
    shortest = max(1.0, loss_rate / (1 - loss_rate))
    if mean_burst_packets < shortest:
        raise InvalidInputError(
            f"mean_burst_packets must be >= {shortest:g} for loss_rate {loss_rate:g}, "
            f"got {mean_burst_packets!r}"
        )
    p_bad_to_good = 1.0 / mean_burst_packets
    return p_bad_to_good * loss_rate / (1 - loss_rate), p_bad_to_good


@dataclass(frozen=True)
class ChannelSettings:
    """What the simulated radio does to packets (see the module docstring for the model).

    Parameters
    ----------
    throughput_kbps : float, default :data:`BLE_2M_THROUGHPUT_KBPS`
        Radio rate, kbit/s (> 0; ``inf`` for no limit).
    latency_ms : float, default 7.5
        Fixed delay after transmission, ms (one BLE connection interval).
    jitter_ms : float, default 2.5
        Width of the uniform extra delay, ms.
    max_queue_ms : float, default 250.0
        Longest a packet waits for the radio before it is dropped, ms (``inf``: never dropped).
    p_good_to_bad, p_bad_to_good : float, default 0.0 and 1.0
        Gilbert-Elliott transition probabilities, per packet.
    loss_good, loss_bad : float, default 0.0 and 1.0
        Loss probability in the good and the bad state.
    reorder_probability : float, default 0.0
        Probability a packet is held back behind later ones.
    reorder_max_displacement : int, default 3
        Most later packets a held-back packet arrives after (>= 1).
    duplicate_probability : float, default 0.0
        Probability a delivered packet arrives twice.
    bit_error_rate : float, default 0.0
        Probability each bit is flipped.
    """

    throughput_kbps: float = BLE_2M_THROUGHPUT_KBPS
    latency_ms: float = 7.5
    jitter_ms: float = 2.5
    max_queue_ms: float = 250.0
    p_good_to_bad: float = 0.0
    p_bad_to_good: float = 1.0
    loss_good: float = 0.0
    loss_bad: float = 1.0
    reorder_probability: float = 0.0
    reorder_max_displacement: int = 3
    duplicate_probability: float = 0.0
    bit_error_rate: float = 0.0

    def __post_init__(self) -> None:
        checked = {
            "throughput_kbps": check_positive(self.throughput_kbps, "throughput_kbps", allow_inf=True),
            "latency_ms": check_nonnegative(self.latency_ms, "latency_ms"),
            "jitter_ms": check_nonnegative(self.jitter_ms, "jitter_ms"),
            "max_queue_ms": (
                math.inf
                if self.max_queue_ms == math.inf
                else check_nonnegative(self.max_queue_ms, "max_queue_ms")
            ),
            "reorder_max_displacement": check_int(
                self.reorder_max_displacement, "reorder_max_displacement", minimum=1
            ),
        }
        for name in (
            "p_good_to_bad",
            "p_bad_to_good",
            "loss_good",
            "loss_bad",
            "reorder_probability",
            "duplicate_probability",
            "bit_error_rate",
        ):
            checked[name] = _check_probability(getattr(self, name), name)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def for_loss(cls, loss_rate: float, burst_frames: float = 1.0, **settings) -> ChannelSettings:
        """Settings with Gilbert's bursty loss of a mean rate and burst length (frames, one a packet).

        ``ChannelSettings.for_loss(0.1, 4, latency_ms=5.0)`` is
        ``ChannelSettings(latency_ms=5.0).with_loss(0.1, 4)``.
        """
        return cls(**settings).with_loss(loss_rate, burst_frames)

    def with_loss(self, loss_rate: float, mean_burst_packets: float = 1.0) -> ChannelSettings:
        """A copy with Gilbert's bursty loss at a mean rate and burst length (:func:`gilbert_elliott`)."""
        p_good_to_bad, p_bad_to_good = gilbert_elliott(loss_rate, mean_burst_packets)
        return dataclasses.replace(
            self, p_good_to_bad=p_good_to_bad, p_bad_to_good=p_bad_to_good, loss_good=0.0, loss_bad=1.0
        )

    @property
    def bad_state_fraction(self) -> float:
        """Stationary share of packets sent in the bad state."""
        total = self.p_good_to_bad + self.p_bad_to_good
        return self.p_good_to_bad / total if total else 0.0

    @property
    def mean_loss_rate(self) -> float:
        """Stationary loss probability of a packet."""
        bad = self.bad_state_fraction
        return (1 - bad) * self.loss_good + bad * self.loss_bad


class LinkChannel:
    """One direction of a simulated BLE-class radio, seeded; time is the caller's.

    Parameters
    ----------
    settings : ChannelSettings, optional
        The model; the default is a lossless BLE 2M link with 7.5 ms latency and 2.5 ms jitter.
    seed : int, numpy Generator or None
        Seeds every draw (loss, damage, delay, reordering, duplication).
    name : str
        For the repr and the stats (e.g. ``"uplink"``).

    Attributes
    ----------
    settings : ChannelSettings
        May be replaced between calls (the radio's conditions change mid-run).
    sent, delivered, lost, duplicated, reordered, corrupted, queued, dropped : int
        Packets given to :meth:`send`; packets :meth:`receive` returned (duplicates included);
        lost in the air; sent twice; held back behind later packets; with at least one flipped
        bit; that waited for the radio; dropped because the radio's queue was full.
    bits_flipped, loss_bursts : int
        Bits corrupted; runs of consecutive lost packets.
    bytes_sent, bytes_delivered : int

    Examples
    --------
    >>> channel = LinkChannel(ChannelSettings(latency_ms=5.0, jitter_ms=0.0), seed=1)
    >>> channel.send(b"x" * 175, now_s=0.0)  # 1400 bits at 1400 kbit/s: 1 ms on the air
    >>> channel.receive(now_s=0.0059), len(channel.receive(now_s=0.006))
    ([], 1)
    """

    def __init__(
        self, settings: ChannelSettings | None = None, *, seed: SeedLike = None, name: str = ""
    ) -> None:
        if settings is None:
            settings = ChannelSettings()
        if not isinstance(settings, ChannelSettings):
            raise InvalidInputError(f"settings must be a ChannelSettings, got {type(settings).__name__}")
        self.settings = settings
        self.name = str(name)
        self._rng = check_rng(seed)
        self._bad = bool(self._rng.random() < settings.bad_state_fraction)  # start in the stationary law
        self._radio_free_s = -math.inf
        self._last_now_s = -math.inf
        self._last_arrival_s = -math.inf
        self._last_lost = False
        self._in_flight: list[tuple[float, int, bytes]] = []  # heap of (arrival_s, order, packet)
        self._held: list[list] = []  # [later packets still to arrive first, packet]
        self._order = 0
        self.sent = self.delivered = self.lost = self.duplicated = self.reordered = 0
        self.corrupted = self.queued = self.dropped = self.bits_flipped = self.loss_bursts = 0
        self.bytes_sent = self.bytes_delivered = 0

    # -- time -------------------------------------------------------------------------------------
    def _check_now(self, now_s: Any) -> float:
        if isinstance(now_s, bool) or not isinstance(now_s, (int, float, np.floating, np.integer)):
            raise InvalidInputError(f"now_s must be a number of seconds, got {type(now_s).__name__}")
        now_s = float(now_s)
        if not math.isfinite(now_s):
            raise InvalidInputError(f"now_s must be finite, got {now_s!r}")
        if now_s < self._last_now_s:
            raise InvalidInputError(f"now_s must never decrease: {now_s!r} after {self._last_now_s!r}")
        self._last_now_s = now_s
        return now_s

    # -- sending ----------------------------------------------------------------------------------
    def _corrupt(self, packet: bytes) -> bytes:
        n_bits = 8 * len(packet)
        n_flips = int(self._rng.binomial(n_bits, self.settings.bit_error_rate)) if n_bits else 0
        if not n_flips:
            return packet
        positions = self._rng.choice(n_bits, size=n_flips, replace=False)
        damaged = np.frombuffer(packet, dtype=np.uint8).copy()
        np.bitwise_xor.at(damaged, positions >> 3, (1 << (positions & 7)).astype(np.uint8))
        self.corrupted += 1
        self.bits_flipped += n_flips
        return damaged.tobytes()

    def _arrive(self, arrival_s: float, packet: bytes) -> None:
        heapq.heappush(self._in_flight, (arrival_s, self._order, packet))
        self._order += 1

    def _deliver_in_order(self, arrival_s: float, packet: bytes) -> None:
        """Schedule a packet in order; release the held-back packets it was the last to overtake."""
        self._last_arrival_s = arrival_s = max(arrival_s, self._last_arrival_s)
        self._arrive(arrival_s, packet)
        still_held = []
        for entry in self._held:
            entry[0] -= 1
            if entry[0] == 0:
                self._arrive(arrival_s, entry[1])
            else:
                still_held.append(entry)
        self._held = still_held

    def send(self, data: bytes, now_s: float) -> None:
        """Put one packet on the radio at time ``now_s`` (seconds).

        Parameters
        ----------
        data : bytes-like
            The packet (e.g. one link frame), any length.
        now_s : float
            The caller's clock, seconds; never below an earlier ``now_s``.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"data must be bytes, got {type(data).__name__}")
        now_s = self._check_now(now_s)
        packet = bytes(data)
        settings = self.settings
        self.sent += 1
        self.bytes_sent += len(packet)

        start_s = max(now_s, self._radio_free_s)
        if (start_s - now_s) * 1000.0 > settings.max_queue_ms:
            self.dropped += 1
            return
        if start_s > now_s:
            self.queued += 1
        self._radio_free_s = end_s = start_s + len(packet) * 8 / (settings.throughput_kbps * 1000.0)

        draws = self._rng.random(6)  # state step, loss, duplicate, reorder, jitter, displacement
        self._bad = draws[0] >= settings.p_bad_to_good if self._bad else draws[0] < settings.p_good_to_bad
        if draws[1] < (settings.loss_bad if self._bad else settings.loss_good):
            self.lost += 1
            self.loss_bursts += not self._last_lost
            self._last_lost = True
            return
        self._last_lost = False
        if settings.bit_error_rate:
            packet = self._corrupt(packet)
        arrival_s = end_s + (settings.latency_ms + draws[4] * settings.jitter_ms) / 1000.0
        copies = 2 if draws[2] < settings.duplicate_probability else 1
        self.duplicated += copies - 1
        if draws[3] < settings.reorder_probability:
            self.reordered += 1
            self._held.append([1 + int(draws[5] * settings.reorder_max_displacement), packet])
            copies -= 1  # the copy, if any, goes ahead in order; the original overtaken
        for _ in range(copies):
            self._deliver_in_order(arrival_s, packet)

    # -- receiving --------------------------------------------------------------------------------
    def receive(self, now_s: float) -> list[bytes]:
        """The packets that have arrived by ``now_s`` (seconds), in arrival order."""
        now_s = self._check_now(now_s)
        arrived = []
        while self._in_flight and self._in_flight[0][0] <= now_s:
            arrived.append(heapq.heappop(self._in_flight)[2])
        self._count_delivered(arrived)
        return arrived

    def drain(self) -> list[bytes]:
        """Everything still on its way, in arrival order, held-back packets last; the channel empties."""
        arrived = [heapq.heappop(self._in_flight)[2] for _ in range(len(self._in_flight))]
        arrived += [packet for _, packet in self._held]
        self._held = []
        self._count_delivered(arrived)
        return arrived

    def _count_delivered(self, arrived: list[bytes]) -> None:
        self.delivered += len(arrived)
        self.bytes_delivered += sum(map(len, arrived))

    @property
    def in_flight(self) -> int:
        """Packets sent and not yet received (held-back ones included)."""
        return len(self._in_flight) + len(self._held)

    @property
    def next_arrival_s(self) -> float | None:
        """When the next scheduled packet arrives, seconds (None when none is scheduled)."""
        return self._in_flight[0][0] if self._in_flight else None

    # -- report -----------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters and the observed loss rate and burst length, as plain numbers."""
        transmitted = self.sent - self.dropped
        return {
            "name": self.name,
            "sent": self.sent,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "corrupted": self.corrupted,
            "bits_flipped": self.bits_flipped,
            "queued": self.queued,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
            "bytes_sent": self.bytes_sent,
            "bytes_delivered": self.bytes_delivered,
            "loss_rate": self.lost / transmitted if transmitted else 0.0,
            "mean_burst_packets": self.lost / self.loss_bursts if self.loss_bursts else 0.0,
        }

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"LinkChannel({label}{self.settings.throughput_kbps:g} kbit/s, "
            f"loss={self.settings.mean_loss_rate:.3g}, sent={self.sent}, delivered={self.delivered}, "
            f"lost={self.lost}, in_flight={self.in_flight})"
        )
