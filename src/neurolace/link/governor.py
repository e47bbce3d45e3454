"""The implant-side bandwidth governor: what goes on the radio each tick, and what had to stay behind.

Each tick (one feature bin, 20 ms by default) the implant has three kinds of
data product for the link:

1. the binned features and 2. the spike events of that tick: **always sent**,
   whatever the budget; when even they exceed it the overrun is reported
   (``overrun`` in :meth:`BandwidthGovernor.report`), never silently dropped;
3. compressed raw samples (the codec's streaming mode) for as many channels as
   the remaining budget allows.

Raw channels are sent in groups (one codec stream per group; 16 channels, one
thread, by default) and the groups are taken **round-robin**: each tick starts
at the group after the last one sent, so every group gets its turn and over
time every channel gets the same share. A tick that sends ``k`` groups of
``n_groups`` covers the whole array within ``ceil(n_groups / k)`` ticks.

Cost of a frame on the link: its payload plus :data:`FRAME_OVERHEAD_BYTES`
(the 28-byte link header and the 16-byte AEAD tag). The governor decides how
many raw groups fit *before* encoding them, from a running estimate (EWMA) of
the compressed bytes per channel per tick; after each group is encoded its real
size is charged and updates the estimate. The byte budget is a token bucket:
what a tick leaves unused, or overspends (a resync frame larger than the
estimate, features above the budget), carries to the next tick, bounded by one
tick's budget (or one group, if a group is larger), so the long-run rate stays
at the budget.

Adapting to the link: :meth:`BandwidthGovernor.observe` takes the fraction of
frames the host acknowledged (a number, or an ack report with ``sent`` and
``delivered`` counts). A goodput estimate follows it (EWMA, weight
``loss_alpha``), and the budget the governor spends is the link's nominal
budget times an *effective fraction* that drops to the estimate at once when
the estimate falls, and climbs back towards it by at most ``recovery_step`` per
report (never below ``min_budget_fraction``): when loss rises, raw backs off at
once and gives the mandatory streams room; when the link recovers, raw comes
back gradually, as TCP's multiplicative decrease and additive increase do
(Jacobson 1988, "Congestion avoidance and control", SIGCOMM). Loss from
sending above what the radio carries shows up in the acks like any other, so
an over-stated budget is corrected the same way.

What was not sent is counted in raw channel-ticks (one channel for one tick),
by reason (:data:`DROP_REASONS`); sent plus dropped equals ticks times channels.

The raw encoder is injected (a callable from channel indices to payload
bytes), so this module knows nothing about the codec; see
:mod:`neurolace.runtime.uplink` for the wiring.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.core.checks import check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.link.frames import HEADER_BYTES
from neurolace.link.noise import TAG_BYTES

__all__ = [
    "DROP_REASONS",
    "FRAME_OVERHEAD_BYTES",
    "BandwidthGovernor",
    "RawGroup",
    "TickPlan",
]

#: bytes every frame costs beyond its payload: the 28-byte link header (``frames.HEADER_BYTES``) and the
#: 16-byte AEAD tag (``noise.TAG_BYTES``), written out so the governor imports nothing of the crypto
FRAME_OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES

#: why raw channel-ticks were not sent: the link's nominal budget had no room ("budget"), or it had
#: room that the loss backoff took away ("backoff")
DROP_REASONS = ("budget", "backoff")

#: slack in the fit test, so a budget given in kbit/s that is exactly a whole number of bytes per tick
#: is not lost to float rounding
_ROUNDING_BYTES = 1e-6

#: sizes of a tick's mandatory frames: one payload (bytes or a size) or one per frame
PayloadSizes = bytes | int | Sequence[bytes | int]


@dataclass(frozen=True)
class RawGroup:
    """One raw group the governor sent this tick.

    Attributes
    ----------
    group_index : int
        Position of the group, 0 .. n_groups - 1.
    channel_index : ndarray of int64, shape (n_group_channels,)
        The array channels the group carries.
    payload : bytes
        What the injected raw encoder returned for them (one frame's payload).
    """

    group_index: int
    channel_index: np.ndarray
    payload: bytes


@dataclass(frozen=True)
class TickPlan:
    """What one :meth:`BandwidthGovernor.tick` decided.

    Attributes
    ----------
    tick : int
        Tick number, from 0.
    raw : tuple of RawGroup
        The raw groups to send, in rotation order.
    credit_bytes : float
        Bytes this tick could spend (effective budget plus carry).
    mandatory_bytes : int
        Link bytes of the features and events frames (payloads plus overhead).
    raw_bytes : int
        Link bytes of the raw frames (payloads plus overhead).
    overrun_bytes : int
        By how much the features and events alone exceeded one tick's effective budget (0 if
        they fit).
    dropped : dict of str to int
        Raw channel-ticks not sent this tick, by reason (:data:`DROP_REASONS`).
    """

    tick: int
    raw: tuple[RawGroup, ...]
    credit_bytes: float
    mandatory_bytes: int
    raw_bytes: int
    overrun_bytes: int
    dropped: dict[str, int]

    @property
    def raw_channels(self) -> int:
        """Raw channels sent this tick."""
        return sum(group.channel_index.size for group in self.raw)


def _check_fraction(value: Any, name: str, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}")
    number = float(value)
    low_ok = number >= 0 if allow_zero else number > 0
    if not (low_ok and number <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise InvalidInputError(f"{name} must be a number in {interval}, got {number!r}")
    return number


def _payload_sizes(value: PayloadSizes, name: str) -> list[int]:
    """Payload sizes of a tick's frames of one stream: one frame per element (bytes or a size)."""
    items = [value] if isinstance(value, (bytes, bytearray, memoryview, numbers.Integral)) else value
    if not isinstance(items, Sequence):
        raise InvalidInputError(
            f"{name} must be bytes, a byte count, or a sequence of them (one per frame), "
            f"got {type(value).__name__}"
        )
    sizes = []
    for item in items:
        if isinstance(item, (bytes, bytearray, memoryview)):
            sizes.append(len(item))
        else:
            sizes.append(check_int(item, f"{name} size", minimum=0))
    return sizes


