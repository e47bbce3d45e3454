"""The closed loop through the implant: a participant's intention in, one bin of on-implant features out.

:class:`ImplantFeatureSource` is the implant path of the closed loop. Each
control step (``participant.control.loop_s``, 20 ms) it takes the
participant's :class:`~neurolace.sim.participant.Intention`, drives the
simulated implant's tuned units with it for that many milliseconds
(:class:`~neurolace.sim.implant.ImplantStream`, spike waveforms at
19,531.25 Hz on a 10-bit ADC), runs the streaming on-implant chain
(:class:`~neurolace.dsp.chain.SignalChain`: band-pass, common-average
reference, threshold crossings at -4.5 RMS, spike-band power 300-1000 Hz) and
returns the bin: threshold crossings per channel, spike-band power per channel
(µV), or both (``features``).

The same participant on both paths
----------------------------------
The counts path (:meth:`SimulatedParticipant.emit_counts`) draws, for channel
``c``, Poisson counts at::

    rate_c = (background_hz_c + visibility_c * tuning_rate_c(v, click)) * exp(loading_c . z)

Here the implant's units *are* those channels. Each electrode ``c`` gets two
units next to it: a tuned unit whose tuning is the participant's unit-mix
``c`` scaled by ``visibility_c`` (scaling by ``visibility_c >= 0`` commutes
with the tuning model's clip at 0, so its rate is exactly the tuned term), and
an untuned unit firing at ``background_hz_c``. Both carry the same shared gain
``exp(loading_c . z)``, an Ornstein-Uhlenbeck process per bin with the
participant's ``nuisance_tau_s`` and loadings. So the spikes near electrode
``c`` have exactly the counts path's rate; what the implant path adds is what
an implant does to them: 2 ms refractoriness, waveforms on thermal noise, hash
and LFP, a 10-bit ADC, the chain's filter, noise estimate, threshold and 1 ms
dead time, and the chain's latency.

Each unit sits ``distance_um`` (uniform in 15-25 µm by default) from its
electrode, at its depth, so its spike there is ~110-150 µV times a log-normal
factor (the implant's soma amplitudes); with the default footprint of 40 µm no
unit reaches a neighbouring electrode (50 µm pitch), so channel ``c`` sees
only unit-mix ``c``, as the counts model assumes. A wider
``ImplantParameters.footprint_radius_um`` adds the cross-talk of real
electrodes. How closely crossings follow counts is measured, not assumed:
``python -m benchmarks sim`` reports crossings per spike and the offline ridge
R² of both paths on the same seeds (docs/simulator.md).

Timing
------
The implant takes intention on a 1 ms grid; a 20 ms bin is 390.625 samples.
The chain runs with ``fractional_bins=True``, so bin ``k`` covers samples
``[floor(k * 390.625), floor((k + 1) * 390.625))`` (391 and 390 alternate, 5
and 3 in every 8 bins) and never drifts from the 20 ms control clock. A bin is
returned in the same call that pushes its intention, so its samples must be
final: the feature bins are shifted ``latency_samples`` earlier than the
intention bins (the stream's 0.6 ms of waveform before a trough, the
band-pass delay and the detector's dead time: 67 samples, 3.4 ms, at the
defaults). A spike in the last 3.4 ms of a step is counted in the next bin:
the implant path's inherent latency.

:meth:`start` begins a block: a new noise realisation (spikes, thermal noise,
hash, LFP) of the same implant (unit positions, amplitudes, waveforms, noise
levels fixed by ``layout_seed``), then ``warmup_s`` of rest (zero velocity)
during which the chain estimates its noise and thresholds, as an implant does
before a session.

Dead electrodes (``dead_channels``) read a constant code (0, the bottom rail) and are left out
of the common-average reference (as implants exclude them), so their crossings
and spike-band power are exactly 0 and the decoder's signal guard can hold
them.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

from neurolace.core.checks import check_array, check_in, check_int, check_nonnegative
from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.core.random import SeedLike, check_rng, spawn_rngs
from neurolace.dsp.chain import SignalChain
from neurolace.dsp.defaults import DEFAULT_NOISE_WINDOW_S
from neurolace.sim.implant import ImplantParameters, ImplantStream, implant_geometry
from neurolace.sim.participant import nuisance_path
from neurolace.sim.spiking import RATE_FS_HZ
from neurolace.sim.tuning import TuningModel

__all__ = ["FEATURE_KINDS", "ImplantFeatureSource", "ImplantProducts", "implant_tuning"]

#: What :meth:`ImplantFeatureSource.emit` returns: crossings, spike-band power, or both (crossings first).
FEATURE_KINDS = ("crossings", "sbp", "both")

#: Bins pushed between two runs of the chain in :meth:`ImplantFeatureSource.emit_many` (bounds its memory).
FEED_BINS = 50

#: Default footprint: a unit reaches only its own electrode (units sit 15-25 µm away, neighbours 50 µm).
OWN_ELECTRODE_FOOTPRINT_UM = 40.0


def implant_tuning(participant: Any) -> TuningModel:
    """The implant's units for a participant: a tuned and an untuned unit per channel.

    Units ``0 .. n - 1`` carry the participant's tuning scaled by its visibility; units
    ``n .. 2n - 1`` fire at its untuned ``background_hz``. Their rates add up to the counts
    path's rate (before the shared gain; module docstring).

    Returns
    -------
    TuningModel
        ``2 * participant.n_channels`` units.
    """
    tuning, visibility = participant.tuning, np.asarray(participant.visibility, dtype=np.float64)
    zeros = np.zeros(participant.n_channels)
    return TuningModel(
        np.concatenate([visibility * tuning.baseline_hz, participant.background_hz]),
        np.concatenate([visibility * tuning.depth_hz, zeros]),
        np.concatenate([tuning.preferred_direction_rad, zeros]),
        np.concatenate([visibility * tuning.speed_gain_hz, zeros]),
        np.concatenate([visibility * tuning.click_gain_hz, zeros]),
    )


class ImplantProducts(NamedTuple):
    """What the implant made in some steps besides the features: its samples and its spike events.

    Attributes
    ----------
    raw_codes : ndarray of int16, shape (n_samples, n_channels)
        The ADC codes, as the chain read them.
    raw_clock : int
        Chain sample index of ``raw_codes[0]`` (the events' clock too).
    events : SpikeEvents
        Threshold crossings the chain finished over these samples.
    """

    raw_codes: np.ndarray
    raw_clock: int
    events: Any


class ImplantFeatureSource:
    """Features of a simulated participant through the simulated implant and the on-implant chain.

    Parameters
    ----------
    participant : SimulatedParticipant
        Whose channels the implant's units encode (its ``tuning``, ``visibility``,
        ``background_hz``, ``nuisance_loadings``, ``neural.nuisance_tau_s`` and
        ``control.loop_s`` are read once, here). ``n_channels`` must be 1-16 or a multiple of 16.
    features : {"crossings", "sbp", "both"}, default "crossings"
        ``"both"`` gives ``2 * n_channels`` columns: crossings, then spike-band power.
    layout_seed : int, default 0
        Seeds the implant itself (unit positions, amplitudes, waveforms, noise levels), fixed
        across blocks.
    distance_um : (float, float), default (15, 25)
        Range of the distance of each unit from its electrode (uniform); 15 µm is the
        implant's closest approach of a soma (``ImplantParameters.min_distance_um``).
    parameters : ImplantParameters, optional
        Physics of the implant; default ``ImplantParameters(footprint_radius_um=40)``: each
        unit reaches only its own electrode.
    dead_channels : sequence of int, optional
        Electrodes that read a constant code (0) and are left out of the reference; their
        features are exactly 0.
    warmup_s : float, optional
        Rest before each block; default the chain's noise window plus 0.2 s (1.2 s).
    chain_options : dict, optional
        Extra :class:`SignalChain` options (threshold, filter design, ...); ``bin_ms``,
        ``fractional_bins`` and ``reference_groups`` are set here.

    Examples
    --------
    >>> from neurolace.sim.participant import Intention, SimulatedParticipant
    >>> participant = SimulatedParticipant(n_channels=32, seed=0)
    >>> source = ImplantFeatureSource(participant, features="both")
    >>> source.start(seed=1)
    >>> source.emit(Intention(np.array([0.5, 0.0]), 0.0, np.array([0.5, 0.5]))).shape
    (64,)
    """

    def __init__(
        self,
        participant: Any,
        *,
        features: str = "crossings",
        layout_seed: int = 0,
        distance_um: tuple[float, float] = (15.0, 25.0),
        parameters: ImplantParameters | None = None,
        dead_channels: Any = (),
        warmup_s: float | None = None,
        chain_options: dict | None = None,
    ) -> None:
        for name in ("tuning", "visibility", "background_hz", "nuisance_loadings", "control", "neural"):
            if not hasattr(participant, name):
                raise InvalidInputError(
                    f"participant must be a SimulatedParticipant (it has no {name!r}), got {type(participant).__name__}"
                )
        self.features = check_in(features, "features", FEATURE_KINDS)
        self.n_channels = check_int(participant.n_channels, "participant.n_channels", minimum=1)
        self.geometry = implant_geometry(self.n_channels)
        self.loop_s = float(participant.control.loop_s)
        self.ms_per_bin = round(self.loop_s * RATE_FS_HZ)
        if self.ms_per_bin < 1 or abs(self.ms_per_bin - self.loop_s * RATE_FS_HZ) > 1e-9:
            raise InvalidInputError(
                f"participant.control.loop_s must be a whole number of milliseconds (the implant's "
                f"intention grid), got {self.loop_s!r}"
            )
        low, high = (float(v) for v in distance_um)
        if not 0 <= low <= high:
            raise InvalidInputError(f"distance_um must be (low, high) with 0 <= low <= high, got {distance_um!r}")
        self.parameters = (
            ImplantParameters(footprint_radius_um=OWN_ELECTRODE_FOOTPRINT_UM) if parameters is None else parameters
        )
        if not isinstance(self.parameters, ImplantParameters):
            raise InvalidInputError(f"parameters must be an ImplantParameters, got {type(self.parameters).__name__}")
        dead = check_array(np.asarray(dead_channels, dtype=np.int64).reshape(-1), "dead_channels", ndim=1)
        if dead.size and (dead.min() < 0 or dead.max() >= self.n_channels):
            raise InvalidInputError(
                f"dead_channels must be channel indices in [0, {self.n_channels}), got {dead.tolist()}"
            )
        self.dead_channels = np.unique(dead)
        self.layout_seed = check_int(layout_seed, "layout_seed", minimum=0)
        self.tuning = implant_tuning(participant)
        self.nuisance_loadings = np.asarray(participant.nuisance_loadings, dtype=np.float64)
        self.nuisance_tau_s = float(participant.neural.nuisance_tau_s)
        self.unit_positions_um = self._unit_positions(low, high)
        options = dict(chain_options or {})
        for key in ("bin_ms", "fractional_bins", "reference_groups"):
            if key in options:
                raise InvalidInputError(f"chain_options must not set {key!r}; ImplantFeatureSource sets it")
        groups = np.zeros(self.n_channels, dtype=np.int64)
        groups[self.dead_channels] = 1 + np.arange(self.dead_channels.size)  # alone: never referenced
        self._chain_options = {
            **options,
            "bin_ms": self.loop_s * 1e3,
            "fractional_bins": True,
            "reference_groups": groups,
        }
        self._stream: ImplantStream | None = None
        self._chain: SignalChain | None = None
        noise_window_s = float(options.get("noise_window_s", DEFAULT_NOISE_WINDOW_S))
        self.warmup_s = noise_window_s + 0.2 if warmup_s is None else check_nonnegative(warmup_s, "warmup_s")
        #: keep each step's ADC codes and spike events for :meth:`take_products` (the link's uplink sets it)
        self.keep_products = False
        self._products: list[tuple[int, np.ndarray, Any]] = []
        self._started = False

    # -- layout ---------------------------------------------------------------------------------
    def _unit_positions(self, low_um: float, high_um: float) -> np.ndarray:
        """Both units of channel ``c`` beside electrode ``c``, at its depth, shape (2 n, 3)."""
        rng = spawn_rngs(self.layout_seed, 1)[0]
        electrodes = np.tile(self.geometry.positions_um, (2, 1))
        n_units = electrodes.shape[0]
        distance = rng.uniform(low_um, high_um, n_units)
        angle = rng.uniform(-np.pi, np.pi, n_units)
        offset = np.column_stack([distance * np.cos(angle), distance * np.sin(angle), np.zeros(n_units)])
        return electrodes + offset

    # -- protocol -------------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """Width of one feature bin: ``n_channels``, or ``2 * n_channels`` for ``"both"``."""
        return 2 * self.n_channels if self.features == "both" else self.n_channels

    @property
    def stream(self) -> ImplantStream | None:
        """The current block's implant stream (its ground truth has every spike), None before :meth:`start`."""
        return self._stream

    @property
    def chain(self) -> SignalChain | None:
        """The current block's on-implant chain (noise estimate, thresholds), None before :meth:`start`."""
        return self._chain

    def bin_samples(self, index: int) -> tuple[int, int]:
        """Implant samples ``[first, stop)`` that the block's feature bin ``index`` covers (stream clock)."""
        if not self._started:
            raise InvalidInputError("call start(seed) first: the bins are placed when a block starts")
        clock = self._chain.sbp.clock
        index = check_int(index, "index", minimum=0)
        return (
            self._skip_samples + clock.bin_start(self._warmup_bins + index),
            self._skip_samples + clock.bin_start(self._warmup_bins + index + 1),
        )

    def start(self, seed: SeedLike = None) -> None:
        """Begin a block: new noise on the same implant, then ``warmup_s`` of rest for the chain.

        Parameters
        ----------
        seed : int, Generator or None
            Seeds the block's spikes, background noise and shared gain fluctuations.
        """
        stream_seed, nuisance_seed = spawn_rngs(check_rng(seed), 2)
        self._stream = ImplantStream(
            n_electrodes=self.n_channels,
            seed=self.layout_seed,
            noise_seed=stream_seed,
            tuning=self.tuning,
            parameters=self.parameters,
            unit_positions_um=self.unit_positions_um,
        )
        self._nuisance_rng = nuisance_seed
        self._nuisance = np.zeros(self.nuisance_loadings.shape[1])
        self._chain = SignalChain(
            self._stream.fs_hz, self.n_channels, gain_uv=self._stream.gain_uv, **self._chain_options
        )
        self._rows: deque = deque()
        clock = self._chain.sbp.clock
        # Feature bin j covers stream samples [skip + floor(j w), ...): `skip` is a whole number of
        # bins that are an integer number of samples (a multiple of the fraction's denominator q),
        # less the latency, so bin j = warm-up bins + b lines up with intention bin b, shifted back.
        p, q = clock._p, clock._q
        self.latency_samples = (
            self._stream._n_before + 1 + self._chain.delay_samples + self._chain.detector.dead_samples + 1
        )
        shift_bins = q * -(-self.latency_samples // p)
        self._skip_samples = shift_bins * p // q - self.latency_samples
        self._warmup_bins = max(
            int(np.ceil(self.warmup_s / self.loop_s - 1e-9)) - shift_bins,
            int(np.ceil(self._chain.noise.window_samples / (p / q))) + 1,
        )
        self._discard_rows = self._warmup_bins
        self._bins_emitted = 0
        rest = np.zeros(((shift_bins + self._warmup_bins) * self.ms_per_bin, 2))
        self._stream.push_intention(rest)
        self._skip_left = self._skip_samples
        self._started = True
        self._feed()
        self._products.clear()  # the warm-up's samples are the implant's own business

    def emit(self, intention: Any) -> np.ndarray:
        """One control bin of features for one intention.

        Parameters
        ----------
        intention : Intention
            ``velocity`` shape (2,) (normalised units) and ``click`` in [0, 1].

        Returns
        -------
        features : ndarray of float64, shape (n_features,)
            Crossings (counts in the bin) and/or spike-band power (mean |x| in µV).
        """
        velocity, click = _check_intention(intention)
        return self.emit_many(velocity[np.newaxis], np.array([click]))[0]

    def emit_many(self, velocity: Any, click: Any = None) -> np.ndarray:
        """Features of consecutive control bins, shape (n_bins, n_features); same as ``emit`` bin by bin.

        Parameters
        ----------
        velocity : array-like, shape (n_bins, 2)
            Intended velocity of each bin.
        click : array-like, shape (n_bins,), optional
            Click intention of each bin in [0, 1]; zeros by default.
        """
        if not self._started:
            raise InvalidInputError("call start(seed) before emit: the implant needs a block to run in")
        velocity = check_array(velocity, "velocity", ndim=2, dtype=np.float64, shape=(None, 2))
        n_bins = velocity.shape[0]
        click = np.zeros(n_bins) if click is None else check_array(
            click, "click", ndim=1, dtype=np.float64, shape=(n_bins,)
        )
        if n_bins and (click.min() < 0 or click.max() > 1):
            raise InvalidInputError(f"click must lie in [0, 1], got values in [{click.min():g}, {click.max():g}]")
        gains = self._gains(n_bins)
        per_bin = self.ms_per_bin
        for index in range(n_bins):
            self._stream.push_intention(
                np.repeat(velocity[index : index + 1], per_bin, axis=0),
                np.full(per_bin, click[index]),
                rate_gain=gains[index],
            )
            if (index + 1) % FEED_BINS == 0:
                self._feed()  # bounded memory: a long block is rendered and filtered a second at a time
        self._feed()
        assert len(self._rows) >= n_bins, "the chain's latency exceeds the source's bin shift"
        rows = np.array([self._rows.popleft() for _ in range(n_bins)]).reshape(n_bins, 2 * self.n_channels)
        self._bins_emitted += n_bins
        if self.features == "crossings":
            return rows[:, : self.n_channels].copy()
        if self.features == "sbp":
            return rows[:, self.n_channels :].copy()
        return rows

    def take_products(self) -> ImplantProducts | None:
        """The ADC codes and spike events the implant made since the last call (``keep_products`` on).

        Returns
        -------
        ImplantProducts or None
            ``raw_codes`` int16, shape (n_samples, n_channels), from chain sample ``raw_clock``
            on, and the chain's ``events`` over them; None when nothing was made.
        """
        if not self._products:
            return None
        parts, self._products = self._products, []
        raw = parts[0][1] if len(parts) == 1 else np.concatenate([codes for _, codes, _ in parts])
        events = parts[0][2] if len(parts) == 1 else SpikeEvents.concatenate([part[2] for part in parts])
        return ImplantProducts(raw, parts[0][0], events)

    # -- internals ------------------------------------------------------------------------------
    def _gains(self, n_bins: int) -> np.ndarray:
        """Shared rate gain of every unit per bin, shape (n_bins, 2 n): the Ornstein-Uhlenbeck nuisance."""
        n_nuisance = self.nuisance_loadings.shape[1]
        if n_nuisance == 0:
            return np.ones((n_bins, 2 * self.n_channels))
        path, self._nuisance = nuisance_path(self._nuisance, n_bins, self.loop_s, self.nuisance_tau_s,
                                             self._nuisance_rng)
        gain = np.exp(path @ self.nuisance_loadings.T)
        return np.concatenate([gain, gain], axis=1)

    def _feed(self) -> None:
        """Read the final samples, run them through the chain, queue the block's bins."""
        codes = self._stream.read()
        if self._skip_left:
            dropped = min(self._skip_left, codes.shape[0])
            codes = codes[dropped:]
            self._skip_left -= dropped
        if self.dead_channels.size:
            codes[:, self.dead_channels] = 0
        clock = self._chain.samples_seen
        output = self._chain.process(codes)
        if self.keep_products and codes.shape[0]:
            self._products.append((clock, codes, output.events))
        data = output.features.data
        if self._discard_rows:
            dropped = min(self._discard_rows, data.shape[0])
            data = data[dropped:]
            self._discard_rows -= dropped
        self._rows.extend(data)

    def __repr__(self) -> str:
        return (
            f"ImplantFeatureSource(n_channels={self.n_channels}, features={self.features!r}, "
            f"n_units={self.tuning.n_units}, loop_s={self.loop_s:g}, dead_channels={self.dead_channels.size})"
        )


def _check_intention(intention: Any) -> tuple[np.ndarray, float]:
    if not hasattr(intention, "velocity") or not hasattr(intention, "click"):
        raise InvalidInputError(
            f"intention must have velocity (2,) and click (an Intention), got {type(intention).__name__}"
        )
    velocity = check_array(intention.velocity, "intention.velocity", ndim=1, dtype=np.float64, shape=(2,))
    click = float(intention.click)
    if not 0.0 <= click <= 1.0:
        raise InvalidInputError(f"intention.click must lie in [0, 1], got {click!r}")
    return velocity, click
