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
its dead time, reaches a unit-exponential draw. The work is vectorised across
units and done in fixed blocks of ``BLOCK_MS`` of rate grid, so memory stays
bounded for long sessions and the result never depends on how callers chunk
anything else. Spike times are continuous; each spike reports the sample it
falls in and its sub-sample phase.
"""

from __future__ import annotations

from dataclasses import dataclass

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
#: Rate-grid steps per generation block (250 ms).
BLOCK_STEPS = 250
BLOCK_MS = BLOCK_STEPS * 1e3 / RATE_FS_HZ
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


def _dead_time_samples(refractory_ms: float, fs_hz: float) -> int:
    return max(int(np.ceil(refractory_ms * 1e-3 * fs_hz - 1e-9)), 1)


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
        Intended velocity and click.
    n_samples : int
        Length of the session in samples of ``fs_hz``.
    fs_hz : float
        Sample clock of the returned spike indices.
    refractory_ms : float, default 2.0
        Absolute refractory period; consecutive spikes of a unit are at least
        ``ceil(refractory_ms * fs_hz / 1000)`` samples apart.
    seed : int, Generator or None
        Seed of the spike draws.

    Returns
    -------
    SpikeTrains
    """
    n_samples = check_int(n_samples, "n_samples", minimum=0)
    fs_hz = check_positive(fs_hz, "fs_hz")
    refractory_ms = check_nonnegative(refractory_ms, "refractory_ms")
    rng = check_rng(seed)
    n_units = tuning.n_units
    dead_samples = _dead_time_samples(refractory_ms, fs_hz) if refractory_ms > 0 else 0
    # A spike is placed in the sample its trough falls in, and the next search starts dead_samples
    # samples after the start of that sample: on average 0.5 sample before the trough + dead time.
    dead_time_s = max(dead_samples - 0.5, 0.0) / fs_hz
    max_rate_hz = MAX_RATE_FRACTION / dead_time_s if dead_time_s > 0 else np.inf
    duration_s = n_samples / fs_hz
    n_steps = int(np.ceil(duration_s * RATE_FS_HZ - 1e-9))

    next_allowed = np.zeros(n_units, dtype=np.int64)  # first sample each unit may fire in
    remaining = rng.exponential(size=n_units)  # integrated hazard still to go before the next spike
    found_samples, found_units, found_phases = [], [], []
    for block_start in range(0, n_steps, BLOCK_STEPS):
        m = min(BLOCK_STEPS, n_steps - block_start)
        times_s = (block_start + np.arange(m) + 0.5) / RATE_FS_HZ
        velocity, click = movement.at(times_s)
        rates = np.minimum(tuning.rates_hz(velocity, click), max_rate_hz)
        hazard = rates / (1.0 - rates * dead_time_s)
        cumulative = np.zeros((n_units, m + 1))
        np.cumsum(hazard.T / RATE_FS_HZ, axis=1, out=cumulative[:, 1:])
        row_stride = m + 1
        row_offset = (np.arange(n_units) * (cumulative[:, -1].max(initial=0.0) + 1.0)).astype(np.float64)
        flat = (cumulative + row_offset[:, np.newaxis]).ravel()
        block_start_s = block_start / RATE_FS_HZ

        active = np.arange(n_units)
        while active.size:
            # Position (in ms of this block) where each active unit's dead time ends.
            start_ms = np.maximum(next_allowed[active] / fs_hz - block_start_s, 0.0) * RATE_FS_HZ
            in_block = start_ms < m
            active, start_ms = active[in_block], start_ms[in_block]
            if not active.size:
                break
            step = np.minimum(start_ms.astype(np.int64), m - 1)
            low = cumulative[active, step]
            high = cumulative[active, step + 1]
            target = low + (start_ms - step) * (high - low) + remaining[active]
            block_total = cumulative[active, m]
            beyond = target > block_total
            remaining[active[beyond]] = target[beyond] - block_total[beyond]
            firing = active[~beyond]
            target = target[~beyond]
            if not firing.size:
                break
            position = np.searchsorted(flat, target + row_offset[firing], side="left") - firing * row_stride
            position = np.clip(position, 1, m)
            before = cumulative[firing, position - 1]
            after = cumulative[firing, position]
            fraction = np.where(
                after > before, (target - before) / np.where(after > before, after - before, 1.0), 0.0
            )
            spike_s = block_start_s + (position - 1 + fraction) / RATE_FS_HZ
            exact = spike_s * fs_hz
            sample = np.floor(exact).astype(np.int64)
            sample = np.maximum(sample, next_allowed[firing])  # guard against rounding below the dead time
            keep = sample < n_samples
            found_samples.append(sample[keep])
            found_units.append(firing[keep].astype(np.int32))
            found_phases.append(
                np.clip(exact[keep] - sample[keep], 0.0, np.nextafter(1.0, 0.0)).astype(np.float32)
            )
            next_allowed[firing] = np.where(keep, sample + dead_samples, np.iinfo(np.int64).max // 2)
            remaining[firing] = rng.exponential(size=firing.size)
            active = firing[keep]

    if found_samples:
        samples = np.concatenate(found_samples)
        units = np.concatenate(found_units)
        phases = np.concatenate(found_phases)
    else:
        samples, units, phases = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    order = np.lexsort((units, samples))
    return SpikeTrains(samples[order], units[order], phases[order], fs_hz, n_units)


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
