"""Foundation data model: recordings, spike events, binned features, geometry, checks, RNG."""

from neurolace.core.checks import (
    check_array,
    check_finite,
    check_in,
    check_int,
    check_nonnegative,
    check_positive,
)
from neurolace.core.errors import FormatError, InvalidInputError, NeurolaceError, NotFittedError
from neurolace.core.events import NO_UNIT, SpikeEvents
from neurolace.core.features import BinnedFeatures
from neurolace.core.geometry import ElectrodeGeometry
from neurolace.core.random import check_rng, spawn_rngs
from neurolace.core.recording import Recording

__all__ = [
    "BinnedFeatures",
    "ElectrodeGeometry",
    "FormatError",
    "InvalidInputError",
    "NO_UNIT",
    "NeurolaceError",
    "NotFittedError",
    "Recording",
    "SpikeEvents",
    "check_array",
    "check_finite",
    "check_in",
    "check_int",
    "check_nonnegative",
    "check_positive",
    "check_rng",
    "spawn_rngs",
]
