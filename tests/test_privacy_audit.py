"""The audit log: every way of editing it is caught at the entry that was changed (property-based).

Logs are built once per module (each append is fsync'd); each example edits a copy of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from process_helpers import run_together

from neurolace.core.errors import InvalidInputError
from neurolace.privacy.audit import (
    AUDIT_ACTIONS,
    CHECKPOINT_ACTION,
    GENESIS_HASH,
    AuditLog,
    entry_hash,
    read_entries,
    read_head,
    verify_head,
    verify_log,
)
from neurolace.privacy.errors import AuditError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fill(log: AuditLog, n_entries: int, *, offset: int = 0) -> None:
    for index in range(n_entries):
        log.append(AUDIT_ACTIONS[(index + offset) % len(AUDIT_ACTIONS)], actor=f"user{index % 3}",
                   participant_id=None if index % 4 == 0 else f"P{index % 5:03d}", index=index,
                   purpose="clinician_view", text="é\u2603" if index % 7 == 0 else "plain")


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    """Closed logs of 3, 13 and 37 entries (checkpoints every 64, 5, 8) and an open one with a tail."""
    built = {}
    for name, n_entries, every, close in (("small", 3, 64, True), ("medium", 13, 5, True),
                                          ("large", 37, 8, True), ("tail", 20, 6, False)):
        site = tmp_path_factory.mktemp(name)
        log = AuditLog.for_site(site, checkpoint_every=every)
        _fill(log, n_entries, offset=n_entries)
        if close:
            log.close()
        built[name] = site
    return built


def _lines(site: Path) -> list[str]:
    return (site / "audit.log").read_text().splitlines()


def _verify_edited(site: Path, lines: list[str], **options):
    """verify_log of ``lines`` as the log of a copy of ``site`` (same key and head)."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder)
        for name in ("audit.head", "audit_signing.pub"):
            if (site / name).exists():
                shutil.copy(site / name, copy / name)
        (copy / "audit.log").write_text("".join(line + "\n" for line in lines))
        return verify_log(copy / "audit.log", **options)


def _where(report) -> set[tuple[int | None, str]]:
    return {(problem.line, problem.kind) for problem in report.problems}


