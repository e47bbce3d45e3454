"""Spike trains of tuned units: inhomogeneous Poisson spiking with an absolute refractory period.

Rates come from :meth:`TuningModel.rates_hz` evaluated on a 1 kHz grid (the
intended velocity and click are linearly interpolated onto it) and held
constant within each millisecond. A unit cannot fire for ``refractory_ms``
after a spike (absolute refractory period of cortical neurons, ~1-2 ms:
Hille, *Ion Channels of Excitable Membranes*, 3rd ed. 2001, ch. 2; the
1.5-2 ms inter-spike-interval gap used to judge unit isolation, Hill et al.
2011, J Neurosci 31:8699). Outside the dead time the unit fires with hazard::

    hazard_hz = rate_hz / (1 - rate_hz * dead_time_s)

so the *mean* rate still equals the tuning model's rate: a renewal process
with dead time ``d`` and hazard ``h`` has mean interval ``d + 1/h``
(Johnson 1996, J Comput Neurosci 3:275). Rates are capped at
``MAX_RATE_FRACTION / dead_time_s`` to keep the hazard finite.

Spikes are drawn by time rescaling (Brown et al. 2002, Neural Comput 14:325):
a unit's next spike is where its integrated hazard, counted from the end of
its dead time, reaches a unit-exponential draw. :class:`SpikeGenerator` walks
the 1 kHz grid one millisecond at a time per unit (a numba loop), carrying each
unit's state exactly, and each unit takes its k-th exponential from its own
counter-based SplitMix64 sequence (Steele, Lea & Flood 2014). So the spikes
depend only on the intention and the seed: drawing a session in one call, in
250 ms blocks, or millisecond by millisecond as a closed loop supplies the
intention gives identical spikes. Spike times are continuous; each spike
reports the sample it falls in and its sub-sample phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.core.random import SeedLike, check_rng, spawn_rngs
from neurolace.sim.trajectory import random_reaching_trajectory
from neurolace.sim.tuning import TuningModel

__all__ = [
    "N1_FS_HZ",
    "RATE_FS_HZ",
    "IntendedMovement",
    "SpikeTrains",
    "generate_spike_trains",
    "simulate_spike_trains",
]

#: N1 sampling rate: a 5 MHz clock divided by 256 (19,531.25 Hz; the public N1
#: recordings are stored at 19,531 Hz; Musk & Neuralink 2019, JMIR 21:e16194, quote ~19.3 kHz).
N1_FS_HZ = 5e6 / 256
#: Rate of the grid on which firing rates are evaluated.
RATE_FS_HZ = 1000.0
#: Rate-grid steps evaluated at once (bounds the memory of the rate array, not the result).
BLOCK_STEPS = 250
#: Rates are capped at this fraction of 1 / dead time.
MAX_RATE_FRACTION = 0.8


@dataclass(frozen=True, eq=False)
class IntendedMovement:
    """What the participant intends: velocity and click on a regular clock.

    Attributes
    ----------
    velocity : ndarray of float64, shape (n_steps, 2)
        Intended (vx, vy) in normalised units (1.0 = a typical peak reaching speed).
    click : ndarray of float64, shape (n_steps,)
        Click intention in [0, 1].
    fs_hz : float
        Sampling rate of both arrays; sample ``i`` is at ``i / fs_hz`` seconds.
    """

    velocity: np.ndarray
    click: np.ndarray
    fs_hz: float

    @classmethod
    def from_arrays(
        cls, velocity, click, *, fs_hz: float, duration_s: float, seed: SeedLike = None
    ) -> IntendedMovement:
        """Check user arrays, or draw a random reaching session when ``velocity`` is None.

        A ``click`` of None means no click (zeros). The arrays must cover
        ``duration_s``: ``n_steps >= ceil(duration_s * fs_hz)``.
        """
        fs_hz = check_positive(fs_hz, "velocity_fs_hz")
        needed = int(np.ceil(duration_s * fs_hz - 1e-9))
        if velocity is None:
            trajectory = random_reaching_trajectory(duration_s, fs_hz=fs_hz, seed=seed)
            velocity_array = trajectory.velocity
            click_array = trajectory.click if click is None else None
        else:
            velocity_array = check_array(velocity, "intended_velocity", ndim=2, dtype=np.float64)
            if velocity_array.shape[1] != 2:
                raise InvalidInputError(
                    f"intended_velocity must have shape (n_steps, 2), got {velocity_array.shape}"
                )
            if velocity_array.shape[0] < needed:
                raise InvalidInputError(
                    f"intended_velocity must cover duration_s={duration_s:g} s at velocity_fs_hz={fs_hz:g}, "
                    f"i.e. have at least {needed} rows, got {velocity_array.shape[0]}"
                )
            click_array = None
        if click_array is None:
            n_steps = velocity_array.shape[0]
            if click is None:
                click_array = np.zeros(n_steps)
            else:
                click_array = check_array(click, "click", ndim=1, dtype=np.float64, shape=(n_steps,))
                if click_array.size and (click_array.min() < 0 or click_array.max() > 1):
                    raise InvalidInputError(
                        f"click must lie in [0, 1], got values in [{click_array.min():g}, {click_array.max():g}]"
                    )
        return cls(velocity=velocity_array, click=click_array, fs_hz=fs_hz)

    def at(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Velocity, shape (n, 2), and click, shape (n,), linearly interpolated at ``times_s``."""
        grid_s = np.arange(self.velocity.shape[0]) / self.fs_hz
        velocity = np.column_stack(
            [np.interp(times_s, grid_s, self.velocity[:, 0]), np.interp(times_s, grid_s, self.velocity[:, 1])]
        )
        return velocity, np.interp(times_s, grid_s, self.click)


