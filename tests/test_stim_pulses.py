"""Pulse trains, electrodes and the pattern schema: derived quantities and every bad field named."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.stim import MATERIAL_NAMES, MATERIALS, Electrode, PatternError, PulseTrain, load_pattern, pattern_from_dict

ASYMMETRIC = dict(channels=(3,), amplitude_ua=100, cathodic_width_us=200, interphase_us=100,
                  anodic_width_us=400, anodic_amplitude_ua=50, frequency_hz=100, train_s=1.0)

PATTERN = {"electrode_area_um2": 2000, "material": "SIROF", "amplitude_ua": 100, "cathodic_width_us": 200,
           "interphase_us": 100, "anodic_width_us": 400, "anodic_amplitude_ua": 50, "frequency_hz": 100,
           "train_s": 1, "channels": [0, 1]}


def test_charges_of_an_asymmetric_pulse():
    train = PulseTrain(**ASYMMETRIC)
    assert train.cathodic_charge_nc == 20.0  # 100 µA x 200 µs
    assert train.anodic_charge_nc == 20.0  # 50 µA x 400 µs
    assert train.charge_per_phase_nc == 20.0
    assert train.imbalance_nc == 0.0
    assert train.duration_us == 700.0
    assert train.phases_us() == ((0.0, 200.0, -100.0), (300.0, 700.0, 50.0))


def test_anodic_first_swaps_the_phases():
    train = PulseTrain(**ASYMMETRIC, cathodic_first=False)
    assert train.phases_us() == ((0.0, 400.0, 50.0), (500.0, 700.0, -100.0))


@pytest.mark.parametrize("train_s, frequency_hz, expected", [
    (1.0, 100, 100), (0.1, 30, 3), (1 / 3, 3, 1), (0.005, 100, 1), (0.7, 10, 7), (0.75, 10, 8), (1.0, 300, 300),
])
def test_pulse_count_is_pulses_starting_inside_the_train(train_s, frequency_hz, expected):
    train = PulseTrain(**{**ASYMMETRIC, "train_s": train_s, "frequency_hz": frequency_hz})
    assert train.n_pulses == expected
    times = train.pulse_times_s()
    assert times.shape == (expected,)
    assert np.all(times < train_s + 1e-12)


def test_pulse_times_start_at_onset_and_end_is_last_phase():
    train = dataclasses.replace(PulseTrain(**ASYMMETRIC), onset_s=2.0)
    np.testing.assert_allclose(train.pulse_times_s()[:3], [2.0, 2.01, 2.02])
    assert train.end_s == pytest.approx(2.0 + 0.99 + 700e-6)


def test_imbalanced_and_monophasic_trains_are_representable():
    monophasic = PulseTrain(**{**ASYMMETRIC, "anodic_amplitude_ua": 0, "anodic_width_us": 0})
    assert monophasic.imbalance_nc == 20.0
    assert monophasic.phases_us() == ((0.0, 200.0, -100.0),)


@pytest.mark.parametrize("field, value", [
    ("amplitude_ua", 0), ("amplitude_ua", -5), ("cathodic_width_us", -1), ("interphase_us", -1),
    ("frequency_hz", float("nan")), ("train_s", float("inf")), ("anodic_amplitude_ua", True),
    ("channels", ()), ("channels", (1, 1)), ("channels", (-1,)), ("channels", "0"), ("frequency_hz", 1e12),
])
def test_a_bad_train_field_is_named(field, value):
    with pytest.raises(PatternError, match=field) as info:
        PulseTrain(**{**ASYMMETRIC, field: value})
    assert info.value.fields == (field,)
    assert isinstance(info.value, InvalidInputError)


def test_electrode_checks_area_and_material():
    assert Electrode(2000, "SIROF").area_cm2 == pytest.approx(2e-5)
    with pytest.raises(PatternError, match="electrode_area_um2"):
        Electrode(-1, "SIROF")
    with pytest.raises(PatternError, match='material: must be one of "Pt", "PtIr", "IrOx", "SIROF", "PEDOT"'):
        Electrode(2000, "Gold")


def test_every_material_has_a_sourced_capacity_inside_its_range():
    assert MATERIAL_NAMES == ("Pt", "PtIr", "IrOx", "SIROF", "PEDOT")
    for material in MATERIALS.values():
        low, high = material.cic_range_uc_per_cm2
        assert low <= material.cic_uc_per_cm2 <= high
        assert material.source


def test_pattern_round_trips_through_its_dict():
    pattern = pattern_from_dict(PATTERN)
    assert pattern.train.channels == (0, 1)
    assert pattern.electrodes() == {0: Electrode(2000, "SIROF"), 1: Electrode(2000, "SIROF")}
    values = pattern.to_dict()
    assert list(values)[:2] == ["electrode_area_um2", "material"]
    assert pattern_from_dict(values) == pattern
    assert values["cathodic_first"] is True and values["onset_s"] == 0.0


def test_every_missing_unknown_and_negative_field_is_named_together():
    values = {**PATTERN, "amplitude_ua": -100, "material": "Gold", "colour": "red"}
    del values["train_s"]
    with pytest.raises(PatternError) as info:
        pattern_from_dict(values)
    assert set(info.value.fields) == {"colour", "train_s", "amplitude_ua", "material"}
    message = str(info.value)
    assert "colour: unknown field" in message
    assert "train_s: missing" in message
    assert "amplitude_ua: must be a number > 0" in message and "got -100" in message


def test_a_pattern_must_be_an_object():
    with pytest.raises(PatternError, match="<pattern>: must be a JSON object, got list"):
        pattern_from_dict([PATTERN])


@pytest.mark.parametrize("text, match", [
    ('{"amplitude_ua": 100,', "malformed JSON .* line 1 column"),
    ('{"amplitude_ua": NaN}', "NaN is not a number JSON allows"),
    ('{"train_s": 1, "train_s": 2}', "train_s: appears more than once"),
    ("[" * 100000, "malformed JSON"),
])
def test_load_pattern_refuses_malformed_json(tmp_path, text, match):
    path = tmp_path / "pattern.json"
    path.write_text(text)
    with pytest.raises(PatternError, match=match):
        load_pattern(path)


def test_load_pattern_reads_a_file(tmp_path):
    path = tmp_path / "pattern.json"
    path.write_text(json.dumps(PATTERN))
    assert load_pattern(path) == pattern_from_dict(PATTERN)
    with pytest.raises(FileNotFoundError, match="pattern file not found"):
        load_pattern(tmp_path / "missing.json")
