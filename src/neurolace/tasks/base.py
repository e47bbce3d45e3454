"""Point-and-click task machinery shared by Webgrid and center-out.

A task lives in a normalised workspace, the unit square ``[0, 1] x [0, 1]``
(x to the right, y up). It is streaming: the caller feeds it the cursor and the
click state once per control step with :meth:`PointAndClickTask.update`, and
the task keeps the lit target, the trial records and the counts of correct and
incorrect selections. :meth:`PointAndClickTask.summary` turns the records into
the block's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_nonnegative
from neurolace.core.errors import InvalidInputError
from neurolace.tasks.metrics import ThroughputResult, iso_throughput, path_efficiency

__all__ = ["BlockSummary", "PointAndClickTask", "Selection", "Target", "Trial"]


@dataclass(frozen=True)
class Target:
    """A selectable region of the workspace.

    Attributes
    ----------
    center_xy : tuple of float
        Centre in workspace units.
    width : float
        Side of a square target or diameter of a round one.
    shape : {"square", "circle"}
    index : int
        Task-specific label (cell index on a grid, direction on center-out).
    """

    center_xy: tuple[float, float]
    width: float
    shape: str = "square"
    index: int = -1

    def contains(self, xy: np.ndarray) -> bool:
        dx = float(xy[0]) - self.center_xy[0]
        dy = float(xy[1]) - self.center_xy[1]
        half = 0.5 * self.width
        if self.shape == "square":
            return abs(dx) <= half and abs(dy) <= half
        return dx * dx + dy * dy <= half * half


@dataclass
class Trial:
    """One lit target, from onset to selection or timeout."""

    target: Target
    onset_s: float
    start_xy: tuple[float, float]
    first_entry_s: float | None = None
    selection_s: float | None = None
    selection_xy: tuple[float, float] | None = None
    success: bool = False
    n_incorrect: int = 0
    path_xy: list[tuple[float, float]] = field(default_factory=list)

    @property
    def acquisition_time_s(self) -> float | None:
        """Target onset to correct selection ("time to target")."""
        return None if self.selection_s is None or not self.success else self.selection_s - self.onset_s

    @property
    def dial_in_time_s(self) -> float | None:
        """First entry into the target to correct selection."""
        if not self.success or self.first_entry_s is None or self.selection_s is None:
            return None
        return self.selection_s - self.first_entry_s


@dataclass(frozen=True)
class Selection:
    """A click the task registered: where, when, and whether it hit the lit target."""

    time_s: float
    xy: tuple[float, float]
    correct: bool
    target: Target


@dataclass
class BlockSummary:
    """Metrics of one block of a point-and-click task.

    ``success_rate`` is the fraction of trials acquired (center-out) or of
    clicks that were correct (Webgrid); times are means over successful trials
    in seconds (``nan`` when there were none).
    """

    task: str
    duration_s: float
    correct: int
    incorrect: int
    n_trials: int
    success_rate: float
    mean_time_to_target_s: float
    mean_time_to_first_entry_s: float
    mean_dial_in_time_s: float
    mean_path_efficiency: float
    throughput: ThroughputResult
    ntpm: float = float("nan")
    bps: float = float("nan")
    grid_side: int | None = None

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in (
            "task", "duration_s", "correct", "incorrect", "n_trials", "success_rate",
            "mean_time_to_target_s", "mean_time_to_first_entry_s", "mean_dial_in_time_s",
            "mean_path_efficiency", "ntpm", "bps", "grid_side")}
        out["throughput"] = self.throughput.to_dict()
        return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


class PointAndClickTask:
    """Base of the streaming point-and-click tasks (subclasses choose the targets).

    Parameters
    ----------
    timeout_s : float or None
        A trial not acquired within this time ends as a failure and the next
        target is lit; ``None`` waits forever (Webgrid).
    """

    name = "point-and-click"

    def __init__(self, *, timeout_s: float | None = None) -> None:
        self.timeout_s = None if timeout_s is None else check_nonnegative(timeout_s, "timeout_s")
        self.trials: list[Trial] = []
        self.correct = 0
        self.incorrect = 0
        self._start_s: float | None = None
        self._last_s: float | None = None
        self._previous_click = False

    # subclasses -------------------------------------------------------------------------------
    def _next_target(self) -> Target:  # pragma: no cover - abstract
        raise NotImplementedError

    # streaming --------------------------------------------------------------------------------
    @property
    def target(self) -> Target | None:
        """The lit target, or ``None`` before the first update."""
        return self.trials[-1].target if self.trials else None

    def start(self, time_s: float, cursor_xy: Any) -> Target:
        """Begin the block at ``time_s`` with the cursor at ``cursor_xy``; return the first target."""
        cursor = self._check_cursor(cursor_xy)
        self._start_s = float(time_s)
        self._last_s = float(time_s)
        self._light(float(time_s), cursor)
        return self.target

    def _light(self, time_s: float, cursor: np.ndarray) -> None:
        target = self._next_target()
        trial = Trial(target=target, onset_s=time_s, start_xy=(float(cursor[0]), float(cursor[1])))
        trial.path_xy.append(trial.start_xy)
        if target.contains(cursor):
            trial.first_entry_s = time_s
        self.trials.append(trial)

    @staticmethod
    def _check_cursor(cursor_xy: Any) -> np.ndarray:
        cursor = check_array(cursor_xy, "cursor_xy", ndim=1, dtype=np.float64)
        if cursor.shape != (2,):
            raise InvalidInputError(f"cursor_xy must have shape (2,), got {cursor.shape}")
        return cursor

    def update(self, time_s: float, cursor_xy: Any, click: bool) -> Selection | None:
        """Advance the task to ``time_s`` with the cursor at ``cursor_xy``.

        A selection happens on the rising edge of ``click`` (holding the click
        selects once). Returns the :class:`Selection` if one happened.
        """
        if self._start_s is None:
            raise InvalidInputError("call start(time_s, cursor_xy) before update()")
        cursor = self._check_cursor(cursor_xy)
        time_s = float(time_s)
        self._last_s = time_s
        trial = self.trials[-1]
        trial.path_xy.append((float(cursor[0]), float(cursor[1])))
        if trial.first_entry_s is None and trial.target.contains(cursor):
            trial.first_entry_s = time_s
        rising = bool(click) and not self._previous_click
        self._previous_click = bool(click)
        if rising:
            hit = trial.target.contains(cursor)
            selection = Selection(time_s, (float(cursor[0]), float(cursor[1])), hit, trial.target)
            if hit:
                self.correct += 1
                trial.success = True
                trial.selection_s = time_s
                trial.selection_xy = selection.xy
                self._light(time_s, cursor)
            else:
                self.incorrect += 1
                trial.n_incorrect += 1
            return selection
        if self.timeout_s is not None and time_s - trial.onset_s >= self.timeout_s:
            trial.selection_s = time_s
            self._light(time_s, cursor)
        return None

    # metrics ----------------------------------------------------------------------------------
    def _throughput(self, done: list[Trial]) -> ThroughputResult:
        if not done:
            return ThroughputResult(float("nan"), [])
        return iso_throughput(
            [t.start_xy for t in done], [t.target.center_xy for t in done], [t.selection_xy for t in done],
            [t.acquisition_time_s for t in done], [t.target.width for t in done],
            distance_edges=self._distance_edges(), nominal_distance=self._nominal_distances(done),
        )

    def _distance_edges(self) -> np.ndarray | None:
        return None

    def _nominal_distances(self, done: list[Trial]) -> np.ndarray | None:
        """Nominal distance of each trial for grouping ISO conditions (``None``: measure it)."""
        return None

    def _success_rate(self, finished: list[Trial]) -> float:
        return sum(t.success for t in finished) / len(finished) if finished else float("nan")

    def summary(self, end_s: float | None = None) -> BlockSummary:
        """Metrics of the block so far (the trial still lit at ``end_s`` is not counted as a trial)."""
        if self._start_s is None:
            raise InvalidInputError("the block has not started: call start() first")
        end_s = self._last_s if end_s is None else float(end_s)
        duration_s = end_s - self._start_s
        finished = [t for t in self.trials if t.selection_s is not None]
        done = [t for t in finished if t.success and t.acquisition_time_s and t.acquisition_time_s > 0]
        efficiencies = [path_efficiency(np.asarray(t.path_xy)) for t in done if len(t.path_xy) >= 2]
        efficiencies = [e for e in efficiencies if np.isfinite(e)]
        return BlockSummary(
            task=self.name,
            duration_s=duration_s,
            correct=self.correct,
            incorrect=self.incorrect,
            n_trials=len(finished),
            success_rate=self._success_rate(finished),
            mean_time_to_target_s=_mean([t.acquisition_time_s for t in done]),
            mean_time_to_first_entry_s=_mean([t.first_entry_s - t.onset_s for t in done]),
            mean_dial_in_time_s=_mean([t.dial_in_time_s for t in done]),
            mean_path_efficiency=_mean(efficiencies),
            throughput=self._throughput(done),
        )
