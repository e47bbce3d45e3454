"""The recorder: exact round trip, NWB at the end, recovery of damaged files, and a SIGKILL loses at most a block."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from runtime_fixtures import REPO_ROOT

from neurolace.core.errors import FormatError
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.recorder import RecordWriter, read_record, record_to_nwb, recover_record


def _write(path, n_blocks: int, per_block: int = 4):
    writer = RecordWriter(path, header={"session": "t"}, block_ms=1e9, block_bytes=1 << 40, fsync=False)
    for block in range(n_blocks):
        for index in range(per_block):
            k = block * per_block + index
            writer.append(
                Message(
                    "a.features",
                    np.full(5, k, dtype=np.float32),
                    sequence=k,
                    sample_index=391 * k,
                    origin_ns=k,
                    timestamp_ns=1_000 + k,
                )
            )
        writer._write_block()
    writer.close()
    return writer


def test_round_trip_keeps_every_message_and_clock(tmp_path):
    writer = _write(tmp_path / "r.nlrec", 3)
    assert writer.blocks == 3 and writer.messages == 12
    record = read_record(tmp_path / "r.nlrec")
    assert record.clean and record.header["session"] == "t" and record.good_blocks == 3
    messages = record.streams["a.features"]
    assert [int(m.payload[0]) for m in messages] == list(range(12))
    assert [m.sample_index for m in messages] == [391 * k for k in range(12)]


def test_corrupt_block_is_recovered_up_to_the_last_good_block(tmp_path):
    path = tmp_path / "r.nlrec"
    _write(path, 4)
    data = bytearray(path.read_bytes())
    size = len(data)
    block_bytes = (size - data.index(b"NLBK")) // 4
    damaged_at = size - 2 * block_bytes + 30  # inside block 2 (0-based)
    data[damaged_at] ^= 0xFF
    path.write_bytes(bytes(data))
    report = recover_record(path)
    assert report.good_blocks == 2 and report.messages == 8
    assert report.discarded_bytes == 2 * block_bytes
    assert "block 2" in report.problem and "CRC-32" in report.problem
    with pytest.raises(FormatError, match=r"2 blocks, 8 messages intact .*fails its CRC-32 check"):
        read_record(path)


def test_torn_tail_and_bad_header(tmp_path):
    path = tmp_path / "r.nlrec"
    _write(path, 2)
    path.write_bytes(path.read_bytes()[:-7])
    report = recover_record(path)
    assert report.good_blocks == 1 and "truncated" in report.problem
    (tmp_path / "x.nlrec").write_bytes(b"not a record")
    with pytest.raises(FormatError, match="is not a neurolace record file"):
        recover_record(tmp_path / "x.nlrec")
    header_damaged = bytearray(path.read_bytes())
    header_damaged[14] ^= 0x01
    path.write_bytes(bytes(header_damaged))
    with pytest.raises(FormatError, match="record header fails its CRC-32 check"):
        recover_record(path)


def test_empty_record_and_nwb_conversion(tmp_path):
    from pynwb import NWBHDF5IO

    RecordWriter(tmp_path / "empty.nlrec").close()
    assert recover_record(tmp_path / "empty.nlrec").messages == 0
    path = tmp_path / "r.nlrec"
    writer = RecordWriter(path, fsync=False)
    raw = np.arange(40 * 3, dtype=np.int16).reshape(40, 3)
    for block in range(2):
        writer.append(
            Message(
                "src.raw", raw[20 * block : 20 * (block + 1)], sample_index=20 * block, timestamp_ns=now_ns()
            )
        )
        writer.append(
            Message(
                "cursor.cursor",
                np.array([0.1 * block, 0.5, 0.0]),
                sample_index=391 * block,
                timestamp_ns=now_ns(),
            )
        )
        # a stream whose sample clock jumps (a replay that skipped) keeps per-sample timestamps
        writer.append(Message("gap.raw", raw[:20], sample_index=1000 * block, timestamp_ns=now_ns()))
    writer.close()
    record_to_nwb(path, tmp_path / "r.nwb", raw_fs_hz=20_000.0)
    with NWBHDF5IO(str(tmp_path / "r.nwb"), "r") as io:
        nwbfile = io.read()
        np.testing.assert_array_equal(nwbfile.acquisition["src__raw"].data[:], raw)
        assert nwbfile.acquisition["src__raw"].rate == 20_000.0
        assert nwbfile.acquisition["src__raw"].starting_time == 0.0
        np.testing.assert_array_equal(nwbfile.acquisition["src__raw__sample_index"].data[:], [0, 20])
        np.testing.assert_allclose(nwbfile.acquisition["cursor__cursor"].data[:, 0], [0.0, 0.1])
        np.testing.assert_array_equal(nwbfile.acquisition["cursor__cursor__sample_index"].data[:], [0, 391])
        np.testing.assert_allclose(
            nwbfile.acquisition["gap__raw"].timestamps[[0, 19, 20]], [0.0, 0.00095, 0.05]
        )


KILLED_RUN = textwrap.dedent("""
    import sys
    from neurolace.runtime.graph import run_session
    session = '''
    [nodes.participant]
    type = "sim_participant"
    n_channels = 64
    [nodes.recorder]
    type = "recorder"
    path = "{path}"
    block_ms = {block_ms}
    inputs = {{ streams = "*" }}
    '''
    run_session(session.replace("\\n    ", "\\n"), duration_s=60.0)
