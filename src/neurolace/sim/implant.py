"""The simulated N1-like implant: tuned neurons around threads of electrodes, digitised by a 10-bit ADC.

:func:`simulate_implant` builds a seeded, reproducible recording with its full
ground truth:

1. *Geometry*: ``n_electrodes`` on threads of 16 (N1: 64 threads x 16
   electrodes, 50 µm pitch; see :meth:`ElectrodeGeometry.threads`).
2. *Neurons*: placed uniformly at ``active_density_per_mm3`` in a cylinder of
   radius ``placement_radius_um`` around each thread, no closer than
   ``min_distance_um`` to its axis (the soma cannot overlap the thread).
3. *Waveforms*: one per unit from :mod:`neurolace.sim.waveforms`, scaled onto
   every electrode within ``footprint_radius_um`` by the distance law there.
4. *Spikes*: :func:`neurolace.sim.spiking.generate_spike_trains` from a
   :class:`~neurolace.sim.tuning.TuningModel` driven by the intended velocity
   and click (a random reaching session by default).
5. *Background*: :class:`neurolace.sim.background.BackgroundGenerator`
   (thermal noise, hash, LFP, drift, offset).
6. *ADC*: ``code = round(uv / gain_uv) + 2^(bits-1)``, clipped to
   ``[0, 2^bits - 1]`` and stored as int16.

The signal is built chunk by chunk in float32 and quantised straight into the
int16 output, so peak memory is the output plus a few chunk buffers. The
result is bit-for-bit identical for any ``chunk_samples`` (tested).
:class:`ImplantStream` is the same machine driven incrementally (push intended
movement, read final samples), for closed loops; :func:`simulate_implant` is
built on it, and any split of a session into pushes and reads gives the same
samples (tested).

Every default below is documented with its source in
:class:`ImplantParameters` and in ``docs/simulator.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.core.geometry import ElectrodeGeometry
from neurolace.core.random import SeedLike, spawn_rngs
from neurolace.core.recording import Recording
from neurolace.sim.background import BackgroundGenerator
from neurolace.sim.spiking import (
    BLOCK_STEPS,
    N1_FS_HZ,
    RATE_FS_HZ,
    IntendedMovement,
    SpikeGenerator,
    SpikeTrains,
)
from neurolace.sim.tuning import TuningModel
from neurolace.sim.waveforms import (
    WaveformShapes,
    amplitude_at_distance_uv,
    random_waveform_shapes,
    taps_before,
)

__all__ = [
    "ELECTRODES_PER_THREAD",
    "GroundTruth",
    "ImplantParameters",
    "ImplantStream",
    "SimulatedImplant",
    "implant_geometry",
    "simulate_implant",
]

#: Electrodes per thread on the N1 (Musk & Neuralink 2019, JMIR 21:e16194).
ELECTRODES_PER_THREAD = 16


@dataclass(frozen=True)
class ImplantParameters:
    """Physical parameters of the simulated implant; the defaults are N1-like and sourced.

    Attributes
    ----------
    active_density_per_mm3 : float, default 2000
        Density of *active* neurons (those that fire at all during the session).
        Cortex holds ~50,000-100,000 neurons per mm^3, but most are silent or
        too small to record (Shoham, O'Connor & Segev 2006, J Comp Physiol A
        192:777; Buzsáki 2004). At 2000 per mm^3 an electrode sees on average
        ~1.4 units whose peak exceeds 5x its noise RMS, and ~2/3 of electrodes
        see at least one: the "spiking yield" of up to 70 % Musk & Neuralink
        2019 report. The public N1 clips are quieter; ~300 per mm^3 reproduces
        their threshold-crossing rates (docs/simulator.md).
    placement_radius_um : float, default 120
        Neurons are placed within this distance of each thread's axis. Farther
        neurons fall below ~30 µV even when large and are part of the hash.
    min_distance_um : float, default 15
        Closest approach of a soma centre to the thread axis: a soma radius of
        ~10 µm plus half the ~5-10 µm-thick thread (Musk & Neuralink 2019).
    footprint_radius_um : float, default 150
        A unit's spike is added to every electrode within this distance
        (always including its nearest electrode).
    soma_amplitude_median_uv : float, default 180
        Median of the log-normal amplitude a unit would have at distance 0; at
        the minimum distance of 15 µm this is ~150 µV, and the central 90 % of
        units span ~80-290 µV there (Henze et al. 2000, J Neurophysiol 84:390;
        Buzsáki 2004: ~50-300 µV next to a soma).
    soma_amplitude_sigma : float, default 0.4
        Log-normal sigma of the soma amplitude.
    half_distance_um : float, default 35
        Distance at which a unit's amplitude has halved (see
        :mod:`neurolace.sim.waveforms` for the law and sources).
    refractory_ms : float, default 2.0
        Absolute refractory period (see :mod:`neurolace.sim.spiking`).
    thermal_noise_uv_rms : float, default 6.0
        Amplifier plus electrode thermal noise, white, broadband. Low-power
        neural front ends reach ~2-5 µV RMS input-referred (Harrison & Charles
        2003, IEEE JSSC 38:958: 2.2 µV; Intan RHD2000 datasheet: 2.4 µV);
        small, high-impedance electrodes add thermal noise of several µV
        (Obien et al. 2015, Front Neurosci 8:423).
    hash_noise_uv_rms : float, default 10.0
        Median RMS of the background multi-unit hash. Total spike-band noise of
        ~10-15 µV RMS is typical of cortical microelectrodes (Obien 2015); with
        ``gain_uv`` = 2 this value reproduces the median high-pass noise of the
        public N1 recordings, ~6 codes (docs/simulator.md, ``python -m
        benchmarks sim``).
    hash_spread : float, default 0.45
        Log-normal sigma of the hash RMS across channels (the high-pass noise of
        the public N1 recordings differs ~2x between the 10th and 90th
        percentile of channels).
    hash_band_hz : (float, float), default (300, 3000)
        Pass band of the hash (the spike band).
    lfp_uv_rms : float, default 30
        Median RMS of the LFP (tens to ~100 µV in cortex: Buzsáki, Anastassiou
        & Koch 2012, Nat Rev Neurosci 13:407).
    lfp_spread : float, default 0.5
        Log-normal sigma of the LFP RMS across threads (the raw standard
        deviation of the public N1 clips spans ~3x between the 10th and 90th
        percentile).
    lfp_corner_hz : tuple of float, default (1, 4, 16, 64)
        Corners of the Lorentzian components whose sum makes the ~1/f LFP.
    drift_uv_rms : float, default 10
        RMS of the slow drift.
    drift_corner_hz : float, default 0.05
        Corner frequency of the drift.
    dc_offset_uv_mean : float, default 20
        Mean of the per-channel DC offset at the ADC input.
    dc_offset_uv_sd : float, default 12
        Standard deviation of the per-channel DC offset. Together: the median
        codes of the public N1 clips sit 2-19 codes (10th-90th percentile)
        above mid-scale, i.e. ~+20 +- 12 µV at 2 µV per code.
    adc_bits : int, default 10
        ADC resolution (N1: 10 bits, Musk & Neuralink 2019).
    gain_uv : float, default 2.0
        µV per ADC code. The white paper does not publish the N1 front-end
        gain; 2 µV per code makes the 10-bit range +-1.02 mV (ample for
        spikes of a few hundred µV on an LFP of ~100 µV) and reproduces the
        code statistics of the public N1 clips: high-pass noise of ~5-6 codes
        and raw standard deviation of ~15-20 codes (docs/simulator.md).
    waveform_phases : int, default 8
        Sub-sample phases per waveform, so spike timing keeps 1/8-sample resolution.
    """

    active_density_per_mm3: float = 2000.0
    placement_radius_um: float = 120.0
    min_distance_um: float = 15.0
    footprint_radius_um: float = 150.0
    soma_amplitude_median_uv: float = 180.0
    soma_amplitude_sigma: float = 0.4
    half_distance_um: float = 35.0
    refractory_ms: float = 2.0
    thermal_noise_uv_rms: float = 6.0
    hash_noise_uv_rms: float = 10.0
    hash_spread: float = 0.45
    hash_band_hz: tuple[float, float] = (300.0, 3000.0)
    lfp_uv_rms: float = 30.0
    lfp_spread: float = 0.5
    lfp_corner_hz: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
    drift_uv_rms: float = 10.0
    drift_corner_hz: float = 0.05
    dc_offset_uv_mean: float = 20.0
    dc_offset_uv_sd: float = 12.0
    adc_bits: int = 10
    gain_uv: float = 2.0
    waveform_phases: int = 8

    def __post_init__(self) -> None:
        for name in (
            "active_density_per_mm3",
            "min_distance_um",
            "soma_amplitude_sigma",
            "refractory_ms",
            "thermal_noise_uv_rms",
            "hash_noise_uv_rms",
            "hash_spread",
            "lfp_uv_rms",
            "lfp_spread",
            "drift_uv_rms",
            "dc_offset_uv_sd",
        ):
            check_nonnegative(getattr(self, name), name)
        for name in (
            "placement_radius_um",
            "footprint_radius_um",
            "soma_amplitude_median_uv",
            "half_distance_um",
            "drift_corner_hz",
            "gain_uv",
        ):
            check_positive(getattr(self, name), name)
        if self.min_distance_um >= self.placement_radius_um:
            raise InvalidInputError(
                f"min_distance_um ({self.min_distance_um:g}) must be smaller than placement_radius_um "
                f"({self.placement_radius_um:g})"
            )
        low, high = (float(v) for v in self.hash_band_hz)
        if not 0 < low < high:
            raise InvalidInputError(
                f"hash_band_hz must be (low, high) with 0 < low < high, got {self.hash_band_hz}"
            )
        if not self.lfp_corner_hz or min(self.lfp_corner_hz) <= 0:
            raise InvalidInputError(f"lfp_corner_hz must be positive frequencies, got {self.lfp_corner_hz}")
        check_int(self.adc_bits, "adc_bits", minimum=2, maximum=15)
        check_int(self.waveform_phases, "waveform_phases", minimum=1, maximum=64)

    @property
    def adc_mid_code(self) -> int:
        return 1 << (self.adc_bits - 1)

    @property
    def adc_max_code(self) -> int:
        return (1 << self.adc_bits) - 1


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Everything the simulator knows about a :class:`SimulatedImplant` recording.

    Attributes
    ----------
    units : SpikeEvents
        Every spike: ``sample_index`` of its trough, ``unit_id``, ``channel_index``
        = the unit's peak channel, ``amplitude_uv`` = signed trough on that channel.
    unit_positions_um : ndarray, shape (n_units, 3)
        Soma positions (x, y, z = -depth), in the frame of ``geometry.positions_um``.
    tuning : TuningModel
        How each unit's rate follows intended velocity and click.
    amplitude_uv : scipy.sparse.csr_array, shape (n_units, n_channels)
        Peak (trough) depth of each unit's spike on each electrode within its
        footprint, in µV (positive); absent entries are 0.
    peak_channel : ndarray of int, shape (n_units,)
        Electrode where each unit is largest.
    peak_amplitude_uv : ndarray, shape (n_units,)
        Trough depth on the peak channel.
    snr : ndarray, shape (n_units,)
        ``peak_amplitude_uv / noise_rms_uv[peak_channel]``.
    noise_rms_uv : ndarray, shape (n_channels,)
        RMS of thermal noise plus hash on each channel (LFP and drift excluded).
    waveforms : ndarray of float32, shape (n_units, n_taps)
        Normalised waveforms (trough = -1 at tap ``waveform_taps_before``).
    waveform_taps_before : int
    shapes : WaveformShapes
        Parameters of the waveforms (trough-to-peak times, classes).
    intended_velocity : ndarray, shape (n_steps, 2)
    click : ndarray, shape (n_steps,)
    velocity_fs_hz : float
    parameters : ImplantParameters
    """

    units: SpikeEvents
    unit_positions_um: np.ndarray
    tuning: TuningModel
    amplitude_uv: sparse.csr_array
    peak_channel: np.ndarray
    peak_amplitude_uv: np.ndarray
    snr: np.ndarray
    noise_rms_uv: np.ndarray
    waveforms: np.ndarray
    waveform_taps_before: int
    shapes: WaveformShapes
    intended_velocity: np.ndarray
    click: np.ndarray
    velocity_fs_hz: float
    parameters: ImplantParameters

    @property
    def n_units(self) -> int:
        return int(self.unit_positions_um.shape[0])

    def units_per_channel(self, *, min_snr: float = 5.0) -> np.ndarray:
        """Number of units whose amplitude on each channel is at least ``min_snr`` x its noise RMS.

        Returns
        -------
        counts : ndarray of int, shape (n_channels,)
        """
        min_snr = check_nonnegative(min_snr, "min_snr")
        matrix = self.amplitude_uv.tocoo()
        visible = matrix.data >= min_snr * self.noise_rms_uv[matrix.col]
        return np.bincount(matrix.col[visible], minlength=self.noise_rms_uv.size)

    def spike_counts(self, bin_width_s: float, n_bins: int) -> np.ndarray:
        """Spike counts of each unit in ``n_bins`` bins of ``bin_width_s`` from time 0, shape (n_bins, n_units)."""
        bin_width_s = check_positive(bin_width_s, "bin_width_s")
        n_bins = check_int(n_bins, "n_bins", minimum=0)
        bins = np.floor(self.units.times_s / bin_width_s).astype(np.int64)
        keep = bins < n_bins
        flat = bins[keep] * self.n_units + self.units.unit_id[keep]
        return np.bincount(flat, minlength=n_bins * self.n_units).reshape(n_bins, self.n_units)

    def unit_table(self) -> dict[str, np.ndarray]:
        """Per-unit columns for an NWB units table (row ``i`` = unit ``i``), as ``write_nwb(unit_table=...)`` takes."""
        return {
            "peak_channel_index": self.peak_channel.astype(np.int64),
            "position_um": self.unit_positions_um,
            "peak_amplitude_uv": self.peak_amplitude_uv,
            "snr": self.snr,
            "trough_to_peak_ms": self.shapes.trough_to_peak_ms,
            "baseline_hz": self.tuning.baseline_hz,
            "depth_hz": self.tuning.depth_hz,
            "preferred_direction_rad": self.tuning.preferred_direction_rad,
            "speed_gain_hz": self.tuning.speed_gain_hz,
            "click_gain_hz": self.tuning.click_gain_hz,
        }

    def __repr__(self) -> str:
        return (
            f"GroundTruth(n_units={self.n_units}, n_spikes={self.units.n_spikes}, "
            f"median_snr={np.median(self.snr) if self.n_units else float('nan'):.1f})"
        )


