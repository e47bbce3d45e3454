"""``neurolace report vault:PID/NAME``: a vault session is read only with clinician_view consent, audited."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import run_cli
from privacy_helpers import make_site

from neurolace.io.nwb import write_nwb
from neurolace.privacy.audit import read_entries, verify_log
from neurolace.privacy.consent import ConsentRegistry
from neurolace.privacy.site import AUDIT_LOG_FILE
from neurolace.sim.implant import simulate_implant

PASSPHRASE = "report test passphrase"


@pytest.fixture
def site(tmp_path, monkeypatch):
    site, vault = make_site(tmp_path, monkeypatch, PASSPHRASE)
    clear = tmp_path / "clear.nwb"
    write_nwb(clear, simulate_implant(duration_s=0.5, n_electrodes=16, seed=1).recording, subject_id="P001")
    vault.write_bytes("P001", "session.nwb", clear.read_bytes(), kind="nwb")
    clear.unlink()
    return site


def _actions(site):
    return [(entry["action"], entry["details"].get("purpose")) for _, entry in read_entries(site / AUDIT_LOG_FILE)
            if entry is not None and entry["action"] != "checkpoint"]


def test_a_vault_session_without_clinician_consent_is_refused_and_nothing_is_written(site, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, _, err = run_cli(["report", "vault:P001/session.nwb", "--out", out, "--site", site, "--by", "dr_x"], capsys)
    assert code == 3 and "no consent on record for 'clinician_view'" in err
    assert not out.exists() and not any(path.name.startswith(".report-") for path in site.iterdir())
    assert ("access_refused", "clinician_view") in _actions(site)


def test_with_consent_the_report_is_drawn_from_the_vault_and_the_read_is_audited(site, tmp_path, capsys):
    ConsentRegistry.for_site(site).grant("P001", "clinician_view", recorded_by="dr_lee")
    out = tmp_path / "report.html"
    code, stdout, err = run_cli(["report", "vault:P001/session.nwb", "--out", out, "--site", site, "--by", "dr_x"],
                                capsys)
    assert code == 0, err
    assert "sections drawn" in stdout and out.read_text().count("data:image/png;base64,") >= 5
    assert _actions(site).count(("access", "clinician_view")) == 2  # the consent check and the report itself
    assert not any(path.name.startswith(".report-") for path in site.iterdir())  # the clear copy is gone
    assert verify_log(site / AUDIT_LOG_FILE).ok
