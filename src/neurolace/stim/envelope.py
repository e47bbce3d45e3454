"""The stimulation safety envelope: every limit a pulse train must meet before a stimulator runs it.

:class:`SafetyEnvelope` judges one :class:`~neurolace.stim.pulses.PulseTrain` against
:class:`EnvelopeLimits` and the electrodes' live :class:`ElectrodeState` (locks, measured
impedance and voltage excursion, the trains already scheduled) and answers an
:class:`EnvelopeResult`: safe or not, the computed charge, charge density and Shannon k, and
*every* rule violated (not just the first). Unsafe input is an answer, not an exception.

The quantities (Cogan 2008; Shannon 1992; Merrill et al. 2005)::

    Q  = I * PW                      charge per phase (µA x µs = pC; / 1000 -> nC)
    D  = Q / A                       charge density per phase (µC/cm²; A geometric area)
    k  = log10(D) + log10(Q)         Shannon's criterion with D in µC/cm² and Q in µC

100 µA x 200 µs = 20 nC per phase; on 2,000 µm² (2e-5 cm²) that is 1,000 µC/cm², and
k = log10(1000) + log10(0.02) = 1.30. Shannon (1992) fitted k = 1.85 to the boundary of
tissue damage in McCreery et al.'s (1990) cat cortex data; the envelope never allows more
(:data:`SHANNON_K_CEILING`) and uses 1.5 by default.

Every default below carries its source in a comment and in docs/stimulation.md. The defaults
accept the regime human ICMS delivered safely for years (charge-balanced trains up to 100 µA
with 200 µs cathodic phases on SIROF electrodes of about 2,000 µm² at 20-300 Hz; Flesher et al.
2016; Hughes et al. 2021; Greenspon et al. 2025) and refuse what the literature shows harmful.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from neurolace.core.checks import check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.stim.materials import MATERIAL_NAMES, check_material
from neurolace.stim.pulses import Electrode, PulseTrain

__all__ = [
    "CERESTIM_R96",
    "DEFAULT_ARRAY_CHANNELS",
    "DEFAULT_ELECTRODE",
    "RULES",
    "SHANNON_K_CEILING",
    "ElectrodeState",
    "EnvelopeLimits",
    "EnvelopeResult",
    "HardwareRange",
    "SafetyEnvelope",
    "Violation",
    "shannon_k",
]

#: Shannon (1992, IEEE Trans Biomed Eng 39:424) fitted k = 1.85 to the damage boundary of McCreery
#: et al. (1990, IEEE Trans Biomed Eng 37:996); no configuration may allow more.
SHANNON_K_CEILING = 1.85
#: A Utah array's SIROF tip (about 2,000 µm² geometric area) as in the human ICMS studies.
DEFAULT_ELECTRODE = Electrode(area_um2=2000.0, material="SIROF")
#: The default array: one implant's 1,024 electrodes (64 threads x 16), each a :data:`DEFAULT_ELECTRODE`.
DEFAULT_ARRAY_CHANNELS = 1024
#: Relative slack of every "at most" comparison, so 20 nC passes a 20 nC limit despite rounding.
_TOLERANCE = 1e-9
#: The most phase edges the simultaneous-current sweep examines; beyond it the envelope assumes the
#: worst (every overlapping train's peak current at once), which is safe and refuses more.
MAX_SWEEP_EDGES = 2_000_000

#: Every rule the envelope checks, with what it guards (the ``rule`` of each :class:`Violation`).
RULES = MappingProxyType({
    "unknown_electrode": "every channel must name an electrode the envelope knows",
    "electrode_locked": "no stimulation on an electrode locked out (by a clinician or a measurement)",
    "impedance_window": "the electrode's last measured impedance must lie in the safe window",
    "voltage_excursion": "the electrode's last measured voltage excursion must lie in the water window",
    "channel_busy": "an electrode runs one train at a time",
    "charge_balance": "cathodic and anodic charge must balance within the DAC's tolerance",
    "charge_per_phase": "charge per phase at most the limit",
    "charge_density": "charge density at most the material's charge-injection capacity x safety factor",
    "shannon_k": "log10(D) + log10(Q) at most k",
    "amplitude": "each phase's current at most the limit",
    "frequency": "pulse rate at most the limit",
    "pulse_overlap": "a pulse (both phases and the gap) must end before the next starts",
    "train_length": "train length at most the limit",
    "duty_cycle": "time stimulating on an electrode in the rolling window at most the limit",
    "total_current": "current summed over electrodes at any instant at most the limit (interleaving counts)",
    "hardware_amplitude": "phase currents inside the stimulator's range",
    "hardware_interphase": "interphase gap at least the stimulator's minimum",
    "hardware_frequency": "pulse rate inside the stimulator's range",
    "hardware_phase_width": "phase widths at most the stimulator's maximum",
})


def _beyond(rule: str, value: float, limit: float, unit: str, message: str, channel: int | None = None,
            *, below: bool = False) -> list[Violation]:
    """``[Violation]`` when ``value`` is above ``limit`` (below it if ``below``) beyond rounding, else ``[]``."""
    outside = value < limit * (1 - _TOLERANCE) if below else value > limit * (1 + _TOLERANCE)
    return [Violation(rule, limit, value, unit, message, channel)] if outside else []


def shannon_k(charge_density_uc_per_cm2: float, charge_per_phase_nc: float) -> float:
    """Shannon's k = log10(D) + log10(Q), D in µC/cm² and Q in µC (Shannon 1992).

    Returns ``-inf`` when either is zero (no charge: nothing to limit).
    """
    if charge_density_uc_per_cm2 <= 0 or charge_per_phase_nc <= 0:
        return -math.inf
    return math.log10(charge_density_uc_per_cm2) + math.log10(charge_per_phase_nc / 1000.0)


@dataclass(frozen=True)
class HardwareRange:
    """A stimulator's own ranges: the outer bound no limit may exceed.

    Parameters
    ----------
    name : str
    max_amplitude_ua : float
        Largest phase current in µA.
    min_interphase_us : float
        Shortest interphase gap in µs.
    min_frequency_hz, max_frequency_hz : float
        Pulse-rate range in Hz.
    max_phase_width_us : float
        Longest phase (or gap) in µs.
    """

    name: str
    max_amplitude_ua: float
    min_interphase_us: float
    min_frequency_hz: float
    max_frequency_hz: float
    max_phase_width_us: float

    def __post_init__(self) -> None:
        for name in ("max_amplitude_ua", "min_frequency_hz", "max_frequency_hz", "max_phase_width_us"):
            check_positive(getattr(self, name), name)
        check_nonnegative(self.min_interphase_us, "min_interphase_us")
        if self.min_frequency_hz > self.max_frequency_hz:
            raise InvalidInputError(
                f"min_frequency_hz must be <= max_frequency_hz, got {self.min_frequency_hz} > {self.max_frequency_hz}"
            )

    def violations(self, train: PulseTrain) -> list[Violation]:
        """Every way ``train`` leaves this stimulator's ranges (empty when it fits)."""
        peak, gap, frequency = train.peak_current_ua, train.interphase_us, train.frequency_hz
        widest = max(train.cathodic_width_us, train.anodic_width_us, train.interphase_us)
        name = self.name
        return [
            *_beyond("hardware_amplitude", peak, self.max_amplitude_ua, "µA",
                     f"phase current {peak:g} µA is outside {name}'s 0-{self.max_amplitude_ua:g} µA"),
            *_beyond("hardware_interphase", gap, self.min_interphase_us, "µs",
                     f"interphase {gap:g} µs is shorter than {name}'s minimum {self.min_interphase_us:g} µs",
                     below=True),
            *_beyond("hardware_frequency", frequency, self.max_frequency_hz, "Hz",
                     f"frequency {frequency:g} Hz is above {name}'s {self.max_frequency_hz:g} Hz"),
            *_beyond("hardware_frequency", frequency, self.min_frequency_hz, "Hz",
                     f"frequency {frequency:g} Hz is below {name}'s {self.min_frequency_hz:g} Hz", below=True),
            *_beyond("hardware_phase_width", widest, self.max_phase_width_us, "µs",
                     f"a phase of {widest:g} µs is longer than {name}'s {self.max_phase_width_us:g} µs"),
        ]


