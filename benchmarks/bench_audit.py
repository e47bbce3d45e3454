"""The audit log and the consent checks: how many a second each takes on one core.

Reported, all measured in this run on one thread:

- :meth:`neurolace.privacy.audit.AuditLog.append` with every entry fsync'd (as shipped), and
  with fsync replaced by a no-op (the CPU cost alone: hashing, JSON, the lock, the write,
  a signed checkpoint every 64 entries): entries/s;
- :func:`neurolace.privacy.audit.verify_log` over the log just written: entries/s;
- :meth:`neurolace.privacy.consent.ConsentRegistry.allowed` (one ``stat`` when nothing
  changed; the dashboard calls it on every check) and ``require`` with an audit log (one
  fsync'd audit entry per check): checks/s.

Times are wall clock on one thread of a shared machine; the fsync'd rates depend on the disk
(the folder is printed). ``--quick`` writes fewer entries.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from unittest import mock

from benchmarks._common import table
from neurolace.privacy.audit import AuditLog, verify_log
from neurolace.privacy.consent import ConsentRegistry


def _append(site: Path, n: int) -> float:
    log = AuditLog.for_site(site)
    start = time.perf_counter()
    for index in range(n):
        log.append("access", actor="dr_lee", participant_id="P001", purpose="clinician_view", index=index)
    seconds = time.perf_counter() - start
    log.close()
    return n / seconds


def run(quick: bool = False) -> dict:
    n = 300 if quick else 2000
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder)
        synced = _append(site, n)
        with mock.patch.object(os, "fsync", lambda descriptor: None):
            unsynced = _append(site, n * 5)
        start = time.perf_counter()
        report = verify_log(site / "audit.log")
        verify_rate = report.n_entries / (time.perf_counter() - start)
        assert report.ok, report.problems

        registry = ConsentRegistry.for_site(site)
        registry.grant("P001", "clinician_view", recorded_by="dr_lee")
        checks = n * 20
        start = time.perf_counter()
        for _ in range(checks):
            registry.allowed("P001", "clinician_view")
        allowed_rate = checks / (time.perf_counter() - start)
        with AuditLog.for_site(site) as log:
            audited = ConsentRegistry.for_site(site, audit=log)
            start = time.perf_counter()
            for _ in range(n // 4):
                audited.require("P001", "clinician_view", actor="dashboard")
            require_rate = (n // 4) / (time.perf_counter() - start)
    result = {
        "folder": tempfile.gettempdir(),
        "append_fsync_entries_per_s": synced,
        "append_no_fsync_entries_per_s": unsynced,
        "verify_entries_per_s": verify_rate,
        "verified_entries": report.n_entries,
        "consent_allowed_checks_per_s": allowed_rate,
        "consent_require_audited_checks_per_s": require_rate,
    }
    table(f"audit log and consent checks (files in {result['folder']})", ["operation", "per s"], [
        ["audit append, fsync'd", synced],
        ["audit append, fsync off (CPU only)", unsynced],
        [f"verify_log ({report.n_entries} entries)", verify_rate],
        ["consent allowed()", allowed_rate],
        ["consent require(), audited", require_rate],
    ])
    return result