@dataclass(frozen=True, eq=False)
class SpikeTrains:
    """Spikes of every unit, sorted by sample then unit.

    Attributes
    ----------
    sample_index : ndarray of int64, shape (n_spikes,)
        Sample (at ``fs_hz``) in which each spike's trough falls.
    unit_index : ndarray of int32, shape (n_spikes,)
        Index of the unit that fired.
    phase : ndarray of float32, shape (n_spikes,)
        Position of the trough within its sample, in [0, 1).
    fs_hz : float
        Sampling rate of ``sample_index``.
    n_units : int
        Number of units (some may never fire).
    """

    sample_index: np.ndarray
    unit_index: np.ndarray
    phase: np.ndarray
    fs_hz: float
    n_units: int

    @property
    def n_spikes(self) -> int:
        return int(self.sample_index.size)

    def counts(self) -> np.ndarray:
        """Number of spikes of each unit, shape (n_units,)."""
        return np.bincount(self.unit_index, minlength=self.n_units)

    @classmethod
    def concatenate(
        cls, parts: list[SpikeTrains], *, fs_hz: float, n_units: int, n_samples: int | None = None
    ) -> SpikeTrains:
        """Join consecutive spike trains (each sorted, in time order); keep spikes before ``n_samples``."""
        if parts:
            samples = np.concatenate([part.sample_index for part in parts])
            units = np.concatenate([part.unit_index for part in parts])
            phases = np.concatenate([part.phase for part in parts])
        else:
            samples, units, phases = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        order = np.lexsort((units, samples))
        samples, units, phases = samples[order], units[order], phases[order]
        if n_samples is not None:
            keep = samples < n_samples
            samples, units, phases = samples[keep], units[keep], phases[keep]
        return cls(samples, units, phases, fs_hz, n_units)


def _dead_time_samples(refractory_ms: float, fs_hz: float) -> int:
    """Dead time in whole samples; at least one, so a unit never fires twice in one sample."""
    return max(int(np.ceil(refractory_ms * 1e-3 * fs_hz - 1e-9)), 1)


#: Increment of the SplitMix64 sequence (Steele, Lea & Flood 2014, OOPSLA, "Fast splittable
#: pseudorandom number generators"): the 64-bit golden ratio.
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15


def splitmix64(state: np.ndarray) -> np.ndarray:
    """The SplitMix64 output function (Steele et al. 2014) of uint64 ``state``, elementwise.

    ``splitmix64(seed + (k + 1) * SPLITMIX_GAMMA)`` is the ``k``-th output of the
    SplitMix64 generator started at ``seed``; for seed 0 the first output is
    0xE220A8397B1DCDAF.
    """
    z = np.asarray(state, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def _unit_exponential(key, k):
    """The ``k``-th unit-exponential draw of the unit whose SplitMix64 seed is ``key`` (numba)."""
    z = key + (np.uint64(k) + np.uint64(1)) * np.uint64(SPLITMIX_GAMMA)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    uniform = np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)  # [0, 1) with 53 bits
    return -np.log1p(-uniform)


