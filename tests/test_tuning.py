"""The shared tuning model gives the cosine-and-speed rates it documents."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import InvalidInputError
from neurolace.sim.tuning import TuningModel


def one_unit(**overrides):
    parameters = dict(baseline_hz=[10.0], depth_hz=[8.0], preferred_direction_rad=[np.pi / 2],
                      speed_gain_hz=[2.0], click_gain_hz=[5.0])
    parameters.update(overrides)
    return TuningModel(**parameters)


def test_rates_along_and_against_preferred_direction():
    model = one_unit()
    rates = model.rates_hz(np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(rates[:, 0], [10 + 2 + 8, 10 + 2 - 8, 10 + 2, 10])


def test_click_adds_its_gain_and_rates_never_go_negative():
    model = one_unit(baseline_hz=[1.0], click_gain_hz=[-5.0])
    rates = model.rates_hz(np.zeros((2, 2)), click=np.array([0.0, 1.0]))
    np.testing.assert_allclose(rates[:, 0], [1.0, 0.0])


def test_random_is_seeded_and_in_documented_ranges():
    a, b = TuningModel.random(500, seed=4), TuningModel.random(500, seed=4)
    np.testing.assert_array_equal(a.preferred_direction_rad, b.preferred_direction_rad)
    assert a.baseline_hz.min() >= 1.0 and a.baseline_hz.max() <= 60.0
    assert 7.0 < np.median(a.baseline_hz) < 9.5
    assert 9.0 < a.depth_hz.mean() < 11.0


def test_drift_grows_with_days():
    model = TuningModel.random(2000, seed=1)
    change = [np.std(np.angle(np.exp(1j * (model.drifted(days=d, seed=2).preferred_direction_rad
                                            - model.preferred_direction_rad)))) for d in (1, 4)]
    assert change[0] == pytest.approx(np.deg2rad(10), rel=0.1)
    assert change[1] == pytest.approx(np.deg2rad(20), rel=0.1)


def test_velocity_shape_checked():
    with pytest.raises(InvalidInputError, match=r"velocity must have shape \(n_times, 2\)"):
        one_unit().rates_hz(np.zeros((3, 3)))
