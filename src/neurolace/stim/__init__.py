"""Intracortical microstimulation: pulse trains, the safety envelope, the implant-side interlock.

One capability: describing stimulation (:mod:`~neurolace.stim.pulses`), judging it
against published safety limits (:mod:`~neurolace.stim.envelope`) and letting only
signed, fresh, in-envelope commands reach a stimulator (:mod:`~neurolace.stim.interlock`).
See docs/stimulation.md.
"""

from neurolace.stim.commands import StimCommand, sign_command, verify_command
from neurolace.stim.envelope import (
    CERESTIM_R96,
    RULES,
    SHANNON_K_CEILING,
    ElectrodeState,
    EnvelopeLimits,
    EnvelopeResult,
    HardwareRange,
    SafetyEnvelope,
    Violation,
    shannon_k,
)
from neurolace.stim.errors import CommandError, DriverError, PatternError
from neurolace.stim.interlock import DeliveredTrain, SimulatedStimDriver, StimInterlock, StimOutcome
from neurolace.stim.materials import MATERIAL_NAMES, MATERIALS, Material
from neurolace.stim.pulses import (
    PATTERN_FIELDS,
    Electrode,
    PulseTrain,
    StimPattern,
    load_pattern,
    pattern_from_dict,
)

__all__ = [
    "CERESTIM_R96",
    "RULES",
    "SHANNON_K_CEILING",
    "ElectrodeState",
    "EnvelopeLimits",
    "EnvelopeResult",
    "HardwareRange",
    "SafetyEnvelope",
    "Violation",
    "shannon_k",
    "MATERIALS",
    "MATERIAL_NAMES",
    "PATTERN_FIELDS",
    "CommandError",
    "DeliveredTrain",
    "DriverError",
    "Electrode",
    "Material",
    "PatternError",
    "PulseTrain",
    "SimulatedStimDriver",
    "StimCommand",
    "StimInterlock",
    "StimOutcome",
    "StimPattern",
    "load_pattern",
    "pattern_from_dict",
    "sign_command",
    "verify_command",
]
