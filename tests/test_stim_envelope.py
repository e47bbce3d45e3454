"""The safety envelope: known answers, the human ICMS regime accepted, one refusal per rule."""

from __future__ import annotations

import dataclasses
import math

import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.stim import Electrode, PulseTrain
from neurolace.stim.envelope import (
    CERESTIM_R96,
    RULES,
    SHANNON_K_CEILING,
    ElectrodeState,
    EnvelopeLimits,
    SafetyEnvelope,
    shannon_k,
)


def train(**changes) -> PulseTrain:
    """The human ICMS pulse: 100 µA, 200 µs cathodic, 100 µs gap, 400 µs anodic at 50 µA, 100 Hz, 1 s."""
    values = dict(channels=(0,), amplitude_ua=100, cathodic_width_us=200, interphase_us=100,
                  anodic_width_us=400, anodic_amplitude_ua=50, frequency_hz=100, train_s=1.0)
    values.update(changes)
    return PulseTrain(**values)


def test_known_answer_20_nc_1000_uc_per_cm2_k_1_30():
    result = SafetyEnvelope(electrodes={0: Electrode(2000, "SIROF")}).check(train())
    assert result.charge_per_phase_nc == 20.0  # 100 µA x 200 µs
    assert result.charge_density_uc_per_cm2 == pytest.approx(1000.0)  # 20 nC / 2e-5 cm²
    assert result.shannon_k == pytest.approx(math.log10(1000) + math.log10(0.02))
    assert round(result.shannon_k, 2) == 1.30
    assert result.safe and result.violations == []


def test_shannon_k_function():
    assert shannon_k(1000.0, 20.0) == pytest.approx(1.30103, abs=1e-5)
    assert shannon_k(0.0, 20.0) == -math.inf


@pytest.mark.parametrize("frequency_hz", [20, 50, 100, 200, 300])
@pytest.mark.parametrize("amplitude_ua", [10, 60, 100])
@pytest.mark.parametrize("waveform", ["symmetric", "asymmetric", "cerestim_gap"])
def test_defaults_accept_the_human_icms_regime(frequency_hz, amplitude_ua, waveform):
    """Charge-balanced, <= 100 µA, 200 µs cathodic, SIROF ~2,000 µm², 20-300 Hz (Flesher 2016; Greenspon 2025)."""
    shapes = {
        "symmetric": dict(anodic_width_us=200, anodic_amplitude_ua=amplitude_ua),
        "asymmetric": dict(anodic_width_us=400, anodic_amplitude_ua=amplitude_ua / 2),
        "cerestim_gap": dict(interphase_us=53, anodic_width_us=200, anodic_amplitude_ua=amplitude_ua),
    }
    candidate = train(amplitude_ua=amplitude_ua, frequency_hz=frequency_hz, **shapes[waveform])
    result = SafetyEnvelope().check(candidate, state=ElectrodeState())
    assert result.safe, [v.message for v in result.violations]


def test_default_density_limit_admits_the_human_regime_on_sirof():
    limits = EnvelopeLimits()
    # SIROF nominal 3,000 µC/cm² x 0.5 = 1,500 µC/cm² >= the 1,000 µC/cm² of 20 nC on 2,000 µm²
    assert limits.max_charge_density_uc_per_cm2("SIROF") == 1500.0
    # and stays below the 1,900 µC/cm² Negi et al. (2010) found harmless to SIROF tips
    assert limits.max_charge_density_uc_per_cm2("SIROF") < 1900.0


