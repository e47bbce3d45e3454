"""Bins lost on the way to the decoder: a feature-source wrapper that turns dropped bins into missing bins.

:class:`LossySource` wraps any feature source of the closed loop (the
protocol of :func:`~neurolace.runtime.loop.check_feature_source`) and asks a
*drop model* whether each bin reaches the host. A dropped bin is emitted as
the missing bin (:func:`neurolace.core.features.missing_bin`, all NaN), never
as zeros, so :class:`~neurolace.runtime.loop.ClosedLoop` decodes it with the
decoders' ``step_missing``. The wrapped source still makes every bin (the
implant produced it; the link lost it), so its noise draws, and the
participant's, are the same at every loss rate and runs differ by the losses only.

A drop model has two members: ``start(seed)`` at each block start (seeded
from the block's source seed, independently of the wrapped source) and
``dropped() -> bool`` once per bin. Three are here:

- :class:`ChannelDrops`: the simulated radio of :mod:`neurolace.link.channel`
  (Gilbert-Elliott bursty loss, the radio queue's drops), one packet a bin:
  ``ChannelDrops.for_loss(0.1, burst_bins=5)`` loses 10 % of the bins in
  bursts of 5 bins on average;
- :class:`BurstDrops`: bursts of exactly ``burst_bins`` consecutive bins, each
  lost with probability ``loss_fraction`` (a fixed burst length);
- :class:`MaskDrops`: a fixed mask, repeated (a known pattern for tests, or
  the loss trace a link run recorded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.features import missing_bin
from neurolace.core.random import SeedLike, check_rng
from neurolace.runtime.loop import check_feature_source

__all__ = ["BurstDrops", "ChannelDrops", "LossySource", "MaskDrops", "check_drop_model"]


def check_drop_model(drops: Any) -> Any:
    """Refuse an object without the drop-model members ``start(seed)`` and ``dropped()``."""
    missing = [name for name in ("start", "dropped") if not callable(getattr(drops, name, None))]
    if missing:
        raise InvalidInputError(
            f"drop model {type(drops).__name__} lacks {missing}; expected start(seed) and dropped() -> bool"
        )
    return drops


class BurstDrops:
    """Bursty loss: consecutive bursts of ``burst_bins`` bins, each lost whole with probability ``loss_fraction``.

    The first burst of a block starts at a random phase, so losses do not line
    up with block starts. The fraction of bins lost converges to
    ``loss_fraction``; every loss run is a multiple of ``burst_bins`` long.

    Parameters
    ----------
    loss_fraction : float in [0, 1]
        Probability that a burst is lost (the mean fraction of bins lost).
    burst_bins : int, default 5
        Bins per burst (5 bins = 100 ms at 20 ms bins).
    """

    def __init__(self, loss_fraction: float, *, burst_bins: int = 5) -> None:
        self.loss_fraction = check_nonnegative(loss_fraction, "loss_fraction")
        if self.loss_fraction > 1:
            raise InvalidInputError(f"loss_fraction must lie in [0, 1], got {self.loss_fraction}")
        self.burst_bins = check_int(burst_bins, "burst_bins", minimum=1)
        self.start(0)

    def start(self, seed: SeedLike = None) -> None:
        """A new block: reseed and draw the first burst's phase."""
        self._rng = check_rng(seed)
        self._left = int(self._rng.integers(1, self.burst_bins + 1))
        self._lost = bool(self._rng.random() < self.loss_fraction)

    def dropped(self) -> bool:
        """Whether the next bin is lost."""
        if self._left == 0:
            self._left = self.burst_bins
            self._lost = bool(self._rng.random() < self.loss_fraction)
        self._left -= 1
        return self._lost

    def __repr__(self) -> str:
        return f"BurstDrops(loss_fraction={self.loss_fraction:g}, burst_bins={self.burst_bins})"


