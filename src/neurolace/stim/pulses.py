"""Biphasic pulse trains, stimulating electrodes, and the JSON pattern schema.

A :class:`PulseTrain` is what a stimulator is asked to do: the same biphasic,
charge-controlled pulse on a group of electrodes at a fixed rate for a while.
Each pulse is a cathodic phase, an interphase gap and an anodic phase (in the
other order when ``cathodic_first`` is false); the phases may be asymmetric
(200 µs cathodic at 100 µA, 100 µs gap, 400 µs anodic at 50 µA carries the same
20 nC each way). The train only *describes*; whether it is safe is the
envelope's question (:mod:`neurolace.stim.envelope`), so a monophasic or
imbalanced train is representable and refused there, with the rule named.

Units are in the names and stay canonical inside: µA, µs, Hz, s, nC, µm².
Charge per phase is ``amplitude_ua * width_us`` in pC, ``/ 1000`` in nC.

The pattern file of ``neurolace stim check`` (docs/stimulation.md) is one JSON
object: the electrode (``electrode_area_um2``, ``material``) and the train's
fields. :func:`pattern_from_dict` checks every field once, from one table of
rules (:data:`PATTERN_FIELDS`), and a :class:`~neurolace.stim.errors.PatternError`
names every missing, negative, unknown or malformed field together.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.stim.errors import PatternError
from neurolace.stim.materials import MATERIAL_NAMES, Material, check_material

__all__ = [
    "MAX_FIELD_VALUE",
    "MAX_PATTERN_BYTES",
    "PATTERN_FIELDS",
    "Electrode",
    "FieldRule",
    "PulseTrain",
    "StimPattern",
    "load_pattern",
    "pattern_from_dict",
]

#: Every numeric field must be at most this (in its own unit): a bound of the schema, far above any
#: limit, so arithmetic on a train (pulse counts, charges) stays finite; the envelope sets the real limits.
MAX_FIELD_VALUE = 1e9
#: The most pulses :meth:`PulseTrain.pulse_times_s` lists (10 million: 300 Hz for over 9 hours).
MAX_LISTED_PULSES = 10_000_000
#: A pattern file larger than this is not a pattern (it is read whole).
MAX_PATTERN_BYTES = 1 << 20
#: A train lists at most this many electrodes.
MAX_TRAIN_CHANNELS = 4096
_RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class FieldRule:
    """How one pattern field is checked: its kind, unit and meaning (declared once, used everywhere)."""

    kind: str  # "positive", "nonnegative", "channels", "bool", "material"
    unit: str
    description: str
    default: Any = None  # None: the field is required

    def expected(self) -> str:
        """What the field must hold, for messages and docs."""
        unit = f" ({self.unit})" if self.unit else ""
        return {
            "positive": f"a number > 0 and <= {MAX_FIELD_VALUE:g}{unit}",
            "nonnegative": f"a number >= 0 and <= {MAX_FIELD_VALUE:g}{unit}",
            "channels": f"a non-empty list of distinct electrode indices (integers >= 0, at most "
            f"{MAX_TRAIN_CHANNELS})",
            "bool": "true or false",
            "material": "one of " + ", ".join(f'"{name}"' for name in MATERIAL_NAMES),
        }[self.kind]


#: The pattern schema: every field, in the order the docs list them. Train fields come after the electrode's.
PATTERN_FIELDS: dict[str, FieldRule] = {
    "electrode_area_um2": FieldRule("positive", "µm²", "geometric area of each stimulating electrode"),
    "material": FieldRule("material", "", "electrode material, sets the charge-injection capacity"),
    "amplitude_ua": FieldRule("positive", "µA", "current of the cathodic phase"),
    "cathodic_width_us": FieldRule("positive", "µs", "duration of the cathodic phase"),
    "interphase_us": FieldRule("nonnegative", "µs", "gap between the two phases"),
    "anodic_width_us": FieldRule("nonnegative", "µs", "duration of the anodic (charge-recovery) phase"),
    "anodic_amplitude_ua": FieldRule("nonnegative", "µA", "current of the anodic phase"),
    "frequency_hz": FieldRule("positive", "Hz", "pulses per second"),
    "train_s": FieldRule("positive", "s", "length of the train"),
    "channels": FieldRule("channels", "", "electrodes stimulated together, each pulse on all of them"),
    "cathodic_first": FieldRule("bool", "", "cathodic phase first (the safe default)", default=True),
    "onset_s": FieldRule("nonnegative", "s", "start of the train after the command's time", default=0.0),
}
_ELECTRODE_FIELDS = ("electrode_area_um2", "material")
_TRAIN_FIELDS = tuple(name for name in PATTERN_FIELDS if name not in _ELECTRODE_FIELDS)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_field(name: str, value: Any) -> Any:
    """Return the field's value in canonical form, or raise :class:`PatternError` naming it."""
    rule = PATTERN_FIELDS[name]
    problem = f"must be {rule.expected()}, got {_describe(value)}"
    if rule.kind in ("positive", "nonnegative"):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise PatternError([(name, problem)])
        number = float(value)
        low_ok = number > 0 if rule.kind == "positive" else number >= 0
        if not (math.isfinite(number) and low_ok and number <= MAX_FIELD_VALUE):
            raise PatternError([(name, problem)])
        return number
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise PatternError([(name, problem)])
        return value
    if rule.kind == "material":
        if not isinstance(value, str) or value not in MATERIAL_NAMES:
            raise PatternError([(name, problem)])
        return value
    assert rule.kind == "channels", rule.kind
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
        raise PatternError([(name, problem)])
    channels = []
    for channel in list(value):
        if isinstance(channel, (bool, np.bool_)) or not isinstance(channel, numbers.Integral) or channel < 0:
            raise PatternError([(name, problem)])
        channels.append(int(channel))
    if not channels or len(channels) > MAX_TRAIN_CHANNELS or len(set(channels)) != len(channels):
        raise PatternError([(name, problem)])
    return tuple(channels)


