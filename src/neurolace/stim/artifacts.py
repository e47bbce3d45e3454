"""Stimulation artifacts on a simulated recording: every delivered pulse, seen on every electrode.

What one biphasic current pulse does to the recording, as modelled here:

1. **The field of the current.** During each phase the tissue, a resistive
   volume conductor, carries the stimulating current's potential to every
   recording electrode: the quasi-static point-source law
   ``V(r) = I / (4 pi sigma r)`` (Bossetti, Birdno & Grill 2008, J Neural Eng
   5:44, on the quasi-static approximation for stimulation), summed over the
   train's electrodes, with ``r`` floored at the electrode's radius and
   ``sigma`` = 0.3 S/m, a usual value for grey matter. At 100 µA that is
   ~26 mV a millimetre away: "large electrical artifacts appeared on all
   channels" during single-electrode ICMS in O'Shea & Shenoy (2018, J Neural
   Eng 15:026020, ERAASR), and the shape repeats from pulse to pulse (which
   ERAASR exploits), here with a small seeded pulse-to-pulse amplitude jitter.
2. **Saturation.** The sum is quantised by the implant's ADC and clipped at its
   range (``[0, 2^bits - 1]``; +-1 mV at 10 bits and 2 µV per code), so most
   electrodes sit at a rail during the phases.
3. **Recovery.** After the last phase the front end settles exponentially:
   ``tail_fraction`` of the phase's potential, decaying with
   ``recovery_tau_ms``. The defaults make a channel 1 mm away recover to
   within one ADC code ~2 ms after the pulse, the order of the 0.74 ms after
   which spike detection resumed behind sample-and-hold blanking and a 750 Hz
   high-pass in Weiss et al. (2019, J Neural Eng 16:016002); they are chosen,
   not fitted.

:class:`StimArtifacts` holds the delivered trains and adds their artifacts to
int16 ADC codes chunk by chunk on the recording's sample clock; any chunking
gives the same codes as the whole recording (tested). :func:`add_stim_artifacts`
is the verb over a whole :class:`~neurolace.core.Recording`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.geometry import ElectrodeGeometry
from neurolace.core.random import SeedLike, check_rng
from neurolace.core.recording import Recording
from neurolace.sim.implant import ImplantParameters
from neurolace.stim.pulses import PulseTrain

__all__ = ["ArtifactParameters", "StimArtifacts", "add_stim_artifacts"]


@dataclass(frozen=True)
class ArtifactParameters:
    """How a pulse's artifact looks on the recording (module docstring for the model).

    Attributes
    ----------
    tissue_conductivity_s_per_m : float, default 0.3
        Conductivity of the volume conductor (grey matter, a usual modelling value).
    electrode_radius_um : float, default 25
        Closest distance of the point-source law (a 2,000 µm² site has a radius of ~25 µm).
    tail_fraction : float, default 0.05
        Potential left at the end of the last phase, as a fraction of that phase's (chosen).
    recovery_tau_ms : float, default 0.3
        Time constant of the recovery (chosen; see the module docstring).
    tail_taus : float, default 12
        The recovery is followed for this many time constants (e^-12 = 6e-6 of its start).
    jitter_sd : float, default 0.03
        Log-normal SD of the pulse-to-pulse amplitude (artifacts repeat closely; ERAASR).
    """

    tissue_conductivity_s_per_m: float = 0.3
    electrode_radius_um: float = 25.0
    tail_fraction: float = 0.05
    recovery_tau_ms: float = 0.3
    tail_taus: float = 12.0
    jitter_sd: float = 0.03

    def __post_init__(self) -> None:
        for name in ("tissue_conductivity_s_per_m", "electrode_radius_um", "recovery_tau_ms", "tail_taus"):
            check_positive(getattr(self, name), name)
        for name in ("tail_fraction", "jitter_sd"):
            check_nonnegative(getattr(self, name), name)

    def uv_per_ua(self, distance_um: np.ndarray) -> np.ndarray:
        """Potential per µA of source current at ``distance_um``, µV: ``1e6 / (4 pi sigma r)`` with r in µm."""
        distance = np.maximum(np.asarray(distance_um, dtype=np.float64), self.electrode_radius_um)
        return 1e6 / (4.0 * math.pi * self.tissue_conductivity_s_per_m * distance)


class StimArtifacts:
    """The artifacts of delivered pulse trains, added to ADC codes chunk by chunk.

    Parameters
    ----------
    geometry : ElectrodeGeometry
        Electrode positions; stimulating and recording electrodes are the same sites.
    fs_hz : float
        Sampling rate of the recording.
    gain_uv : float
        µV per ADC code.
    adc_bits : int, default 10
        ADC resolution; codes are clipped to ``[0, 2^adc_bits - 1]``.
    parameters : ArtifactParameters, optional
    seed : int or Generator, default 0
        Seeds the pulse-to-pulse jitter (drawn per pulse as trains are added, so the artifacts do
        not depend on the chunking).

    Examples
    --------
    >>> artifacts = StimArtifacts.for_recording(recording)                  # doctest: +SKIP
    >>> artifacts.add_train(train, at_s=1.5)                                # doctest: +SKIP
    >>> codes = artifacts.apply(recording.samples[0:4096], start_sample=0)  # doctest: +SKIP
    """

    def __init__(
        self,
        geometry: ElectrodeGeometry,
        *,
        fs_hz: float,
        gain_uv: float,
        adc_bits: int = ImplantParameters.adc_bits,
        parameters: ArtifactParameters | None = None,
        seed: SeedLike = 0,
    ) -> None:
        if not isinstance(geometry, ElectrodeGeometry):
            raise InvalidInputError(f"geometry must be an ElectrodeGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.gain_uv = check_positive(gain_uv, "gain_uv")
        self.adc_max_code = (1 << check_int(adc_bits, "adc_bits", minimum=2, maximum=15)) - 1
        self.parameters = ArtifactParameters() if parameters is None else parameters
        if not isinstance(self.parameters, ArtifactParameters):
            raise InvalidInputError(
                f"parameters must be an ArtifactParameters, got {type(self.parameters).__name__}")
        self._rng = check_rng(seed)
        self._positions = geometry.positions_um
        self._pulse_start_s: list[np.ndarray] = []
        self._pulse_gain: list[np.ndarray] = []
        self._pulse_train: list[np.ndarray] = []
        self._trains: list[tuple[PulseTrain, np.ndarray, np.ndarray]] = []  # (train, template, scale)
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def for_recording(cls, recording: Recording, **options: Any) -> StimArtifacts:
        """Artifacts for ``recording``'s geometry, rate and gain (``options`` as ``__init__``)."""
        if not isinstance(recording, Recording):
            raise InvalidInputError(f"recording must be a Recording, got {type(recording).__name__}")
        return cls(recording.geometry, fs_hz=recording.fs_hz, gain_uv=recording.gain_uv, **options)

    @property
    def n_channels(self) -> int:
        return self.geometry.n_channels

    @property
    def n_pulses(self) -> int:
        return int(sum(times.size for times in self._pulse_start_s))

    @property
    def template_samples(self) -> int:
        """Samples after a pulse's onset sample that its artifact touches."""
        longest_us = max((train.duration_us for train, _, _ in self._trains), default=0.0)
        tail_s = self.parameters.tail_taus * self.parameters.recovery_tau_ms * 1e-3
        return int(math.ceil((longest_us * 1e-6 + tail_s) * self.fs_hz)) + 2

    # -- what was delivered -----------------------------------------------------------------------
    def add_train(self, train: PulseTrain, *, at_s: float = 0.0) -> None:
        """Record a delivered train whose pulses start at ``at_s + train.pulse_times_s()`` (recording clock)."""
        if not isinstance(train, PulseTrain):
            raise InvalidInputError(f"train must be a PulseTrain, got {type(train).__name__}")
        at_s = check_nonnegative(at_s, "at_s")
        channels = np.asarray(train.channels, dtype=np.int64)
        if channels.max() >= self.n_channels:
            raise InvalidInputError(
                f"train channels must be electrode indices below {self.n_channels}, got {int(channels.max())}")
        distances = np.linalg.norm(
            self._positions[np.newaxis, :, :] - self._positions[channels][:, np.newaxis, :], axis=2)
        scale = self.parameters.uv_per_ua(distances).sum(axis=0)  # µV per µA on every electrode
        starts = at_s + train.pulse_times_s()
        jitter = np.exp(self.parameters.jitter_sd * self._rng.standard_normal(starts.size))
        self._trains.append((train, train.phases_us(), scale))
        self._pulse_start_s.append(starts)
        self._pulse_gain.append(jitter)
        self._pulse_train.append(np.full(starts.size, len(self._trains) - 1, dtype=np.int64))
        self._sorted = None

    def onset_samples(self) -> np.ndarray:
        """Sample index holding each pulse's start, sorted, int64 (the blanking's onsets)."""
        starts, _, _ = self._pulses()
        return np.floor(starts * self.fs_hz).astype(np.int64)

    def _pulses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._sorted is None:
            if not self._pulse_start_s:
                empty = np.zeros(0)
                self._sorted = (empty, empty, np.zeros(0, np.int64))
            else:
                starts = np.concatenate(self._pulse_start_s)
                order = np.argsort(starts, kind="stable")
                self._sorted = (starts[order], np.concatenate(self._pulse_gain)[order],
                                np.concatenate(self._pulse_train)[order])
        return self._sorted

    # -- the waveform ------------------------------------------------------------------------------
    def _waveform_ua(self, train_index: int, offset_s: float, n: int) -> np.ndarray:
        """Equivalent current (µA) in samples ``0..n-1`` after the onset sample; the pulse starts ``offset_s`` in.

        Each sample holds the mean over its interval ``[k, k + 1) / fs`` of the phases' currents and the
        recovery tail (exact integrals of the piecewise-constant phases and of the exponential).
        """
        phases = self._trains[train_index][1]
        edges_s = np.arange(n + 1) / self.fs_hz - offset_s
        out = np.zeros(n)
        for start_us, stop_us, current_ua in phases:
            low = np.clip(edges_s[:-1], start_us * 1e-6, stop_us * 1e-6)
            high = np.clip(edges_s[1:], start_us * 1e-6, stop_us * 1e-6)
            out += current_ua * (high - low) * self.fs_hz
        if phases and self.parameters.tail_fraction > 0:
            end_s = phases[-1][1] * 1e-6
            tau_s = self.parameters.recovery_tau_ms * 1e-3
            low = np.maximum(edges_s[:-1], end_s) - end_s
            high = np.maximum(edges_s[1:], end_s) - end_s
            integral = tau_s * (np.exp(-low / tau_s) - np.exp(-high / tau_s))
            out += self.parameters.tail_fraction * phases[-1][2] * integral * self.fs_hz
        return out

    def artifact_uv(self, start_sample: int, n_samples: int) -> np.ndarray:
        """The artifacts (before the ADC) of samples ``[start, start + n)``, µV, shape (n_samples, n_channels)."""
        start = check_int(start_sample, "start_sample", minimum=0)
        n = check_int(n_samples, "n_samples", minimum=0)
        out = np.zeros((n, self.n_channels))
        starts, gains, trains = self._pulses()
        if n == 0 or starts.size == 0:
            return out
        onset = np.floor(starts * self.fs_hz).astype(np.int64)
        length = self.template_samples
        first = np.searchsorted(onset, start - length, side="right")
        last = np.searchsorted(onset, start + n, side="left")
        for index in range(first, last):
            pulse_onset = int(onset[index])
            waveform = self._waveform_ua(int(trains[index]), starts[index] - pulse_onset / self.fs_hz, length)
            lo, hi = max(pulse_onset, start), min(pulse_onset + length, start + n)
            if hi <= lo:
                continue
            scale = self._trains[int(trains[index])][2] * gains[index]
            out[lo - start:hi - start] += waveform[lo - pulse_onset:hi - pulse_onset, np.newaxis] * scale
        return out

    def apply(self, codes: Any, *, start_sample: int) -> np.ndarray:
        """ADC codes of the recording plus the artifacts, re-quantised and clipped at the ADC range.

        Parameters
        ----------
        codes : array-like of int, shape (n_samples, n_channels)
            The recording's codes for samples ``[start_sample, start_sample + n_samples)``.
        start_sample : int
            Sample index of ``codes[0]`` on the recording's clock.

        Returns
        -------
        ndarray of int16, shape (n_samples, n_channels)
        """
        codes = check_array(codes, "codes", ndim=2, dtype="integer")
        if codes.shape[1] != self.n_channels:
            raise InvalidInputError(f"codes must have shape (n_samples, {self.n_channels}), got {codes.shape}")
        added = np.rint(self.artifact_uv(start_sample, codes.shape[0]) / self.gain_uv)
        return np.clip(codes.astype(np.float64) + added, 0, self.adc_max_code).astype(np.int16)

    def __repr__(self) -> str:
        return (f"StimArtifacts(n_channels={self.n_channels}, fs_hz={self.fs_hz:g}, trains={len(self._trains)}, "
                f"pulses={self.n_pulses})")