# -- format ---------------------------------------------------------------------------------------
def test_entries_chain_from_the_genesis_with_the_documented_hash(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    first = log.append("login", actor="dr_lee", ip="127.0.0.1")
    second = log.append("access", actor="dr_lee", participant_id="P001", purpose="clinician_view")
    assert set(first) == {"seq", "time_ns", "action", "actor", "participant_id", "details", "prev", "hash"}
    assert (first["seq"], first["prev"], first["participant_id"]) == (0, GENESIS_HASH, None)
    assert (second["seq"], second["prev"]) == (1, first["hash"])
    # SHA-256 over the canonical JSON of the entry without its hash, computed independently
    body = {key: value for key, value in second.items() if key != "hash"}
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert second["hash"] == expected == entry_hash(second)
    on_disk = [entry for _, entry in read_entries(tmp_path / "audit.log")]
    assert on_disk == [first, second]
    log.close()


def test_checkpoints_every_n_entries_and_on_close(tmp_path):
    log = AuditLog(tmp_path / "audit.log", checkpoint_every=3)
    _fill(log, 7)
    actions = [entry["action"] for _, entry in read_entries(tmp_path / "audit.log")]
    assert [index for index, action in enumerate(actions) if action == CHECKPOINT_ACTION] == [3, 7]
    assert log.checkpoint() is not None and log.checkpoint() is None  # nothing new since
    log.append("logout", actor="dr_lee")
    log.close()
    log.close()  # idempotent
    entries = [entry for _, entry in read_entries(tmp_path / "audit.log")]
    assert entries[-1]["action"] == CHECKPOINT_ACTION
    assert entries[-1]["details"]["head"] == entries[-2]["hash"] and entries[-1]["details"]["count"] == 11
    head = verify_head(tmp_path / "audit.log")
    assert (head["seq"], head["count"], head["hash"]) == (11, 12, entries[-1]["hash"])
    report = verify_log(tmp_path / "audit.log")
    assert report.ok and (report.n_entries, report.n_checkpoints, report.unsigned_tail) == (12, 4, 0)
    with pytest.raises(AuditError, match="is closed"):
        log.append("logout", actor="dr_lee")


def test_files_are_private(tmp_path):
    site = tmp_path / "site"
    AuditLog.for_site(site).close()
    assert os.stat(site).st_mode & 0o777 == 0o700
    for name in ("audit.log", "audit_signing.key", "audit_signing.pub"):
        assert os.stat(site / name).st_mode & 0o777 == 0o600, name


def test_a_signing_key_readable_by_others_is_refused(tmp_path):
    AuditLog(tmp_path / "audit.log").close()
    os.chmod(tmp_path / "audit_signing.key", 0o644)
    with pytest.raises(AuditError, match=r"readable by others \(mode 0644\).*chmod 600"):
        AuditLog(tmp_path / "audit.log")


def test_a_public_key_of_another_signer_is_refused(tmp_path):
    AuditLog(tmp_path / "a" / "audit.log").close()
    AuditLog(tmp_path / "b" / "audit.log").close()
    shutil.copy(tmp_path / "b" / "audit_signing.pub", tmp_path / "a" / "audit_signing.pub")
    with pytest.raises(AuditError, match="does not belong to the signing key"):
        AuditLog(tmp_path / "a" / "audit.log")


@pytest.mark.parametrize(("action", "options", "message"), [
    ("peek", {"actor": "x"}, "audit action must be one of"),
    ("checkpoint", {"actor": "x"}, "audit action must be one of"),
    ("access", {"actor": ""}, "actor must be a non-empty string"),
    ("access", {"actor": "x" * 201}, "at most 200 characters"),
    ("access", {"actor": "x", "participant_id": "../P1"}, "participant id must be"),
    ("access", {"actor": "x", "value": float("nan")}, "JSON-serialisable"),
    ("access", {"actor": "x", "value": object()}, "JSON-serialisable"),
])
def test_append_refuses_bad_input(tmp_path, action, options, message):
    log = AuditLog(tmp_path / "audit.log")
    with pytest.raises(InvalidInputError, match=message):
        log.append(action, **options)
    assert (tmp_path / "audit.log").read_bytes() == b""


def test_checkpoint_every_is_checked(tmp_path):
    with pytest.raises(InvalidInputError, match="checkpoint_every must be >= 1"):
        AuditLog(tmp_path / "audit.log", checkpoint_every=0)


def test_missing_log_or_key_is_a_clear_error(tmp_path, logs):
    with pytest.raises(AuditError, match="not found"):
        verify_log(tmp_path / "nope.log")
    with pytest.raises(AuditError, match="audit public key .* not found"):
        verify_log(logs["small"] / "audit.log", public_key_path=tmp_path / "missing.pub")


# -- intact logs -----------------------------------------------------------------------------------
DETAILS = st.dictionaries(st.text(min_size=1, max_size=6), st.none() | st.booleans() | st.integers()
                          | st.text(max_size=8), max_size=3)
ENTRIES = st.lists(st.tuples(st.sampled_from(AUDIT_ACTIONS),
                             st.text(min_size=1, max_size=10).filter(str.strip),
                             st.none() | st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), DETAILS),
                   min_size=0, max_size=10)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=ENTRIES, every=st.integers(1, 5), close=st.booleans())
def test_an_intact_log_verifies_clean(entries, every, close):
    with tempfile.TemporaryDirectory() as folder:
        log = AuditLog(Path(folder) / "audit.log", checkpoint_every=every)
        written = [log.append(action, actor=actor, participant_id=pid, **details)
                   for action, actor, pid, details in entries]
        if close:
            log.close()
        report = verify_log(Path(folder) / "audit.log")
        assert report.ok, report.problems
        on_disk = [entry for _, entry in read_entries(Path(folder) / "audit.log")]
        assert [entry["seq"] for entry in on_disk] == list(range(len(on_disk)))
        assert [entry for entry in on_disk if entry["action"] != CHECKPOINT_ACTION] == written
        assert report.n_entries == len(on_disk)
        checkpoints = [index for index, entry in enumerate(on_disk) if entry["action"] == CHECKPOINT_ACTION]
        assert report.unsigned_tail == (0 if close else len(on_disk) - 1 - max(checkpoints, default=-1))


