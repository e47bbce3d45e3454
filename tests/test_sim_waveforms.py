"""Extracellular waveform family and the distance law."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import InvalidInputError
from neurolace.sim.waveforms import amplitude_at_distance_uv, random_waveform_shapes, taps_before

FS_HZ = 19531.25


def test_waveforms_have_a_unit_trough_at_the_spike_sample_and_the_drawn_trough_to_peak_time():
    shapes = random_waveform_shapes(300, seed=0)
    waveforms = shapes.sample(FS_HZ)[:, 0, :]
    n_before = taps_before(FS_HZ)
    np.testing.assert_allclose(waveforms[:, n_before], -1.0, rtol=1e-6)
    assert np.all(waveforms.argmin(axis=1) == n_before)
    # the repolarisation peak comes trough_to_peak_ms later, to within a sample and the bump overlap
    measured_ms = (waveforms.argmax(axis=1) - n_before) * 1e3 / FS_HZ
    assert np.all(np.abs(measured_ms - shapes.trough_to_peak_ms) < 0.12)
    assert 0.1 < waveforms.max(axis=1).min() and waveforms.max(axis=1).max() < 0.6
    # tapered: starts and ends at 0; lasts 2 ms
    np.testing.assert_allclose(waveforms[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(waveforms[:, -1], 0.0, atol=1e-6)
    assert abs(waveforms.shape[1] / FS_HZ * 1e3 - 2.0) < 0.15


def test_two_classes_of_trough_to_peak_time():
    shapes = random_waveform_shapes(2000, seed=1)
    assert abs(shapes.narrow.mean() - 0.3) < 0.04
    assert shapes.trough_to_peak_ms[shapes.narrow].max() <= 0.40
    assert shapes.trough_to_peak_ms[~shapes.narrow].min() >= 0.45


def test_sub_sample_phases_shift_the_trough():
    shapes = random_waveform_shapes(5, seed=2)
    waveforms = shapes.sample(FS_HZ, n_phases=4)
    n_before = taps_before(FS_HZ)
    np.testing.assert_array_equal(waveforms[:, 0], shapes.sample(FS_HZ)[:, 0])
    # a trough half a sample late falls between two samples, both shallower than the true trough
    late = waveforms[:, 2]
    assert set(late.argmin(axis=1)) <= {n_before, n_before + 1}
    assert np.all((late[:, n_before : n_before + 2] > -1.0) & (late[:, n_before : n_before + 2] < -0.85))
    # three quarters of a sample late: the next sample is the deeper one
    assert np.all(waveforms[:, 3].argmin(axis=1) == n_before + 1)


def test_amplitude_law_is_flat_near_the_soma_halves_at_the_half_distance_and_falls_as_inverse_square():
    amplitude = amplitude_at_distance_uv(np.array([0.0, 35.0, 350.0, 700.0]), 200.0)
    assert amplitude[0] == 200.0
    assert amplitude[1] == pytest.approx(100.0)
    assert amplitude[2] / amplitude[3] == pytest.approx(4.0, rel=0.01)
    with pytest.raises(InvalidInputError, match="distance_um must be >= 0"):
        amplitude_at_distance_uv(np.array([-1.0]), 100.0)
    with pytest.raises(InvalidInputError, match="half_distance_um must be a positive"):
        amplitude_at_distance_uv(np.array([1.0]), 100.0, half_distance_um=0.0)


def test_zero_units_and_bad_counts():
    assert random_waveform_shapes(0, seed=0).sample(FS_HZ).shape[0] == 0
    with pytest.raises(InvalidInputError, match="n_units must be >= 0"):
        random_waveform_shapes(-1)
    with pytest.raises(InvalidInputError, match="n_phases must be >= 1"):
        random_waveform_shapes(2).sample(FS_HZ, n_phases=0)
