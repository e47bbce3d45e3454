"""Seeded simulators: the N1-like implant and the closed-loop participant.

- :func:`simulate_implant`: raw 10-bit recordings of tuned units around threads
  of electrodes, with full ground truth (:mod:`neurolace.sim.implant`).
- :class:`ImplantStream`: the same implant streamed, for closed loops: push
  intended movement millisecond by millisecond, read final samples.
- :func:`simulate_spike_trains`: the same spiking model without voltages, for
  callers that only need spike times or counts.
- :class:`TuningModel`: how units encode intended velocity and click.
- :class:`ImplantFeatureSource`: the closed loop through the implant: a participant's
  intention in, one bin of on-implant features (crossings, spike-band power) out
  (:mod:`neurolace.sim.neural_source`).
"""

from neurolace.sim.implant import (
    GroundTruth,
    ImplantParameters,
    ImplantStream,
    SimulatedImplant,
    implant_geometry,
    simulate_implant,
)
from neurolace.sim.neural_source import ImplantFeatureSource
from neurolace.sim.spiking import N1_FS_HZ, IntendedMovement, SimulatedSpikeTrains, simulate_spike_trains
from neurolace.sim.trajectory import ReachingTrajectory, random_reaching_trajectory
from neurolace.sim.tuning import TuningModel

__all__ = [
    "N1_FS_HZ",
    "GroundTruth",
    "ImplantFeatureSource",
    "ImplantParameters",
    "ImplantStream",
    "IntendedMovement",
    "ReachingTrajectory",
    "SimulatedImplant",
    "SimulatedSpikeTrains",
    "TuningModel",
    "implant_geometry",
    "random_reaching_trajectory",
    "simulate_implant",
    "simulate_spike_trains",
]
