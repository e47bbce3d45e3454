"""Intended movements for the simulated implant: a seeded center-out-and-back reaching session.

When a caller does not supply an intended velocity, the implant simulates a
participant doing center-out-and-back reaches (the task of Georgopoulos et al.
1982, J Neurosci 2:1527) toward targets at random angles, so every preferred
direction gets covered. Each movement follows the minimum-jerk profile of
Flash & Hogan 1985 (J Neurosci 5:1688), whose peak speed is 1.875 times the
mean speed. With the default reach distance of 0.5 and durations of 0.6-1.0 s,
peak speeds are ~0.9-1.6 normalised units, so speed 1.0 is "a typical peak
reaching speed" as :class:`~neurolace.sim.tuning.TuningModel` assumes. After
each outward reach the participant holds still and clicks (``click = 1``) for
the first ``click_ms`` of the hold, as when selecting a target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_int, check_nonnegative, check_positive
from neurolace.core.random import SeedLike, check_rng

__all__ = ["ReachingTrajectory", "minimum_jerk_speed", "random_reaching_trajectory"]


@dataclass(frozen=True, eq=False)
class ReachingTrajectory:
    """Intended velocity and click, sampled on a regular clock.

    Attributes
    ----------
    velocity : ndarray of float64, shape (n_steps, 2)
        Intended (vx, vy) in normalised units.
    click : ndarray of float64, shape (n_steps,)
        Click intention in [0, 1].
    fs_hz : float
        Sampling rate of both arrays.
    """

    velocity: np.ndarray
    click: np.ndarray
    fs_hz: float

    @property
    def position(self) -> np.ndarray:
        """Cursor position integrated from the velocity, starting at (0, 0), shape (n_steps, 2)."""
        return np.cumsum(self.velocity, axis=0) / self.fs_hz


def minimum_jerk_speed(phase: np.ndarray) -> np.ndarray:
    """Speed profile of a minimum-jerk movement of unit length and unit duration.

    ``phase`` in [0, 1] is the fraction of the movement elapsed; the speed is
    ``30 phase^2 (1 - phase)^2`` (the derivative of ``10 p^3 - 15 p^4 + 6 p^5``,
    Flash & Hogan 1985), which integrates to 1 and peaks at 1.875.
    """
    phase = np.clip(np.asarray(phase, dtype=np.float64), 0.0, 1.0)
    return 30.0 * phase**2 * (1.0 - phase) ** 2


def random_reaching_trajectory(
    duration_s: float,
    *,
    fs_hz: float = 100.0,
    seed: SeedLike = None,
    reach_distance: float = 0.5,
    reach_ms: tuple[float, float] = (600.0, 1000.0),
    hold_ms: tuple[float, float] = (200.0, 500.0),
    click_ms: float = 200.0,
) -> ReachingTrajectory:
    """Center-out-and-back reaches at random angles, with a click at each outer target.

    Parameters
    ----------
    duration_s : float
        Length of the session in seconds.
    fs_hz : float, default 100.0
        Sampling rate of the returned arrays.
    seed : int, Generator or None
        Seed of the target angles and timings.
    reach_distance : float, default 0.5
        Distance from the centre to each target, in normalised position units.
    reach_ms : (float, float), default (600, 1000)
        Uniform range of each movement's duration.
    hold_ms : (float, float), default (200, 500)
        Uniform range of the still period after each movement.
    click_ms : float, default 200
        Length of the click at the start of each hold at an outer target.

    Returns
    -------
    ReachingTrajectory
        ``n_steps = ceil(duration_s * fs_hz)`` samples.
    """
    duration_s = check_positive(duration_s, "duration_s")
    fs_hz = check_positive(fs_hz, "fs_hz")
    reach_distance = check_nonnegative(reach_distance, "reach_distance")
    click_ms = check_nonnegative(click_ms, "click_ms")
    rng = check_rng(seed)
    n_steps = check_int(int(np.ceil(duration_s * fs_hz)), "duration_s * fs_hz", minimum=1)
    times_s = np.arange(n_steps) / fs_hz
    velocity = np.zeros((n_steps, 2))
    click = np.zeros(n_steps)
    start_s = 0.0
    outward = True
    angle = 0.0
    while start_s < duration_s:
        if outward:
            angle = rng.uniform(-np.pi, np.pi)
        movement_s = rng.uniform(*reach_ms) * 1e-3
        hold_s = rng.uniform(*hold_ms) * 1e-3
        direction = np.array([np.cos(angle), np.sin(angle)]) * (1.0 if outward else -1.0)
        moving = (times_s >= start_s) & (times_s < start_s + movement_s)
        speed = reach_distance / movement_s * minimum_jerk_speed((times_s[moving] - start_s) / movement_s)
        velocity[moving] = speed[:, np.newaxis] * direction
        hold_start_s = start_s + movement_s
        if outward:
            click[(times_s >= hold_start_s) & (times_s < hold_start_s + click_ms * 1e-3)] = 1.0
        start_s = hold_start_s + hold_s
        outward = not outward
    return ReachingTrajectory(velocity=velocity, click=click, fs_hz=fs_hz)
