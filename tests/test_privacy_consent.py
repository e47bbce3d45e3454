"""Consent records: no record refuses, a withdrawal blocks the next check at once, in every process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
from process_helpers import run_together

from neurolace.core.errors import InvalidInputError
from neurolace.privacy.audit import AuditLog, read_entries, verify_log
from neurolace.privacy.consent import PURPOSES, ConsentRecord, ConsentRegistry
from neurolace.privacy.errors import ConsentError, IntegrityError


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def test_no_record_means_not_allowed(site):
    registry = ConsentRegistry.for_site(site)
    assert all(not registry.allowed("P001", purpose) for purpose in PURPOSES)
    assert registry.history("P001") == []
    assert registry.current("P001") == dict.fromkeys(PURPOSES, False)
    assert not (site / "consent.json").exists()  # reading writes nothing


def test_grant_then_withdraw_blocks_the_next_check(site):
    registry = ConsentRegistry.for_site(site)
    granted = registry.grant("P001", "clinician_view", recorded_by="dr_lee", note="form v3")
    assert registry.allowed("P001", "clinician_view")
    assert not registry.allowed("P001", "research_sharing")  # one purpose at a time
    assert not registry.allowed("P002", "clinician_view")  # one participant at a time
    withdrawn = registry.withdraw("P001", "clinician_view", recorded_by="coordinator")
    assert not registry.allowed("P001", "clinician_view")
    assert registry.history("P001") == [granted, withdrawn]
    assert (granted.granted, withdrawn.granted) == (True, False)
    assert (granted.recorded_by, granted.note, withdrawn.recorded_by) == ("dr_lee", "form v3", "coordinator")
    assert granted.time_ns <= withdrawn.time_ns
    registry.grant("P001", "clinician_view", recorded_by="dr_lee")  # consent given again
    assert registry.allowed("P001", "clinician_view") and len(registry.history("P001")) == 3


def test_history_is_never_rewritten(site):
    registry = ConsentRegistry.for_site(site)
    snapshots = []
    for index, purpose in enumerate(PURPOSES * 2):
        change = registry.grant if index % 2 == 0 else registry.withdraw
        change("P001", purpose, recorded_by="dr_lee")
        snapshots.append(json.loads((site / "consent.json").read_text())["records"])
    for before, after in itertools.pairwise(snapshots):
        assert after[:len(before)] == before and len(after) == len(before) + 1
    assert os.stat(site / "consent.json").st_mode & 0o777 == 0o600


def test_require_names_the_participant_and_the_purpose(site):
    registry = ConsentRegistry.for_site(site)
    with pytest.raises(ConsentError,
                       match="participant 'P001' has no consent on record for 'model_training'"):
        registry.require("P001", "model_training", actor="trainer")
    registry.grant("P001", "model_training", recorded_by="dr_lee")
    registry.require("P001", "model_training", actor="trainer")
    registry.withdraw("P001", "model_training", recorded_by="dr_kim")
    with pytest.raises(ConsentError, match=r"participant 'P001' withdrew consent for 'model_training' "
                                           r"\(recorded by dr_kim at \d{4}-\d\d-\d\d"):
        registry.require("P001", "model_training", actor="trainer")
    assert issubclass(ConsentError, PermissionError)


def test_a_registry_made_before_a_withdrawal_sees_it(site):
    writer = ConsentRegistry.for_site(site)
    reader = ConsentRegistry.for_site(site)
    writer.grant("P001", "export_off_site", recorded_by="dr_lee")
    assert reader.allowed("P001", "export_off_site")
    writer.withdraw("P001", "export_off_site", recorded_by="dr_lee")
    assert not reader.allowed("P001", "export_off_site")


READER = """
import sys
from neurolace.privacy.consent import ConsentRegistry
registry = ConsentRegistry.for_site(sys.argv[1])
changes = []
registry.on_change(lambda: changes.append(1))
for line in sys.stdin:
    print(registry.allowed("P001", "clinician_view"), len(changes), flush=True)
"""


def test_a_withdrawal_blocks_a_long_running_process_at_its_next_check(site):
    registry = ConsentRegistry.for_site(site)
    registry.grant("P001", "clinician_view", recorded_by="dr_lee")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(site)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def check() -> str:
            reader.stdin.write("check\n")
            reader.stdin.flush()
            return reader.stdout.readline().strip()

        assert check() == "True 0"
        registry.withdraw("P001", "clinician_view", recorded_by="dr_lee")
        assert check() == "False 1"  # the very next check, and its listeners were told
        assert check() == "False 1"
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    assert reader.returncode == 0, reader.stderr.read()


GRANTER = """
import sys
from neurolace.privacy.consent import ConsentRegistry
registry = ConsentRegistry.for_site(sys.argv[1])
sys.stdin.readline()
for index in range(15):
    registry.grant(f"{sys.argv[2]}{index}", "research_sharing", recorded_by=sys.argv[2])
