"""Webgrid scoring on the published pairs, ISO throughput and path efficiency on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.tasks import iso_throughput, net_targets_per_minute, path_efficiency, webgrid_bps


@pytest.mark.parametrize(
    "ntpm,grid_side,published_bps",
    [
        (49, 30, 8.01),  # Neuralink's first participant
        (72, 30, 11.77),  # a journalist with a mouse
        (100, 35, 17.10),  # the public high score
    ],
)
def test_webgrid_bps_reproduces_published_pairs(ntpm, grid_side, published_bps):
    assert round(webgrid_bps(ntpm, grid_side=grid_side), 2) == published_bps


def test_webgrid_bps_default_grid_is_30():
    assert webgrid_bps(60) == pytest.approx(math.log2(899))


def test_webgrid_bps_zero_and_smallest_grid():
    assert webgrid_bps(0) == 0.0
    assert webgrid_bps(60, grid_side=2) == pytest.approx(math.log2(3))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ntpm": -1}, "ntpm must be a finite number >= 0, got -1.0"),
        ({"ntpm": float("nan")}, "ntpm must be a finite number >= 0"),
        ({"ntpm": "fast"}, "ntpm must be a number >= 0, got 'fast'"),
        ({"ntpm": 10, "grid_side": 1}, "grid_side must be >= 2, got 1"),
        ({"ntpm": 10, "grid_side": 30.5}, "grid_side must be an integer, got 30.5"),
    ],
)
def test_webgrid_bps_rejects_bad_input(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        webgrid_bps(**kwargs)


def test_net_targets_per_minute_floors_at_zero():
    assert net_targets_per_minute(30, 10, 60.0) == 20.0
    assert net_targets_per_minute(30, 10, 30.0) == 40.0
    assert net_targets_per_minute(3, 10, 60.0) == 0.0
    with pytest.raises(InvalidInputError, match="duration_s must be a positive finite number, got 0.0"):
        net_targets_per_minute(1, 0, 0.0)


def test_path_efficiency_straight_detour_and_still():
    straight = np.column_stack([np.linspace(0, 1, 7), np.linspace(0, 2, 7)])
    assert path_efficiency(straight) == pytest.approx(1.0)
    # an L-shaped detour: 1 right then 1 up, straight distance sqrt(2), travelled 2
    assert path_efficiency([[0, 0], [1, 0], [1, 1]]) == pytest.approx(math.sqrt(2) / 2)
    assert math.isnan(path_efficiency([[0.3, 0.3], [0.3, 0.3]]))
    with pytest.raises(InvalidInputError, match=r"path_xy must have shape \(n_points >= 2, 2\), got \(1, 2\)"):
        path_efficiency([[0, 0]])


def test_iso_throughput_hand_computed_single_condition():
    # four reaches of distance 1 along +x; endpoints over- and undershoot by 0.1
    start = np.zeros((4, 2))
    target = np.tile([1.0, 0.0], (4, 1))
    end = np.array([[1.1, 0.02], [0.9, -0.01], [1.1, 0.0], [0.9, 0.03]])
    result = iso_throughput(start, target, end, [0.4, 0.6, 0.5, 0.5], 0.1)
    spread = math.sqrt(4 * 0.1**2 / 3)  # sample sd of (+.1, -.1, +.1, -.1)
    effective_width = 4.133 * spread
    expected = math.log2(1.0 / effective_width + 1.0) / 0.5
    assert len(result.conditions) == 1
    condition = result.conditions[0]
    assert condition.distance == 1.0 and condition.width == 0.1 and condition.n_trials == 4
    assert condition.effective_width == pytest.approx(effective_width)
    assert condition.effective_distance == pytest.approx(1.0)
    assert result.throughput_bps == pytest.approx(expected)
    assert result.throughput_bps == pytest.approx(3.2602, abs=1e-3)


def test_iso_throughput_grid_of_conditions_is_mean_of_cells():
    start = np.zeros((4, 2))
    target = np.array([[1.0, 0], [1.0, 0], [0, 2.0], [0, 2.0]])
    end = np.array([[1.05, 0], [0.95, 0], [0, 2.2], [0, 1.8]])
    result = iso_throughput(start, target, end, [1.0, 1.0, 2.0, 2.0], 0.1)
    assert [(c.distance, c.n_trials) for c in result.conditions] == [(1.0, 2), (2.0, 2)]
    tp1 = math.log2(1.0 / (4.133 * math.sqrt(2 * 0.05**2)) + 1) / 1.0
    tp2 = math.log2(2.0 / (4.133 * math.sqrt(2 * 0.2**2)) + 1) / 2.0
    assert result.throughput_bps == pytest.approx((tp1 + tp2) / 2)
    binned = iso_throughput(start, target, end, [1.0, 1.0, 2.0, 2.0], 0.1, distance_edges=[0, 3])
    assert [c.n_trials for c in binned.conditions] == [4]


def test_iso_throughput_rejects_bad_input_and_handles_too_few_trials():
    one = iso_throughput([[0, 0]], [[1, 0]], [[1, 0]], [1.0], 0.1)
    assert math.isnan(one.throughput_bps) and one.conditions == []
    with pytest.raises(InvalidInputError, match="movement_time_s must be > 0"):
        iso_throughput([[0, 0], [0, 0]], [[1, 0], [1, 0]], [[1, 0], [1, 0]], [0.0, 1.0], 0.1)
    with pytest.raises(InvalidInputError, match=r"target_xy must have shape \(2, 2\), got \(1, 2\)"):
        iso_throughput([[0, 0], [0, 0]], [[1, 0]], [[1, 0], [1, 0]], [1.0, 1.0], 0.1)
    with pytest.raises(InvalidInputError, match="distance 0 found"):
        iso_throughput([[0, 0], [0, 0]], [[0, 0], [1, 0]], [[1, 0], [1, 0]], [1.0, 1.0], 0.1)