""")


def test_sigkill_loses_at_most_the_last_block(tmp_path):
    block_ms = 100.0
    path = tmp_path / "killed.nlrec"
    script = KILLED_RUN.format(path=path.as_posix(), block_ms=block_ms)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30.0
    try:
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 64 * 4 * 50 * 1.5:  # more than ~1.5 s of bins
                break
            if process.poll() is not None:
                pytest.fail(f"the recording run exited early: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        killed_ns = now_ns()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=10)
    report = recover_record(path)
    features = report.streams["participant.features"]
    assert report.good_blocks >= 5
    # what survived is a gap-free prefix of the stream...
    assert [m.sequence for m in features] == list(range(len(features)))
    # ...missing at most the last block: the newest message kept is younger than one block (plus scheduling slack)
    lost_ms = (killed_ns - features[-1].timestamp_ns) / 1e6
    assert lost_ms < block_ms + 150.0, f"lost {lost_ms:.0f} ms of data, more than one {block_ms:.0f} ms block"
    assert report.discarded_bytes == 0 or "truncated" in report.problem or "torn" in report.problem


def test_a_record_is_never_truncated_and_a_rerun_gets_a_numbered_file(tmp_path):
    """Issue 17: re-running a session opened the old record with O_TRUNC and erased a crashed run."""
    from neurolace.core.errors import InvalidInputError
    from neurolace.runtime.recorder import next_free_record_path

    path = tmp_path / "run.nlrec"
    writer = RecordWriter(path, fsync=False)
    writer.close()
    before = path.read_bytes()
    with pytest.raises(InvalidInputError, match="already exists"):
        RecordWriter(path, fsync=False)
    assert path.read_bytes() == before
    assert next_free_record_path(path) == tmp_path / "run.1.nlrec"
    RecordWriter(tmp_path / "run.1.nlrec", fsync=False).close()
    assert next_free_record_path(path) == tmp_path / "run.2.nlrec"
    assert next_free_record_path(tmp_path / "new.nlrec") == tmp_path / "new.nlrec"


def test_a_rerun_after_a_sigkill_keeps_the_killed_record(tmp_path):
    """Issue 17, end to end: the re-run writes a numbered record and names it; the killed one stays whole."""
    from neurolace.runtime.graph import run_session

    path = tmp_path / "killed.nlrec"
    script = KILLED_RUN.format(path=path.as_posix(), block_ms=100.0)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30.0
    try:
        while not (path.exists() and path.stat().st_size > 64 * 4 * 50) and time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the recording run exited early: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=10)
    killed = path.read_bytes()
    recovered = len(recover_record(path).streams["participant.features"])
    session = KILLED_RUN.split("'''")[1].format(path=path.as_posix(), block_ms=100.0)
    report = run_session(session.replace("\n    ", "\n"), duration_s=0.5)
    assert path.read_bytes() == killed
    assert len(recover_record(path).streams["participant.features"]) == recovered > 0
    renamed = [event for event in report["events"] if event["event"] == "record_renamed"]
    assert renamed and renamed[0]["path"] == str(tmp_path / "killed.1.nlrec")
    assert (tmp_path / "killed.1.nlrec").exists()


def test_a_recorder_path_that_is_a_directory_stops_the_run_with_the_reason(tmp_path):
    """Issue 17: the recorder failed on a directory, then its restart wrote '.wav' and NWB files into it."""
    from neurolace.core.errors import NeurolaceError
    from neurolace.runtime.graph import run_session

    session = KILLED_RUN.split("'''")[1].format(path=tmp_path.as_posix(), block_ms=100.0)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(NeurolaceError, match="is a directory; expected a record file"):
        run_session(session.replace("\n    ", "\n"), duration_s=0.5)
    assert sorted(tmp_path.iterdir()) == before
    assert not any(tmp_path.parent.glob(f"{tmp_path.name}.*"))