def add_stim_artifacts(
    recording: Recording,
    trains: Any,
    *,
    parameters: ArtifactParameters | None = None,
    adc_bits: int = ImplantParameters.adc_bits,
    seed: SeedLike = 0,
    chunk_samples: int = 8192,
) -> tuple[Recording, np.ndarray]:
    """A copy of ``recording`` with the artifacts of ``trains``, and the pulses' onset samples.

    Parameters
    ----------
    recording : Recording
        int16 ADC codes (e.g. :func:`neurolace.sim.simulate_implant`).
    trains : iterable of (PulseTrain, at_s) or PulseTrain
        Delivered trains and when (recording clock, s; a bare train starts at 0).
    parameters, adc_bits, seed
        As for :class:`StimArtifacts`.
    chunk_samples : int, default 8192
        Samples per step (the result does not depend on it).

    Returns
    -------
    recording : Recording
        Same metadata, samples with artifacts.
    onset_samples : ndarray of int64, shape (n_pulses,)
        Where each pulse starts, for :class:`neurolace.dsp.blanking.Blanker`.
    """
    artifacts = StimArtifacts.for_recording(recording, parameters=parameters, adc_bits=adc_bits, seed=seed)
    for item in trains:
        train, at_s = (item, 0.0) if isinstance(item, PulseTrain) else item
        artifacts.add_train(train, at_s=at_s)
    chunk_samples = check_int(chunk_samples, "chunk_samples", minimum=1)
    out = np.empty(recording.samples.shape, dtype=np.int16)
    for start in range(0, recording.n_samples, chunk_samples):
        stop = min(start + chunk_samples, recording.n_samples)
        out[start:stop] = artifacts.apply(recording.samples[start:stop], start_sample=start)
    shifted = Recording(
        out, fs_hz=recording.fs_hz, gain_uv=recording.gain_uv, offset_uv=recording.offset_uv,
        channel_ids=recording.channel_ids, geometry=recording.geometry,
        metadata={**recording.metadata, "stim_pulses": artifacts.n_pulses},
    )
    return shifted, artifacts.onset_samples()
