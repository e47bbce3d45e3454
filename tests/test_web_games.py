"""Browser Webgrid games played against the server: one target at a time, server-side times, no forged scores."""

from __future__ import annotations

import math

import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.tasks import webgrid_bps
from neurolace.web.games import MIN_SELECTION_S, GameBook, GameError, check_position


class FakeClock:
    def __init__(self, now_s: float = 1_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def _center(cell: int, side: int) -> tuple[float, float]:
    row, column = divmod(cell, side)
    return ((column + 0.5) / side, (row + 0.5) / side)


def _miss(cell: int, side: int) -> tuple[float, float]:
    x, y = _center(cell, side)
    return (x + (1 if x < 0.5 else -1) / side, y)


def test_the_game_shows_one_target_and_reveals_the_next_only_after_a_correct_click(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("ana", None, grid_side=35, duration_s=10.0)
    public = game.public()
    assert set(public) == {"game_id", "grid_side", "duration_s", "target", "max_clicks_per_s", "min_selection_s"}
    first = public["target"]
    clock.now_s += 0.5
    wrong = book.click(game.game_id, "ana", *_miss(first, 35))
    assert (wrong["correct"], wrong["target"], wrong["incorrect_total"]) == (False, first, 1)
    clock.now_s += 0.5
    right = book.click(game.game_id, "ana", *_center(first, 35))
    assert right["correct"] and right["target"] != first and right["t_s"] == pytest.approx(1.0)


def test_score_comes_from_server_times_and_matches_webgrid_bps(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("ana", "sim-001", grid_side=30, duration_s=30.0)
    target = game.public()["target"]
    for index in range(20):
        clock.now_s += 0.6
        if index < 5:
            book.click(game.game_id, "ana", *_miss(target, 30))
            clock.now_s += 0.6
        target = book.click(game.game_id, "ana", *_center(target, 30))["target"]
    clock.now_s = game.issued_wall_s + 30.0
    result = book.finish(game.game_id, "ana")
    assert (result.correct, result.incorrect) == (20, 5)
    assert result.ntpm == pytest.approx(30.0)  # (20 - 5) per half minute
    assert result.bps == pytest.approx(webgrid_bps(30.0, 30)) == pytest.approx(0.5 * math.log2(899))
    stored = GameBook(tmp_path).scores()
    assert [(s["user"], s["participant_id"], s["correct"]) for s in stored] == [("ana", "sim-001", 20)]


def test_scripted_clicks_faster_than_a_human_are_not_a_score(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("bot", None, duration_s=5.0)
    target = game.public()["target"]
    for _ in range(19):  # 19 selections in 1 s, each 50 ms after its target appeared: 78 BPS if it counted
        clock.now_s += 0.05
        target = book.click(game.game_id, "bot", *_center(target, 30))["target"]
    clock.now_s = game.issued_wall_s + 5.0
    with pytest.raises(GameError, match=r"not a score: 19 of 19 selections came within 100 ms") as refused:
        book.finish(game.game_id, "bot")
    assert refused.value.status == 422
    assert book.scores() == []
    with pytest.raises(GameError, match="unknown game id"):
        book.finish(game.game_id, "bot")


def test_a_selection_just_above_the_floor_counts(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("ana", None, duration_s=5.0)
    target = game.public()["target"]
    for _ in range(3):
        clock.now_s += MIN_SELECTION_S * 1.5
        target = book.click(game.game_id, "ana", *_center(target, 30))["target"]
    clock.now_s = game.issued_wall_s + 5.0
    assert book.finish(game.game_id, "ana").correct == 3


def test_clicks_after_the_end_early_finish_and_click_floods_are_refused(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("ana", None, duration_s=5.0)
    clock.now_s += 1.0
    with pytest.raises(GameError, match="lasts 5 s and still runs for 4.0 s") as early:
        book.finish(game.game_id, "ana")
    assert early.value.status == 409
    for _ in range(20):
        book.click(game.game_id, "ana", 0.0, 0.0)
    with pytest.raises(GameError, match="more than 20 clicks in a second") as flood:
        book.click(game.game_id, "ana", 0.0, 0.0)
    assert flood.value.status == 429
    clock.now_s += 1.0
    book.click(game.game_id, "ana", 0.0, 0.0)  # the next second is open again
    clock.now_s = game.issued_wall_s + 5.01
    with pytest.raises(GameError, match="ended at 5 s") as late:
        book.click(game.game_id, "ana", 0.0, 0.0)
    assert late.value.status == 409
    result = book.finish(game.game_id, "ana")
    assert result.incorrect == 21 or result.correct + result.incorrect == 21


def test_foreign_repeated_and_stale_games(tmp_path):
    clock = FakeClock()
    book = GameBook(tmp_path, clock=clock)
    game = book.issue("ana", "sim-001", duration_s=5.0)
    with pytest.raises(GameError, match="unknown game id") as foreign:
        book.click(game.game_id, "bo", 0.5, 0.5)  # someone else's game looks like no game
    assert foreign.value.status == 404
    with pytest.raises(GameError, match="unknown game id"):
        book.finish(game.game_id, "bo")
    clock.now_s += 5.0
    book.finish(game.game_id, "ana")
    with pytest.raises(GameError, match="unknown game id"):
        book.finish(game.game_id, "ana")
    late = book.issue("ana", None, duration_s=5.0)
    clock.now_s += 5.0 + 601.0
    with pytest.raises(GameError, match="expired: finish within 600 s") as stale:
        book.finish(late.game_id, "ana")
    assert stale.value.status == 410


@pytest.mark.parametrize("x,y,message", [
    ("0.5", 0.5, "x must be a number in \\[0, 1\\], got str"),
    (True, 0.5, "got bool"),
    (0.5, float("nan"), "got nan"),
    (0.5, float("inf"), "got inf"),
    (1.5, 0.5, "got 1.5"),
    (10**400, 0.5, "an integer of 401 digits"),
    (None, 0.5, "got NoneType"),
])
def test_click_positions_are_checked(x, y, message):
    with pytest.raises(GameError, match=message):
        check_position(x, y)


def test_book_checks_game_settings_and_a_corrupt_score_file(tmp_path):
    book = GameBook(tmp_path)
    with pytest.raises(GameError, match=r"grid_side must be one of \(30, 35\), got 8"):
        book.issue("ana", None, grid_side=8)
    with pytest.raises(GameError, match="duration_s must be between 5 and 300 seconds, got 1000"):
        book.issue("ana", None, duration_s=1000)
    with pytest.raises(GameError, match="duration_s must be between 5 and 300 seconds, got nan"):
        book.issue("ana", None, duration_s=float("nan"))
    (tmp_path / "scores.json").write_text("{broken")
    with pytest.raises(InvalidInputError, match=r"scores.json is not valid JSON .*move it away"):
        GameBook(tmp_path)
    (tmp_path / "scores.json").write_text('{"a": 1}')
    with pytest.raises(InvalidInputError, match="must hold a JSON list of score objects"):
        GameBook(tmp_path)
