"""Time chunks of a long recording whose merged result equals the whole-recording result, bit for bit.

A recording longer than the chunk length is cut into cores ``[start, stop)`` of ``core_samples``
each (the last one shorter). Each task reads its core plus a margin before and after it and runs
the same :class:`~neurolace.dsp.chain.SignalChain` over that range, keeping only what falls in
the core. Why the result equals one pass over the whole recording:

- **Spike band.** The default band-pass (running sums, :class:`~neurolace.dsp.MovingAverageBandpass`)
  and the ``fir`` design are finite impulse responses computed the same way whatever the history
  (integer running sums are exact), so every filtered sample at least ``support - 1`` samples
  after the read start is bit-identical to the whole pass. ``butterworth`` is an IIR: a file run
  with it is one task, never chunked.
- **Noise.** The threshold is set once, from the first ``noise_window_s`` of the recording: one
  small task computes it on that window and every later chunk is given it.
- **Detector.** Its state at a sample ``s`` is which channels are inside a dead time, which only
  the events in ``[s - dead_samples, s)`` decide, and whether the previous sample was beyond
  threshold (a filtered value, already exact). The margin before a core holds that window after
  the filter's support, and the merge *checks* it: a chunk's events in ``[start - dead, start)``
  must equal the previous chunk's there. A chain of crossings closer than the dead time can
  carry a difference further back than any margin; then the check fails and the chunk is run
  again with a four times longer margin, down to reading from sample 0 (which is exact).
- **Spike-band power.** Its 300-1000 Hz Butterworth (IIR) forgets its start geometrically; two
  float32 runs of it from different starts become bit-identical once their rounding coincides
  (measured 0.1-0.35 s on 64 channels of noise), so features chunks use a longer margin
  (:data:`SBP_SETTLE_S`) and the merge checks the filter's state at every seam the same way.
- **Bins and blocks.** Cores and margins are whole numbers of feature bins and of the chain's
  20 ms blocks, so each chunk feeds the chain exactly the blocks the whole pass feeds it and the
  per-bin sums add the same numbers in the same order.

The margin after a core is the filter's delay plus one dead time (an event's amplitude window),
rounded up to a block.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from neurolace.batch.errors import BatchError
from neurolace.core.checks import check_in, check_positive
from neurolace.dsp.defaults import (
    DEFAULT_CHUNK_MS,
    DEFAULT_DEAD_TIME_MS,
    DEFAULT_NOISE_WINDOW_S,
    DEFAULT_THRESHOLD,
)

__all__ = [
    "DEFAULT_CHUNK_S",
    "SBP_SETTLE_S",
    "ChainSettings",
    "ChunkPlan",
    "plan_chunks",
]

#: Default core length of a time chunk, s (1024 channels: 80 MB of int16 codes per chunk).
DEFAULT_CHUNK_S = 60.0
#: Margin before a features chunk for the spike-band power's IIR to lock onto the whole pass, s.
SBP_SETTLE_S = 1.0
#: Filter designs whose spike band is a finite impulse response (chunkable).
FIR_DESIGNS = ("moving_average", "fir")


@dataclass(frozen=True)
class ChainSettings:
    """The signal chain's options of ``neurolace detect``, as one value a task can carry.

    Attributes mirror the options of ``neurolace detect`` (same defaults); ``high_hz=None`` is a
    high-pass only and ``reference=None`` skips the common-average reference.
    """

    threshold: float = DEFAULT_THRESHOLD
    dead_time_ms: float = DEFAULT_DEAD_TIME_MS
    low_hz: float = 300.0
    high_hz: float | None = 6000.0
    filter_design: str = "moving_average"
    reference: str | None = "mean"
    noise_window_s: float = DEFAULT_NOISE_WINDOW_S

    def __post_init__(self) -> None:
        check_in(self.filter_design, "filter_design", ("moving_average", "butterworth", "fir"))
        check_in(self.reference, "reference", ("mean", "median", None))
        check_positive(self.noise_window_s, "noise_window_s")

    def chain_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~neurolace.dsp.chain.SignalChain` (and ``run_signal_chain``)."""
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChunkPlan:
    """How one recording is cut into time chunks.

    Attributes
    ----------
    n_samples : int
    cores : list of (int, int)
        ``[start, stop)`` of each core, covering ``[0, n_samples)`` in order.
    margin_before_samples, margin_after_samples : int
        Samples read before and after each core (clipped to the recording).
    block_samples : int
        Block length fed to the chain (cores and margins are multiples of it).
    noise_window_samples : int
        Length of the first noise window.
    """

    n_samples: int
    cores: list[tuple[int, int]]
    margin_before_samples: int
    margin_after_samples: int
    block_samples: int
    noise_window_samples: int

    @property
    def n_chunks(self) -> int:
        return len(self.cores)

    def read_range(self, index: int, margin_before_samples: int | None = None) -> tuple[int, int]:
        """``[read_start, read_stop)`` of chunk ``index`` (with an optional longer margin before)."""
        start, stop = self.cores[index]
        before = self.margin_before_samples if margin_before_samples is None else margin_before_samples
        return max(0, start - before), min(self.n_samples, stop + self.margin_after_samples)