@dataclass(frozen=True)
class Electrode:
    """One stimulating electrode: its geometric area and material.

    Parameters
    ----------
    area_um2 : float
        Geometric surface area in µm² (a Utah array's SIROF tip is about 2,000 µm²).
    material : str
        One of :data:`~neurolace.stim.materials.MATERIAL_NAMES`.
    """

    area_um2: float
    material: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "area_um2", _check_field("electrode_area_um2", self.area_um2))
        object.__setattr__(self, "material", _check_field("material", self.material))

    @property
    def area_cm2(self) -> float:
        """Geometric area in cm² (1 µm² = 1e-8 cm²)."""
        return self.area_um2 * 1e-8

    @property
    def material_info(self) -> Material:
        """The material's charge-injection capacity and its source."""
        return check_material(self.material)


@dataclass(frozen=True)
class PulseTrain:
    """A train of identical biphasic current pulses delivered together on ``channels``.

    Parameters
    ----------
    channels : tuple of int
        Electrode indices; every pulse is delivered on all of them at once.
    amplitude_ua : float
        Cathodic phase current in µA (> 0).
    cathodic_width_us, interphase_us, anodic_width_us : float
        Phase and gap durations in µs (cathodic > 0, the others >= 0).
    anodic_amplitude_ua : float
        Anodic phase current in µA (>= 0; 0 makes the pulse monophasic, which the envelope refuses).
    frequency_hz : float
        Pulse rate in Hz.
    train_s : float
        Length of the train in s: pulses start at ``onset_s + k / frequency_hz`` for every ``k >= 0``
        with ``k / frequency_hz < train_s``.
    cathodic_first : bool
        Cathodic phase first (default), as human ICMS delivers.
    onset_s : float
        Start of the first pulse, in s, relative to when the train is delivered (for scheduling trains
        against each other).
    """

    channels: tuple[int, ...]
    amplitude_ua: float
    cathodic_width_us: float
    interphase_us: float
    anodic_width_us: float
    anodic_amplitude_ua: float
    frequency_hz: float
    train_s: float
    cathodic_first: bool = True
    onset_s: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        for name in _TRAIN_FIELDS:
            try:
                object.__setattr__(self, name, _check_field(name, getattr(self, name)))
            except PatternError as error:
                problems.extend(error.problems)
        if problems:
            raise PatternError(problems)

    # --- derived quantities ---------------------------------------------------------------------
    @property
    def cathodic_charge_nc(self) -> float:
        """Charge of the cathodic phase in nC (µA x µs = pC)."""
        return self.amplitude_ua * self.cathodic_width_us / 1000.0

    @property
    def anodic_charge_nc(self) -> float:
        """Charge of the anodic phase in nC."""
        return self.anodic_amplitude_ua * self.anodic_width_us / 1000.0

    @property
    def charge_per_phase_nc(self) -> float:
        """The larger of the two phases' charges, in nC: what the charge and density limits apply to."""
        return max(self.cathodic_charge_nc, self.anodic_charge_nc)

    @property
    def imbalance_nc(self) -> float:
        """Net charge a pulse leaves on the electrode, ``|cathodic - anodic|`` in nC."""
        return abs(self.cathodic_charge_nc - self.anodic_charge_nc)

    @property
    def duration_us(self) -> float:
        """Duration of one pulse, both phases and the gap, in µs."""
        return self.cathodic_width_us + self.interphase_us + self.anodic_width_us

    @property
    def period_us(self) -> float:
        """Time from one pulse's start to the next's, in µs."""
        return 1e6 / self.frequency_hz

    @property
    def n_pulses(self) -> int:
        """Number of pulses in the train (at least one).

        ``train_s * frequency_hz`` rounded up, or the whole number it is within rounding error of
        (1 s at 100 Hz is 100 pulses, at 0 s ... 0.99 s).
        """
        exact = self.train_s * self.frequency_hz
        nearest = round(exact)
        if math.isclose(exact, nearest, rel_tol=_RELATIVE_TOLERANCE, abs_tol=_RELATIVE_TOLERANCE):
            return max(1, int(nearest))
        return max(1, math.ceil(exact))

    @property
    def end_s(self) -> float:
        """When the last pulse's last phase ends, in s, on the same clock as ``onset_s``."""
        return self.onset_s + (self.n_pulses - 1) / self.frequency_hz + self.duration_us * 1e-6

    @property
    def peak_current_ua(self) -> float:
        """The larger phase current of one electrode, in µA."""
        return max(self.amplitude_ua, self.anodic_amplitude_ua)

    def phases_us(self) -> tuple[tuple[float, float, float], ...]:
        """The two phases of one pulse as ``(start_us, stop_us, current_ua)`` from the pulse's start.

        ``current_ua`` is signed: cathodic negative, anodic positive. A phase of zero width or zero
        current is left out.
        """
        first_width, second_width = (
            (self.cathodic_width_us, self.anodic_width_us)
            if self.cathodic_first
            else (self.anodic_width_us, self.cathodic_width_us)
        )
        first_current, second_current = (
            (-self.amplitude_ua, self.anodic_amplitude_ua)
            if self.cathodic_first
            else (self.anodic_amplitude_ua, -self.amplitude_ua)
        )
        second_start = first_width + self.interphase_us
        phases = (
            (0.0, first_width, first_current),
            (second_start, second_start + second_width, second_current),
        )
        return tuple(phase for phase in phases if phase[1] > phase[0] and phase[2] != 0)

    def pulse_times_s(self) -> np.ndarray:
        """Start of every pulse in s, ``onset_s + arange(n_pulses) / frequency_hz``.

        Returns
        -------
        ndarray of float64, shape (n_pulses,)

        Raises
        ------
        InvalidInputError
            The train has more than :data:`MAX_LISTED_PULSES` pulses (the list would not fit in memory).
        """
        if self.n_pulses > MAX_LISTED_PULSES:
            raise PatternError(
                [("train_s", f"lists at most {MAX_LISTED_PULSES} pulses, this train has {self.n_pulses}")]
            )
        return self.onset_s + np.arange(self.n_pulses, dtype=np.float64) / self.frequency_hz

    def to_dict(self) -> dict[str, Any]:
        """The train's fields as the pattern schema spells them (``channels`` as a list)."""
        values = {name: getattr(self, name) for name in _TRAIN_FIELDS}
        values["channels"] = list(self.channels)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PulseTrain:
        """A train from the schema's train fields (no electrode fields); errors name every bad field."""
        return _parse(values, _TRAIN_FIELDS, lambda checked: cls(**checked))