class ChannelDrops:
    """Bins lost by the simulated radio (:class:`neurolace.link.channel.LinkChannel`), one packet a bin.

    Each bin is sent as one packet of ``packet_bytes`` at its time on the
    loop's clock; it is lost when the channel loses it in the air (its
    Gilbert-Elliott chain) or drops it from a full radio queue. Delay,
    reordering, duplication and bit errors are the link's business (a
    corrupted frame is refused there); here a bin either arrives or not.

    Parameters
    ----------
    settings : ChannelSettings
        The radio model (:class:`neurolace.link.channel.ChannelSettings`).
    loop_s : float, default 0.02
        Bin width, seconds (the time between packets).
    packet_bytes : int, default 1
        Size of one bin's packet (1: the radio's throughput never matters).
    """

    def __init__(self, settings: Any, *, loop_s: float = 0.02, packet_bytes: int = 1) -> None:
        from neurolace.link.channel import ChannelSettings

        if not isinstance(settings, ChannelSettings):
            raise InvalidInputError(f"settings must be a ChannelSettings, got {type(settings).__name__}")
        self.settings = settings
        self.loop_s = check_positive(loop_s, "loop_s")
        self.packet = bytes(check_int(packet_bytes, "packet_bytes", minimum=1))
        self.start(0)

    @classmethod
    def for_loss(cls, loss_fraction: float, *, burst_bins: float = 5.0, loop_s: float = 0.02) -> ChannelDrops:
        """Gilbert's bursty loss of a mean fraction of bins in bursts of ``burst_bins`` bins on average.

        ``loss_fraction`` 0 gives a lossless channel.
        """
        from neurolace.link.channel import ChannelSettings

        return cls(ChannelSettings.for_loss(loss_fraction, burst_bins), loop_s=loop_s)

    def start(self, seed: SeedLike = None) -> None:
        """A new block: a fresh channel seeded with ``seed`` (its chain starts in its stationary law)."""
        from neurolace.link.channel import LinkChannel

        self.channel = LinkChannel(self.settings, seed=seed, name="bins")
        self._index = 0

    def dropped(self) -> bool:
        """Whether the next bin is lost."""
        channel = self.channel
        now_s = self._index * self.loop_s
        before = channel.lost + channel.dropped
        channel.send(self.packet, now_s)
        channel.receive(now_s)  # let the delivered packets go, so nothing piles up
        self._index += 1
        return channel.lost + channel.dropped > before

    def __repr__(self) -> str:
        return f"ChannelDrops(mean_loss_rate={self.settings.mean_loss_rate:g}, loop_s={self.loop_s:g})"


class MaskDrops:
    """A fixed drop mask, the same in every block, repeated when a block is longer.

    Parameters
    ----------
    mask : array-like of bool, shape (n_bins,)
        True where the bin is lost (at least one entry).
    """

    def __init__(self, mask: Any) -> None:
        mask = check_array(mask, "mask", ndim=1)
        if mask.size == 0:
            raise InvalidInputError("mask must hold at least one bin, got an empty array")
        self.mask = mask.astype(bool)
        self._index = 0

    def start(self, seed: SeedLike = None) -> None:
        """A new block: back to the mask's first bin (the seed is not used)."""
        self._index = 0

    def dropped(self) -> bool:
        lost = bool(self.mask[self._index % self.mask.size])
        self._index += 1
        return lost


class LossySource:
    """A feature source whose bins are lost by a drop model; lost bins are emitted as missing bins.

    Parameters
    ----------
    source : feature source
        ``n_features``, ``start(seed)``, ``emit(intention)`` (e.g.
        :class:`~neurolace.runtime.loop.CountsSource`).
    drops : drop model
        ``start(seed)`` and ``dropped() -> bool`` (:class:`BurstDrops`, :class:`MaskDrops`).

    Attributes
    ----------
    n_bins, n_lost : int
        Bins emitted and bins lost since construction.
    """

    def __init__(self, source: Any, drops: Any) -> None:
        self.source = check_feature_source(source)
        self.drops = check_drop_model(drops)
        self.n_bins = 0
        self.n_lost = 0

    @property
    def path(self) -> str:
        return f"{getattr(self.source, 'path', type(self.source).__name__)}+loss"

    @property
    def n_features(self) -> int:
        return self.source.n_features

    def start(self, seed: SeedLike = None) -> None:
        """Start the wrapped source with ``seed`` itself, the drop model with an independent child of it."""
        self.source.start(seed)
        self.drops.start(None if seed is None else check_rng(seed).spawn(1)[0])

    def emit(self, intention: Any) -> np.ndarray:
        """The wrapped source's bin for ``intention``, or the missing bin (all NaN) if it is lost."""
        features = self.source.emit(intention)
        self.n_bins += 1
        if self.drops.dropped():
            self.n_lost += 1
            return missing_bin(self.n_features)
        return features
