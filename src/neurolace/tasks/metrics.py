"""Scores of point-and-click tasks: Webgrid bits per second, Fitts/ISO throughput, trial metrics.

Webgrid (Neuralink's cursor benchmark) scores a block by its *net* rate of
correct selections on an N x N grid::

    NTPM = max(0, (correct - incorrect) / minutes)
    BPS  = NTPM / 60 * log2(N**2 - 1)

Each correct selection among ``N**2`` cells conveys ``log2(N**2 - 1)`` bits
(one cell is the current target; the formula is the achieved bitrate of
Nuyujukian et al. 2015, IEEE TBME 62:1253, for a grid task). Published pairs
this module reproduces (tests/test_tasks_metrics.py): 49 NTPM on 30 x 30 =
8.01 BPS (Neuralink's first participant, 2024), 72 NTPM on 30 x 30 = 11.77 BPS
(a journalist with a mouse), 100 NTPM on 35 x 35 = 17.10 BPS (public high score).

ISO 9241-9 throughput uses the effective-width formulation of Soukoreff &
MacKenzie (2004, Int J Human-Computer Studies 61:751): for each (distance,
width) condition, ``We = 4.133 * sd(dx)`` where ``dx`` is the selection
endpoint's deviation along the task axis, ``De`` the mean effective distance,
``IDe = log2(De / We + 1)`` and ``TP = IDe / mean(movement time)``; the
throughput of a block is the mean of the condition throughputs, and the
conditions are reported with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError

__all__ = [
    "EFFECTIVE_WIDTH_FACTOR",
    "ThroughputCondition",
    "ThroughputResult",
    "iso_throughput",
    "net_targets_per_minute",
    "path_efficiency",
    "webgrid_bps",
]

#: ``We = 4.133 * sd``: the width holding 96 % of a normal endpoint spread (Soukoreff & MacKenzie 2004).
EFFECTIVE_WIDTH_FACTOR = 4.133


def webgrid_bps(ntpm: float, grid_side: int = 30) -> float:
    """Bits per second of a Webgrid score: ``ntpm / 60 * log2(grid_side**2 - 1)``.

    Parameters
    ----------
    ntpm : float
        Net correct targets per minute (correct minus incorrect selections per
        minute, already floored at 0), >= 0.
    grid_side : int, default 30
        Cells per side of the grid (30 is the default Webgrid, 35 the high-score grid), >= 2.

    Returns
    -------
    bps : float

    Examples
    --------
    >>> round(webgrid_bps(49, grid_side=30), 2)
    8.01
    """
    ntpm = check_nonnegative(ntpm, "ntpm")
    grid_side = check_int(grid_side, "grid_side", minimum=2)
    return ntpm / 60.0 * float(np.log2(grid_side * grid_side - 1))


def net_targets_per_minute(correct: int, incorrect: int, duration_s: float) -> float:
    """Net correct targets per minute, ``max(0, correct - incorrect) / (duration_s / 60)``.

    Parameters
    ----------
    correct, incorrect : int
        Numbers of correct and incorrect selections in the block, >= 0.
    duration_s : float
        Length of the block in seconds, > 0.
    """
    correct = check_int(correct, "correct", minimum=0)
    incorrect = check_int(incorrect, "incorrect", minimum=0)
    duration_s = check_positive(duration_s, "duration_s")
    return max(0, correct - incorrect) * 60.0 / duration_s


def path_efficiency(path_xy: Any) -> float:
    """Straight-line distance from the first to the last point over the length travelled.

    1 for a straight path, smaller for a detour (Gilja et al. 2012, Nat
    Neurosci 15:1752 use the same ratio as "path efficiency").

    Parameters
    ----------
    path_xy : ndarray, shape (n_points, 2)
        Cursor positions, n_points >= 2.

    Returns
    -------
    efficiency : float
        In [0, 1]; ``nan`` if the cursor did not move at all.
    """
    path = check_array(path_xy, "path_xy", ndim=2, dtype=np.float64)
    if path.shape[1] != 2 or path.shape[0] < 2:
        raise InvalidInputError(f"path_xy must have shape (n_points >= 2, 2), got {path.shape}")
    travelled = float(np.sum(np.hypot(*np.diff(path, axis=0).T)))
    if travelled == 0.0:
        return float("nan")
    straight = float(np.hypot(*(path[-1] - path[0])))
    return min(1.0, straight / travelled)


@dataclass(frozen=True)
class ThroughputCondition:
    """One (distance, width) cell of the ISO 9241-9 grid and its effective measures."""

    distance: float
    width: float
    n_trials: int
    effective_distance: float
    effective_width: float
    effective_index_of_difficulty_bits: float
    mean_movement_time_s: float
    throughput_bps: float


@dataclass(frozen=True)
class ThroughputResult:
    """ISO 9241-9 throughput of a block and the distance/width grid it was measured on."""

    throughput_bps: float
    conditions: list[ThroughputCondition] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"throughput_bps": self.throughput_bps, "conditions": [asdict(c) for c in self.conditions]}


def iso_throughput(
    start_xy: Any,
    target_xy: Any,
    end_xy: Any,
    movement_time_s: Any,
    width: Any,
    *,
    distance_edges: Any = None,
    nominal_distance: Any = None,
    min_trials: int = 2,
) -> ThroughputResult:
    """ISO 9241-9 throughput with effective width, per (distance, width) condition.

    Parameters
    ----------
    start_xy, target_xy, end_xy : ndarray, shape (n_trials, 2)
        Where each movement started, the target centre, and where the
        selection was made (all in the same units).
    movement_time_s : ndarray, shape (n_trials,)
        Time from movement start (target onset) to selection, > 0.
    width : float or ndarray, shape (n_trials,)
        Nominal target width of each trial.
    distance_edges : ndarray, shape (n_edges,), optional
        Bin edges that group nominal distances into conditions (Webgrid
        distances are continuous). By default each distinct nominal distance
        (rounded to 1e-9) is its own condition, as in a classic
        multi-directional tapping task.
    nominal_distance : float or ndarray, shape (n_trials,), optional
        The task's nominal distance of each trial (ISO 9241-9's amplitude
        condition, e.g. the radius of a center-out task); when given, trials
        are grouped by it instead of by their measured start-to-target
        distance, and ``distance_edges`` is not used. The effective distance
        is still measured from each trial's actual start.
    min_trials : int, default 2
        Conditions with fewer trials are left out (a spread needs two points).

    Returns
    -------
    ThroughputResult
        ``throughput_bps`` is the mean over conditions of ``IDe / MT``; ``nan``
        if no condition has ``min_trials`` trials.
    """
    start = check_array(start_xy, "start_xy", ndim=2, dtype=np.float64)
    n_trials = start.shape[0]
    target = check_array(target_xy, "target_xy", ndim=2, dtype=np.float64, shape=(n_trials, 2))
    end = check_array(end_xy, "end_xy", ndim=2, dtype=np.float64, shape=(n_trials, 2))
    if start.shape[1] != 2:
        raise InvalidInputError(f"start_xy must have shape (n_trials, 2), got {start.shape}")
    times = check_array(movement_time_s, "movement_time_s", ndim=1, dtype=np.float64, shape=(n_trials,))
    if np.any(times <= 0):
        raise InvalidInputError("movement_time_s must be > 0 for every trial")
    widths = np.broadcast_to(check_array(width, "width", ndim=(0, 1), dtype=np.float64), (n_trials,))
    if np.any(widths <= 0):
        raise InvalidInputError("width must be > 0")
    min_trials = check_int(min_trials, "min_trials", minimum=2)

    axis = target - start
    distance = np.hypot(axis[:, 0], axis[:, 1])
    if np.any(distance == 0):
        raise InvalidInputError("every trial needs a target away from its start (distance 0 found)")
    unit = axis / distance[:, np.newaxis]
    deviation = np.sum((end - target) * unit, axis=1)  # along the task axis, + = overshoot
    effective_distance = distance + deviation

    if nominal_distance is not None:
        nominal = np.broadcast_to(check_array(nominal_distance, "nominal_distance", ndim=(0, 1), dtype=np.float64),
                                  (n_trials,))
        if np.any(nominal <= 0):
            raise InvalidInputError("nominal_distance must be > 0")
        distance_key = np.round(nominal, 9)
    elif distance_edges is None:
        distance_key = np.round(distance, 9)
    else:
        edges = check_array(distance_edges, "distance_edges", ndim=1, dtype=np.float64)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise InvalidInputError("distance_edges must be increasing with at least 2 entries")
        index = np.clip(np.searchsorted(edges, distance, side="right") - 1, 0, edges.size - 2)
        distance_key = 0.5 * (edges[index] + edges[index + 1])
    width_key = np.round(widths, 9)

    conditions = []
    for d_value, w_value in sorted(set(zip(distance_key.tolist(), width_key.tolist()))):
        mask = (distance_key == d_value) & (width_key == w_value)
        if mask.sum() < min_trials:
            continue
        spread = float(np.std(deviation[mask], ddof=1))
        we = EFFECTIVE_WIDTH_FACTOR * spread
        de = float(np.mean(effective_distance[mask]))
        if we == 0.0:
            continue  # every endpoint identical: the effective index is undefined
        ide = float(np.log2(de / we + 1.0))
        mt = float(np.mean(times[mask]))
        conditions.append(ThroughputCondition(d_value, w_value, int(mask.sum()), de, we, ide, mt, ide / mt))
    throughput = float(np.mean([c.throughput_bps for c in conditions])) if conditions else float("nan")
    return ThroughputResult(throughput, conditions)
