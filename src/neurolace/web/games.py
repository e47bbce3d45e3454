"""Webgrid in the browser, scored by the server: games issued, click logs verified, scores stored.

The server never trusts a score sent by a browser. :meth:`GameBook.issue`
draws a seed, builds the :class:`~neurolace.tasks.WebgridTask` with it and
hands the browser the sequence of cells that task will light (each correct
selection lights the next). The browser shows them and sends back only its
click log: time since the start and position of every click, in task units
(unit square, y up). :meth:`GameBook.verify` replays the log through a fresh
task with the same seed, so correct and incorrect selections, NTPM and
bits per second (:func:`~neurolace.tasks.webgrid_bps`) are computed exactly as
for the decoder's blocks, and stores the result under the user.

What the server checks before scoring: the game is known, belongs to the
caller and was not scored already; the wall time since it was issued is at
least the game's length (a 30 s game cannot come back after 5 s); clicks are
at most :data:`MAX_CLICKS_PER_S` per second, times lie in ``[0, duration_s]``
and never go backwards, positions lie in the unit square. A client that knows
the sequence could still script perfect clicks at a human-looking pace; the
scores of a public leaderboard are as honest as its players.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from neurolace.core.errors import InvalidInputError
from neurolace.io.atomic import atomic_output
from neurolace.tasks import WebgridTask

__all__ = ["GRID_SIDES", "MAX_CLICKS_PER_S", "GameBook", "GameError", "GameResult", "WebgridGame"]

#: faster than any human clicks (the mouse world record on Webgrid is under 2 selections per second)
MAX_CLICKS_PER_S = 20.0
#: lit cells issued per second of game, far above the ~1.7/s of the public high score
TARGETS_PER_S = 8.0
#: grids a browser game may use: the standard Webgrid and the high-score grid
GRID_SIDES = (30, 35)
#: a game must come back within this long after it ends
SUBMIT_GRACE_S = 600.0
#: tolerance on the wall-clock check of the game's length (network, timers)
WALL_TOLERANCE_S = 1.0
_MAX_OPEN_GAMES = 1000


class GameError(InvalidInputError):
    """A game request the server refuses; ``status`` is the HTTP code (400, 404, 409)."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class WebgridGame:
    """One issued browser game.

    Attributes
    ----------
    game_id : str
    user : str
        Who started it (only they can submit it).
    participant_id : str or None
        Whose data the score is (the user's participant id, if any).
    grid_side : int
    duration_s : float
    seed : int
    targets : list of int
        Cells the task lights, in order (row-major from the bottom-left).
    issued_wall_s : float
        Unix time the game was issued.
    """

    game_id: str
    user: str
    participant_id: str | None
    grid_side: int
    duration_s: float
    seed: int
    targets: list[int]
    issued_wall_s: float
    scored: bool = False

    def public(self) -> dict:
        """What the browser needs to play (no seed: the sequence is enough)."""
        return {"game_id": self.game_id, "grid_side": self.grid_side, "duration_s": self.duration_s,
                "targets": self.targets, "max_clicks_per_s": MAX_CLICKS_PER_S}


@dataclass
class GameResult:
    """The verified score of one game (JSON-able through :meth:`to_dict`)."""

    game_id: str
    user: str
    participant_id: str | None
    grid_side: int
    duration_s: float
    correct: int
    incorrect: int
    ntpm: float
    bps: float
    mean_time_to_target_s: float | None
    finished_wall_s: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def target_sequence(grid_side: int, seed: int, n_targets: int) -> list[int]:
    """The first ``n_targets`` cells a ``WebgridTask(grid_side, seed)`` lights when every click is correct."""
    task = WebgridTask(grid_side=grid_side, seed=seed)
    target = task.start(0.0, (0.5, 0.5))
    cells = [target.index]
    for step in range(1, n_targets):
        task.update(step * 1e-3, target.center_xy, True)
        task.update(step * 1e-3, target.center_xy, False)
        target = task.target
        cells.append(target.index)
    return cells


def replay_clicks(grid_side: int, seed: int, duration_s: float, clicks: list[tuple[float, float, float]]):
    """Score a click log ``[(time_s, x, y), ...]`` on a fresh seeded task; the task's :class:`BlockSummary`."""
    task = WebgridTask(grid_side=grid_side, seed=seed)
    task.start(0.0, (0.5, 0.5))
    for time_s, x, y in clicks:
        task.update(time_s, (x, y), True)
        task.update(time_s, (x, y), False)
    return task.summary(end_s=duration_s)


