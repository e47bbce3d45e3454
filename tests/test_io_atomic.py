"""Crash-safe outputs: targets checked before work, no silent overwrite, errors name the target."""

from __future__ import annotations

import errno
import os

import h5py
import numpy as np
import pytest

from neurolace.core import InvalidInputError, Recording
from neurolace.io import atomic
from neurolace.io.atomic import OutputExistsError, atomic_output, check_output_path
from neurolace.io.nwb import write_nwb
from neurolace.io.raw import write_raw
from neurolace.io.wav import write_wav


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_parent_that_is_a_file_is_a_clear_error_not_a_file_exists_traceback(tmp_path):
    """Issue 17: `--out FILE/x` raised FileExistsError from mkdir, with a traceback."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    target = blocker / "deeper" / "x.csv"
    with pytest.raises(InvalidInputError, match=r"cannot write output .*x\.csv'.*notes\.txt' is not a directory"):
        with atomic_output(target) as temporary:
            temporary.write_text("never")
    assert _names(tmp_path) == ["notes.txt"] and blocker.read_text() == "a file"


def test_a_directory_is_not_an_output(tmp_path):
    with pytest.raises(InvalidInputError, match="it is a directory"):
        check_output_path(tmp_path, name="--out")
    for empty in ("", ".", ".."):
        with pytest.raises(InvalidInputError, match="must name a file"):
            check_output_path(empty)


def test_an_unwritable_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    # the tests may run as root, for whom every folder is writable: ask os.access to say no
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(InvalidInputError, match="is not writable"):
        check_output_path(tmp_path / "x.wav", name="--out")


@pytest.mark.parametrize("writer", ["wav", "raw", "nwb"])
def test_writers_refuse_an_existing_file_when_asked_and_replace_it_by_default(tmp_path, writer):
    recording = Recording(np.arange(40, dtype=np.int16).reshape(20, 2), fs_hz=1000.0, gain_uv=1.0)
    write = {"wav": write_wav, "raw": write_raw, "nwb": write_nwb}[writer]
    target = tmp_path / f"x.{writer}"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="already exists; refusing to overwrite it"):
        write(target, recording, overwrite=False)
    assert target.read_bytes() == b"old" and _names(tmp_path) == [target.name]
    write(target, recording)
    assert target.read_bytes() != b"old" and _names(tmp_path) == [target.name]


def test_no_overwrite_holds_when_the_target_appears_during_the_write(tmp_path):
    target = tmp_path / "x.csv"
    with pytest.raises(OutputExistsError, match="appeared while it was written"):
        with atomic_output(target, overwrite=False) as temporary:
            temporary.write_text("ours")
            target.write_text("theirs")  # another process got there first
    assert target.read_text() == "theirs" and _names(tmp_path) == ["x.csv"]


def test_no_overwrite_publishes_a_new_file(tmp_path):
    target = tmp_path / "new.csv"
    with atomic_output(target, overwrite=False) as temporary:
        temporary.write_text("1,2\n")
    assert target.read_text() == "1,2\n" and _names(tmp_path) == ["new.csv"]


def test_a_library_error_names_the_output_not_the_part_file(tmp_path):
    """Issue 17: messages named the temporary `.part` file; h5py's own message is a real example."""
    target = tmp_path / "session.nwb"
    with pytest.raises(OSError) as error:
        with atomic_output(target) as temporary:
            h5py.File(temporary, "w-")  # "create, fail if it exists": the temporary file does
    message = str(error.value)
    assert str(target) in message and ".part" not in message
    assert _names(tmp_path) == []


def test_an_os_error_on_the_temporary_file_names_the_output(tmp_path):
    target = tmp_path / "x.wav"
    with pytest.raises(PermissionError) as error:
        with atomic_output(target) as temporary:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(temporary))
    assert str(error.value) == f"[Errno {errno.EACCES}] {os.strerror(errno.EACCES)}: '{target}'"


def test_a_full_disk_before_the_temporary_file_exists_names_the_output(tmp_path, monkeypatch):
    def no_space(**keywords):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(keywords["dir"], ".x.wav.abc.wav.part"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", no_space)
    target = tmp_path / "x.wav"
    with pytest.raises(OSError, match="No space left") as error:
        with atomic_output(target):
            pass
    assert error.value.filename == str(target) and ".part" not in str(error.value)


def test_a_message_without_errno_is_rewritten_too(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(RuntimeError) as error:
        with atomic_output(target) as temporary:
            raise RuntimeError(f"could not write {temporary} (short write)")
    assert str(error.value) == f"could not write {target} (short write)"