@dataclass(frozen=True, eq=False)
class SimulatedImplant:
    """A simulated recording and its ground truth."""

    recording: Recording
    ground_truth: GroundTruth

    def __repr__(self) -> str:
        return f"SimulatedImplant({self.recording!r}, {self.ground_truth!r})"


def implant_geometry(n_electrodes: int) -> ElectrodeGeometry:
    """Electrode layout for ``n_electrodes``.

    1-16 electrodes sit on one thread; more must be a multiple of 16 and fill
    ``n_electrodes / 16`` threads of 16 (1024 = the N1's 64 x 16).
    """
    n_electrodes = check_int(n_electrodes, "n_electrodes", minimum=1)
    if n_electrodes <= ELECTRODES_PER_THREAD:
        return ElectrodeGeometry.threads(1, n_electrodes)
    if n_electrodes % ELECTRODES_PER_THREAD:
        raise InvalidInputError(
            f"n_electrodes must be 1-{ELECTRODES_PER_THREAD} (one thread) or a multiple of "
            f"{ELECTRODES_PER_THREAD} (threads of {ELECTRODES_PER_THREAD} electrodes), got {n_electrodes}"
        )
    return ElectrodeGeometry.threads(n_electrodes // ELECTRODES_PER_THREAD, ELECTRODES_PER_THREAD)


def _place_units(
    geometry: ElectrodeGeometry, parameters: ImplantParameters, n_units: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Soma positions (x, y, z), shape (n_units, 3), in cylinders around the threads."""
    radius = parameters.placement_radius_um
    inner = parameters.min_distance_um
    threads = np.unique(geometry.thread_id)
    tops, bottoms, centres = [], [], []
    for thread in threads:
        mine = geometry.thread_id == thread
        tops.append(geometry.depth_um[mine].min() - radius)
        bottoms.append(geometry.depth_um[mine].max() + radius)
        centres.append(geometry.surface_xy_um[mine][0])
    tops, bottoms, centres = np.array(tops), np.array(bottoms), np.array(centres)
    volumes_mm3 = np.pi * (radius**2 - inner**2) * (bottoms - tops) * 1e-9
    if n_units is None:
        per_thread = rng.poisson(parameters.active_density_per_mm3 * volumes_mm3)
        owner = np.repeat(np.arange(threads.size), per_thread)
    else:
        owner = np.sort(rng.choice(threads.size, size=n_units, p=volumes_mm3 / volumes_mm3.sum()))
    count = owner.size
    # Uniform in the annulus: r^2 uniform between inner^2 and radius^2.
    distance = np.sqrt(rng.uniform(inner**2, radius**2, count))
    angle = rng.uniform(-np.pi, np.pi, count)
    depth = rng.uniform(tops[owner], bottoms[owner])
    x = centres[owner, 0] + distance * np.cos(angle)
    y = centres[owner, 1] + distance * np.sin(angle)
    return np.column_stack([x, y, -depth])


def _footprints(
    geometry: ElectrodeGeometry,
    positions_um: np.ndarray,
    soma_amplitude_uv: np.ndarray,
    parameters: ImplantParameters,
) -> sparse.csr_array:
    """Amplitude of every unit on every electrode within its footprint, shape (n_units, n_channels)."""
    n_units, n_channels = positions_um.shape[0], geometry.n_channels
    if n_units == 0:
        return sparse.csr_array((0, n_channels), dtype=np.float64)
    electrodes = cKDTree(geometry.positions_um)
    near = electrodes.sparse_distance_matrix(
        cKDTree(positions_um), parameters.footprint_radius_um, output_type="coo_matrix"
    )
    nearest_distance, nearest_channel = electrodes.query(positions_um, k=1)
    rows = np.concatenate([near.col, np.arange(n_units)])
    cols = np.concatenate([near.row, nearest_channel])
    distances = np.concatenate([near.data, nearest_distance])
    # sparse_distance_matrix drops exact zeros and the nearest electrode may be listed twice: deduplicate.
    key = rows.astype(np.int64) * n_channels + cols
    _, first = np.unique(key, return_index=True)
    rows, cols, distances = rows[first], cols[first], distances[first]
    amplitude = amplitude_at_distance_uv(
        distances, soma_amplitude_uv[rows], half_distance_um=parameters.half_distance_um
    )
    return sparse.csr_array((amplitude, (rows, cols)), shape=(n_units, n_channels))


def _check_seed(seed: SeedLike) -> None:
    if isinstance(seed, (np.random.Generator, np.random.SeedSequence)) or seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise InvalidInputError(f"seed must be a non-negative int, None or numpy Generator, got {seed!r}")


class ImplantStream:
    """The simulated implant, streamed: push intended movement, read ADC samples as they become final.

    This is the class under :func:`simulate_implant`, for closed loops where
    the intention is not known in advance. Intention arrives in steps of 1 ms
    (the rate grid of :mod:`neurolace.sim.spiking`); samples become final once
    every spike that can touch them is known, i.e. up to ``WINDOW_BEFORE_MS``
    (0.6 ms) before the end of the intention pushed so far. However the
    session is split into pushes and reads, the samples and spikes are the
    same (tested against :func:`simulate_implant`).

    Parameters
    ----------
    n_electrodes, seed, fs_hz, tuning, parameters
        As for :func:`simulate_implant`.
    unit_positions_um : ndarray, shape (n_units, 3), optional
        Soma positions (x, y, z = -depth) in the frame of ``geometry.positions_um``, one per
        unit of ``tuning`` (required with it); default: placed at random around the threads.
        Lets a caller put a given population where it wants, e.g. one unit-mix per electrode
        (:class:`neurolace.sim.neural_source.ImplantFeatureSource`).
    noise_seed : int, Generator or None, optional
        When given, the spikes and the background noise are drawn from it, and ``seed`` keeps
        only the implant itself (placement, amplitudes, waveforms, tuning, noise levels): the
        same implant in a new block. Default: everything from ``seed``.

    Examples
    --------
    >>> stream = ImplantStream(n_electrodes=32, seed=1)
    >>> stream.push_intention(np.tile([0.5, 0.0], (20, 1)))   # 20 ms moving right
    >>> codes = stream.read()                                 # int16, shape (n_new, 32)
    """

    def __init__(
        self,
        *,
        n_electrodes: int = 1024,
        seed: SeedLike = 0,
        fs_hz: float = N1_FS_HZ,
        tuning: TuningModel | None = None,
        parameters: ImplantParameters | None = None,
        unit_positions_um: np.ndarray | None = None,
        noise_seed: SeedLike = None,
    ) -> None:
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.geometry = implant_geometry(n_electrodes)
        parameters = ImplantParameters() if parameters is None else parameters
        if not isinstance(parameters, ImplantParameters):
            raise InvalidInputError(
                f"parameters must be an ImplantParameters, got {type(parameters).__name__}"
            )
        if tuning is not None and not isinstance(tuning, TuningModel):
            raise InvalidInputError(f"tuning must be a TuningModel, got {type(tuning).__name__}")
        _check_seed(seed)
        self.parameters = parameters
        self.seed = seed
        (
            placement_rng,
            amplitude_rng,
            shape_rng,
            tuning_rng,
            self._movement_rng,
            spike_rng,
            background_seed,
        ) = spawn_rngs(seed, 7)
        background_noise_seed = None
        if noise_seed is not None:
            _check_seed(noise_seed)
            spike_rng, background_noise_seed = spawn_rngs(noise_seed, 2)
        geometry = self.geometry
        if unit_positions_um is None:
            self.unit_positions_um = _place_units(
                geometry, parameters, None if tuning is None else tuning.n_units, placement_rng
            )
        else:
            if tuning is None:
                raise InvalidInputError("unit_positions_um needs the tuning of those units (tuning=...)")
            self.unit_positions_um = check_array(
                unit_positions_um, "unit_positions_um", ndim=2, dtype=np.float64, shape=(tuning.n_units, 3)
            )
        n_units = self.unit_positions_um.shape[0]
        if tuning is None:
            tuning = TuningModel.random(n_units, seed=tuning_rng) if n_units else _empty_tuning()
        self.tuning = tuning
        soma_amplitude = parameters.soma_amplitude_median_uv * np.exp(
            parameters.soma_amplitude_sigma * amplitude_rng.standard_normal(n_units)
        )
        self.amplitude_uv = _footprints(geometry, self.unit_positions_um, soma_amplitude, parameters)
        self.shapes = random_waveform_shapes(n_units, seed=shape_rng)
        self._waveforms = self.shapes.sample(self.fs_hz, n_phases=parameters.waveform_phases)
        self._n_before = taps_before(self.fs_hz)
        self._n_after = self._waveforms.shape[2] - self._n_before
        self._spikes = SpikeGenerator(
            tuning, fs_hz=self.fs_hz, refractory_ms=parameters.refractory_ms, seed=spike_rng
        )
        self._background = BackgroundGenerator(
            geometry.thread_id, geometry.depth_um, self.fs_hz, parameters, background_seed, background_noise_seed
        )
        self._indptr = self.amplitude_uv.indptr.astype(np.int64)
        self._indices = self.amplitude_uv.indices.astype(np.int64)
        self._gains = self.amplitude_uv.data.astype(np.float32)
        self._pending: list[SpikeTrains] = []  # spikes that may still touch unread samples, in time order
        self._fired: list[SpikeTrains] = []
        self._velocity: list[np.ndarray] = []
        self._click: list[np.ndarray] = []
        self.samples_read = 0

    # -- properties ------------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return self.geometry.n_channels

    @property
    def n_units(self) -> int:
        return self.tuning.n_units

    @property
    def gain_uv(self) -> float:
        return self.parameters.gain_uv

    @property
    def offset_uv(self) -> float:
        return -self.parameters.adc_mid_code * self.parameters.gain_uv

    @property
    def intention_ms(self) -> int:
        """Milliseconds of intention pushed so far."""
        return self._spikes.next_step

    @property
    def samples_available(self) -> int:
        """Samples that are final but not yet read."""
        known = int(np.floor(self.intention_ms * self.fs_hz / RATE_FS_HZ))  # spikes known before this sample
        return max(known - self._n_before - 1 - self.samples_read, 0)

    # -- streaming -------------------------------------------------------------------------------
    def push_intention(self, velocity, click=None, *, rate_gain=None) -> None:
        """Add the intended velocity and click of the next ``n_steps`` milliseconds.

        Parameters
        ----------
        velocity : array-like, shape (n_steps, 2)
            Intended (vx, vy) during each millisecond, normalised units.
        click : array-like, shape (n_steps,), optional
            Click intention in [0, 1]; zeros by default.
        rate_gain : array-like, shape (n_units,), optional
            Factor on every unit's tuned rate during these milliseconds (>= 0; default 1), for
            task-unrelated gain fluctuations (see :meth:`SpikeGenerator.advance`).
        """
        velocity = check_array(velocity, "velocity", ndim=2, dtype=np.float64)
        if velocity.shape[1] != 2:
            raise InvalidInputError(f"velocity must have shape (n_steps, 2), got {velocity.shape}")
        n_steps = velocity.shape[0]
        if click is None:
            click = np.zeros(n_steps)
        click = check_array(click, "click", ndim=1, dtype=np.float64, shape=(n_steps,))
        if click.size and (click.min() < 0 or click.max() > 1):
            raise InvalidInputError(
                f"click must lie in [0, 1], got values in [{click.min():g}, {click.max():g}]"
            )
        for offset in range(0, n_steps, BLOCK_STEPS):
            stop = min(offset + BLOCK_STEPS, n_steps)
            fired = self._spikes.advance(velocity[offset:stop], click[offset:stop], rate_gain=rate_gain)
            self._fired.append(fired)
            self._pending.append(fired)
        self._velocity.append(velocity)
        self._click.append(click)

    def read(self, n_samples: int | None = None) -> np.ndarray:
        """The next final samples as int16 ADC codes, shape (n, n_channels).

        ``n`` is ``samples_available``, or at most ``n_samples`` when given.
        """
        n = self.samples_available
        if n_samples is not None:
            n = min(n, check_int(n_samples, "n_samples", minimum=0))
        out = np.empty((n, self.n_channels), dtype=np.int16)
        self._render_into(out)
        return out

    def _render_into(
        self,
        out: np.ndarray,
        *,
        chunk_samples: int = 4096,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Write the next ``len(out)`` samples into ``out`` (int16) in chunks: background, spikes, ADC."""
        n_samples = out.shape[0]
        if n_samples > self.samples_available:
            raise InvalidInputError(
                f"only {self.samples_available} samples are final; push more intention before reading {n_samples}"
            )
        buffer = np.empty((min(chunk_samples, n_samples), self.n_channels), dtype=np.float32)
        gain, mid, top = self.parameters.gain_uv, self.parameters.adc_mid_code, self.parameters.adc_max_code
        n_phases = self._waveforms.shape[1]
        pending = SpikeTrains.concatenate(self._pending, fs_hz=self.fs_hz, n_units=self.n_units)
        for offset in range(0, n_samples, chunk_samples):
            stop_offset = min(offset + chunk_samples, n_samples)
            start, stop = self.samples_read + offset, self.samples_read + stop_offset
            spikes_uv = buffer[: stop_offset - offset]
            spikes_uv.fill(0.0)
            first = np.searchsorted(pending.sample_index, start - self._n_after + 1, side="left")
            last = np.searchsorted(pending.sample_index, stop + self._n_before, side="left")
            add_spikes(
                spikes_uv,
                start,
                pending.sample_index[first:last],
                pending.unit_index[first:last].astype(np.int64),
                np.minimum((pending.phase[first:last] * n_phases).astype(np.int64), n_phases - 1),
                self._indptr,
                self._indices,
                self._gains,
                self._waveforms,
                self._n_before,
            )
            self._background.render_codes(out[offset:stop_offset], spikes_uv, gain, mid, top)
            if progress is not None:
                progress(stop_offset, n_samples)
        self.samples_read += n_samples
        # Forget spikes that can no longer touch unread samples.
        keep_from = np.searchsorted(pending.sample_index, self.samples_read - self._n_after + 1, side="left")
        self._pending = [
            SpikeTrains(
                pending.sample_index[keep_from:],
                pending.unit_index[keep_from:],
                pending.phase[keep_from:],
                self.fs_hz,
                self.n_units,
            )
        ]

    # -- results ---------------------------------------------------------------------------------
    def spike_trains(self, n_samples: int | None = None) -> SpikeTrains:
        """Every spike drawn so far (before sample ``n_samples`` if given), sorted."""
        return SpikeTrains.concatenate(
            self._fired, fs_hz=self.fs_hz, n_units=self.n_units, n_samples=n_samples
        )

    def ground_truth(self, n_samples: int | None = None) -> GroundTruth:
        """Ground truth of the samples read so far (or of the first ``n_samples``).

        The intention is reported as pushed: on the 1 kHz grid.
        """
        trains = self.spike_trains(self.samples_read if n_samples is None else n_samples)
        amplitude = self.amplitude_uv
        if self.n_units:
            peak_channel = np.asarray(amplitude.argmax(axis=1)).ravel().astype(np.int64)
            peak_amplitude = np.asarray(amplitude.max(axis=1).todense()).ravel()
        else:
            peak_channel = np.zeros(0, np.int64)
            peak_amplitude = np.zeros(0)
        noise = self._background.noise_uv_rms
        events = SpikeEvents(
            trains.sample_index,
            peak_channel[trains.unit_index],
            fs_hz=self.fs_hz,
            n_channels=self.n_channels,
            unit_id=trains.unit_index,
            amplitude_uv=-peak_amplitude[trains.unit_index],
        )
        return GroundTruth(
            units=events,
            unit_positions_um=self.unit_positions_um,
            tuning=self.tuning,
            amplitude_uv=amplitude,
            peak_channel=peak_channel,
            peak_amplitude_uv=peak_amplitude,
            snr=peak_amplitude / noise[peak_channel] if self.n_units else np.zeros(0),
            noise_rms_uv=noise,
            waveforms=self._waveforms[:, 0, :].copy(),
            waveform_taps_before=self._n_before,
            shapes=self.shapes,
            intended_velocity=np.concatenate([np.zeros((0, 2)), *self._velocity]),
            click=np.concatenate([np.zeros(0), *self._click]),
            velocity_fs_hz=RATE_FS_HZ,
            parameters=self.parameters,
        )

    def to_recording(self, samples: np.ndarray) -> Recording:
        """Wrap int16 codes read from this stream as a :class:`Recording` (rate, gain, geometry, provenance)."""
        return Recording(
            samples,
            fs_hz=self.fs_hz,
            gain_uv=self.gain_uv,
            offset_uv=self.offset_uv,
            geometry=self.geometry,
            metadata={
                "source": "neurolace.sim.simulate_implant",
                "seed": int(self.seed) if isinstance(self.seed, numbers.Integral) else None,
                "n_units": self.n_units,
                "adc_bits": self.parameters.adc_bits,
                "parameters": _jsonable(dataclasses.asdict(self.parameters)),
            },
        )

    def __repr__(self) -> str:
        return (
            f"ImplantStream(n_channels={self.n_channels}, n_units={self.n_units}, fs_hz={self.fs_hz:g}, "
            f"intention_ms={self.intention_ms}, samples_read={self.samples_read})"
        )


def simulate_implant(
    *,
    duration_s: float,
    n_electrodes: int = 1024,
    seed: SeedLike = 0,
    fs_hz: float = N1_FS_HZ,
    intended_velocity: np.ndarray | None = None,
    click: np.ndarray | None = None,
    velocity_fs_hz: float = 100.0,
    tuning: TuningModel | None = None,
    parameters: ImplantParameters | None = None,
    chunk_samples: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> SimulatedImplant:
    """Simulate an N1-like recording with ground truth (see the module docstring).

    Parameters
    ----------
    duration_s : float
        Length of the recording in seconds (> 0).
    n_electrodes : int, default 1024
        1-16 (one thread) or a multiple of 16 (threads of 16); see :func:`implant_geometry`.
    seed : int, Generator or None, default 0
        The whole simulation (placement, tuning, trajectory, spikes, noise) is
        reproducible from this one seed.
    fs_hz : float, default 19531.25
        Sampling rate: the N1's 5 MHz clock / 256.
    intended_velocity : ndarray, shape (n_steps, 2), optional
        Intended velocity in normalised units at ``velocity_fs_hz``, covering
        ``duration_s``. Default: a seeded random center-out-and-back session
        (:func:`neurolace.sim.trajectory.random_reaching_trajectory`). It is
        linearly interpolated to the middle of every millisecond.
    click : ndarray, shape (n_steps,), optional
        Click intention in [0, 1] at ``velocity_fs_hz``. Default: none if a
        velocity is given, else the clicks of the random session.
    velocity_fs_hz : float, default 100.0
        Sampling rate of ``intended_velocity`` and ``click``.
    tuning : TuningModel, optional
        The units' tuning. Its ``n_units`` units are placed in the volume
        around the threads (``active_density_per_mm3`` is then not used).
        Default: ``TuningModel.random`` for units placed at the configured density.
    parameters : ImplantParameters, optional
        Physics of the implant; defaults documented on :class:`ImplantParameters`.
    chunk_samples : int, default 4096
        Samples generated per step. Affects speed and memory only: the output
        is identical for every value.
    progress : callable(done_samples, total_samples), optional
        Called after each chunk (e.g. to drive a progress bar).

    Returns
    -------
    SimulatedImplant
        ``recording`` (int16 ADC codes, ``gain_uv``, ``offset_uv``, geometry)
        and ``ground_truth``.
    """
    duration_s = check_positive(duration_s, "duration_s")
    fs_hz = check_positive(fs_hz, "fs_hz")
    implant_geometry(n_electrodes)
    chunk_samples = check_int(chunk_samples, "chunk_samples", minimum=1)
    n_samples = round(duration_s * fs_hz)
    if n_samples < 1:
        raise InvalidInputError(f"duration_s={duration_s:g} is shorter than one sample at fs_hz={fs_hz:g}")
    stream = ImplantStream(
        n_electrodes=n_electrodes, seed=seed, fs_hz=fs_hz, tuning=tuning, parameters=parameters
    )
    movement = IntendedMovement.from_arrays(
        intended_velocity, click, fs_hz=velocity_fs_hz, duration_s=duration_s, seed=stream._movement_rng
    )
    # Intention up to the end, plus the 0.6 ms of spikes whose waveforms start inside the recording.
    n_steps = int(np.ceil((n_samples + taps_before(fs_hz) + 2) * RATE_FS_HZ / fs_hz))
    for block_start in range(0, n_steps, BLOCK_STEPS):
        times_s = (block_start + np.arange(min(BLOCK_STEPS, n_steps - block_start)) + 0.5) / RATE_FS_HZ
        stream.push_intention(*movement.at(times_s))
    samples = np.empty((n_samples, stream.n_channels), dtype=np.int16)
    stream._render_into(samples, chunk_samples=chunk_samples, progress=progress)
    ground_truth = dataclasses.replace(
        stream.ground_truth(n_samples),
        intended_velocity=movement.velocity,
        click=movement.click,
        velocity_fs_hz=movement.fs_hz,
    )
    return SimulatedImplant(recording=stream.to_recording(samples), ground_truth=ground_truth)


def _empty_tuning() -> TuningModel:
    empty = np.zeros(0)
    return TuningModel(empty, empty, empty, empty, empty)


def _jsonable(values: dict) -> dict:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}


def add_spikes_numpy(
    out: np.ndarray,
    start: int,
    spike_samples: np.ndarray,
    spike_units: np.ndarray,
    spike_phases: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    gains: np.ndarray,
    waveforms: np.ndarray,
    n_before: int,
) -> None:
    """Add each spike's waveform, scaled per electrode, into ``out`` (the chunk starting at ``start``).

    Parameters
    ----------
    out : ndarray of float32, shape (n, n_channels)
        Chunk buffer, modified in place.
    start : int
        Sample index of ``out[0]``.
    spike_samples, spike_units, spike_phases : ndarray of int64, shape (n_spikes,)
        Sample, unit and waveform phase of each spike.
    indptr, indices, gains : ndarray
        CSR footprint of the units: unit ``u`` reaches channels
        ``indices[indptr[u]:indptr[u+1]]`` with amplitudes ``gains[...]`` (µV).
    waveforms : ndarray of float32, shape (n_units, n_phases, n_taps)
    n_before : int
        Taps before the trough.

    This is the reference implementation; :func:`add_spikes` is the same in numba.
    """
    n, n_channels = out.shape
    n_taps = waveforms.shape[2]
    per_spike = indptr[spike_units + 1] - indptr[spike_units]
    spike_of_entry = np.repeat(np.arange(spike_samples.size), per_spike)
    entry = np.arange(spike_of_entry.size) - np.repeat(np.cumsum(per_spike) - per_spike, per_spike)
    entry += indptr[spike_units][spike_of_entry]
    rows = (spike_samples[spike_of_entry] - start - n_before)[:, np.newaxis] + np.arange(n_taps)
    values = (
        gains[entry][:, np.newaxis] * waveforms[spike_units[spike_of_entry], spike_phases[spike_of_entry]]
    )
    channels = np.broadcast_to(indices[entry][:, np.newaxis], rows.shape)
    inside = (rows >= 0) & (rows < n)
    flat = rows[inside] * n_channels + channels[inside]
    out += (
        np.bincount(flat, weights=values[inside], minlength=n * n_channels)
        .reshape(n, n_channels)
        .astype(np.float32)
    )


def _add_spikes_kernel(
    out, start, spike_samples, spike_units, spike_phases, indptr, indices, gains, waveforms, n_before
):
    n = out.shape[0]
    n_taps = waveforms.shape[2]
    for s in range(spike_samples.shape[0]):
        unit = spike_units[s]
        phase = spike_phases[s]
        base = spike_samples[s] - start - n_before
        first_tap = max(0, -base)
        last_tap = min(n_taps, n - base)
        for k in range(first_tap, last_tap):
            value = waveforms[unit, phase, k]
            for j in range(indptr[unit], indptr[unit + 1]):
                out[base + k, indices[j]] += gains[j] * value


@functools.cache
def _compiled_kernel():
    import numba

    return numba.njit(cache=True, nogil=True)(_add_spikes_kernel)


def add_spikes(*arguments) -> None:
    """Numba version of :func:`add_spikes_numpy` (same arguments); compiled on first use.

    Measured on 1 s of 1024 channels in 4096-sample chunks (~62,000 spikes,
    ~4 electrodes each), one core: numpy (``bincount``) 0.22-0.30 s CPU, numba
    0.021 s CPU, so numba pays ~10x here (``python -m benchmarks sim`` repeats it).
    """
    _compiled_kernel()(*arguments)