#: Blackrock CereStim R96, the stimulator of the human ICMS studies: 0-215 µA per phase, interphase
#: at least 53 µs, 4-5000 Hz (Blackrock Neurotech, CereStim R96 instructions for use), and phase widths,
#: interphase and interpulse intervals held in 16 bits of µs, at most 65,535 µs (Blackrock support
#: article "Frequency out of range + low frequency stimulation").
CERESTIM_R96 = HardwareRange(
    name="CereStim R96",
    max_amplitude_ua=215.0,
    min_interphase_us=53.0,
    min_frequency_hz=4.0,
    max_frequency_hz=5000.0,
    max_phase_width_us=65535.0,
)


@dataclass(frozen=True)
class EnvelopeLimits:
    """Every limit of the safety envelope; each default is sourced (docs/stimulation.md, "Limits").

    Parameters
    ----------
    max_imbalance_fraction : float
        Largest net charge of a pulse as a fraction of its cathodic charge. Default 0.01: the DAC's
        tolerance (1 µA in 100 µA, 1 µs in 100 µs); a monophasic or half-recovered pulse drives the
        electrode's potential out of the water window pulse after pulse (Merrill et al. 2005).
    max_charge_per_phase_nc : float
        Default 20 nC: 100 µA x 200 µs, the most human ICMS delivered per phase for years (Flesher et al.
        2016; Greenspon et al. 2025). McCreery et al. (1990) found charge per phase a cofactor of
        damage with density; Negi et al. (2010) damaged SIROF Utah tips at 80 nC.
    cic_safety_factor : float
        Charge density must stay at most this fraction of the material's charge-injection capacity
        (:mod:`neurolace.stim.materials`). Default 0.5: in vivo capacity is lower than in vitro
        (Cogan 2008). SIROF: 3,000 x 0.5 = 1,500 µC/cm², above the human regime's 1,000 µC/cm²
        and below the 1,900 µC/cm² Negi et al. (2010) found harmless to SIROF tips.
    cic_uc_per_cm2 : mapping of str to float, optional
        Measured charge-injection capacities (µC/cm²) replacing the materials table's nominal values.
    shannon_k : float
        Default 1.5 (the margin most clinical limits keep under Shannon's 1.85); at most
        :data:`SHANNON_K_CEILING`.
    max_amplitude_ua : float
        Default 100 µA (the cap of the human ICMS studies; Flesher et al. 2016; Greenspon et al. 2025).
    max_frequency_hz : float
        Default 300 Hz (the same studies' cap).
    max_train_s : float
        Longest single train. Default 15 s, a project choice above the 1 s trains of the
        detection experiments (Flesher et al. 2016); continuous stimulation damages (McCreery 1990: 7 h).
    max_duty_cycle, duty_window_s : float
        Largest fraction of the last ``duty_window_s`` seconds an electrode may spend stimulating.
        Defaults 0.5 over 60 s, a project choice: half the time on, where McCreery et al. (1990)
        damaged tissue after 7 h of continuous stimulation.
    max_total_current_ua : float
        Largest current summed over every electrode at any instant, counting trains whose pulses
        overlap in time. Default 1,500 µA, a project choice: 15 electrodes at the 100 µA cap
        together; interleave trains to stimulate more.
    impedance_window_kohm : tuple of float
        Safe window of an electrode's measured 1 kHz impedance. Default (5, 2000) kΩ, a project
        choice: far below is a short or insulation breach, far above an open or failing contact
        (Hughes et al. 2021 report SIROF impedances of tens to hundreds of kΩ).
    voltage_excursion_window_v : tuple of float
        Safe window of the electrode's polarisation during a pulse, V vs Ag|AgCl. Default (-0.6, 0.8):
        the water window of iridium oxide and platinum (Cogan 2008).
    hardware : HardwareRange
        The stimulator's ranges, an outer bound (default :data:`CERESTIM_R96`).
    """

    max_imbalance_fraction: float = 0.01
    max_charge_per_phase_nc: float = 20.0
    cic_safety_factor: float = 0.5
    cic_uc_per_cm2: Mapping[str, float] = field(default_factory=dict)
    shannon_k: float = 1.5
    max_amplitude_ua: float = 100.0
    max_frequency_hz: float = 300.0
    max_train_s: float = 15.0
    max_duty_cycle: float = 0.5
    duty_window_s: float = 60.0
    max_total_current_ua: float = 1500.0
    impedance_window_kohm: tuple[float, float] = (5.0, 2000.0)
    voltage_excursion_window_v: tuple[float, float] = (-0.6, 0.8)
    hardware: HardwareRange = CERESTIM_R96

    def __post_init__(self) -> None:
        check_nonnegative(self.max_imbalance_fraction, "max_imbalance_fraction")
        for name in ("max_charge_per_phase_nc", "cic_safety_factor", "max_amplitude_ua", "max_frequency_hz",
                     "max_train_s", "max_duty_cycle", "duty_window_s", "max_total_current_ua"):
            check_positive(getattr(self, name), name)
        if self.cic_safety_factor > 1:
            raise InvalidInputError(f"cic_safety_factor must be <= 1, got {self.cic_safety_factor}")
        if self.max_duty_cycle > 1:
            raise InvalidInputError(f"max_duty_cycle must be <= 1, got {self.max_duty_cycle}")
        k = check_positive(self.shannon_k, "shannon_k")
        if k > SHANNON_K_CEILING:
            raise InvalidInputError(
                f"shannon_k must be <= {SHANNON_K_CEILING} (Shannon 1992's damage boundary), got {k}"
            )
        capacities = {}
        for material, value in dict(self.cic_uc_per_cm2).items():
            check_material(material, "cic_uc_per_cm2 key")
            capacities[material] = check_positive(value, f"cic_uc_per_cm2[{material!r}]")
        object.__setattr__(self, "cic_uc_per_cm2", MappingProxyType(capacities))
        for name in ("impedance_window_kohm", "voltage_excursion_window_v"):
            window = tuple(getattr(self, name))
            if len(window) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in window) \
                    or window[0] >= window[1]:
                raise InvalidInputError(f"{name} must be (low, high) with low < high, got {getattr(self, name)!r}")
            object.__setattr__(self, name, (float(window[0]), float(window[1])))
        if not isinstance(self.hardware, HardwareRange):
            raise InvalidInputError(f"hardware must be a HardwareRange, got {type(self.hardware).__name__}")

    def capacity_uc_per_cm2(self, material: str) -> float:
        """The charge-injection capacity used for ``material`` (measured if given, else nominal), µC/cm²."""
        return self.cic_uc_per_cm2.get(material, check_material(material).cic_uc_per_cm2)

    def max_charge_density_uc_per_cm2(self, material: str) -> float:
        """The density limit for ``material``: capacity x :attr:`cic_safety_factor`, µC/cm²."""
        return self.capacity_uc_per_cm2(material) * self.cic_safety_factor

    def to_dict(self) -> dict:
        """Every limit as plain JSON-ready values (for ``--json`` and the audit log)."""
        values = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "cic_uc_per_cm2":
                value = {material: self.capacity_uc_per_cm2(material) for material in MATERIAL_NAMES}
            elif item.name == "hardware":
                value = {f.name: getattr(value, f.name) for f in fields(value)}
            elif isinstance(value, tuple):
                value = list(value)
            values[item.name] = value
        return values