def _delivered_fraction(report: Any) -> float | None:
    """The delivered fraction of an ack report (None when it covers no frames)."""
    if isinstance(report, Mapping) or (hasattr(report, "sent") and hasattr(report, "delivered")):
        get = report.get if isinstance(report, Mapping) else lambda key: getattr(report, key, None)
        sent, delivered = get("sent"), get("delivered")
        sent = check_int(sent, "report sent", minimum=0)
        delivered = check_int(delivered, "report delivered", minimum=0, maximum=sent)
        return delivered / sent if sent else None
    return _check_fraction(report, "delivered_fraction")


class BandwidthGovernor:
    """Decide, tick by tick, which raw channel groups fit the link beside the features and events.

    Parameters
    ----------
    n_channels : int
        Channels of the array.
    budget_kbps : float
        The link's nominal budget for this direction, kbit/s (1 kbit = 1000 bits), >= 0.
    tick_s : float, default 0.02
        Length of one tick (one feature bin), seconds.
    group_size : int, default 16
        Channels per raw group (the last group may be smaller). 16 is one N1 thread.
    raw_bytes_per_channel_tick : float, default 240
        Initial estimate of a channel's compressed raw payload per tick, bytes: about 4.9 bits per
        sample for the 391 samples of a 20 ms tick at 19.5 kHz (the streaming codec takes ~4.7 on
        the simulated implant in 16-channel groups, model updates included). Refined from every
        group sent.
    estimate_alpha : float, default 0.2
        EWMA weight of each new group's bytes per channel in the running estimate, (0, 1].
    loss_alpha : float, default 0.2
        EWMA weight of each reported delivered fraction in the goodput estimate, (0, 1].
    recovery_step : float, default 0.02
        Most the effective fraction of the budget rises per report, (0, 1] (0.5 back to 1 in
        25 reports: 2.5 s at an ack every 100 ms).
    min_budget_fraction : float, default 0.25
        Lowest fraction of the nominal budget the loss backoff goes down to, (0, 1].
    frame_overhead_bytes : int, default :data:`FRAME_OVERHEAD_BYTES`
        Link bytes of each frame beyond its payload.

    Examples
    --------
    >>> governor = BandwidthGovernor(n_channels=64, budget_kbps=2000.0)
    >>> plan = governor.tick(features=b"\\0" * 512, events=b"", encode_raw=lambda ch: bytes(100 * ch.size))
    >>> plan.raw_channels, plan.dropped
    (16, {'budget': 48, 'backoff': 0})
    """

    def __init__(
        self,
        *,
        n_channels: int,
        budget_kbps: float,
        tick_s: float = 0.02,
        group_size: int = 16,
        raw_bytes_per_channel_tick: float = 240.0,
        estimate_alpha: float = 0.2,
        loss_alpha: float = 0.2,
        recovery_step: float = 0.02,
        min_budget_fraction: float = 0.25,
        frame_overhead_bytes: int = FRAME_OVERHEAD_BYTES,
    ) -> None:
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.tick_s = check_positive(tick_s, "tick_s")
        self.group_size = check_int(group_size, "group_size", minimum=1)
        self.raw_bytes_per_channel_tick_ = check_positive(
            raw_bytes_per_channel_tick, "raw_bytes_per_channel_tick"
        )
        self.estimate_alpha = _check_fraction(estimate_alpha, "estimate_alpha", allow_zero=False)
        self.loss_alpha = _check_fraction(loss_alpha, "loss_alpha", allow_zero=False)
        self.recovery_step = _check_fraction(recovery_step, "recovery_step", allow_zero=False)
        self.min_budget_fraction = _check_fraction(
            min_budget_fraction, "min_budget_fraction", allow_zero=False
        )
        self.frame_overhead_bytes = check_int(frame_overhead_bytes, "frame_overhead_bytes", minimum=0)
        self.set_budget(budget_kbps)
        edges = [*range(0, self.n_channels, self.group_size), self.n_channels]
        self.groups = tuple(np.arange(a, b, dtype=np.int64) for a, b in zip(edges[:-1], edges[1:]))
        self.goodput_fraction_ = 1.0
        self.budget_fraction_ = 1.0
        self._next_group = 0
        self._carry_bytes = 0.0
        self._ticks = 0
        self._frames = {"features": 0, "events": 0, "raw": 0}
        self._payload_bytes = {"features": 0, "events": 0, "raw": 0}
        self._raw_channel_ticks = 0
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._overrun_ticks = 0
        self._overrun_bytes = 0
        self._observations = 0

    # -- configuration ---------------------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return len(self.groups)

    def set_budget(self, budget_kbps: float) -> None:
        """Change the link's nominal budget (kbit/s, >= 0), e.g. when the radio changes PHY."""
        self.budget_kbps = check_nonnegative(budget_kbps, "budget_kbps")

    @property
    def nominal_bytes_per_tick(self) -> float:
        """The nominal budget in bytes per tick."""
        return self.budget_kbps * 1000.0 / 8.0 * self.tick_s

    @property
    def effective_budget_fraction(self) -> float:
        """Fraction of the nominal budget spent after the loss backoff, at least ``min_budget_fraction``."""
        return max(self.min_budget_fraction, self.budget_fraction_)

    @property
    def effective_bytes_per_tick(self) -> float:
        return self.nominal_bytes_per_tick * self.effective_budget_fraction

    # -- the link's feedback ---------------------------------------------------------------------
    def observe(self, report: float | Mapping | Any) -> float:
        """Take the link's feedback; return the new effective fraction of the budget.

        Parameters
        ----------
        report : float or ack report
            The fraction of frames delivered since the last report, in [0, 1]; or a mapping (or
            object) with integer ``sent`` and ``delivered`` counts. A report of no frames changes
            nothing.
        """
        fraction = _delivered_fraction(report)
        if fraction is not None:
            self.goodput_fraction_ += self.loss_alpha * (fraction - self.goodput_fraction_)
            self.budget_fraction_ = min(self.goodput_fraction_, self.budget_fraction_ + self.recovery_step)
            self._observations += 1
        return self.effective_budget_fraction

    # -- one tick --------------------------------------------------------------------------------
    def _group_cost(self, group: np.ndarray) -> float:
        return self.raw_bytes_per_channel_tick_ * group.size + self.frame_overhead_bytes

    def _channels_fitting(self, room_bytes: float, first_group: int) -> int:
        """Channels of the groups fitting ``room_bytes`` at the estimated cost, from ``first_group`` on."""
        channels = 0
        for k in range(self.n_groups):
            group = self.groups[(first_group + k) % self.n_groups]
            room_bytes -= self._group_cost(group)
            if room_bytes < -_ROUNDING_BYTES:
                break
            channels += group.size
        return channels

    def tick(
        self,
        *,
        features: PayloadSizes,
        events: PayloadSizes,
        encode_raw: Callable[[np.ndarray], bytes],
    ) -> TickPlan:
        """Plan one tick: the features and events always, then raw groups while they fit.

        Parameters
        ----------
        features, events : bytes, int, or sequence of them
            This tick's features and events payloads (or their sizes in bytes), one element per
            frame; a single bytes or int is one frame. An empty sequence is no frame.
        encode_raw : callable(channel_index) -> bytes
            Encodes this tick's raw samples of the given channels (ndarray of int64, shape
            (n_group_channels,)) and returns one frame's payload. Called once per group sent,
            in rotation order; a group it is called for is sent.

        Returns
        -------
        TickPlan
        """
        feature_sizes = _payload_sizes(features, "features")
        event_sizes = _payload_sizes(events, "events")
        if not callable(encode_raw):
            raise InvalidInputError(f"encode_raw must be callable, got {type(encode_raw).__name__}")
        overhead = self.frame_overhead_bytes
        mandatory = sum(feature_sizes) + sum(event_sizes) + overhead * (len(feature_sizes) + len(event_sizes))
        credit = self.effective_bytes_per_tick + self._carry_bytes
        nominal_room = self.nominal_bytes_per_tick + self._carry_bytes - mandatory
        room = credit - mandatory
        overrun = max(0, math.ceil(mandatory - self.effective_bytes_per_tick))

        sent: list[RawGroup] = []
        raw_link_bytes = 0
        for k in range(self.n_groups):
            index = (self._next_group + k) % self.n_groups
            group = self.groups[index]
            if self._group_cost(group) > room + _ROUNDING_BYTES:
                break
            payload = encode_raw(group)
            if not isinstance(payload, (bytes, bytearray)):
                raise InvalidInputError(f"encode_raw must return bytes, got {type(payload).__name__}")
            payload = bytes(payload)
            room -= len(payload) + overhead
            raw_link_bytes += len(payload) + overhead
            self.raw_bytes_per_channel_tick_ += self.estimate_alpha * (
                len(payload) / group.size - self.raw_bytes_per_channel_tick_
            )
            sent.append(RawGroup(index, group, payload))
        first_group = self._next_group
        self._next_group = (self._next_group + len(sent)) % self.n_groups

        sent_channels = sum(group.channel_index.size for group in sent)
        nominal_channels = max(sent_channels, self._channels_fitting(nominal_room, first_group))
        dropped = {"budget": self.n_channels - nominal_channels, "backoff": nominal_channels - sent_channels}
        bound = max(self.effective_bytes_per_tick, max(self._group_cost(g) for g in self.groups))
        self._carry_bytes = float(np.clip(room, -self.effective_bytes_per_tick, bound))

        self._ticks += 1
        self._frames["features"] += len(feature_sizes)
        self._frames["events"] += len(event_sizes)
        self._frames["raw"] += len(sent)
        self._payload_bytes["features"] += sum(feature_sizes)
        self._payload_bytes["events"] += sum(event_sizes)
        self._payload_bytes["raw"] += raw_link_bytes - overhead * len(sent)
        self._raw_channel_ticks += sent_channels
        for reason, count in dropped.items():
            self._dropped[reason] += count
        if overrun:
            self._overrun_ticks += 1
            self._overrun_bytes += overrun
        return TickPlan(
            tick=self._ticks - 1,
            raw=tuple(sent),
            credit_bytes=credit,
            mandatory_bytes=mandatory,
            raw_bytes=raw_link_bytes,
            overrun_bytes=overrun,
            dropped=dropped,
        )

    # -- the dashboard's view --------------------------------------------------------------------
    def report(self) -> dict:
        """What was sent and dropped so far, as plain numbers for the dashboard and JSON.

        Keys: ``ticks``; ``budget_kbps`` (nominal) and ``effective_budget_kbps`` (after the loss
        backoff); ``goodput_estimate``; ``raw_bytes_per_channel_tick_estimate``; ``sent`` (frames
        and payload bytes per stream, ``raw_channel_ticks``, ``link_bytes`` with the frame
        overhead, ``link_kbps`` over the ticks so far); ``dropped`` (raw channel-ticks by reason);
        ``overrun`` (ticks where features and events alone exceeded a tick's effective budget,
        and the bytes over); ``raw_channels_mean`` per tick and ``raw_fraction`` of the array's channel-ticks.
        """
        frames = sum(self._frames.values())
        link_bytes = sum(self._payload_bytes.values()) + self.frame_overhead_bytes * frames
        elapsed_s = self._ticks * self.tick_s
        channel_ticks = self._ticks * self.n_channels
        return {
            "ticks": self._ticks,
            "n_channels": self.n_channels,
            "n_groups": self.n_groups,
            "budget_kbps": self.budget_kbps,
            "effective_budget_kbps": self.budget_kbps * self.effective_budget_fraction,
            "goodput_estimate": self.goodput_fraction_,
            "observations": self._observations,
            "raw_bytes_per_channel_tick_estimate": self.raw_bytes_per_channel_tick_,
            "sent": {
                **{f"{stream}_frames": count for stream, count in self._frames.items()},
                **{f"{stream}_bytes": count for stream, count in self._payload_bytes.items()},
                "raw_channel_ticks": self._raw_channel_ticks,
                "link_bytes": link_bytes,
                "link_kbps": link_bytes * 8 / 1000 / elapsed_s if elapsed_s else 0.0,
            },
            "dropped": dict(self._dropped),
            "overrun": {"ticks": self._overrun_ticks, "bytes": self._overrun_bytes},
            "raw_channels_mean": self._raw_channel_ticks / self._ticks if self._ticks else 0.0,
            "raw_fraction": self._raw_channel_ticks / channel_ticks if channel_ticks else 0.0,
        }

    def __repr__(self) -> str:
        return (
            f"BandwidthGovernor(n_channels={self.n_channels}, budget_kbps={self.budget_kbps:g}, "
            f"groups={self.n_groups}x{self.group_size}, goodput={self.goodput_fraction_:.3f}, "
            f"ticks={self._ticks})"
        )