# -- every edit is caught at its entry ----------------------------------------------------------
LOG_NAMES = st.sampled_from(["small", "medium", "large"])
FIELD_EDITS = {
    "actor": lambda value: value + "x",
    "action": lambda value: "export" if value != "export" else "access",
    "participant_id": lambda value: "X9" if value != "X9" else "X8",
    "details": lambda value: {**value, "forged": True},
    "time_ns": lambda value: value + 1,
    "seq": lambda value: value + 1000,
    "prev": lambda value: "f" * 64,
    "hash": lambda value: "e" * 64,
}


@SETTINGS
@given(name=LOG_NAMES, data=st.data(), field=st.sampled_from(sorted(FIELD_EDITS)))
def test_an_edited_entry_is_reported_at_its_line(logs, name, data, field):
    lines = _lines(logs[name])
    index = data.draw(st.integers(0, len(lines) - 1), label="index")
    entry = json.loads(lines[index])
    entry[field] = FIELD_EDITS[field](entry[field])
    lines[index] = json.dumps(entry)
    report = _verify_edited(logs[name], lines)
    assert (index + 1, "edited") in _where(report), report.problems
    if field not in ("hash", "seq", "prev"):  # nothing else looks wrong
        assert _where(report) <= {(index + 1, "edited"), (index + 1, "bad_signature")}, report.problems


@SETTINGS
@given(name=LOG_NAMES, data=st.data())
def test_a_deleted_entry_is_reported_at_the_entry_after_the_hole(logs, name, data):
    lines = _lines(logs[name])
    index = data.draw(st.integers(0, len(lines) - 1), label="index")
    report = _verify_edited(logs[name], lines[:index] + lines[index + 1:])
    # the last line is the checkpoint the signed head names
    kind = "truncated" if index == len(lines) - 1 else "deleted"
    assert _where(report) == {(index + 1, kind)}, report.problems


def _forgeries(lines: list[str], index: int, source: int) -> list[str]:
    """A verbatim copy of line ``source``, a rehashed edited copy, and a perfect fit before line ``index``."""
    copy = json.loads(lines[source])
    copy["actor"] = "mallory"
    copy["hash"] = entry_hash(copy)
    fit = {"seq": json.loads(lines[index])["seq"], "time_ns": 1, "action": "export", "actor": "mallory",
           "participant_id": "P001", "details": {},
           "prev": json.loads(lines[index - 1])["hash"] if index > 0 else GENESIS_HASH}
    fit["hash"] = entry_hash(fit)
    return [lines[source], json.dumps(copy), json.dumps(fit)]


@SETTINGS
@given(name=LOG_NAMES, data=st.data(), kind=st.integers(0, 2))
def test_an_inserted_entry_is_reported_at_its_line(logs, name, data, kind):
    lines = _lines(logs[name])
    index = data.draw(st.integers(0, len(lines) - 1), label="before line index")
    source = data.draw(st.integers(0, len(lines) - 1), label="copied line index")
    forged = _forgeries(lines, index, source)[kind]
    edited = lines[:index] + [forged] + lines[index:]
    report = _verify_edited(logs[name], edited)
    inserted = [problem.line for problem in report.problems if problem.kind == "inserted"]
    # a verbatim copy is the same text as its original: either of the two may be named
    assert inserted and all(edited[line - 1] == forged for line in inserted), report.problems
    assert {problem.kind for problem in report.problems} == {"inserted"}, report.problems


def test_an_entry_appended_after_the_last_checkpoint_is_an_unsigned_tail(logs):
    lines = _lines(logs["medium"])
    forged = _forgeries(lines + [lines[-1]], len(lines), 0)[2]  # prev: the last checkpoint's hash
    forged = json.loads(forged)
    forged["seq"] = json.loads(lines[-1])["seq"] + 1
    forged["hash"] = entry_hash(forged)
    edited = lines + [json.dumps(forged)]
    report = _verify_edited(logs["medium"], edited)
    assert report.ok and report.unsigned_tail == 1  # indistinguishable from an honest append...
    strict = _verify_edited(logs["medium"], edited, require_signed_tail=True)
    assert _where(strict) == {(len(edited), "unsigned_tail")}  # ...until a checkpoint must cover it


@SETTINGS
@given(name=LOG_NAMES, data=st.data())
def test_swapped_entries_are_reported_as_reordered(logs, name, data):
    lines = _lines(logs[name])
    first = data.draw(st.integers(0, len(lines) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(lines) - 1), label="second")
    lines[first], lines[second] = lines[second], lines[first]
    report = _verify_edited(logs[name], lines)
    lines_reported = {problem.line for problem in report.problems}
    assert {problem.kind for problem in report.problems} == {"reordered"}, report.problems
    assert lines_reported & {first + 1, second + 1}, report.problems
    assert all(first + 1 <= line <= second + 1 for line in lines_reported), report.problems