def check_click_log(clicks, duration_s: float) -> list[tuple[float, float, float]]:
    """Validate a click log from a browser; :class:`GameError` (400) naming the first problem."""
    if not isinstance(clicks, list):
        raise GameError(f"clicks must be a list of [time_s, x, y], got {type(clicks).__name__}")
    limit = math.ceil(MAX_CLICKS_PER_S * duration_s)
    if len(clicks) > limit:
        raise GameError(f"clicks: {len(clicks)} clicks in a {duration_s:g} s game exceed the limit of {limit} "
                        f"({MAX_CLICKS_PER_S:g} per second)")
    checked = []
    previous = 0.0
    for index, click in enumerate(clicks):
        if (not isinstance(click, (list, tuple)) or len(click) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in click)):
            raise GameError(f"clicks[{index}] must be [time_s, x, y] numbers, got {click!r:.80}")
        time_s, x, y = (float(v) for v in click)
        if not all(math.isfinite(v) for v in (time_s, x, y)):
            raise GameError(f"clicks[{index}] has a non-finite value")
        if not 0.0 <= time_s <= duration_s + 1e-6:
            raise GameError(f"clicks[{index}] time {time_s:g} s is outside the game [0, {duration_s:g}] s")
        if time_s < previous:
            raise GameError(f"clicks[{index}] time {time_s:g} s goes back before {previous:g} s")
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise GameError(f"clicks[{index}] position ({x:g}, {y:g}) is outside the unit square")
        previous = time_s
        checked.append((time_s, x, y))
    return checked


class GameBook:
    """Open games in memory, verified scores in ``scores.json`` of ``data_dir``.

    Parameters
    ----------
    data_dir : path
    clock : callable returning Unix seconds, optional
        Wall clock (tests pass a fake one).
    """

    def __init__(self, data_dir: str | os.PathLike, *, clock=time.time) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._path = self.data_dir / "scores.json"
        self._clock = clock
        self._lock = threading.Lock()
        self._games: OrderedDict[str, WebgridGame] = OrderedDict()
        self._scores: list[dict] = json.loads(self._path.read_text()) if self._path.exists() else []

    def issue(self, user: str, participant_id: str | None, *, grid_side: int = 30,
              duration_s: float = 30.0) -> WebgridGame:
        """Start a game for ``user`` on a ``grid_side`` grid lasting ``duration_s`` (5-300 s)."""
        if grid_side not in GRID_SIDES:
            raise GameError(f"grid_side must be one of {GRID_SIDES}, got {grid_side!r}")
        if not isinstance(duration_s, (int, float)) or not 5.0 <= float(duration_s) <= 300.0:
            raise GameError(f"duration_s must be between 5 and 300 seconds, got {duration_s!r}")
        duration_s = float(duration_s)
        seed = secrets.randbits(63)
        n_targets = math.ceil(TARGETS_PER_S * duration_s)
        game = WebgridGame(secrets.token_urlsafe(12), user, participant_id, int(grid_side), duration_s, seed,
                           target_sequence(int(grid_side), seed, n_targets), self._clock())
        with self._lock:
            self._games[game.game_id] = game
            while len(self._games) > _MAX_OPEN_GAMES:
                self._games.popitem(last=False)
        return game

    def verify(self, game_id: str, user: str, clicks) -> GameResult:
        """Check and score the click log of ``game_id``; store and return the result."""
        with self._lock:
            game = self._games.get(game_id) if isinstance(game_id, str) else None
            if game is None or game.user != user:
                # the same answer for someone else's game: do not reveal that it exists
                raise GameError(f"unknown game id {str(game_id)[:40]!r}", status=404)
            if game.scored:
                raise GameError(f"game {game_id!r} was already scored", status=409)
            elapsed_s = self._clock() - game.issued_wall_s
            if elapsed_s < game.duration_s - WALL_TOLERANCE_S:
                raise GameError(f"game {game_id!r} lasts {game.duration_s:g} s but came back after "
                                f"{elapsed_s:.1f} s", status=409)
            if elapsed_s > game.duration_s + SUBMIT_GRACE_S:
                del self._games[game_id]
                raise GameError(f"game {game_id!r} expired: submit within {SUBMIT_GRACE_S:g} s of its end",
                                status=410)
            game.scored = True
        try:
            checked = check_click_log(clicks, game.duration_s)
        except GameError:
            with self._lock:
                game.scored = False
            raise
        summary = replay_clicks(game.grid_side, game.seed, game.duration_s, checked)
        time_to_target = summary.mean_time_to_target_s
        result = GameResult(game.game_id, user, game.participant_id, game.grid_side, game.duration_s,
                            summary.correct, summary.incorrect, float(summary.ntpm), float(summary.bps),
                            float(time_to_target) if math.isfinite(time_to_target) else None,
                            self._clock())
        with self._lock:
            self._games.pop(game_id, None)
            self._scores.append(result.to_dict())
            with atomic_output(self._path) as temporary:
                temporary.write_text(json.dumps(self._scores, indent=1))
        return result

    def scores(self) -> list[dict]:
        """Every stored score (callers filter by who may see them)."""
        with self._lock:
            return [dict(score) for score in self._scores]
