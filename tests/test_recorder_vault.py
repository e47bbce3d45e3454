"""The recorder into the vault: the same bytes sealed block by block, a killed run loses at most a block."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from runtime_fixtures import REPO_ROOT

from neurolace.core.errors import FormatError, InvalidInputError, NeurolaceError
from neurolace.privacy.errors import KeyMissingError
from neurolace.privacy.site import PASSPHRASE_ENV
from neurolace.privacy.vault import Vault
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.recorder import (
    RecordWriter,
    next_free_record_path,
    read_record,
    record_to_nwb,
    recover_record,
)

PASSPHRASE = "recorder test passphrase"
#: int16 codes whose bytes spell a marker, to look for clear data on disk
MARKER_CODES = np.frombuffer(b"NEUROLACE-CLEAR!" * 8, dtype=np.int16).reshape(-1, 4)


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    site = tmp_path / "site"
    vault = Vault.create(site, PASSPHRASE, scrypt_n=2**4)
    vault.add_participant("P1")
    return site


@pytest.fixture
def vault(site):
    return Vault.open(site, PASSPHRASE)


def write_blocks(target, n_blocks: int, per_block: int = 4) -> RecordWriter:
    writer = RecordWriter(target, header={"session": "t"}, block_ms=1e9, block_bytes=1 << 40, fsync=False)
    for block in range(n_blocks):
        for index in range(per_block):
            k = block * per_block + index
            writer.append(Message("a.features", np.full(5, k, dtype=np.float32), sequence=k,
                                  sample_index=391 * k, origin_ns=k, timestamp_ns=1_000 + k))
        writer._write_block()
    return writer


def assert_no_clear_marker(*folders) -> None:
    marker = MARKER_CODES.tobytes()[:16]
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert marker not in path.read_bytes(), f"clear data in {path}"


def test_a_vault_record_holds_the_same_bytes_as_a_plain_one(vault, tmp_path):
    write_blocks(tmp_path / "plain.nlrec", 3).close()
    writer = write_blocks(vault.ref("P1", "run.nlrec"), 3)
    writer.close()
    assert writer.blocks == 3 and writer.messages == 12
    assert vault.read_bytes("P1", "run.nlrec") == (tmp_path / "plain.nlrec").read_bytes()
    report = read_record(vault.ref("P1", "run.nlrec"))
    assert report.clean and report.good_blocks == 3 and report.header["session"] == "t"
    assert [int(m.payload[0]) for m in report.streams["a.features"]] == list(range(12))
    with vault.reader("P1", "run.nlrec") as reader:
        assert reader.kind == "record" and reader.chunks_read == 0
        assert len(list(reader)) == 4  # the file header, then one chunk per block


def test_a_killed_writer_loses_only_the_block_being_assembled(site, vault):
    script = textwrap.dedent(f"""
        import os, sys
        import numpy as np
        sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
        from test_recorder_vault import write_blocks
        from neurolace.privacy.vault import Vault
        vault = Vault.open({str(site)!r}, {PASSPHRASE!r})
        writer = write_blocks(vault.ref("P1", "killed.nlrec"), 5)
        from neurolace.runtime.messages import Message
        writer.append(Message("a.features", np.zeros(5, dtype=np.float32)))  # buffered, never written
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=REPO_ROOT)
    ref = vault.ref("P1", "killed.nlrec")
    report = recover_record(ref)
    assert report.good_blocks == 5 and report.messages == 20
    assert "truncated after chunk 5" in report.problem
    with pytest.raises(FormatError, match="5 blocks, 20 messages intact"):
        read_record(ref)
    assert next_free_record_path(ref).name == "killed.1.nlrec"  # the killed run's entry is kept


def test_a_tampered_block_stops_recovery_there(vault):
    write_blocks(vault.ref("P1", "run.nlrec"), 4).close()
    path = vault.path("P1", "run.nlrec")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    report = recover_record(vault.ref("P1", "run.nlrec"))
    assert 0 <= report.good_blocks < 4 and "fails authentication" in report.problem
    assert report.discarded_bytes > 0


def test_record_and_nwb_into_the_vault_leave_no_clear_bytes(vault, site, tmp_path):
    import h5py
    from pynwb import NWBHDF5IO

    ref = vault.ref("P1", "raw.nlrec")
    writer = RecordWriter(ref, fsync=False)
    for block in range(3):
        writer.append(Message("src.raw", MARKER_CODES, sample_index=len(MARKER_CODES) * block,
                              timestamp_ns=now_ns()))
    writer.close()
    record_to_nwb(ref, vault.ref("P1", "raw.nwb"), raw_fs_hz=1000.0)
    assert {entry.name: entry.kind for entry in vault.list("P1")} == {"raw.nlrec": "record", "raw.nwb": "nwb"}
    with h5py.File(io.BytesIO(vault.read_bytes("P1", "raw.nwb")), "r") as h5file, \
            NWBHDF5IO(file=h5file, mode="r") as nwb_io:
        data = nwb_io.read().acquisition["src__raw"].data[:]
    np.testing.assert_array_equal(data, np.concatenate([MARKER_CODES] * 3))
    assert_no_clear_marker(tmp_path)


