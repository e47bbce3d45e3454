"""``neurolace stim check`` and ``stim keygen``: exit codes, --json fields, the shipped examples as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import error_line, run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "stim"
SAFE = {"electrode_area_um2": 2000, "material": "SIROF", "amplitude_ua": 100, "cathodic_width_us": 200,
        "interphase_us": 100, "anodic_width_us": 400, "anodic_amplitude_ua": 50, "frequency_hz": 100,
        "train_s": 1.0, "channels": [0]}


def write(tmp_path, values) -> Path:
    path = tmp_path / "pattern.json"
    path.write_text(values if isinstance(values, str) else json.dumps(values))
    return path


def test_safe_pattern_exits_0_with_the_known_answers(tmp_path, capsys):
    code, out, err = run_cli(["stim", "check", write(tmp_path, SAFE)], capsys)
    assert code == 0, err
    assert "SAFE" in out and "20 nC" in out and "1000 µC/cm²" in out and "Shannon k          1.30" in out


def test_json_fields(tmp_path, capsys):
    code, out, _ = run_cli(["stim", "check", write(tmp_path, SAFE), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["safe"] is True
    assert result["charge_per_phase_nc"] == 20.0
    assert result["charge_density_uc_per_cm2"] == pytest.approx(1000.0)
    assert round(result["shannon_k"], 2) == 1.30
    assert result["violations"] == []
    assert result["limits"]["shannon_k"] == 1.5


def test_unsafe_pattern_exits_3_naming_every_rule(tmp_path, capsys):
    values = {**SAFE, "amplitude_ua": 150, "anodic_amplitude_ua": 20, "frequency_hz": 500}
    code, out, _ = run_cli(["stim", "check", write(tmp_path, values), "--json"], capsys)
    assert code == 3
    result = json.loads(out)
    assert result["safe"] is False
    rules = {v["rule"] for v in result["violations"]}
    assert {"amplitude", "charge_balance", "charge_per_phase", "frequency"} <= rules
    for violation in result["violations"]:
        assert {"rule", "limit", "value"} <= set(violation)
    amplitude = next(v for v in result["violations"] if v["rule"] == "amplitude")
    assert (amplitude["limit"], amplitude["value"]) == (100.0, 150.0)
    code, out, _ = run_cli(["stim", "check", write(tmp_path, values)], capsys)
    assert code == 3
    assert re.search(r"violated: amplitude: .* \[limit 100 µA, value 150 µA\]", out)


@pytest.mark.parametrize("values, field", [
    ({k: v for k, v in SAFE.items() if k != "train_s"}, "train_s"),
    ({**SAFE, "amplitude_ua": -100}, "amplitude_ua"),
    ({**SAFE, "material": "Gold"}, "material"),
    ({**SAFE, "channels": []}, "channels"),
    ({**SAFE, "voltage": 3}, "voltage"),
    ('{"amplitude_ua": 100', "<pattern>"),
])
def test_bad_input_exits_2_naming_the_field(tmp_path, capsys, values, field):
    path = write(tmp_path, values)
    code, out, err = run_cli(["stim", "check", path], capsys)
    assert code == 2 and out == ""
    assert field in error_line(err, "stim")
    code, out, _ = run_cli(["stim", "check", path, "--json"], capsys)
    assert code == 2
    assert field in [problem["field"] for problem in json.loads(out)["fields"]]


def test_missing_file_exits_2(tmp_path, capsys):
    code, _, err = run_cli(["stim", "check", tmp_path / "none.json"], capsys)
    assert code == 2 and "pattern file not found" in error_line(err, "stim")


@pytest.mark.parametrize("name, code, rules", [
    ("icms_safe.json", 0, set()),
    ("too_dense.json", 3, {"charge_density", "shannon_k"}),
    ("imbalanced.json", 3, {"charge_balance"}),
])
def test_examples_run_as_written(capsys, name, code, rules):
    status, out, _ = run_cli(["stim", "check", EXAMPLES / name, "--json"], capsys)
    assert status == code
    assert {v["rule"] for v in json.loads(out)["violations"]} == rules


def test_keygen_writes_a_private_key_and_prints_the_public_key(tmp_path, capsys):
    from neurolace.stim.commands import load_clinician_key, public_key_text

    path = tmp_path / "dr-a.pem"
    code, out, _ = run_cli(["stim", "keygen", path], capsys)
    assert code == 0
    assert out.strip() == public_key_text(load_clinician_key(path))
    assert path.stat().st_mode & 0o777 == 0o600
    code, _, err = run_cli(["stim", "keygen", path], capsys)
    assert code == 2 and "--force" in error_line(err, "stim")
