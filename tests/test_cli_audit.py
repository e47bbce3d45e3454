"""``neurolace audit`` and ``neurolace consent``: exit statuses, messages and what they write."""

from __future__ import annotations

import json

import pytest
from cli_helpers import error_line, run_cli

from neurolace.cli.audit import EXIT_PROBLEMS
from neurolace.privacy.audit import AuditLog, read_entries
from neurolace.privacy.consent import ConsentRegistry


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def _consent(site, *argv, capsys):
    return run_cli(["consent", *argv, "--site", site], capsys)


def test_consent_grant_withdraw_show_round_trip_and_audit(site, capsys):
    code, out, _ = _consent(site, "grant", "P001", "clinician_view", "--by", "dr_lee", "--note", "form v3",
                            capsys=capsys)
    assert code == 0 and "P001: clinician_view granted (recorded by dr_lee)" in out
    assert ConsentRegistry.for_site(site).allowed("P001", "clinician_view")
    code, out, _ = _consent(site, "withdraw", "P001", "clinician_view", "--by", "dr_kim", capsys=capsys)
    assert code == 0 and "withdrawn" in out
    assert not ConsentRegistry.for_site(site).allowed("P001", "clinician_view")
    code, out, _ = _consent(site, "show", "P001", "--json", capsys=capsys)
    shown = json.loads(out)
    assert code == 0 and shown["allowed"]["clinician_view"] is False
    assert [(r["granted"], r["recorded_by"], r["note"]) for r in shown["history"]] == [
        (True, "dr_lee", "form v3"), (False, "dr_kim", "")]
    code, out, _ = _consent(site, "show", "P001", capsys=capsys)
    assert code == 0 and "clinician_view     not allowed" in out and "form v3" in out
    actions = [entry["action"] for _, entry in read_entries(site / "audit.log")]
    assert [a for a in actions if a != "checkpoint"] == ["consent_grant", "consent_withdraw"]


def test_consent_uses_the_site_from_the_environment(site, capsys, monkeypatch):
    monkeypatch.setenv("NEUROLACE_SITE_DIR", str(site))
    code, _, _ = run_cli(["consent", "grant", "P001", "model_training", "--by", "dr_lee"], capsys)
    assert code == 0 and ConsentRegistry.for_site(site).allowed("P001", "model_training")


@pytest.mark.parametrize(("argv", "message"), [
    (["grant", "P001", "marketing", "--by", "x"], "invalid choice: 'marketing'"),
    (["grant", "P001", "clinician_view"], "the following arguments are required: --by"),
    (["grant", "../P1", "clinician_view", "--by", "x"], "participant id must be"),
    (["grant", "P001", "clinician_view", "--by", " "], "recorded_by must be a non-empty string"),
    (["show", "P 1"], "participant id must be"),
])
def test_consent_bad_input_is_one_error_line(site, capsys, argv, message):
    code, out, err = _consent(site, *argv, capsys=capsys)
    assert code == 2 and out == "" and message in error_line(err, "consent")
    assert not (site / "consent.json").exists()


def test_consent_refuses_a_missing_site(tmp_path, capsys):
    code, _, err = run_cli(["consent", "grant", "P001", "clinician_view", "--by", "x", "--site",
                            tmp_path / "nope"], capsys)
    assert code == 2 and "site directory" in error_line(err, "consent") and "does not exist" in err
    assert not (tmp_path / "nope").exists()


@pytest.fixture
def log(site):
    audit = AuditLog.for_site(site, checkpoint_every=4)
    for index in range(6):
        audit.append("access" if index % 2 else "export", actor="dr_lee",
                     participant_id="P001" if index < 3 else "P002", index=index)
    audit.close()
    return site / "audit.log"