@numba.njit(cache=True)
def _advance_spikes(
    hazard_per_ms,
    first_step,
    samples_per_ms,
    dead_samples,
    keys,
    counts,
    remaining,
    next_allowed,
    out_samples,
    out_units,
    out_phases,
):
    n_steps, n_units = hazard_per_ms.shape
    written = 0
    for unit in range(n_units):
        for i in range(n_steps):
            hazard = hazard_per_ms[i, unit]
            step_start = np.float64(first_step + i)
            step_end = step_start + 1.0
            while hazard > 0.0:
                start = max(step_start, next_allowed[unit] / samples_per_ms)
                if start >= step_end:
                    break
                available = hazard * (step_end - start)
                if remaining[unit] > available:
                    remaining[unit] -= available
                    break
                exact = (start + remaining[unit] / hazard) * samples_per_ms
                sample = max(np.int64(np.floor(exact)), next_allowed[unit])
                if written == out_samples.shape[0]:
                    return -1  # cannot happen with the capacity SpikeGenerator allocates
                out_samples[written] = sample
                out_units[written] = unit
                out_phases[written] = min(max(exact - sample, 0.0), 0.999999)
                written += 1
                next_allowed[unit] = sample + dead_samples
                counts[unit] += 1
                remaining[unit] = _unit_exponential(keys[unit], counts[unit])
    return written


