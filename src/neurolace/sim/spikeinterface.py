"""The simulated implant as a ground-truth generator for SpikeInterface's sorter comparison.

:func:`simulate_for_spikeinterface` runs :func:`~neurolace.sim.simulate_implant` and returns its
recording as a SpikeInterface recording (:func:`neurolace.io.spikeinterface.to_spikeinterface`)
beside the ground-truth spikes as a SpikeInterface sorting, every simulated unit a unit (silent ones
included) with its peak channel, trough depth, SNR and soma position as unit properties, so
``spikeinterface.comparison.compare_sorter_to_ground_truth(gt_sorting, tested_sorting)`` scores any
sorter (or neurolace's threshold detector, through
:func:`~neurolace.io.spikeinterface.events_to_sorting`) on it.

Ground-truth frames are the sample of each spike's trough on its peak channel (as in
:class:`~neurolace.sim.implant.GroundTruth`). spikeinterface is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.io.spikeinterface import events_to_sorting, to_spikeinterface
from neurolace.sim.implant import GroundTruth, SimulatedImplant, simulate_implant

__all__ = ["ground_truth_sorting", "simulate_for_spikeinterface"]


def ground_truth_sorting(ground_truth: GroundTruth):
    """The simulator's spikes as a SpikeInterface sorting, one unit per simulated unit.

    Parameters
    ----------
    ground_truth : GroundTruth

    Returns
    -------
    spikeinterface.core.NumpySorting
        Unit ids ``0 .. n_units - 1``; unit properties ``peak_channel``, ``peak_amplitude_uv``,
        ``snr`` and ``position_um`` (shape (n_units, 3), x, y, z = -depth).
    """
    sorting = events_to_sorting(ground_truth.units, by="unit", unit_ids=np.arange(ground_truth.n_units))
    sorting.set_property("peak_channel", np.asarray(ground_truth.peak_channel, dtype=np.int64))
    sorting.set_property("peak_amplitude_uv", np.asarray(ground_truth.peak_amplitude_uv, dtype=np.float64))
    sorting.set_property("snr", np.asarray(ground_truth.snr, dtype=np.float64))
    sorting.set_property("position_um", np.asarray(ground_truth.unit_positions_um, dtype=np.float64))
    return sorting


def simulate_for_spikeinterface(*, probe_ndim: int = 2, **options: Any):
    """Simulate an implant recording and return it with its ground truth, both for SpikeInterface.

    Parameters
    ----------
    probe_ndim : {2, 3}, default 2
        Probe of the recording (see :func:`~neurolace.io.spikeinterface.to_spikeinterface`).
    **options
        Every :func:`~neurolace.sim.simulate_implant` parameter (``duration_s`` is required;
        ``n_electrodes``, ``seed``, ``parameters``, ...).

    Returns
    -------
    recording : spikeinterface.core.NumpyRecording
        int16 codes with ``gain_to_uV``/``offset_to_uV`` and the implant's probe.
    sorting : spikeinterface.core.NumpySorting
        The ground truth (:func:`ground_truth_sorting`).

    Examples
    --------
    >>> from spikeinterface.comparison import compare_sorter_to_ground_truth
    >>> recording, truth = simulate_for_spikeinterface(duration_s=2.0, n_electrodes=16, seed=3)
    >>> compare_sorter_to_ground_truth(truth, truth).get_performance()["accuracy"].min()
    1.0
    """
    simulated: SimulatedImplant = simulate_implant(**options)
    return to_spikeinterface(simulated.recording, probe_ndim=probe_ndim), ground_truth_sorting(
        simulated.ground_truth
    )
