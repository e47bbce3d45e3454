"""Browser Webgrid games: the issued sequence, the server-side replay and the checks on click logs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from neurolace.tasks import WebgridTask, webgrid_bps
from neurolace.web.games import GameBook, GameError, check_click_log, replay_clicks, target_sequence


class FakeClock:
    def __init__(self, now_s: float = 1_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def _center(cell: int, side: int) -> tuple[float, float]:
    row, column = divmod(cell, side)
    return ((column + 0.5) / side, (row + 0.5) / side)


def test_sequence_is_what_the_seeded_task_lights():
    cells = target_sequence(30, seed=5, n_targets=50)
    task = WebgridTask(grid_side=30, seed=5)
    task.start(0.0, (0.5, 0.5))
    for step, cell in enumerate(cells):
        assert task.target.index == cell
        task.update(step + 1.0, task.target.center_xy, True)
        task.update(step + 1.0, task.target.center_xy, False)
    assert all(a != b for a, b in itertools.pairwise(cells))  # a cell is never relit straight away
    assert len(set(cells)) > 40


def test_replay_scores_correct_and_wrong_clicks_like_webgrid_bps():
    side, seed, duration_s = 30, 11, 30.0
    cells = target_sequence(side, seed, 20)
    clicks = []
    for index, cell in enumerate(cells):
        time_s = 1.0 + index * 1.2
        clicks.append((time_s, *_center(cell, side)))
        if index < 5:  # a miss one cell to the right (or left at the edge) of the lit one
            x, y = _center(cell, side)
            clicks.append((time_s + 0.1, x + (1 if x < 0.5 else -1) / side, y))
    summary = replay_clicks(side, seed, duration_s, clicks)
    assert (summary.correct, summary.incorrect) == (20, 5)
    assert summary.ntpm == pytest.approx(30.0)  # (20 - 5) per half minute
    assert summary.bps == pytest.approx(webgrid_bps(30.0, 30)) == pytest.approx(0.5 * math.log2(899))


def test_click_log_checks_name_the_bad_click():
    assert check_click_log([], 30.0) == []
    assert check_click_log([[0, 0, 1], [30, 1, 0]], 30.0) == [(0.0, 0.0, 1.0), (30.0, 1.0, 0.0)]
    cases = [
        ("nope", r"clicks must be a list of \[time_s, x, y\], got str"),
        ([[1, 0.5]], r"clicks\[0\] must be \[time_s, x, y\] numbers"),
        ([[1, 0.5, True]], r"clicks\[0\] must be \[time_s, x, y\] numbers"),
        ([[1, 0.5, "0.5"]], r"clicks\[0\] must be \[time_s, x, y\] numbers"),
        ([[1, 0.5, float("nan")]], r"clicks\[0\] has a non-finite value"),
        ([[31, 0.5, 0.5]], r"clicks\[0\] time 31 s is outside the game \[0, 30\] s"),
        ([[2, 0.5, 0.5], [1, 0.5, 0.5]], r"clicks\[1\] time 1 s goes back before 2 s"),
        ([[1, 1.5, 0.5]], r"clicks\[0\] position \(1.5, 0.5\) is outside the unit square"),
        ([[0.01, 0.5, 0.5]] * 601, r"601 clicks in a 30 s game exceed the limit of 600"),
    ]
    for clicks, message in cases:
        with pytest.raises(GameError, match=message):
            check_click_log(clicks, 30.0)


def test_book_issues_verifies_and_stores(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("ana", None, grid_side=35, duration_s=10.0)
    public = game.public()
    assert "seed" not in public and public["grid_side"] == 35 and len(public["targets"]) == 80
    clicks = [[0.5 + i, *_center(cell, 35)] for i, cell in enumerate(public["targets"][:8])]
    clock.now_s += 10.2
    result = book.verify(game.game_id, "ana", clicks)
    assert (result.correct, result.incorrect, result.grid_side) == (8, 0, 35)
    assert result.bps == pytest.approx(webgrid_bps(48.0, 35))
    assert result.mean_time_to_target_s == pytest.approx(np.mean([0.5] + [1.0] * 7))
    stored = GameBook(tmp_path).scores()
    assert [(s["user"], s["correct"]) for s in stored] == [("ana", 8)]


def test_book_refuses_early_repeated_foreign_and_stale_games(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("ana", "sim-001", duration_s=30.0)
    clock.now_s += 5.0
    with pytest.raises(GameError, match="lasts 30 s but came back after 5.0 s") as early:
        book.verify(game.game_id, "ana", [])
    assert early.value.status == 409
    clock.now_s += 26.0
    with pytest.raises(GameError, match="unknown game id") as foreign:
        book.verify(game.game_id, "bo", [])  # someone else's game looks like no game
    assert foreign.value.status == 404
    with pytest.raises(GameError, match=r"clicks\[0\] position"):
        book.verify(game.game_id, "ana", [[1.0, 2.0, 0.0]])
    book.verify(game.game_id, "ana", [])  # a rejected log does not burn the game
    with pytest.raises(GameError, match="unknown game id"):
        book.verify(game.game_id, "ana", [])
    late = book.issue("ana", None, duration_s=5.0)
    clock.now_s += 5.0 + 601.0
    with pytest.raises(GameError, match="expired: submit within 600 s") as stale:
        book.verify(late.game_id, "ana", [])
    assert stale.value.status == 410


def test_book_checks_game_settings(tmp_path):
    book = GameBook(tmp_path)
    with pytest.raises(GameError, match=r"grid_side must be one of \(30, 35\), got 8"):
        book.issue("ana", None, grid_side=8)
    with pytest.raises(GameError, match="duration_s must be between 5 and 300 seconds, got 1000"):
        book.issue("ana", None, duration_s=1000)