class SpikeGenerator:
    """Spikes of a population, drawn millisecond by millisecond as intention arrives.

    The state of each unit (when its dead time ends, how much integrated hazard
    remains before its next spike, how many spikes it has fired) is carried
    exactly from one call to the next, and each unit draws its exponentials
    from its own counter-based SplitMix64 sequence, so the spikes depend only
    on the intention and the seed, never on how the calls split the session.

    Parameters
    ----------
    tuning : TuningModel
    fs_hz : float
        Sample clock of the spike indices.
    refractory_ms : float, default 2.0
    seed : int, Generator or None
    """

    def __init__(
        self, tuning: TuningModel, *, fs_hz: float, refractory_ms: float = 2.0, seed: SeedLike = None
    ):
        if not isinstance(tuning, TuningModel):
            raise InvalidInputError(f"tuning must be a TuningModel, got {type(tuning).__name__}")
        self.tuning = tuning
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.refractory_ms = check_nonnegative(refractory_ms, "refractory_ms")
        rng = check_rng(seed)
        n_units = tuning.n_units
        self.dead_samples = _dead_time_samples(self.refractory_ms, self.fs_hz)
        # A spike sits in the sample its trough falls in, and the dead time counts from the start of
        # that sample: on average half a sample less than dead_samples.
        self.dead_time_s = (self.dead_samples - 0.5) / self.fs_hz
        self.max_rate_hz = MAX_RATE_FRACTION / self.dead_time_s
        self._keys = rng.integers(0, np.iinfo(np.uint64).max, size=n_units, dtype=np.uint64, endpoint=True)
        self._counts = np.zeros(n_units, dtype=np.int64)
        self._remaining = np.array([_unit_exponential(key, 0) for key in self._keys], dtype=np.float64)
        self._next_allowed = np.zeros(n_units, dtype=np.int64)
        self.next_step = 0
        samples_per_step = self.fs_hz / RATE_FS_HZ
        self._max_per_step = int(np.ceil(samples_per_step) + 1) // self.dead_samples + 1

    def hazard_hz(
        self, velocity: np.ndarray, click: np.ndarray, rate_gain: np.ndarray | None = None
    ) -> np.ndarray:
        """Hazard outside the dead time for the tuned rates (times ``rate_gain``), shape (n_steps, n_units)."""
        rates = self.tuning.rates_hz(velocity, click)
        if rate_gain is not None:
            rates = rates * rate_gain
        rates = np.minimum(rates, self.max_rate_hz)
        return rates / (1.0 - rates * self.dead_time_s)

    def advance(
        self, velocity: np.ndarray, click: np.ndarray, *, rate_gain: np.ndarray | None = None
    ) -> SpikeTrains:
        """Spikes of the next ``n_steps`` milliseconds.

        Parameters
        ----------
        velocity : ndarray, shape (n_steps, 2)
            Intended velocity during each of the next milliseconds.
        click : ndarray, shape (n_steps,)
        rate_gain : ndarray, shape (n_units,) or (n_steps, n_units), optional
            Non-negative factor on each unit's tuned rate (e.g. a shared gain fluctuation that
            is not part of the tuning); default 1.

        Returns
        -------
        SpikeTrains
            Sorted by sample then unit; sample indices are on the global clock.
        """
        velocity = check_array(velocity, "velocity", ndim=2, dtype=np.float64)
        n_steps = velocity.shape[0]
        n_units = self.tuning.n_units
        if rate_gain is not None:
            rate_gain = check_array(rate_gain, "rate_gain", dtype=np.float64)
            if rate_gain.shape not in ((n_units,), (n_steps, n_units)) or np.any(rate_gain < 0):
                raise InvalidInputError(
                    f"rate_gain must be >= 0 with shape ({n_units},) or ({n_steps}, {n_units}), "
                    f"got shape {rate_gain.shape}"
                )
        block = max(1, BLOCK_STEPS // self._max_per_step)
        parts = []
        for offset in range(0, n_steps, block):
            stop = min(offset + block, n_steps)
            gain = rate_gain if rate_gain is None or rate_gain.ndim == 1 else rate_gain[offset:stop]
            hazard_per_ms = np.ascontiguousarray(
                self.hazard_hz(velocity[offset:stop], click[offset:stop], gain) / 1e3
            )
            capacity = n_units * (stop - offset) * self._max_per_step
            samples = np.empty(capacity, np.int64)
            units = np.empty(capacity, np.int32)
            phases = np.empty(capacity, np.float32)
            written = _advance_spikes(
                hazard_per_ms,
                self.next_step,
                self.fs_hz / RATE_FS_HZ,
                self.dead_samples,
                self._keys,
                self._counts,
                self._remaining,
                self._next_allowed,
                samples,
                units,
                phases,
            )
            assert written >= 0, "spike buffer overflow: more spikes per step than the dead time allows"
            self.next_step += stop - offset
            parts.append((samples[:written].copy(), units[:written].copy(), phases[:written].copy()))
        if parts:
            samples, units, phases = (np.concatenate(column) for column in zip(*parts, strict=True))
        else:
            samples, units, phases = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        order = np.lexsort((units, samples))
        return SpikeTrains(samples[order], units[order], phases[order], self.fs_hz, n_units)


def generate_spike_trains(
    tuning: TuningModel,
    movement: IntendedMovement,
    *,
    n_samples: int,
    fs_hz: float,
    refractory_ms: float = 2.0,
    seed: SeedLike = None,
) -> SpikeTrains:
    """Draw the spikes of ``tuning``'s units for an intended movement (see module docstring).

    Parameters
    ----------
    tuning : TuningModel
        The units and their tuning.
    movement : IntendedMovement
        Intended velocity and click, interpolated onto the 1 kHz rate grid
        (each millisecond takes the value at its midpoint).
    n_samples : int
        Length of the session in samples of ``fs_hz``.
    fs_hz : float
        Sample clock of the returned spike indices.
    refractory_ms : float, default 2.0
        Absolute refractory period; consecutive spikes of a unit are at least
        ``max(1, ceil(refractory_ms * fs_hz / 1000))`` samples apart.
    seed : int, Generator or None
        Seed of the spike draws.

    Returns
    -------
    SpikeTrains
    """
    n_samples = check_int(n_samples, "n_samples", minimum=0)
    generator = SpikeGenerator(tuning, fs_hz=fs_hz, refractory_ms=refractory_ms, seed=seed)
    n_steps = int(np.ceil(n_samples / generator.fs_hz * RATE_FS_HZ - 1e-9))
    parts = []
    for block_start in range(0, n_steps, BLOCK_STEPS):
        times_s = (block_start + np.arange(min(BLOCK_STEPS, n_steps - block_start)) + 0.5) / RATE_FS_HZ
        parts.append(generator.advance(*movement.at(times_s)))
    return SpikeTrains.concatenate(parts, fs_hz=generator.fs_hz, n_units=tuning.n_units, n_samples=n_samples)


@dataclass(frozen=True, eq=False)
class SimulatedSpikeTrains:
    """Result of :func:`simulate_spike_trains`.

    Attributes
    ----------
    events : SpikeEvents
        One event per spike; ``unit_id`` is the unit index and ``channel_index``
        is also the unit index (``n_channels = n_units``: one "channel" per unit).
    tuning : TuningModel
        The units.
    movement : IntendedMovement
        The intended velocity and click that drove them.
    duration_s : float
        Requested session length (the spike clock covers ``round(duration_s * fs_hz)`` samples).
    """

    events: SpikeEvents
    tuning: TuningModel
    movement: IntendedMovement
    duration_s: float

    def binned_counts(self, bin_width_s: float) -> np.ndarray:
        """Spike counts per unit in consecutive bins, shape (n_bins, n_units)."""
        bin_width_s = check_positive(bin_width_s, "bin_width_s")
        n_bins = int(np.floor(self.duration_s / bin_width_s + 1e-9))  # whole bins of the requested duration
        bins = np.floor(self.events.times_s / bin_width_s).astype(np.int64)
        keep = bins < n_bins
        flat = bins[keep] * self.tuning.n_units + self.events.unit_id[keep]
        return np.bincount(flat, minlength=n_bins * self.tuning.n_units).reshape(n_bins, self.tuning.n_units)


def simulate_spike_trains(
    *,
    duration_s: float,
    n_units: int | None = None,
    tuning: TuningModel | None = None,
    seed: SeedLike = 0,
    fs_hz: float = N1_FS_HZ,
    intended_velocity: np.ndarray | None = None,
    click: np.ndarray | None = None,
    velocity_fs_hz: float = 100.0,
    refractory_ms: float = 2.0,
) -> SimulatedSpikeTrains:
    """Spikes only, no voltages: the fast path for callers that need spike times or counts.

    Parameters
    ----------
    duration_s : float
        Session length in seconds.
    n_units : int, optional
        Number of units to draw with :meth:`TuningModel.random` (default 100);
        ignored when ``tuning`` is given.
    tuning : TuningModel, optional
        Use these units instead of random ones.
    seed : int, Generator or None, default 0
        One seed for tuning, trajectory and spikes.
    fs_hz : float, default 19531.25
        Clock of the spike sample indices.
    intended_velocity : ndarray, shape (n_steps, 2), optional
        Intended velocity at ``velocity_fs_hz``; default a random reaching session.
    click : ndarray, shape (n_steps,), optional
        Click intention at ``velocity_fs_hz``.
    velocity_fs_hz : float, default 100.0
    refractory_ms : float, default 2.0

    Returns
    -------
    SimulatedSpikeTrains
    """
    duration_s = check_positive(duration_s, "duration_s")
    fs_hz = check_positive(fs_hz, "fs_hz")
    tuning_rng, movement_rng, spike_rng = spawn_rngs(seed, 3)
    if tuning is None:
        tuning = TuningModel.random(
            100 if n_units is None else check_int(n_units, "n_units", minimum=1), seed=tuning_rng
        )
    elif not isinstance(tuning, TuningModel):
        raise InvalidInputError(f"tuning must be a TuningModel, got {type(tuning).__name__}")
    movement = IntendedMovement.from_arrays(
        intended_velocity, click, fs_hz=velocity_fs_hz, duration_s=duration_s, seed=movement_rng
    )
    n_samples = round(duration_s * fs_hz)
    trains = generate_spike_trains(
        tuning, movement, n_samples=n_samples, fs_hz=fs_hz, refractory_ms=refractory_ms, seed=spike_rng
    )
    events = SpikeEvents(
        trains.sample_index,
        trains.unit_index,
        fs_hz=fs_hz,
        n_channels=tuning.n_units,
        unit_id=trains.unit_index,
    )
    return SimulatedSpikeTrains(events=events, tuning=tuning, movement=movement, duration_s=duration_s)