"""


def test_two_processes_lose_no_record(site):
    run_together(GRANTER, [[site, name] for name in ("A", "B")])
    registry = ConsentRegistry.for_site(site)
    assert all(registry.allowed(f"{name}{index}", "research_sharing") for name in "AB" for index in range(15))


def test_on_change_tells_listeners_until_unsubscribed(site):
    registry = ConsentRegistry.for_site(site)
    other = ConsentRegistry.for_site(site)
    seen, seen_other = [], []
    stop = registry.on_change(lambda: seen.append(1))
    other.on_change(lambda: seen_other.append(1))
    registry.grant("P001", "clinician_view", recorded_by="dr_lee")
    assert seen == [1] and seen_other == []  # the other object learns at its next read
    other.allowed("P001", "clinician_view")
    other.allowed("P001", "clinician_view")
    assert seen_other == [1]
    stop()
    registry.withdraw("P001", "clinician_view", recorded_by="dr_lee")
    assert seen == [1]


def test_changes_and_checks_are_audited(site):
    log = AuditLog.for_site(site)
    registry = ConsentRegistry.for_site(site, audit=log)
    registry.grant("P001", "clinician_view", recorded_by="dr_lee", note="form v3")
    registry.require("P001", "clinician_view", actor="dashboard")
    registry.withdraw("P001", "clinician_view", recorded_by="dr_lee")
    with pytest.raises(ConsentError):
        registry.require("P001", "clinician_view", actor="dashboard")
    log.close()
    entries = [entry for _, entry in read_entries(site / "audit.log") if entry["action"] != "checkpoint"]
    assert [(e["action"], e["actor"], e["participant_id"], e["details"]["purpose"]) for e in entries] == [
        ("consent_grant", "dr_lee", "P001", "clinician_view"),
        ("access", "dashboard", "P001", "clinician_view"),
        ("consent_withdraw", "dr_lee", "P001", "clinician_view"),
        ("access_refused", "dashboard", "P001", "clinician_view"),
    ]
    assert entries[0]["details"]["note"] == "form v3"
    assert verify_log(site / "audit.log").ok


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: r.grant("P 1", "clinician_view", recorded_by="x"), "participant id must be"),
    (lambda r: r.grant("P1", "marketing", recorded_by="x"), "purpose must be one of 'clinician_view'"),
    (lambda r: r.grant("P1", "clinician_view", recorded_by=" "), "recorded_by must be a non-empty string"),
    (lambda r: r.grant("P1", "clinician_view", recorded_by="x", note=3), "note must be a string"),
    (lambda r: r.allowed("P1", "everything"), "purpose must be one of"),
    (lambda r: r.require("P1", "clinician_view", actor=""), "actor must be a non-empty string"),
])
def test_bad_input_is_refused_and_nothing_is_written(site, call, message):
    registry = ConsentRegistry.for_site(site)
    with pytest.raises(InvalidInputError, match=message):
        call(registry)
    assert not (site / "consent.json").exists()


@pytest.mark.parametrize("content", [
    "{not json", json.dumps({"version": 2, "records": []}),
    json.dumps({"version": 1, "records": [{"pid": "P1"}]}),
    json.dumps({"version": 1, "records": [{"pid": "P1", "purpose": "clinician_view", "granted": "yes",
                                           "recorded_by": "x", "time_ns": 1, "note": ""}]}),
])
def test_a_corrupt_file_fails_closed(site, content):
    (site / "consent.json").write_text(content)
    with pytest.raises(IntegrityError, match="consent file"):
        ConsentRegistry.for_site(site)


def test_a_file_corrupted_under_a_running_registry_refuses_the_next_check(site):
    registry = ConsentRegistry.for_site(site)
    registry.grant("P001", "clinician_view", recorded_by="dr_lee")
    (site / "consent.json").write_text("garbage")
    with pytest.raises(IntegrityError):
        registry.allowed("P001", "clinician_view")


def test_records_are_plain_data():
    record = ConsentRecord("P001", "clinician_view", True, "dr_lee", 5, "")
    assert record.to_dict() == {"pid": "P001", "purpose": "clinician_view", "granted": True,
                                "recorded_by": "dr_lee", "time_ns": 5, "note": ""}