@SETTINGS
@given(name=LOG_NAMES, data=st.data())
def test_a_truncated_log_is_reported(logs, name, data):
    text = (logs[name] / "audit.log").read_bytes()
    cut = data.draw(st.integers(0, len(text) - 2), label="bytes kept")  # at least one byte of an entry goes
    with tempfile.TemporaryDirectory() as folder:
        for file in ("audit.head", "audit_signing.pub"):
            shutil.copy(logs[name] / file, Path(folder) / file)
        (Path(folder) / "audit.log").write_bytes(text[:cut])
        report = verify_log(Path(folder) / "audit.log")
    kept_lines = text[:cut].count(b"\n")
    n_lines = kept_lines + (0 if text[:cut].endswith(b"\n") or cut == 0 else 1)
    assert (n_lines + 1, "truncated") in _where(report)
    if cut and not text[:cut].endswith(b"\n") and text[cut:cut + 1] != b"\n":  # a line cut inside
        assert (kept_lines + 1, "malformed") in _where(report)


@SETTINGS
@given(kept=st.integers(1, 23))
def test_cutting_the_last_checkpoint_and_the_tail_is_caught_the_tail_alone_is_unsigned(logs, kept):
    lines = _lines(logs["tail"])  # 20 entries, checkpoints after 6, 12 and 18 of them: 23 lines
    last_checkpoint = max(index for index, line in enumerate(lines)
                          if json.loads(line)["action"] == CHECKPOINT_ACTION)
    assert (len(lines), last_checkpoint) == (23, 20)
    report = _verify_edited(logs["tail"], lines[:kept])
    if kept <= last_checkpoint:
        assert _where(report) == {(kept + 1, "truncated")}, report.problems
    else:
        assert report.ok and report.unsigned_tail == kept - 1 - last_checkpoint
        strict = _verify_edited(logs["tail"], lines[:kept], require_signed_tail=True)
        tail_starts = last_checkpoint + 2
        assert _where(strict) == ({(tail_starts, "unsigned_tail")} if kept >= tail_starts else set())


def test_deleting_the_head_file_is_caught(logs):
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(logs["medium"] / "audit_signing.pub", Path(folder))
        shutil.copy(logs["medium"] / "audit.log", Path(folder))
        report = verify_log(Path(folder) / "audit.log")
    assert _where(report) == {(None, "truncated")} and "audit.head is missing" in report.problems[0].message


def test_rewriting_with_recomputed_hashes_breaks_the_next_signature(logs):
    lines, previous, rewritten = _lines(logs["large"]), None, []
    for index, line in enumerate(lines):
        entry = json.loads(line)
        if index == 4:
            entry["actor"] = "mallory"
        if index >= 4:
            entry["prev"] = previous if previous is not None else entry["prev"]
            entry["hash"] = entry_hash(entry)
        previous = entry["hash"]
        rewritten.append(json.dumps(entry))
    report = _verify_edited(logs["large"], rewritten)
    assert (9, "bad_signature") in _where(report)  # the first checkpoint after the change (line 9)
    assert "edited" not in {problem.kind for problem in report.problems[:1]}


def test_another_public_key_fails_every_signature(logs, tmp_path):
    AuditLog(tmp_path / "audit.log").close()
    report = verify_log(logs["medium"] / "audit.log", public_key_path=tmp_path / "audit_signing.pub")
    assert {problem.kind for problem in report.problems} == {"bad_signature"}
    assert len(report.problems) == report.n_checkpoints + 1  # every checkpoint, and the head


def test_an_escrowed_head_exposes_a_rollback(tmp_path):
    log = AuditLog(tmp_path / "audit.log", checkpoint_every=4)
    _fill(log, 5)
    log.checkpoint()
    old_log, old_head = (tmp_path / "audit.log").read_bytes(), (tmp_path / "audit.head").read_bytes()
    _fill(log, 6)
    log.close()
    escrowed = verify_head(tmp_path / "audit.log")  # kept off the site
    (tmp_path / "audit.log").write_bytes(old_log)  # roll the log and its head back together
    (tmp_path / "audit.head").write_bytes(old_head)
    assert verify_log(tmp_path / "audit.log").ok  # consistent on its own...
    (tmp_path / "escrow.json").write_text(json.dumps(escrowed))
    report = verify_log(tmp_path / "audit.log", expected_head=tmp_path / "escrow.json")
    assert [(problem.kind, problem.seq) for problem in report.problems] == [("truncated", escrowed["seq"])]
    assert "the escrowed head" in report.problems[0].message


