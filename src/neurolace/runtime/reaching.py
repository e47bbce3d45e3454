"""Open-loop reaching with a perfect decoder, and the offline decodability of a participant.

:func:`simulate_reaching` lets the simulated participant reach to random
targets while the cursor follows its intention exactly (the idealised
observation block); :func:`offline_decodability` scores the counts of such a
session with :func:`neurolace.decode.ridge.ridge_decodability`, the protocol
of the real M1 reference data. They live above ``sim`` and ``decode`` because
they join the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng
from neurolace.decode.ridge import ridge_decodability
from neurolace.sim.participant import SimulatedParticipant, _inside
from neurolace.sim.tuning import TuningModel

__all__ = ["ReachingRecord", "offline_decodability", "simulate_reaching"]


@dataclass
class ReachingRecord:
    """An open-loop reaching session: the cursor follows the intention exactly.

    Attributes
    ----------
    velocity : ndarray, shape (n_steps, 2)
        Intended (and, here, actual) velocity per step, normalised units.
    click : ndarray, shape (n_steps,)
        Click intention per step.
    cursor_xy : ndarray, shape (n_steps, 2)
    target_xy : ndarray, shape (n_steps, 2)
    counts : ndarray, shape (n_steps, n_channels)
    loop_s : float
    """

    velocity: np.ndarray
    click: np.ndarray
    cursor_xy: np.ndarray
    target_xy: np.ndarray
    counts: np.ndarray
    loop_s: float
    n_targets: int = field(default=0)


def simulate_reaching(
    participant: SimulatedParticipant,
    *,
    duration_s: float,
    cursor_gain_per_s: float = 1.2,
    target_width: float = 0.1,
    seed: SeedLike = None,
) -> ReachingRecord:
    """Let the participant reach to random targets with a perfect decoder (open loop).

    The cursor moves exactly as intended (``cursor_gain_per_s * velocity``),
    targets appear uniformly in ``[0.1, 0.9]^2`` and change when the
    participant clicks on them. This is the idealised observation block used
    to measure offline decodability.
    """
    duration_s = check_positive(duration_s, "duration_s")
    rng = check_rng(seed)
    loop_s = participant.control.loop_s
    n_steps = round(duration_s / loop_s)
    participant.start((0.5, 0.5), cursor_gain_per_s=cursor_gain_per_s, seed=rng)
    velocity = np.empty((n_steps, 2))
    click = np.empty(n_steps)
    cursor_trace = np.empty((n_steps, 2))
    target_trace = np.empty((n_steps, 2))
    cursor = np.array([0.5, 0.5])
    target = _Spot(tuple(rng.uniform(0.1, 0.9, 2)), target_width)
    n_targets = 1
    previous_click = 0.0
    for index in range(n_steps):
        intention = participant.step(cursor, target)
        velocity[index] = intention.velocity
        click[index] = intention.click
        cursor_trace[index] = cursor
        target_trace[index] = target.center_xy
        if intention.click and not previous_click and _inside(cursor - target.center_xy, target.width, "circle"):
            target = _Spot(tuple(rng.uniform(0.1, 0.9, 2)), target_width)
            n_targets += 1
        previous_click = intention.click
        cursor = np.clip(cursor + cursor_gain_per_s * loop_s * intention.velocity, 0.0, 1.0)
    counts = participant.sample_counts(velocity, click, seed=rng)
    return ReachingRecord(velocity, click, cursor_trace, target_trace, counts, loop_s, n_targets)


@dataclass(frozen=True)
class _Spot:
    center_xy: tuple
    width: float
    shape: str = "circle"


def offline_decodability(
    participant: SimulatedParticipant | None = None,
    *,
    duration_s: float = 120.0,
    bin_s: float = 0.02,
    n_lags: int = 10,
    n_subset_channels: int | None = None,
    seed: SeedLike = 0,
) -> dict:
    """Ridge R² of a participant's counts with the real-data protocol (10 bins of history).

    The participant reaches in open loop (:func:`simulate_reaching`) at its
    own control loop (20 ms) or, when ``bin_s`` is not a multiple of it, at
    10 ms; counts and velocities are summed / averaged into ``bin_s`` bins,
    as the real recording was binned, and scored by :func:`ridge_decodability`.

    Parameters
    ----------
    participant : SimulatedParticipant, optional
        Default: ``SimulatedParticipant(seed=seed)`` with 1024 channels.
    duration_s : float, default 120
        Simulated time.
    bin_s : float, default 0.02
    n_lags : int, default 10
    n_subset_channels : int, optional
        Score a random subset of this many of the participant's channels
        (drawn with ``seed``), e.g. 196 to match the real recording's number of
        units; only those channels are simulated (the shared nuisance is the
        same process, so this equals simulating all and keeping the subset).
    seed : int or Generator
        Seeds the reaching session (and the subset).
    """
    if participant is None:
        participant = SimulatedParticipant(seed=seed)
    bin_s = check_positive(bin_s, "bin_s")
    loop_s = participant.control.loop_s
    if abs(bin_s / loop_s - round(bin_s / loop_s)) > 1e-9:
        loop_s = 0.01  # e.g. 50 ms bins from a 20 ms loop: run the loop at 10 ms instead
    per_bin = round(bin_s / loop_s)
    if per_bin < 1 or abs(per_bin * loop_s - bin_s) > 1e-9:
        raise InvalidInputError(f"bin_s must be a multiple of the control loop or of 0.01 s, got {bin_s}")
    channels = np.arange(participant.n_channels)
    if n_subset_channels is not None:
        n_subset_channels = check_int(n_subset_channels, "n_subset_channels", minimum=1)
        if n_subset_channels > participant.n_channels:
            raise InvalidInputError(
                f"n_subset_channels must be <= the participant's {participant.n_channels} channels, "
                f"got {n_subset_channels}"
            )
        subset_rng = (np.random.default_rng([int(seed), n_subset_channels]) if isinstance(seed, (int, np.integer))
                      else check_rng(seed))
        channels = np.sort(subset_rng.choice(participant.n_channels, n_subset_channels, replace=False))
    tuning = participant.tuning
    fine = SimulatedParticipant(
        n_channels=channels.size, seed=seed, control=replace(participant.control, loop_s=loop_s),
        neural=participant.neural,
        tuning=TuningModel(tuning.baseline_hz[channels], tuning.depth_hz[channels],
                           tuning.preferred_direction_rad[channels], tuning.speed_gain_hz[channels],
                           tuning.click_gain_hz[channels]),
        _channels={"background_hz": participant.background_hz[channels],
                   "visibility_unit": participant._visibility_unit[channels],
                   "loadings": participant.nuisance_loadings[channels]},
    )
    record = simulate_reaching(fine, duration_s=duration_s, seed=seed)
    n_bins = record.counts.shape[0] // per_bin
    counts = record.counts[: n_bins * per_bin].reshape(n_bins, per_bin, -1).sum(axis=1)
    velocity = record.velocity[: n_bins * per_bin].reshape(n_bins, per_bin, 2).mean(axis=1)
    result = ridge_decodability(counts, velocity, n_lags=n_lags)
    result.update({"bin_s": bin_s, "duration_s": duration_s, "n_channels": int(channels.size),
                   "n_targets": record.n_targets})
    return result