def test_verify_an_intact_log_exits_0(log, capsys):
    code, out, _ = run_cli(["audit", "verify", log], capsys)
    assert code == 0 and "intact; 8 entries, 2 signed checkpoints, 0 entries after the last checkpoint" in out
    code, out, _ = run_cli(["audit", "verify", log, "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["problems"] == [] and report["n_entries"] == 8


def test_verify_lists_every_problem_and_exits_3(log, capsys):
    lines = log.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["actor"] = "mallory"
    lines[1] = json.dumps(edited)
    del lines[5]
    log.write_text("\n".join(lines) + "\n")
    code, out, _ = run_cli(["audit", "verify", log], capsys)
    assert code == EXIT_PROBLEMS == 3
    assert "line 2, seq 1: edited:" in out and "line 6, seq 6: deleted:" in out
    assert "NOT intact, 2 problem(s)" in out
    code, out, _ = run_cli(["audit", "verify", log, "--json"], capsys)
    problems = json.loads(out)["problems"]
    assert code == 3 and [(p["line"], p["seq"], p["kind"]) for p in problems] == [(2, 1, "edited"),
                                                                                    (6, 6, "deleted")]


def test_verify_against_an_escrowed_head(log, tmp_path, capsys):
    code, out, _ = run_cli(["audit", "head", log], capsys)
    head = json.loads(out)
    assert code == 0 and head["seq"] == 7 and head["count"] == 8
    escrow = tmp_path / "escrow.json"
    escrow.write_text(out)
    assert run_cli(["audit", "verify", log, "--head", escrow], capsys)[0] == 0
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:4]) + "\n")  # the log cut back to its first checkpoint...
    (log.parent / "audit.head").unlink()  # ...and its head removed
    code, out, _ = run_cli(["audit", "verify", log, "--head", escrow], capsys)
    assert code == 3 and "truncated" in out and "the escrowed head" in out


def test_verify_require_signed_tail(site, capsys):
    audit = AuditLog.for_site(site, checkpoint_every=2)
    for _ in range(3):
        audit.append("login", actor="dr_lee")
    del audit  # no close: one entry after the last checkpoint
    assert run_cli(["audit", "verify", site / "audit.log"], capsys)[0] == 0
    code, out, _ = run_cli(["audit", "verify", site / "audit.log", "--require-signed-tail"], capsys)
    assert code == 3 and "line 4, seq 3: unsigned_tail" in out


def test_show_filters_by_participant_and_action(log, capsys):
    code, out, _ = run_cli(["audit", "show", log, "--participant", "P002", "--json"], capsys)
    entries = json.loads(out)["entries"]
    assert code == 0 and [e["details"]["index"] for e in entries] == [3, 4, 5]
    code, out, _ = run_cli(["audit", "show", log, "--participant", "P001", "--action", "export"], capsys)
    assert code == 0 and len(out.splitlines()) == 2 and all("export" in line for line in out.splitlines())
    code, out, _ = run_cli(["audit", "show", log], capsys)
    assert code == 0 and len(out.splitlines()) == 8 and "checkpoint" in out and "signature" not in out


@pytest.mark.parametrize("action", ["verify", "show", "head"])
def test_a_missing_log_is_one_error_line(tmp_path, capsys, action):
    code, out, err = run_cli(["audit", action, tmp_path / "absent.log"], capsys)
    assert code == 2 and out == "" and "absent" in error_line(err, "audit")


@pytest.mark.parametrize("action", ["verify", "show"])
def test_a_directory_as_log_is_one_error_line(tmp_path, capsys, action):
    code, _, err = run_cli(["audit", action, tmp_path], capsys)
    assert code == 2
    error_line(err, "audit")


def test_a_binary_file_is_not_intact(tmp_path, capsys):
    (tmp_path / "junk.log").write_bytes(b"\x00\xff\xfe garbage\n{}\n")
    code, out, _ = run_cli(["audit", "verify", tmp_path / "junk.log"], capsys)
    assert code == 3 and "line 1: malformed" in out and "line 2: malformed" in out


def test_head_refuses_a_forged_head(log, capsys):
    head_file = log.parent / "audit.head"
    head = json.loads(head_file.read_text())
    head["count"] = 1
    head_file.write_text(json.dumps(head))
    code, _, err = run_cli(["audit", "head", log], capsys)
    assert code == 2 and "does not verify" in error_line(err, "audit")
