"""Open-loop reaching with a perfect decoder, and the offline decodability of a participant.

:func:`simulate_reaching` is one block of the closed loop
(:func:`~neurolace.runtime.closed_loop.run_block` with
``observation="intention"``: the cursor follows the participant's intention
exactly, the idealised observation block) on a Webgrid of target-sized cells,
so the targets are random cells; :func:`offline_decodability` scores the
counts of such a block with :func:`neurolace.decode.ridge.ridge_decodability`,
the protocol of the real M1 reference data. They live above ``sim`` and
``decode`` because they join the two; the loop itself is the one of
:mod:`neurolace.runtime.loop`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng, spawn_rngs
from neurolace.decode.ridge import ridge_decodability
from neurolace.runtime.closed_loop import run_block
from neurolace.sim.participant import SimulatedParticipant
from neurolace.sim.tuning import TuningModel
from neurolace.tasks import WebgridTask

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
        Cursor before each step's movement.
    target_xy : ndarray, shape (n_steps, 2)
        Centre of the lit target at each step.
    counts : ndarray, shape (n_steps, n_channels)
    loop_s : float
    n_targets : int
        Targets lit during the session (those selected plus the last one).
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

    One :func:`~neurolace.runtime.closed_loop.run_block` with
    ``observation="intention"`` (the cursor moves exactly as intended,
    ``cursor_gain_per_s * velocity`` per second, and clicks when the
    participant clicks) on a :class:`~neurolace.tasks.WebgridTask` whose cells
    are ``target_width`` wide: each target is a random cell, the next one is
    lit when the participant clicks inside it. This is the idealised
    observation block used to measure offline decodability.

    Parameters
    ----------
    participant : SimulatedParticipant
    duration_s : float
        Rounded to whole control steps.
    cursor_gain_per_s : float, default 1.2
    target_width : float, default 0.1
        Side of a target (workspace units); ``1 / target_width`` must be a whole number >= 2.
    seed : int, Generator or None
        Seeds the target sequence and the participant's noise.
    """
    duration_s = check_positive(duration_s, "duration_s")
    target_width = check_positive(target_width, "target_width")
    grid_side = round(1.0 / target_width)
    if grid_side < 2 or abs(grid_side * target_width - 1.0) > 1e-9:
        raise InvalidInputError(
            f"target_width must be 1/N for a whole N >= 2 (targets are cells of an N x N grid), got {target_width:g}"
        )
    task_rng, noise_rng = spawn_rngs(check_rng(seed), 2)
    record = run_block(participant, WebgridTask(grid_side=grid_side, seed=task_rng), duration_s=duration_s,
                       cursor_gain_per_s=cursor_gain_per_s, observation="intention", name="reaching",
                       kind="open-loop", seed=noise_rng)
    return ReachingRecord(record.intended_velocity, record.intended_click, record.cursor_xy, record.target_xy,
                          record.counts, participant.control.loop_s, record.summary.correct + 1)


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