def _chain_geometry(fs_hz: float, settings: ChainSettings) -> dict[str, int]:
    """Support, delay and dead time in samples of the chain ``settings`` build at ``fs_hz``."""
    from neurolace.dsp.chain import SignalChain

    chain = SignalChain(fs_hz, 1, **settings.chain_options())
    taps = getattr(chain.bandpass, "taps", None)
    block = max(1, round(DEFAULT_CHUNK_MS * fs_hz / 1000.0))
    return {
        "support_samples": 0 if taps is None else len(taps),
        "delay_samples": int(chain.delay_samples),
        "dead_samples": int(chain.detector.dead_samples),
        "bin_samples": int(chain.sbp.bin_samples),
        "block_samples": block,
        "noise_window_samples": int(chain.noise.window_samples),
    }


def plan_chunks(
    n_samples: int,
    fs_hz: float,
    settings: ChainSettings,
    *,
    chunk_s: float,
    features: bool,
) -> ChunkPlan:
    """Cut a recording of ``n_samples`` at ``fs_hz`` into time chunks for ``settings``.

    Parameters
    ----------
    n_samples : int
    fs_hz : float
    settings : ChainSettings
    chunk_s : float
        Core length in seconds (rounded to whole blocks and bins). A recording no longer than
        one core, or one filtered with the IIR ``butterworth`` design, is one chunk.
    features : bool
        Whether binned features are produced (longer margin before, :data:`SBP_SETTLE_S`).

    Raises
    ------
    BatchError
        ``chunk_s`` is shorter than the noise window plus the margins.
    """
    check_positive(chunk_s, "chunk_s")
    geometry = _chain_geometry(fs_hz, settings)
    block = math.lcm(geometry["block_samples"], geometry["bin_samples"])
    margin_before = max(geometry["support_samples"] - 1, 0) + geometry["dead_samples"] + 1
    if features:
        margin_before += round(SBP_SETTLE_S * fs_hz)
    margin_before = -(-margin_before // block) * block
    margin_after = -(-(geometry["delay_samples"] + geometry["dead_samples"] + 1) // block) * block
    core = max(1, round(chunk_s * fs_hz / block)) * block
    minimum = geometry["noise_window_samples"] + margin_before + margin_after
    if core < minimum:
        raise BatchError(
            f"chunk_s must be at least {minimum / fs_hz:.3g} s (the noise window and the margins) at "
            f"{fs_hz:g} Hz, got {chunk_s:g} s"
        )
    if n_samples <= core or settings.filter_design not in FIR_DESIGNS:
        cores = [(0, n_samples)]
    else:
        starts = list(range(0, n_samples, core))
        cores = [(start, min(n_samples, start + core)) for start in starts]
    return ChunkPlan(
        n_samples=n_samples,
        cores=cores,
        margin_before_samples=margin_before,
        margin_after_samples=margin_after,
        block_samples=block,
        noise_window_samples=geometry["noise_window_samples"],
    )
