"""Webgrid in the browser, played against the server: targets revealed one at a time, clicks timed on arrival.

The server never trusts the browser with the game. :meth:`GameBook.issue`
draws a seed, builds a :class:`~neurolace.tasks.WebgridTask` with it, starts
the game's clock and hands the browser only the *first* lit cell. Each click
goes to the server as it happens (:meth:`GameBook.click`, a position in task
units: unit square, y up); the server stamps it with its own clock on
arrival, feeds it to the task and answers with the cell now lit, so the
browser learns the next target only after it selected the current one.
:meth:`GameBook.finish` scores the game once its time is up: correct and
incorrect selections, NTPM and bits per second
(:func:`~neurolace.tasks.webgrid_bps`) as for the decoder's blocks, all from
server-side times.

What the server refuses:

- clicks of another user's game (answered like an unknown game), clicks after
  the game's end, more than :data:`MAX_CLICKS_PER_S` clicks in any second,
  positions outside the unit square or not finite (each a 4xx that leaves the
  game playable, so the next valid click counts);
- a score in which any correct selection came less than
  :data:`MIN_SELECTION_S` after its target was revealed: no human sees a new
  target and selects it that fast, so such a game is a script and is not
  stored (the server's interval also holds the network round trip, so a
  human's interval only looks longer);
- finishing early, twice, or after :data:`SUBMIT_GRACE_S`.

A script can still play at a human pace through the API; what it cannot do is
know the targets in advance or claim times it did not spend.
"""

from __future__ import annotations

import collections
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

__all__ = ["GRID_SIDES", "MAX_CLICKS_PER_S", "MIN_SELECTION_S", "GameBook", "GameError", "GameResult",
           "WebgridGame", "load_scores"]

#: clicks per second a game accepts (a human double-click is ~5-10/s; more than this is a script)
MAX_CLICKS_PER_S = 20.0
#: shortest time from a target's reveal to its correct selection that counts as human. Athletics rules
#: treat a reaction to the starting gun within 100 ms as a false start, no voluntary response being that
#: fast (World Athletics, formerly IAAF, competition rules on false starts); a Webgrid selection needs
#: seeing a new cell *and* a mouse movement, so 100 ms is a generous floor, not a measured human minimum.
MIN_SELECTION_S = 0.1
#: grids a browser game may use: the standard Webgrid and the high-score grid
GRID_SIDES = (30, 35)
#: a game must be finished within this long after it ends
SUBMIT_GRACE_S = 600.0
_MAX_OPEN_GAMES = 1000