def _refusal(rule):
    """(envelope, train, state, start_s) that breaks exactly ``rule`` among others as few as possible."""
    envelope = SafetyEnvelope()
    state = ElectrodeState()
    candidate = train()
    if rule == "unknown_electrode":
        candidate = train(channels=(5000,))
    elif rule == "electrode_locked":
        state.lock(0, "clinician: participant reported discomfort")
    elif rule == "impedance_window":
        state._set_measurement(0, 4000.0, None)
    elif rule == "voltage_excursion":
        state._set_measurement(0, None, (-0.9, 0.3))
    elif rule == "channel_busy":
        envelope.commit(train(), state, start_s=0.0)
    elif rule == "charge_balance":
        candidate = train(anodic_amplitude_ua=40)
    elif rule == "charge_per_phase":
        candidate = train(cathodic_width_us=300, anodic_width_us=600)
        envelope = SafetyEnvelope(electrodes={0: Electrode(20000, "SIROF")})
    elif rule == "charge_density":
        candidate = train(amplitude_ua=20, anodic_amplitude_ua=10)
        envelope = SafetyEnvelope(electrodes={0: Electrode(2000, "Pt")})
    elif rule == "shannon_k":
        envelope = SafetyEnvelope(EnvelopeLimits(cic_uc_per_cm2={"SIROF": 9000.0}),
                                  electrodes={0: Electrode(1000, "SIROF")})
    elif rule == "amplitude":
        candidate = train(amplitude_ua=150, cathodic_width_us=100, anodic_amplitude_ua=75, anodic_width_us=200)
        envelope = SafetyEnvelope(electrodes={0: Electrode(20000, "SIROF")})
    elif rule == "frequency":
        candidate = train(frequency_hz=400)
    elif rule == "pulse_overlap":
        candidate = train(frequency_hz=200, interphase_us=4000, anodic_width_us=1000, anodic_amplitude_ua=20)
    elif rule == "train_length":
        candidate = train(train_s=20)
    elif rule == "duty_cycle":
        for start_s in range(0, 40, 10):  # 4 x 10 s on channel 0 in the last 60 s
            envelope.commit(train(train_s=9.5), state, start_s=float(start_s))
        candidate = train(train_s=1.0)
        return envelope, candidate, state, 40.0
    elif rule == "total_current":
        candidate = train(channels=tuple(range(16)))
    elif rule == "hardware_amplitude":
        envelope = SafetyEnvelope(EnvelopeLimits(max_amplitude_ua=500), {0: Electrode(1e6, "SIROF")})
        candidate = train(amplitude_ua=250, cathodic_width_us=50, anodic_amplitude_ua=125, anodic_width_us=100)
    elif rule == "hardware_interphase":
        candidate = train(interphase_us=20)
    elif rule == "hardware_frequency":
        candidate = train(frequency_hz=2, train_s=1.0)
    elif rule == "hardware_phase_width":
        envelope = SafetyEnvelope(EnvelopeLimits(max_charge_per_phase_nc=1e6), {0: Electrode(1e9, "SIROF")})
        candidate = train(amplitude_ua=1, cathodic_width_us=70000, anodic_amplitude_ua=1, anodic_width_us=70000,
                          frequency_hz=5)
    return envelope, candidate, state, 0.0


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_refuses(rule):
    envelope, candidate, state, start_s = _refusal(rule)
    result = envelope.check(candidate, state=state, start_s=start_s)
    assert not result.safe
    assert rule in result.rules, [v.message for v in result.violations]
    violation = next(v for v in result.violations if v.rule == rule)
    assert violation.message
    assert violation.to_dict()["rule"] == rule


def test_refusals_name_limit_and_value():
    result = SafetyEnvelope().check(train(amplitude_ua=300, cathodic_width_us=1000, anodic_width_us=0,
                                          anodic_amplitude_ua=0, frequency_hz=1000, train_s=100))
    rules = set(result.rules)
    assert {"charge_balance", "charge_per_phase", "charge_density", "shannon_k", "amplitude", "frequency",
            "pulse_overlap", "train_length", "hardware_amplitude"} <= rules
    amplitude = next(v for v in result.violations if v.rule == "amplitude")
    assert (amplitude.limit, amplitude.value, amplitude.unit) == (100.0, 300.0, "µA")


def test_shannon_k_above_the_hard_ceiling_cannot_be_configured():
    assert SHANNON_K_CEILING == 1.85
    EnvelopeLimits(shannon_k=1.85)
    with pytest.raises(InvalidInputError, match="shannon_k must be <= 1.85"):
        EnvelopeLimits(shannon_k=1.9)


def test_shannon_k_1_85_boundary_refused_by_default_accepted_when_configured():
    # 40 nC on 2,000 µm²: D = 2,000 µC/cm², k = log10(2000) + log10(0.04) = 1.90
    over = train(amplitude_ua=100, cathodic_width_us=400, anodic_width_us=400, anodic_amplitude_ua=100)
    assert "shannon_k" in SafetyEnvelope().check(over).rules
    # 25 nC on 2,000 µm²: k = log10(1250) + log10(0.025) = 1.49
    under = train(amplitude_ua=100, cathodic_width_us=250, anodic_width_us=250, anodic_amplitude_ua=100)
    relaxed = SafetyEnvelope(EnvelopeLimits(max_charge_per_phase_nc=30))
    assert relaxed.check(under).safe