SESSION = """
[nodes.participant]
type = "sim_participant"
n_channels = 16
[nodes.recorder]
type = "recorder"
path = "run.nlrec"
vault = true
participant = "{participant}"
site = "{site}"
block_ms = 50.0
inputs = {{ streams = "*" }}
"""


def test_a_session_records_into_the_vault_with_an_audit_trail(site, vault, tmp_path):
    from neurolace.privacy.audit import verify_log
    from neurolace.runtime.graph import run_session

    before = sorted(p.name for p in tmp_path.iterdir())
    report = run_session(SESSION.format(participant="P1", site=site.as_posix()), duration_s=0.4)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written outside the site
    assert {entry.name for entry in vault.list("P1")} == {"run.nlrec", "run.nwb"}
    record = read_record(vault.ref("P1", "run.nlrec"))
    assert record.clean and len(record.streams["participant.features"]) > 0
    actions = [json.loads(line)["action"] for line in (site / "audit.log").read_text().splitlines()]
    assert {"key_open", "record_start", "record_end"} <= set(actions)
    assert actions.index("record_start") < actions.index("record_end")
    assert verify_log(site / "audit.log").ok
    summary = json.dumps(report, default=str)
    assert "run.nlrec" in summary
    run_session(SESSION.format(participant="P1", site=site.as_posix()), duration_s=0.2)
    assert {"run.1.nlrec", "run.1.nwb"} <= {entry.name for entry in vault.list("P1")}


def test_session_mistakes_are_named(site, tmp_path, monkeypatch):
    from neurolace.runtime.graph import run_session

    with pytest.raises(NeurolaceError, match="participant P9 has no data key"):
        run_session(SESSION.format(participant="P9", site=site.as_posix()), duration_s=0.2)
    with pytest.raises(NeurolaceError, match="vault = true needs participant"):
        run_session(SESSION.format(participant="", site=site.as_posix()), duration_s=0.2)
    plain = SESSION.replace("vault = true\n", "").format(participant="P1", site=site.as_posix())
    with pytest.raises(NeurolaceError, match="needs vault = true"):
        run_session(plain.replace('path = "run.nlrec"', f'path = "{(tmp_path / "x.nlrec").as_posix()}"'),
                    duration_s=0.2)
    monkeypatch.delenv(PASSPHRASE_ENV)
    monkeypatch.setattr("neurolace.privacy.vault._keyring_passphrase", lambda site_dir: None)
    with pytest.raises((KeyMissingError, NeurolaceError), match=f"set {PASSPHRASE_ENV}"):
        run_session(SESSION.format(participant="P1", site=site.as_posix()), duration_s=0.2)
    assert not (tmp_path / "x.nlrec").exists()
    with pytest.raises(InvalidInputError):
        next_free_record_path(Vault.open(site, PASSPHRASE).ref("P1", "../escape"))


def kill_once(process, ready, timeout_s: float = 30.0) -> int:
    """SIGKILL ``process`` once ``ready()`` holds; the monotonic ns of the kill."""
    with process:
        give_up = time.monotonic() + timeout_s
        while not ready() and time.monotonic() < give_up:
            if process.poll() is not None:
                pytest.fail(f"the run exited before it was killed: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        killed_ns = now_ns()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    return killed_ns


def test_sigkill_of_a_vault_run_loses_at_most_the_last_block(site, vault):
    block_ms = 100.0
    session = SESSION.format(participant="P1", site=site.as_posix()).replace("50.0", str(block_ms))
    script = f"from neurolace.runtime.graph import run_session\nrun_session({session!r}, duration_s=60.0)\n"
    partial = vault.path("P1", "run.nlrec").with_name("run.nlrec.partial")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stderr=subprocess.PIPE,
                               env={**os.environ, PASSPHRASE_ENV: PASSPHRASE})
    killed_ns = kill_once(process, lambda: partial.exists() and partial.stat().st_size > 16 * 4 * 50 * 1.5)
    report = recover_record(vault.ref("P1", "run.nlrec"))
    features = report.streams["participant.features"]
    assert report.good_blocks >= 3
    assert [m.sequence for m in features] == list(range(len(features)))
    lost_ms = (killed_ns - features[-1].timestamp_ns) / 1e6
    assert lost_ms < block_ms + 150.0, f"lost {lost_ms:.0f} ms of data, more than one {block_ms:.0f} ms block"
    assert "truncated" in report.problem