@dataclass(frozen=True)
class StimPattern:
    """A pattern file's content: one pulse train and the electrode every one of its channels has.

    Attributes
    ----------
    train : PulseTrain
    electrode : Electrode
    """

    train: PulseTrain
    electrode: Electrode

    def electrodes(self) -> dict[int, Electrode]:
        """The electrode of each of the train's channels, for :class:`~neurolace.stim.envelope.SafetyEnvelope`."""
        return {channel: self.electrode for channel in self.train.channels}

    def to_dict(self) -> dict[str, Any]:
        """The pattern as one JSON-ready object in the schema's field order."""
        values = {"electrode_area_um2": self.electrode.area_um2, "material": self.electrode.material}
        values.update(self.train.to_dict())
        return {name: values[name] for name in PATTERN_FIELDS}


def _parse(values: Any, names: tuple[str, ...], build):
    if not isinstance(values, dict):
        raise PatternError([("<pattern>", f"must be a JSON object, got {type(values).__name__}")])
    problems = [
        (str(name), "unknown field; known fields are " + ", ".join(names))
        for name in values
        if name not in names
    ]
    checked = {}
    for name in names:
        rule = PATTERN_FIELDS[name]
        if name not in values:
            if rule.default is None:
                problems.append((name, f"missing; must be {rule.expected()}"))
            continue
        try:
            checked[name] = _check_field(name, values[name])
        except PatternError as error:
            problems.extend(error.problems)
    if problems:
        raise PatternError(problems)
    return build(checked)