@dataclass(frozen=True)
class Violation:
    """One broken rule: which, its limit, the value found and a sentence for people.

    Attributes
    ----------
    rule : str
        A key of :data:`RULES`.
    limit : float or None
    value : float or None
    unit : str
    message : str
    channel : int or None
        The electrode concerned, when the rule is per electrode.
    """

    rule: str
    limit: float | None
    value: float | None
    unit: str
    message: str
    channel: int | None = None

    def __post_init__(self) -> None:
        assert self.rule in RULES, self.rule

    def to_dict(self) -> dict:
        """JSON-ready: ``rule``, ``limit``, ``value``, ``unit``, ``message``, ``channel``."""
        return {"rule": self.rule, "limit": self.limit, "value": self.value, "unit": self.unit,
                "message": self.message, "channel": self.channel}


@dataclass(frozen=True)
class EnvelopeResult:
    """The envelope's answer about one train.

    Attributes
    ----------
    safe : bool
        True when no rule is violated.
    charge_per_phase_nc : float
        The larger phase's charge, nC.
    charge_density_uc_per_cm2 : float or None
        The highest charge density over the train's known electrodes, µC/cm² (None if none is known).
    shannon_k : float or None
        The highest Shannon k over the train's known electrodes.
    violations : list of Violation
        Every rule broken, in :data:`RULES` order.
    peak_total_current_ua : float or None
        The largest current summed over electrodes at one instant, counting scheduled trains.
    """

    safe: bool
    charge_per_phase_nc: float
    charge_density_uc_per_cm2: float | None
    shannon_k: float | None
    violations: list[Violation]
    peak_total_current_ua: float | None = None

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules violated, without repeats, in order."""
        return tuple(dict.fromkeys(v.rule for v in self.violations))

    def to_dict(self) -> dict:
        """JSON-ready form (the ``--json`` output of ``neurolace stim check``)."""
        k = self.shannon_k
        return {
            "safe": self.safe,
            "charge_per_phase_nc": self.charge_per_phase_nc,
            "charge_density_uc_per_cm2": self.charge_density_uc_per_cm2,
            "shannon_k": None if k is None or not math.isfinite(k) else k,
            "peak_total_current_ua": self.peak_total_current_ua,
            "violations": [v.to_dict() for v in self.violations],
        }


@dataclass(frozen=True)
class _Scheduled:
    train: PulseTrain
    start_s: float  # absolute time of the train's first pulse

    @property
    def end_s(self) -> float:
        return self.start_s + self.train.end_s - self.train.onset_s


class ElectrodeState:
    """What the implant knows about its electrodes now: locks, last measurements, scheduled trains.

    One instance lives on the implant side next to the envelope; the envelope reads it in
    :meth:`SafetyEnvelope.check` and writes it in :meth:`SafetyEnvelope.commit` and
    :meth:`SafetyEnvelope.record_measurement`.
    """

    def __init__(self) -> None:
        self._locks: dict[int, str] = {}
        self._impedance_kohm: dict[int, float] = {}
        self._voltage_excursion_v: dict[int, tuple[float, float]] = {}
        self._scheduled: list[_Scheduled] = []

    def lock(self, channel: int, reason: str) -> None:
        """Lock ``channel`` out of stimulation; ``reason`` is reported by every refusal it causes."""
        channel = check_int(channel, "channel", minimum=0)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError(f"reason must be a non-empty string, got {reason!r}")
        self._locks[channel] = reason

    def unlock(self, channel: int) -> None:
        """Lift a lock (a clinician's decision; a later out-of-window measurement locks again)."""
        self._locks.pop(check_int(channel, "channel", minimum=0), None)

    def lock_reason(self, channel: int) -> str | None:
        """Why ``channel`` is locked, or None."""
        return self._locks.get(channel)

    @property
    def locked(self) -> dict[int, str]:
        """Every locked channel and its reason (a copy)."""
        return dict(self._locks)

    def impedance_kohm(self, channel: int) -> float | None:
        """The last measured impedance of ``channel`` in kΩ, or None."""
        return self._impedance_kohm.get(channel)

    def voltage_excursion_v(self, channel: int) -> tuple[float, float] | None:
        """The last measured (most negative, most positive) polarisation of ``channel`` in V, or None."""
        return self._voltage_excursion_v.get(channel)

    def scheduled(self) -> list[tuple[PulseTrain, float]]:
        """The trains delivered and still remembered, as ``(train, start_s)``."""
        return [(entry.train, entry.start_s) for entry in self._scheduled]

    # written by the envelope
    def _set_measurement(self, channel, impedance_kohm, voltage_excursion_v) -> None:
        if impedance_kohm is not None:
            self._impedance_kohm[channel] = impedance_kohm
        if voltage_excursion_v is not None:
            self._voltage_excursion_v[channel] = voltage_excursion_v

    def _add(self, train: PulseTrain, start_s: float, forget_before_s: float) -> None:
        self._scheduled = [entry for entry in self._scheduled if entry.end_s >= forget_before_s]
        self._scheduled.append(_Scheduled(train, start_s))

    def _overlapping(self, start_s: float, end_s: float) -> list[_Scheduled]:
        return [entry for entry in self._scheduled if entry.start_s < end_s and entry.end_s > start_s]

    def __repr__(self) -> str:
        return (f"ElectrodeState(locked={sorted(self._locks)}, measured={len(self._impedance_kohm)}, "
                f"scheduled={len(self._scheduled)})")


class SafetyEnvelope:
    """Judge pulse trains against :class:`EnvelopeLimits` on a set of electrodes.

    Parameters
    ----------
    limits : EnvelopeLimits, optional
        Default: ``EnvelopeLimits()``, every default sourced.
    electrodes : dict of int to Electrode, optional
        The electrode of each channel index. Default: :data:`DEFAULT_ARRAY_CHANNELS` channels, each a
        :data:`DEFAULT_ELECTRODE` (SIROF, 2,000 µm²).

    Examples
    --------
    >>> from neurolace.stim import PulseTrain, SafetyEnvelope
    >>> train = PulseTrain((0,), 100, 200, 100, 400, 50, frequency_hz=100, train_s=1)
    >>> result = SafetyEnvelope().check(train)
    >>> result.safe, round(result.shannon_k, 2)
    (True, 1.3)
    """

    def __init__(self, limits: EnvelopeLimits | None = None, electrodes: Mapping[int, Electrode] | None = None):
        self.limits = EnvelopeLimits() if limits is None else limits
        if not isinstance(self.limits, EnvelopeLimits):
            raise InvalidInputError(f"limits must be an EnvelopeLimits, got {type(self.limits).__name__}")
        if electrodes is None:
            electrodes = {channel: DEFAULT_ELECTRODE for channel in range(DEFAULT_ARRAY_CHANNELS)}
        checked = {}
        for channel, electrode in dict(electrodes).items():
            channel = check_int(channel, "electrodes key", minimum=0)
            if not isinstance(electrode, Electrode):
                raise InvalidInputError(f"electrodes[{channel}] must be an Electrode, got {type(electrode).__name__}")
            checked[channel] = electrode
        self.electrodes = MappingProxyType(checked)

    def __repr__(self) -> str:
        return f"SafetyEnvelope(electrodes={len(self.electrodes)}, limits={self.limits!r})"

    # --- the check --------------------------------------------------------------------------------
    def check(self, train: PulseTrain, *, state: ElectrodeState | None = None, start_s: float = 0.0) -> EnvelopeResult:
        """Judge ``train``, delivered at ``start_s`` (implant clock, s), against every rule.

        Parameters
        ----------
        train : PulseTrain
        state : ElectrodeState, optional
            Locks, measurements and already scheduled trains; without it, only the train itself.
        start_s : float
            When delivery begins; the first pulse is at ``start_s + train.onset_s``.

        Returns
        -------
        EnvelopeResult
            With every rule violated.
        """
        if not isinstance(train, PulseTrain):
            raise InvalidInputError(f"train must be a PulseTrain, got {type(train).__name__}")
        if state is not None and not isinstance(state, ElectrodeState):
            raise InvalidInputError(f"state must be an ElectrodeState, got {type(state).__name__}")
        start_s = check_nonnegative(start_s, "start_s")
        limits = self.limits
        found: list[Violation] = []
        densities, ks = [], []

        for channel in train.channels:
            electrode = self.electrodes.get(channel)
            if electrode is None:
                found.append(Violation("unknown_electrode", None, None, "",
                                       f"channel {channel} is not an electrode of this envelope", channel))
                continue
            found.extend(self._electrode_state_violations(channel, state))
            density = train.charge_per_phase_nc / electrode.area_um2 * 1e5  # nC/µm² -> µC/cm²
            densities.append(density)
            density_limit = limits.max_charge_density_uc_per_cm2(electrode.material)
            found += _beyond(
                "charge_density", density, density_limit, "µC/cm²",
                f"{density:.4g} µC/cm² on channel {channel} ({electrode.material}, {electrode.area_um2:g} µm²) "
                f"exceeds {limits.capacity_uc_per_cm2(electrode.material):g} µC/cm² capacity x "
                f"{limits.cic_safety_factor:g} = {density_limit:.4g} µC/cm²", channel)
            k = shannon_k(density, train.charge_per_phase_nc)
            ks.append(k)
            found += _beyond("shannon_k", k, limits.shannon_k, "",
                             f"Shannon k = {k:.3f} on channel {channel} exceeds {limits.shannon_k:g}", channel)

        found.extend(self._pulse_violations(train))
        if state is not None:
            first_s = start_s + train.onset_s
            end_s = start_s + train.end_s
            overlapping = state._overlapping(first_s, end_s)
            scheduled_channels = set().union(*(entry.train.channels for entry in overlapping))
            busy = sorted(scheduled_channels.intersection(train.channels))
            for channel in busy:
                found.append(Violation("channel_busy", None, None, "",
                                       f"channel {channel} already runs a train during this one", channel))
            found.extend(self._duty_violations(train, first_s, end_s, state))
            peak_total = _peak_total_current_ua(train, first_s, overlapping)
        else:
            peak_total = len(train.channels) * train.peak_current_ua
        found += _beyond("total_current", peak_total, limits.max_total_current_ua, "µA",
                         f"{peak_total:g} µA would flow at once over all electrodes (limit "
                         f"{limits.max_total_current_ua:g} µA); interleave the trains")
        found.extend(limits.hardware.violations(train))
        order = {rule: index for index, rule in enumerate(RULES)}
        found.sort(key=lambda violation: order[violation.rule])
        return EnvelopeResult(
            safe=not found,
            charge_per_phase_nc=train.charge_per_phase_nc,
            charge_density_uc_per_cm2=max(densities) if densities else None,
            shannon_k=max(ks) if ks else None,
            violations=found,
            peak_total_current_ua=peak_total,
        )

    def _electrode_state_violations(self, channel: int, state: ElectrodeState | None) -> list[Violation]:
        if state is None:
            return []
        found = []
        reason = state.lock_reason(channel)
        if reason is not None:
            found.append(Violation("electrode_locked", None, None, "", f"channel {channel} is locked out: {reason}",
                                   channel))
        impedance = state.impedance_kohm(channel)
        low, high = self.limits.impedance_window_kohm
        if impedance is not None and not low <= impedance <= high:
            found.append(Violation("impedance_window", low if impedance < low else high, impedance, "kΩ",
                                   f"channel {channel} measured {impedance:g} kΩ, outside {low:g}-{high:g} kΩ",
                                   channel))
        excursion = state.voltage_excursion_v(channel)
        low, high = self.limits.voltage_excursion_window_v
        if excursion is not None and (excursion[0] < low or excursion[1] > high):
            bad = excursion[0] if excursion[0] < low else excursion[1]
            found.append(Violation("voltage_excursion", low if bad < low else high, bad, "V",
                                   f"channel {channel} polarised to {bad:+g} V, outside {low:+g} to {high:+g} V "
                                   "(vs Ag|AgCl)", channel))
        return found

    def _pulse_violations(self, train: PulseTrain) -> list[Violation]:
        limits = self.limits
        allowed_nc = limits.max_imbalance_fraction * train.cathodic_charge_nc
        charge, peak, frequency = train.charge_per_phase_nc, train.peak_current_ua, train.frequency_hz
        found = [
            *_beyond("charge_balance", train.imbalance_nc, allowed_nc, "nC",
                     f"cathodic {train.cathodic_charge_nc:.4g} nC vs anodic {train.anodic_charge_nc:.4g} nC: "
                     f"{train.imbalance_nc:.4g} nC net per pulse, tolerance {allowed_nc:.4g} nC "
                     f"({limits.max_imbalance_fraction:.0%})"),
            *_beyond("charge_per_phase", charge, limits.max_charge_per_phase_nc, "nC",
                     f"{charge:.4g} nC per phase exceeds {limits.max_charge_per_phase_nc:g} nC"),
            *_beyond("amplitude", peak, limits.max_amplitude_ua, "µA",
                     f"phase current {peak:g} µA exceeds {limits.max_amplitude_ua:g} µA"),
            *_beyond("frequency", frequency, limits.max_frequency_hz, "Hz",
                     f"{frequency:g} Hz exceeds {limits.max_frequency_hz:g} Hz"),
            *_beyond("train_length", train.train_s, limits.max_train_s, "s",
                     f"a {train.train_s:g} s train exceeds {limits.max_train_s:g} s"),
        ]
        if train.duration_us >= train.period_us:
            found.append(Violation("pulse_overlap", train.period_us, train.duration_us, "µs",
                                   f"a pulse lasts {train.duration_us:g} µs but the next starts after "
                                   f"{train.period_us:.4g} µs"))
        return found

    def _duty_violations(self, train, first_s, end_s, state) -> list[Violation]:
        limits = self.limits
        window_start = end_s - limits.duty_window_s
        on_s = dict.fromkeys(train.channels, end_s - max(first_s, window_start))
        for entry in state._overlapping(window_start, end_s):
            for channel in set(entry.train.channels).intersection(on_s):
                on_s[channel] += min(entry.end_s, end_s) - max(entry.start_s, window_start)
        found = []
        for channel, seconds in on_s.items():
            fraction = seconds / limits.duty_window_s
            found += _beyond("duty_cycle", fraction, limits.max_duty_cycle, "",
                             f"channel {channel} would stimulate {fraction:.0%} of the last "
                             f"{limits.duty_window_s:g} s (limit {limits.max_duty_cycle:.0%})", channel)
        return found

    # --- state updates ----------------------------------------------------------------------------
    def commit(self, train: PulseTrain, state: ElectrodeState, *, start_s: float) -> None:
        """Record that ``train`` was delivered at ``start_s``, so later checks count it.

        Trains that ended more than one duty window ago are forgotten.
        """
        if not isinstance(state, ElectrodeState):
            raise InvalidInputError(f"state must be an ElectrodeState, got {type(state).__name__}")
        start_s = check_nonnegative(start_s, "start_s")
        state._add(train, start_s + train.onset_s, forget_before_s=start_s - self.limits.duty_window_s)

    def record_measurement(
        self,
        state: ElectrodeState,
        channel: int,
        *,
        impedance_kohm: float | None = None,
        voltage_excursion_v: tuple[float, float] | None = None,
    ) -> str | None:
        """Store a measurement of ``channel``; lock it out when it leaves its safe window.

        Parameters
        ----------
        impedance_kohm : float, optional
            1 kHz impedance magnitude in kΩ.
        voltage_excursion_v : (float, float), optional
            Most negative and most positive polarisation during a pulse, V vs Ag|AgCl.

        Returns
        -------
        str or None
            The lock reason when the measurement locked the electrode.
        """
        channel = check_int(channel, "channel", minimum=0)
        if impedance_kohm is not None:
            impedance_kohm = check_nonnegative(impedance_kohm, "impedance_kohm")
        if voltage_excursion_v is not None:
            pair = tuple(voltage_excursion_v)
            if len(pair) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in pair):
                raise InvalidInputError(f"voltage_excursion_v must be (most negative, most positive) in V, got {pair!r}")
            voltage_excursion_v = (float(min(pair)), float(max(pair)))
        state._set_measurement(channel, impedance_kohm, voltage_excursion_v)
        reasons = [v.message for v in self._electrode_state_violations(channel, state) if v.rule != "electrode_locked"]
        if reasons:
            state.lock(channel, "; ".join(reasons))
            return state.lock_reason(channel)
        return None

    def with_limits(self, **changes) -> SafetyEnvelope:
        """A copy of this envelope with some limits changed (``envelope.with_limits(shannon_k=1.7)``)."""
        return SafetyEnvelope(replace(self.limits, **changes), self.electrodes)