def test_a_forged_head_is_a_bad_signature(logs):
    head = read_head(logs["medium"] / "audit.head")
    head["count"] += 1
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(logs["medium"] / "audit_signing.pub", Path(folder))
        shutil.copy(logs["medium"] / "audit.log", Path(folder))
        (Path(folder) / "audit.head").write_text(json.dumps(head))
        report = verify_log(Path(folder) / "audit.log")
        with pytest.raises(AuditError, match="does not verify"):
            verify_head(Path(folder) / "audit.log")
    assert _where(report) == {(None, "bad_signature")}


def test_a_line_cut_by_a_crash_is_reported_and_appends_go_on(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    _fill(log, 3)
    with open(tmp_path / "audit.log", "ab") as stream:
        stream.write(b'{"seq": 3, "acti')  # a writer killed mid-line
    other = AuditLog(tmp_path / "audit.log")
    entry = other.append("logout", actor="dr_lee")
    assert entry["seq"] == 3
    other.close()
    report = verify_log(tmp_path / "audit.log")
    assert _where(report) == {(4, "malformed")}, report.problems
    log.append("login", actor="dr_lee")  # the first object reads what the second wrote
    assert [e["seq"] for _, e in read_entries(tmp_path / "audit.log") if e is not None][-1] == 5


# -- concurrency -----------------------------------------------------------------------------------
def test_threads_and_objects_on_one_log_chain_correctly(tmp_path):
    shared = AuditLog(tmp_path / "audit.log", checkpoint_every=5)
    second = AuditLog(tmp_path / "audit.log", checkpoint_every=5)

    def work(log, actor):
        for index in range(15):
            log.append("access", actor=actor, index=index)

    threads = [threading.Thread(target=work, args=(log, f"t{number}"))
               for number, log in enumerate((shared, shared, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared.close()
    second.close()
    report = verify_log(tmp_path / "audit.log")
    assert report.ok, report.problems
    entries = [entry for _, entry in read_entries(tmp_path / "audit.log")]
    assert [entry["seq"] for entry in entries] == list(range(len(entries)))
    for actor in ("t0", "t1", "t2"):
        assert [e["details"]["index"] for e in entries if e["actor"] == actor] == list(range(15))


APPENDER = """
import sys
from neurolace.privacy.audit import AuditLog
log = AuditLog(sys.argv[1], checkpoint_every=4)
sys.stdin.readline()  # start together
for index in range(25):
    log.append("access", actor=sys.argv[2], index=index)
log.close()
"""


def test_two_processes_append_to_one_chain(tmp_path):
    AuditLog(tmp_path / "audit.log").close()  # the key exists before both start
    run_together(APPENDER, [[tmp_path / "audit.log", actor] for actor in ("proc_a", "proc_b")])
    report = verify_log(tmp_path / "audit.log")
    assert report.ok, report.problems
    entries = [entry for _, entry in read_entries(tmp_path / "audit.log")]
    assert [entry["seq"] for entry in entries] == list(range(len(entries)))
    for actor in ("proc_a", "proc_b"):
        assert [e["details"]["index"] for e in entries if e["actor"] == actor] == list(range(25))


def test_a_forked_child_appends_under_its_own_lock(tmp_path):
    log = AuditLog(tmp_path / "audit.log", checkpoint_every=4)
    log.append("login", actor="parent")  # the handles exist before the fork
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            for index in range(20):
                log.append("access", actor="child", index=index)
        finally:
            os._exit(0)
    for index in range(20):
        log.append("access", actor="parent", index=index)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    log.close()
    report = verify_log(tmp_path / "audit.log")
    assert report.ok, report.problems
    entries = [entry for _, entry in read_entries(tmp_path / "audit.log")]
    assert [entry["seq"] for entry in entries] == list(range(len(entries)))
    assert len([e for e in entries if e["actor"] == "child"]) == 20