def pattern_from_dict(values: dict[str, Any]) -> StimPattern:
    """Parse the pattern schema (docs/stimulation.md) into a :class:`StimPattern`.

    Parameters
    ----------
    values : dict
        One object with every required field of :data:`PATTERN_FIELDS` and no other.

    Raises
    ------
    PatternError
        Naming every missing, unknown, negative or malformed field (``error.fields``).
    """

    def build(checked: dict[str, Any]) -> StimPattern:
        electrode = Electrode(checked.pop("electrode_area_um2"), checked.pop("material"))
        return StimPattern(PulseTrain(**checked), electrode)

    return _parse(values, tuple(PATTERN_FIELDS), build)


def _no_constants(name: str):
    raise PatternError([("<pattern>", f"malformed JSON: {name} is not a number JSON allows")])


def _unique_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise PatternError([(key, "appears more than once in the object")])
        seen[key] = value
    return seen


def load_pattern(path: str | os.PathLike) -> StimPattern:
    """Read a pattern file (one JSON object, UTF-8) and parse it with :func:`pattern_from_dict`.

    Raises
    ------
    PatternError
        Malformed JSON (with line and column), duplicate keys, NaN/Infinity, or bad fields.
    FileNotFoundError, IsADirectoryError
        ``path`` is not a file.
    """
    from neurolace.io.paths import check_input_file

    path = check_input_file(path, "pattern file")
    with open(path, "rb") as handle:
        data = handle.read(MAX_PATTERN_BYTES + 1)
    if len(data) > MAX_PATTERN_BYTES:
        raise PatternError([("<pattern>", f"{path} is larger than {MAX_PATTERN_BYTES} bytes")])
    try:
        text = data.decode("utf-8")
        values = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as error:
        raise PatternError([("<pattern>", f"{path} is not UTF-8 text ({error.reason})")]) from None
    except json.JSONDecodeError as error:
        raise PatternError(
            [("<pattern>", f"malformed JSON in {path} at line {error.lineno} column {error.colno}: {error.msg}")]
        ) from None
    except RecursionError:
        raise PatternError([("<pattern>", f"malformed JSON in {path}: nested too deeply")]) from None
    return pattern_from_dict(values)