@pytest.mark.parametrize("changes, match", [
    (dict(cic_safety_factor=1.5), "cic_safety_factor must be <= 1"),
    (dict(max_amplitude_ua=-1), "max_amplitude_ua"),
    (dict(impedance_window_kohm=(10, 5)), "impedance_window_kohm"),
    (dict(cic_uc_per_cm2={"Gold": 1.0}), "cic_uc_per_cm2 key must be one of"),
    (dict(max_duty_cycle=2), "max_duty_cycle must be <= 1"),
])
def test_limits_are_checked(changes, match):
    with pytest.raises(InvalidInputError, match=match):
        EnvelopeLimits(**changes)


def test_measured_capacity_replaces_the_nominal_one():
    limits = EnvelopeLimits(cic_uc_per_cm2={"Pt": 300.0})
    assert limits.max_charge_density_uc_per_cm2("Pt") == 150.0
    assert limits.to_dict()["cic_uc_per_cm2"]["SIROF"] == 3000.0


def test_interleaved_trains_do_not_add_their_currents_overlapping_ones_do():
    envelope = SafetyEnvelope(EnvelopeLimits(max_total_current_ua=150))
    state = ElectrodeState()
    envelope.commit(train(channels=(0,)), state, start_s=0.0)
    together = envelope.check(train(channels=(1,)), state=state, start_s=0.0)
    assert together.peak_total_current_ua == 200.0
    assert "total_current" in together.rules
    interleaved = envelope.check(train(channels=(1,), onset_s=0.005), state=state, start_s=0.0)  # half a period
    assert interleaved.peak_total_current_ua == 100.0
    assert interleaved.safe, [v.message for v in interleaved.violations]


def test_anodic_phase_overlapping_a_cathodic_one_counts_both():
    envelope = SafetyEnvelope()
    state = ElectrodeState()
    envelope.commit(train(channels=(0,)), state, start_s=0.0)
    # the second train's cathodic phase starts when the first's anodic phase (50 µA, 300-700 µs) runs
    shifted = envelope.check(train(channels=(1,), onset_s=400e-6), state=state, start_s=0.0)
    assert shifted.peak_total_current_ua == 150.0


def test_channels_of_one_train_add_up():
    result = SafetyEnvelope().check(train(channels=(0, 1, 2)))
    assert result.peak_total_current_ua == 300.0


def test_a_train_after_the_previous_ended_is_not_busy():
    envelope = SafetyEnvelope()
    state = ElectrodeState()
    envelope.commit(train(), state, start_s=0.0)
    assert envelope.check(train(), state=state, start_s=1.5).safe


def test_out_of_window_measurement_locks_the_electrode():
    envelope = SafetyEnvelope()
    state = ElectrodeState()
    assert envelope.record_measurement(state, 0, impedance_kohm=80.0, voltage_excursion_v=(-0.4, 0.2)) is None
    assert envelope.check(train(), state=state).safe
    reason = envelope.record_measurement(state, 0, impedance_kohm=3000.0)
    assert "3000 kΩ" in reason
    result = envelope.check(train(), state=state)
    assert {"electrode_locked", "impedance_window"} <= set(result.rules)
    assert state.locked == {0: reason}
    envelope.record_measurement(state, 0, impedance_kohm=80.0)
    state.unlock(0)
    assert envelope.check(train(), state=state).safe


def test_old_trains_are_forgotten_after_a_duty_window():
    envelope = SafetyEnvelope()
    state = ElectrodeState()
    for start_s in range(0, 200, 2):
        envelope.commit(train(), state, start_s=float(start_s))
    assert len(state.scheduled()) <= 32  # 60 s window / 2 s spacing + the latest


def test_huge_overlapping_schedules_fall_back_to_the_worst_case():
    envelope = SafetyEnvelope(EnvelopeLimits(max_frequency_hz=5000, max_train_s=1e4, max_duty_cycle=1,
                                             duty_window_s=1e5))
    state = ElectrodeState()
    long_train = train(frequency_hz=1000, train_s=1e4, anodic_width_us=200, anodic_amplitude_ua=100)
    envelope.commit(long_train, state, start_s=0.0)
    result = envelope.check(dataclasses.replace(long_train, channels=(1,)), state=state)
    assert result.peak_total_current_ua == 200.0  # both peaks at once, without listing 20 million phases


def test_hardware_range_is_the_outer_bound():
    assert (CERESTIM_R96.max_amplitude_ua, CERESTIM_R96.min_interphase_us) == (215.0, 53.0)
    assert (CERESTIM_R96.min_frequency_hz, CERESTIM_R96.max_frequency_hz) == (4.0, 5000.0)
    assert CERESTIM_R96.violations(train()) == []


def test_check_refuses_what_is_not_a_train():
    with pytest.raises(InvalidInputError, match="train must be a PulseTrain"):
        SafetyEnvelope().check({"amplitude_ua": 100})
