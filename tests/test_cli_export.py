"""``neurolace export``: consent first (exit 3, nothing written), de-identified by default, every export audited."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from cli_helpers import error_line, run_cli
from privacy_helpers import make_site

from neurolace.core.recording import Recording
from neurolace.io.nwb import write_nwb
from neurolace.privacy.audit import AuditLog, read_entries, verify_log
from neurolace.privacy.consent import ConsentRegistry
from neurolace.privacy.deidentify import DEID_KEY_ENTRY
from neurolace.privacy.site import AUDIT_LOG_FILE
from neurolace.privacy.vault import Vault

PASSPHRASE = "export test passphrase"
PID = "P001"
SUBJECT_ID_SECRET = "P001"  # the file's subject id is the participant id, which must not leave the site
EXPERIMENTER = "Hibbert, Julius"
START = dt.datetime(2023, 11, 2, 15, 4, 5, tzinfo=dt.UTC)


@pytest.fixture
def site(tmp_path, monkeypatch):
    return make_site(tmp_path, monkeypatch, PASSPHRASE, (PID, "P002"))[0]


@pytest.fixture
def session(tmp_path):
    recording = Recording(np.arange(600, dtype=np.int16).reshape(200, 3), fs_hz=1000.0, gain_uv=0.5)
    path = tmp_path / "session.nwb"
    write_nwb(path, recording, subject_id=PID, session_start_time=START,
              extra_metadata={"experimenter": [EXPERIMENTER],
                              "subject": {"species": "Homo sapiens", "sex": "M", "age": "P52Y"}})
    return path


def grant(site, pid=PID):
    ConsentRegistry.for_site(site).grant(pid, "export_off_site", recorded_by="dr_lee", note="form v3")


def export(site, session, out, capsys, *extra):
    return run_cli(["export", session, "--deidentify", "--out", out, "--site", site, "--by", "dr_lee", *extra],
                   capsys)


def audit_actions(site):
    return [(entry["action"], entry["participant_id"]) for _line, entry in read_entries(site / AUDIT_LOG_FILE)
            if entry is not None]


def test_export_without_consent_is_refused_and_writes_nothing(site, session, tmp_path, capsys):
    out = tmp_path / "share" / "out.nwb"
    code, stdout, stderr = export(site, session, out, capsys, "--participant", PID)
    assert code == 3 and stdout == ""
    line = error_line(stderr, "export")
    assert "'P001'" in line and "'export_off_site'" in line and "no consent on record" in line
    assert not out.exists() and not out.parent.exists()
    assert ("access_refused", PID) in audit_actions(site)
    assert not Vault.open(site, PASSPHRASE).exists(PID, DEID_KEY_ENTRY)  # refused before any key is made


def test_withdrawn_consent_is_refused_at_once(site, session, tmp_path, capsys):
    grant(site)
    assert export(site, session, tmp_path / "first.nwb", capsys, "--participant", PID)[0] == 0
    ConsentRegistry.for_site(site).withdraw(PID, "export_off_site", recorded_by="dr_lee", note="phone call")
    code, _out, stderr = export(site, session, tmp_path / "second.nwb", capsys, "--participant", PID)
    assert code == 3 and "withdrew consent for 'export_off_site'" in error_line(stderr, "export")
    assert not (tmp_path / "second.nwb").exists()


def test_deidentified_export_is_audited_and_holds_no_identifier(site, session, tmp_path, capsys):
    grant(site)
    out = tmp_path / "out.nwb"
    code, stdout, _err = export(site, session, out, capsys, "--participant", PID, "--json")
    assert code == 0
    document = json.loads(stdout)
    data = out.read_bytes()
    assert EXPERIMENTER.encode() not in data and b"2023-11-02" not in data
    assert document["pseudonym"].encode() in data
    assert SUBJECT_ID_SECRET not in document["pseudonym"]
    exports = [entry for _line, entry in read_entries(site / AUDIT_LOG_FILE) if entry and entry["action"] == "export"]
    assert len(exports) == 1 and exports[0]["participant_id"] == PID and exports[0]["actor"] == "dr_lee"
    assert exports[0]["details"]["deidentified"] is True
    assert ("access", PID) in audit_actions(site)
    assert verify_log(site / AUDIT_LOG_FILE).ok


def test_two_exports_shift_alike_and_another_participant_differently(site, session, tmp_path, capsys):
    from pynwb import NWBHDF5IO

    grant(site)
    grant(site, "P002")
    other = tmp_path / "other.nwb"
    write_nwb(other, Recording(np.zeros((50, 1), np.int16), fs_hz=1000.0, gain_uv=1.0), subject_id="P002",
              session_start_time=START, extra_metadata={"subject": {"species": "Homo sapiens", "sex": "F",
                                                                    "age": "P40Y"}})
    starts = []
    for pid, source, name in ((PID, session, "a.nwb"), (PID, session, "b.nwb"), ("P002", other, "c.nwb")):
        assert export(site, source, tmp_path / name, capsys, "--participant", pid)[0] == 0
        with NWBHDF5IO(str(tmp_path / name), mode="r") as io:
            starts.append(io.read().session_start_time)
    assert starts[0] == starts[1] != starts[2]


def test_vault_entry_and_recorder_file(site, tmp_path, capsys):
    from neurolace.runtime.messages import Message
    from neurolace.runtime.recorder import RecordWriter

    grant(site)
    vault = Vault.open(site, PASSPHRASE)
    writer = RecordWriter(vault.ref(PID, "run.nlrec"), header={"session": "visit of P001"}, fsync=False)
    for index in range(4):
        writer.append(Message("implant.raw", np.full((10, 2), index, np.int16), sequence=index,
                              sample_index=10 * index, timestamp_ns=1_000 + index))
    writer.close()
    out = tmp_path / "run.nwb"
    code, stdout, _err = run_cli(["export", f"vault:{PID}/run.nlrec", "--deidentify", "--out", out, "--site", site,
                                  "--age", "P40Y", "--sex", "U", "--species", "Homo sapiens", "--json"], capsys)
    assert code == 0 and out.exists()
    assert b"visit of P001" not in out.read_bytes()
    assert json.loads(stdout)["participant"] == PID
    assert not [path for path in site.iterdir() if path.name.startswith(".export-")]  # scratch removed


def test_refuses_without_deidentify_unless_identified(site, session, tmp_path, capsys):
    code, _out, stderr = run_cli(["export", session, "--out", tmp_path / "x.nwb", "--participant", PID,
                                  "--site", site], capsys)
    assert code == 2 and "without --deidentify" in error_line(stderr, "export")
    code, _out, stderr = run_cli(["export", session, "--identified", "--out", tmp_path / "x.nwb",
                                  "--participant", PID, "--site", site], capsys)
    assert code == 3 and "no consent on record" in error_line(stderr, "export")
    assert not (tmp_path / "x.nwb").exists()
    grant(site)
    code, _out, _err = run_cli(["export", session, "--identified", "--out", tmp_path / "x.nwb",
                                "--participant", PID, "--site", site], capsys)
    assert code == 0 and (tmp_path / "x.nwb").read_bytes() == session.read_bytes()
    exports = [entry for _line, entry in read_entries(site / AUDIT_LOG_FILE) if entry and entry["action"] == "export"]
    assert exports[-1]["details"]["deidentified"] is False


def test_help_says_off_site_needs_deidentify(capsys):
    code, stdout, _err = run_cli(["export", "--help"], capsys)
    assert code == 0 and "Without --deidentify the export is refused" in stdout and "exit status" in stdout


def test_bad_input(site, session, tmp_path, capsys):
    grant(site)
    code, _out, stderr = export(site, session, tmp_path / "x.nwb", capsys)
    assert code == 2 and "--participant PID is required" in error_line(stderr, "export")
    code, _out, stderr = export(site, "vault:P001/../x", tmp_path / "x.nwb", capsys)
    assert code == 2 and "vault entry name" in error_line(stderr, "export")
    code, _out, stderr = export(site, "vault:P001/run.nlrec", tmp_path / "x.nwb", capsys, "--participant", "P002")
    assert code == 2 and "is not the participant of" in error_line(stderr, "export")
    code, _out, stderr = export(site, tmp_path / "missing.nwb", tmp_path / "x.nwb", capsys, "--participant", PID)
    assert code == 2 and "missing.nwb" in error_line(stderr, "export")
    (tmp_path / "exists.nwb").write_bytes(b"keep")
    code, _out, stderr = export(site, session, tmp_path / "exists.nwb", capsys, "--participant", PID)
    assert code == 2 and "--force" in error_line(stderr, "export")
    assert (tmp_path / "exists.nwb").read_bytes() == b"keep"
    code, _out, stderr = export(site, session, tmp_path / "x.nwb", capsys, "--participant", "P002")
    assert code == 3 and "no consent on record" in error_line(stderr, "export")
    grant(site, "P002")
    code, _out, stderr = export(site, session, tmp_path / "x.nwb", capsys, "--participant", "P002")
    assert code == 3 and "subject_id is not the participant" in error_line(stderr, "export")
    assert not (tmp_path / "x.nwb").exists()
    with AuditLog.for_site(site):
        pass
    assert verify_log(site / AUDIT_LOG_FILE).ok
