"""Extracellular spike waveforms: their shape and how their amplitude falls with distance.

The simulated implant gives every unit its own waveform, drawn from a small
parametric family, and scales it onto each electrode by a distance law.

Shape (per unit, time relative to the trough at ``t = 0``)::

    w(t) = a_pre  * g(t + d_pre, s_pre)      initial positive bump (triphasic units)
         -          g(t, s_trough)           the sodium-driven trough
         + a_post * g(t - d_tp, s_post)      the slower repolarisation peak

with ``g(t, s) = exp(-t^2 / (2 s^2))``, tapered to zero at the window edges
and normalised so the trough is exactly -1. Parameter ranges, per unit:

- trough-to-peak time ``d_tp``: a "narrow" class (putative interneurons,
  0.25-0.40 ms, 30 % of units) and a "broad" class (putative pyramidal cells,
  0.45-0.65 ms). Barthó et al. 2004, J Neurophysiol 92:600 separate the two
  classes in rat cortex at ~0.4-0.5 ms; Vigneswaran et al. 2011, J Neurosci
  31:14235 report the same spread in macaque motor cortex.
- trough width ``s_trough``: 0.06-0.10 ms standard deviation, i.e. a trough
  full width at half minimum of ~0.15-0.25 ms (Gold et al. 2006,
  J Neurophysiol 95:3113, simulated and recorded CA1 spikes).
- repolarisation peak ``a_post``: 0.15-0.45 of the trough depth, wider than the
  trough (``s_post`` = 0.35-0.55 of ``d_tp``) (Barthó 2004; Henze et al. 2000,
  J Neurophysiol 84:390, their Fig. 2).
- initial positive bump ``a_pre``: 0-0.12 of the trough, 0.2 ms before it, as
  seen near the dendrites of cortical cells (Gold 2006).

The waveform lasts ``WINDOW_BEFORE_MS + WINDOW_AFTER_MS`` = 2.0 ms, enough
for the ~1 ms extracellular action potential and its repolarisation tail.

Distance law: the peak (trough) amplitude of a unit on an electrode at
distance ``r`` from its soma is::

    amplitude_uv(r) = soma_amplitude_uv / (1 + (r / half_distance_um)^2)

which is flat close to the soma and falls as 1/r^2 beyond ``half_distance_um``,
the dipole-like fall-off of the extracellular action potential between ~30 and
~150 µm (Pettersen & Einevoll 2008, Biophys J 94:784). With the defaults of
:mod:`neurolace.sim.implant` (``half_distance_um`` = 35 µm, soma amplitudes
of ~100-400 µV), a unit exceeds ~60 µV out to ~50 µm and ~20 µV out to
~100-140 µm, the radii Henze et al. 2000 and Buzsáki 2004 (Nat Neurosci
7:446) give for tetrode recordings in cortex and hippocampus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_array, check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng

__all__ = [
    "WINDOW_AFTER_MS",
    "WINDOW_BEFORE_MS",
    "WaveformShapes",
    "amplitude_at_distance_uv",
    "random_waveform_shapes",
    "taps_before",
]

#: Waveform window before the trough, in ms.
WINDOW_BEFORE_MS = 0.6
#: Waveform window after the trough, in ms.
WINDOW_AFTER_MS = 1.4
#: Fraction of units in the narrow-spiking class (Barthó et al. 2004 find ~20-30 % in cortex).
NARROW_FRACTION = 0.3
#: Length of the raised-cosine taper at each end of the window, in ms.
TAPER_MS = 0.2


@dataclass(frozen=True, eq=False)
class WaveformShapes:
    """Per-unit waveform parameters (all arrays have shape ``(n_units,)``, times in ms).

    Attributes
    ----------
    trough_to_peak_ms : ndarray
        Time from the trough to the repolarisation peak (``d_tp``).
    trough_width_ms : ndarray
        Gaussian standard deviation of the trough (``s_trough``).
    post_amplitude : ndarray
        Height of the repolarisation peak relative to the trough depth (``a_post``).
    post_width_ms : ndarray
        Gaussian standard deviation of the repolarisation peak (``s_post``).
    pre_amplitude : ndarray
        Height of the initial positive bump relative to the trough depth (``a_pre``).
    narrow : ndarray of bool
        True for the narrow-spiking class.
    """

    trough_to_peak_ms: np.ndarray
    trough_width_ms: np.ndarray
    post_amplitude: np.ndarray
    post_width_ms: np.ndarray
    pre_amplitude: np.ndarray
    narrow: np.ndarray

    @property
    def n_units(self) -> int:
        return int(self.trough_to_peak_ms.shape[0])

    def sample(self, fs_hz: float, *, n_phases: int = 1) -> np.ndarray:
        """Evaluate the waveforms on the sample grid.

        Parameters
        ----------
        fs_hz : float
            Sampling rate in Hz.
        n_phases : int, default 1
            Number of sub-sample phases. Phase ``p`` is the waveform of a spike
            whose trough falls ``p / n_phases`` of a sample *after* the sample
            it is assigned to, so spikes keep their sub-sample timing.

        Returns
        -------
        waveforms : ndarray of float32, shape (n_units, n_phases, n_taps)
            Tap ``k`` is the value at sample offset ``k - n_before`` from the
            spike's sample, where ``n_before = taps_before(fs_hz)``. The phase-0
            trough equals -1 exactly.
        """
        fs_hz = check_positive(fs_hz, "fs_hz")
        n_phases = check_int(n_phases, "n_phases", minimum=1)
        n_before = taps_before(fs_hz)
        n_taps = n_before + int(np.ceil(WINDOW_AFTER_MS * 1e-3 * fs_hz)) + 1
        offsets_ms = (np.arange(n_taps) - n_before) * 1e3 / fs_hz
        phases_ms = np.arange(n_phases) * 1e3 / fs_hz / n_phases
        # time relative to the trough, shape (1, n_phases, n_taps); per-unit values broadcast as (n_units, 1, 1)
        t = (offsets_ms[np.newaxis, :] - phases_ms[:, np.newaxis])[np.newaxis]
        waveform = (
            _per_unit(self.pre_amplitude) * _gaussian(t, -0.2, 0.08)
            - _gaussian(t, 0.0, _per_unit(self.trough_width_ms))
            + _per_unit(self.post_amplitude)
            * _gaussian(t, _per_unit(self.trough_to_peak_ms), _per_unit(self.post_width_ms))
        )
        # Raised-cosine taper over the outer TAPER_MS of the window, so every waveform starts and ends at 0.
        edge_ms = np.minimum(offsets_ms - offsets_ms[0], offsets_ms[-1] - offsets_ms)
        waveform = waveform * (0.5 - 0.5 * np.cos(np.pi * np.clip(edge_ms / TAPER_MS, 0.0, 1.0)))
        # Normalise so the trough of the zero-phase waveform (t = 0 at tap n_before) is -1.
        trough = -waveform[:, :1, n_before : n_before + 1]
        return (waveform / trough).astype(np.float32)


def _per_unit(values: np.ndarray) -> np.ndarray:
    return values[:, np.newaxis, np.newaxis]


def _gaussian(t: np.ndarray, centre_ms, width_ms) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre_ms) / width_ms) ** 2)


def taps_before(fs_hz: float) -> int:
    """Number of waveform samples before the trough sample at ``fs_hz``."""
    return int(np.ceil(WINDOW_BEFORE_MS * 1e-3 * fs_hz))


def random_waveform_shapes(n_units: int, *, seed: SeedLike = None) -> WaveformShapes:
    """Draw per-unit waveform parameters from the ranges in the module docstring."""
    n_units = check_int(n_units, "n_units", minimum=0)
    rng = check_rng(seed)
    narrow = rng.random(n_units) < NARROW_FRACTION
    trough_to_peak = np.where(narrow, rng.uniform(0.25, 0.40, n_units), rng.uniform(0.45, 0.65, n_units))
    trough_width = np.where(narrow, rng.uniform(0.06, 0.08, n_units), rng.uniform(0.07, 0.10, n_units))
    post_amplitude = rng.uniform(0.15, 0.45, n_units)
    post_width = trough_to_peak * rng.uniform(0.35, 0.55, n_units)
    pre_amplitude = rng.uniform(0.0, 0.12, n_units)
    return WaveformShapes(trough_to_peak, trough_width, post_amplitude, post_width, pre_amplitude, narrow)


def amplitude_at_distance_uv(distance_um, soma_amplitude_uv, *, half_distance_um: float = 35.0) -> np.ndarray:
    """Peak amplitude of a unit at ``distance_um`` from its soma (see module docstring).

    Parameters
    ----------
    distance_um : array-like, shape (n,)
        Soma-to-electrode distances in µm.
    soma_amplitude_uv : array-like, shape (n,) or scalar
        Amplitude the unit would have at distance 0, in µV.
    half_distance_um : float, default 35.0
        Distance at which the amplitude has halved.

    Returns
    -------
    amplitude_uv : ndarray, shape (n,)
    """
    distance = check_array(distance_um, "distance_um", dtype=np.float64)
    if distance.size and distance.min() < 0:
        raise InvalidInputError(f"distance_um must be >= 0, got minimum {distance.min()}")
    half_distance_um = check_positive(half_distance_um, "half_distance_um")
    soma = check_array(soma_amplitude_uv, "soma_amplitude_uv", dtype=np.float64)
    return soma / (1.0 + (distance / half_distance_um) ** 2)
