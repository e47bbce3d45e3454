"""Webgrid and center-out tasks driven by scripted cursors with known outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.tasks import CenterOutTask, WebgridTask, webgrid_bps


def test_webgrid_cells_tile_the_unit_square():
    task = WebgridTask(grid_side=3, seed=1)
    assert task.cell_center(0) == pytest.approx((1 / 6, 1 / 6))
    assert task.cell_center(5) == pytest.approx((5 / 6, 0.5))  # row 1, column 2
    assert task.cell_center(8) == pytest.approx((5 / 6, 5 / 6))


def test_webgrid_scripted_player_scores_known_ntpm_and_bps():
    """A player who teleports to each target and clicks every 0.5 s: 120 correct per minute."""
    task = WebgridTask(grid_side=30, seed=3)
    target = task.start(0.0, (0.5, 0.5))
    for step in range(1, 121):
        selection = task.update(step * 0.5 - 0.25, target.center_xy, click=False)
        assert selection is None
        selection = task.update(step * 0.5, target.center_xy, click=True)
        assert selection.correct
        task.update(step * 0.5 + 0.01, target.center_xy, click=False)  # release
        target = task.target
    block = task.summary(end_s=60.0)
    assert (block.correct, block.incorrect) == (120, 0)
    assert block.ntpm == pytest.approx(120.0)
    assert block.bps == pytest.approx(webgrid_bps(120, 30))
    assert block.success_rate == 1.0
    assert block.mean_time_to_target_s == pytest.approx(0.5, abs=0.011)
    assert block.mean_dial_in_time_s == pytest.approx(0.25, abs=0.011)
    assert block.grid_side == 30 and block.to_dict()["grid_side"] == 30


def test_webgrid_misclicks_count_against_and_keep_target():
    task = WebgridTask(grid_side=4, seed=0)
    target = task.start(0.0, (0.0, 0.0))
    away = (1.0 - target.center_xy[0], 1.0 - target.center_xy[1])
    for i in range(3):  # three separate clicks outside
        assert task.update(0.1 + i * 0.2, away, click=True).correct is False
        task.update(0.2 + i * 0.2, away, click=False)
    assert task.target is target  # still lit
    task.update(1.0, target.center_xy, click=True)
    block = task.summary(end_s=60.0)
    assert (block.correct, block.incorrect) == (1, 3)
    assert block.ntpm == 0.0 and block.bps == 0.0  # floored at 0
    assert block.success_rate == pytest.approx(0.25)


def test_webgrid_held_click_selects_once_and_never_relights_same_cell():
    task = WebgridTask(grid_side=2, seed=5)
    previous = task.start(0.0, (0.5, 0.5))
    seen = []
    for step in range(1, 41):
        selection = task.update(step * 0.02, task.target.center_xy, click=True)  # click held down
        seen.append(selection)
    assert sum(s is not None for s in seen) == 1
    for _ in range(30):  # alternate press/release on the lit cell
        task.update(1.0, task.target.center_xy, click=False)
        task.update(1.0, task.target.center_xy, click=True)
        assert task.target.index != previous.index
        previous = task.target


def test_webgrid_update_before_start_and_bad_cursor():
    task = WebgridTask(grid_side=30, seed=0)
    with pytest.raises(InvalidInputError, match=r"call start\(time_s, cursor_xy\) before update\(\)"):
        task.update(0.0, (0.5, 0.5), False)
    task.start(0.0, (0.5, 0.5))
    with pytest.raises(InvalidInputError, match=r"cursor_xy must have shape \(2,\), got \(3,\)"):
        task.update(0.1, (0.5, 0.5, 0.5), False)
    with pytest.raises(InvalidInputError, match="cursor_xy must be finite"):
        task.update(0.1, (np.nan, 0.5), False)
    with pytest.raises(InvalidInputError, match="grid_side must be >= 2, got 1"):
        WebgridTask(grid_side=1)


def test_center_out_straight_reaches_have_efficiency_one_and_known_throughput():
    task = CenterOutTask(n_targets=8, radius=0.35, target_width=0.1, seed=2)
    target = task.start(0.0, (0.5, 0.5))
    time_s = 0.0
    cursor = np.array([0.5, 0.5])
    directions = set()
    for trial in range(32):  # 16 outer reaches, each followed by a return to the centre
        end = np.asarray(target.center_xy)
        if target.index >= 0:
            directions.add(target.index)
            unit = (end - cursor) / np.linalg.norm(end - cursor)
            end = end + (0.02 if (trial // 2) % 2 == 0 else -0.02) * unit  # over- / undershoot
        start = cursor
        for fraction in np.linspace(0.1, 1.0, 10):  # straight line, 0.1 s per step
            time_s += 0.1
            cursor = start + fraction * (end - start)
            task.update(time_s, cursor, click=False)
        time_s += 0.1
        task.update(time_s, cursor, click=True)
        task.update(time_s, cursor, click=False)
        target = task.target
    block = task.summary()
    assert directions == set(range(8))
    assert block.success_rate == 1.0 and block.n_trials == 32
    assert block.mean_path_efficiency == pytest.approx(1.0)
    assert block.mean_time_to_target_s == pytest.approx(1.1)
    # out and back share one ISO condition (nominal distance = radius); the returns start at the
    # over- / undershoot (0.37 or 0.33 from the centre) and end on it (no deviation), so De is 0.35
    (condition,) = block.throughput.conditions
    assert condition.distance == pytest.approx(0.35) and condition.n_trials == 32 and condition.width == 0.1
    assert condition.effective_distance == pytest.approx(0.35)
    spread = math.sqrt(16 * 0.02**2 / 31)
    assert condition.throughput_bps == pytest.approx(math.log2(0.35 / (4.133 * spread) + 1) / 1.1)
    assert block.throughput.throughput_bps == pytest.approx(condition.throughput_bps)


def test_center_out_timeout_fails_trial_and_alternates_with_center():
    task = CenterOutTask(timeout_s=1.0, seed=0)
    first = task.start(0.0, (0.5, 0.5))
    assert first.index >= 0
    task.update(1.0, (0.5, 0.5), click=False)  # timed out
    assert task.target.index == -1  # back to centre
    block = task.summary()
    assert block.n_trials == 1 and block.success_rate == 0.0
    assert math.isnan(block.mean_time_to_target_s)
    with pytest.raises(InvalidInputError, match="radius \\+ target_width / 2 must be <= 0.5"):
        CenterOutTask(radius=0.48, target_width=0.1)