def _peak_total_current_ua(train: PulseTrain, first_s: float, overlapping: list[_Scheduled]) -> float:
    """Largest current summed over electrodes at one instant while ``train`` runs from ``first_s``.

    Every phase of every pulse is an interval carrying ``|current| x n_channels``; the sweep sorts
    the intervals' edges (an end before a start at the same instant: touching phases do not
    overlap) and takes the running sum's maximum. Beyond :data:`MAX_SWEEP_EDGES` the worst case
    is assumed: every train's peak at once.
    """
    own_peak = len(train.channels) * train.peak_current_ua
    if not overlapping:
        return own_peak
    window_end = first_s + train.end_s - train.onset_s
    entries = [_Scheduled(train, first_s)] + overlapping
    edge_count = 0
    for entry in entries:
        period_s = 1.0 / entry.train.frequency_hz
        edge_count += 4 * (min(entry.train.n_pulses, (window_end - first_s) / period_s + 2))
    if edge_count > MAX_SWEEP_EDGES:
        return sum(len(e.train.channels) * e.train.peak_current_ua for e in entries)
    times, steps = [], []
    for entry in entries:
        period_s = 1.0 / entry.train.frequency_hz
        duration_s = entry.train.duration_us * 1e-6
        first_k = max(0, math.floor((first_s - entry.start_s - duration_s) / period_s))
        last_k = min(entry.train.n_pulses - 1, math.ceil((window_end - entry.start_s) / period_s))
        if last_k < first_k:
            continue
        starts = entry.start_s + np.arange(first_k, last_k + 1, dtype=np.float64) * period_s
        weight = len(entry.train.channels)
        for phase_start_us, phase_stop_us, current_ua in entry.train.phases_us():
            magnitude = abs(current_ua) * weight
            times.append(starts + phase_start_us * 1e-6)
            steps.append(np.full(starts.shape, magnitude))
            times.append(starts + phase_stop_us * 1e-6)
            steps.append(np.full(starts.shape, -magnitude))
    if not times:
        return own_peak
    edge_times = np.concatenate(times)
    edge_steps = np.concatenate(steps)
    order = np.lexsort((edge_steps, edge_times))  # at equal times, ends (negative) first
    running = np.cumsum(edge_steps[order])
    return float(max(own_peak, running.max(initial=0.0)))