class GameError(InvalidInputError):
    """A game request the server refuses; ``status`` is the HTTP code (400, 404, 409, 410, 422, 429)."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class WebgridGame:
    """One issued browser game, played on the server.

    Attributes
    ----------
    game_id : str
    user : str
        Who started it (only they can play and finish it).
    participant_id : str or None
        Whose data the score is (the user's participant id, if any).
    grid_side : int
    duration_s : float
    issued_wall_s : float
        Server time the game started (its clock's zero).
    task : WebgridTask
        The seeded task every click goes through.
    revealed_s : float
        Game time the current target was revealed (the answer that showed it).
    selection_times_s : list of float
        Reveal-to-selection time of every correct selection, server-side.
    click_times_s : deque of float
        Game times of recent clicks (for the rate limit).
    """

    game_id: str
    user: str
    participant_id: str | None
    grid_side: int
    duration_s: float
    issued_wall_s: float
    task: WebgridTask
    revealed_s: float = 0.0
    selection_times_s: list = field(default_factory=list)
    click_times_s: collections.deque = field(default_factory=collections.deque)
    finished: bool = False

    def public(self) -> dict:
        """What the browser needs now: the game's settings and the one cell lit (no seed, no sequence)."""
        return {"game_id": self.game_id, "grid_side": self.grid_side, "duration_s": self.duration_s,
                "target": self.task.target.index, "max_clicks_per_s": MAX_CLICKS_PER_S,
                "min_selection_s": MIN_SELECTION_S}


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


def check_position(x, y) -> tuple[float, float]:
    """A click position from a browser: two finite numbers in the unit square; :class:`GameError` (400) else."""
    for name, value in (("x", x), ("y", y)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GameError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
        if isinstance(value, int) and not -(2**53) <= value <= 2**53:
            raise GameError(f"{name} must be a number in [0, 1], got an integer of {len(str(abs(value)))} digits")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise GameError(f"{name} must be a number in [0, 1], got {float(value)!r}")
    return float(x), float(y)


def load_scores(path: Path) -> list[dict]:
    """The stored scores in ``path`` (none if missing); :class:`InvalidInputError` naming a corrupt file."""
    if not path.exists():
        return []
    try:
        scores = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"{path} is not valid JSON ({exc}); move it away to start a new score list") from exc
    if not isinstance(scores, list) or not all(isinstance(s, dict) for s in scores):
        raise InvalidInputError(f"{path} must hold a JSON list of score objects; move it away to start a new one")
    return scores


class GameBook:
    """Open games in memory, verified scores in ``scores.json`` of ``data_dir``.

    Parameters
    ----------
    data_dir : path
    clock : callable returning Unix seconds, optional
        The server's clock for game times (tests pass a fake one).
    """

    def __init__(self, data_dir: str | os.PathLike, *, clock=time.time) -> None:
        self.data_dir = Path(data_dir)
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise InvalidInputError(f"data directory {self.data_dir} is a file; give a directory (it is created "
                                    "if missing)")
        self._path = self.data_dir / "scores.json"
        self._scores: list[dict] = load_scores(self._path)
        self._clock = clock
        self._lock = threading.Lock()
        self._games: OrderedDict[str, WebgridGame] = OrderedDict()

    def issue(self, user: str, participant_id: str | None, *, grid_side: int = 30,
              duration_s: float = 30.0) -> WebgridGame:
        """Start a game for ``user`` on a ``grid_side`` grid lasting ``duration_s`` (5-300 s), now."""
        if grid_side not in GRID_SIDES:
            raise GameError(f"grid_side must be one of {GRID_SIDES}, got {grid_side!r}")
        if (isinstance(duration_s, bool) or not isinstance(duration_s, (int, float))
                or not 5.0 <= float(duration_s) <= 300.0):
            raise GameError(f"duration_s must be between 5 and 300 seconds, got {duration_s!r:.40}")
        task = WebgridTask(grid_side=int(grid_side), seed=secrets.randbits(63))
        task.start(0.0, (0.5, 0.5))
        game = WebgridGame(secrets.token_urlsafe(12), user, participant_id, int(grid_side), float(duration_s),
                           self._clock(), task)
        with self._lock:
            self._games[game.game_id] = game
            while len(self._games) > _MAX_OPEN_GAMES:
                self._games.popitem(last=False)
        return game

    def _game(self, game_id: str, user: str) -> WebgridGame:
        game = self._games.get(game_id) if isinstance(game_id, str) else None
        if game is None or game.user != user:
            # the same answer for someone else's game: do not reveal that it exists
            raise GameError(f"unknown game id {str(game_id)[:40]!r}", status=404)
        return game

    def click(self, game_id: str, user: str, x, y) -> dict:
        """One click of ``user`` at ``(x, y)``, timed now; the selection and the cell lit after it."""
        x, y = check_position(x, y)
        with self._lock:
            game = self._game(game_id, user)
            if game.finished:
                raise GameError(f"game {game_id!r} is finished", status=409)
            time_s = self._clock() - game.issued_wall_s
            if time_s > game.duration_s:
                raise GameError(f"game {game_id!r} ended at {game.duration_s:g} s; finish it to get the score",
                                status=409)
            recent = game.click_times_s
            while recent and time_s - recent[0] >= 1.0:
                recent.popleft()
            if len(recent) >= MAX_CLICKS_PER_S:
                raise GameError(f"more than {MAX_CLICKS_PER_S:g} clicks in a second", status=429)
            recent.append(time_s)
            selection = game.task.update(time_s, (x, y), True)
            game.task.update(time_s, (x, y), False)
            correct = bool(selection is not None and selection.correct)
            if correct:
                game.selection_times_s.append(time_s - game.revealed_s)
                game.revealed_s = time_s
            return {"correct": correct, "target": game.task.target.index, "t_s": round(time_s, 4),
                    "correct_total": game.task.correct, "incorrect_total": game.task.incorrect}

    def finish(self, game_id: str, user: str) -> GameResult:
        """Score ``game_id`` once its time is up; store and return the result."""
        with self._lock:
            game = self._game(game_id, user)
            if game.finished:
                raise GameError(f"game {game_id!r} was already scored", status=409)
            elapsed_s = self._clock() - game.issued_wall_s
            if elapsed_s < game.duration_s:
                raise GameError(f"game {game_id!r} lasts {game.duration_s:g} s and still runs for "
                                f"{game.duration_s - elapsed_s:.1f} s", status=409)
            del self._games[game_id]
            if elapsed_s > game.duration_s + SUBMIT_GRACE_S:
                raise GameError(f"game {game_id!r} expired: finish within {SUBMIT_GRACE_S:g} s of its end",
                                status=410)
            game.finished = True
            too_fast = sum(1 for interval_s in game.selection_times_s if interval_s < MIN_SELECTION_S)
            if too_fast:
                raise GameError(f"not a score: {too_fast} of {len(game.selection_times_s)} selections came within "
                                f"{MIN_SELECTION_S * 1000:g} ms of their target being shown, faster than a human "
                                "can see and select it", status=422)
            summary = game.task.summary(end_s=game.duration_s)
            time_to_target = summary.mean_time_to_target_s
            result = GameResult(game.game_id, user, game.participant_id, game.grid_side, game.duration_s,
                                summary.correct, summary.incorrect, float(summary.ntpm), float(summary.bps),
                                float(time_to_target) if math.isfinite(time_to_target) else None, self._clock())
            self._scores.append(result.to_dict())
            with atomic_output(self._path) as temporary:
                temporary.write_text(json.dumps(self._scores, indent=1))
        return result

    def scores(self) -> list[dict]:
        """Every stored score (callers filter by who may see them)."""
        with self._lock:
            return [dict(score) for score in self._scores]
