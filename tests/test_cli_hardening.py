"""Issue 17, command line: outputs never replaced silently, a closed stdout, corrupt inputs named.

Each test here failed before the fix it names: outputs were overwritten, ``| head`` printed a
BrokenPipeError traceback, ``codec bench`` stopped at the first bad WAV without naming it, and
``bench latency --warmup-s nan`` ended in a ValueError traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import error_line, run_cli

from neurolace.core import Recording
from neurolace.io import write_nwb, write_wav

FS_HZ = 19531


def _write_clip(path, seconds: float = 0.3, n_channels: int = 2, seed: int = 2):
    codes = np.random.default_rng(seed).normal(0, 15, size=(int(seconds * FS_HZ), n_channels))
    write_wav(path, Recording(np.round(codes).astype(np.int16), fs_hz=float(FS_HZ), gain_uv=1.0))
    return path


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def clip(tmp_path):
    return _write_clip(tmp_path / "clip.wav")


# -- outputs ------------------------------------------------------------------------------------


def test_detect_refuses_an_existing_csv_before_detecting_and_replaces_it_with_force(tmp_path, clip, capsys):
    out = tmp_path / "spikes.csv"
    out.write_text("precious\n")
    code, stdout, stderr = run_cli(["detect", clip, "--out", out], capsys)
    assert code == 2 and stdout == ""
    assert f"--out '{out}' already exists; refusing to overwrite it (pass --force" in error_line(stderr, "detect")
    assert out.read_text() == "precious\n"
    assert run_cli(["detect", clip, "--out", out, "--force"], capsys)[0] == 0
    assert out.read_text().startswith("sample_index,channel\n")
    assert _names(tmp_path) == ["clip.wav", "spikes.csv"]


def test_codec_encode_and_decode_refuse_existing_outputs(tmp_path, clip, capsys):
    packed, restored = tmp_path / "clip.nlx", tmp_path / "back.wav"
    assert run_cli(["codec", "encode", clip, packed], capsys)[0] == 0
    first = packed.read_bytes()
    code, _, stderr = run_cli(["codec", "encode", clip, packed, "--mode", "fast"], capsys)
    assert code == 2 and "OUT '" in error_line(stderr, "codec") and packed.read_bytes() == first
    assert run_cli(["codec", "encode", clip, packed, "--mode", "fast", "--force"], capsys)[0] == 0
    assert packed.read_bytes() != first
    restored.write_bytes(b"keep")
    code, _, stderr = run_cli(["codec", "decode", packed, restored], capsys)
    assert code == 2 and "already exists" in error_line(stderr, "codec") and restored.read_bytes() == b"keep"
    assert run_cli(["codec", "decode", packed, restored, "--force"], capsys)[0] == 0
    assert restored.read_bytes() == clip.read_bytes()


def test_report_refuses_an_existing_html_unless_force(tmp_path, capsys):
    from neurolace.sim import simulate_implant

    simulated = simulate_implant(duration_s=0.3, n_electrodes=4, seed=1)
    session = write_nwb(tmp_path / "s.nwb", simulated.recording, units=simulated.ground_truth.units,
                        unit_table=simulated.ground_truth.unit_table())
    out = tmp_path / "report.html"
    out.write_text("<p>last week's report</p>")
    code, _, stderr = run_cli(["report", session, "--out", out], capsys)
    assert code == 2 and "already exists" in error_line(stderr, "report")
    assert out.read_text() == "<p>last week's report</p>"
    assert run_cli(["report", session, "--out", out, "--force"], capsys)[0] == 0
    assert "<html" in out.read_text().lower()


@pytest.mark.parametrize(
    "command",
    [
        ["detect", "{clip}", "--out", "{blocker}/spikes.csv"],
        ["codec", "encode", "{clip}", "{blocker}/x.nlx"],
        ["report", "{clip}", "--out", "{blocker}/r.html"],
        ["simulate", "--seconds", "0.01", "--electrodes", "1", "--out", "{blocker}/x.nwb"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_an_output_under_a_file_is_one_error_line(tmp_path, clip, capsys, command):
    """Issue 17: an output whose parent is a file gave a FileExistsError traceback."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    argv = [part.format(clip=clip, blocker=blocker) for part in command]
    code, _, stderr = run_cli(argv, capsys)
    assert code == 2
    assert f"'{blocker}' is not a directory" in error_line(stderr, argv[0])
    assert _names(tmp_path) == ["clip.wav", "notes.txt"]


# -- stdout closed early --------------------------------------------------------------------------


def test_a_closed_stdout_ends_quietly(clip):
    """Issue 17: `neurolace detect --json | head -c 300` printed a BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write gets EPIPE
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "neurolace", "detect", str(clip), "--json"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )
    finally:
        os.close(write_end)
    assert completed.stderr == ""
    assert completed.returncode == 1


def test_a_broken_pipe_that_is_not_stdout_is_reported(monkeypatch, capsys):
    from neurolace.cli import link

    def lost_socket(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(link, "budget_command", lost_socket)
    code, _, stderr = run_cli(["link", "budget"], capsys)
    assert code == 2 and "Broken pipe" in error_line(stderr, "link")


# -- codec bench on a folder with a corrupt file ----------------------------------------------------


@pytest.fixture
def folder_with_a_bad_wav(tmp_path):
    folder = tmp_path / "wavs"
    folder.mkdir()
    _write_clip(folder / "a.wav", seconds=0.05, n_channels=1, seed=3)
    (folder / "b.wav").write_bytes((folder / "a.wav").read_bytes()[:300])  # truncated data chunk
    (folder / "c.wav").mkdir()  # a folder named like a WAV
    return folder


def test_codec_bench_stops_naming_every_unreadable_wav(folder_with_a_bad_wav, capsys):
    code, stdout, stderr = run_cli(["codec", "bench", folder_with_a_bad_wav, "--json"], capsys)
    line = error_line(stderr, "codec")
    assert code == 2 and stdout == ""
    assert "2 of 3 WAV files cannot be read (pass --skip-bad" in line
    assert f"{folder_with_a_bad_wav / 'b.wav'}: truncated WAV file" in line
    assert f"{folder_with_a_bad_wav / 'c.wav'} is a directory" in line


def test_codec_bench_skip_bad_measures_the_rest_and_lists_the_skipped(folder_with_a_bad_wav, capsys):
    code, stdout, stderr = run_cli(["codec", "bench", folder_with_a_bad_wav, "--skip-bad", "--json"], capsys)
    assert code == 0
    report = json.loads(stdout)
    assert report["n_files"] == 1 and all(row["lossless"] for row in report["codecs"])
    assert [bad["path"] for bad in report["skipped"]] == [str(folder_with_a_bad_wav / n) for n in ("b.wav", "c.wav")]
    assert stderr.count("neurolace codec bench: skipping ") == 2


# -- bench latency --------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [("--warmup-s", "nan"), ("--duration-s", "inf"), ("--channels", "100000")])
def test_bench_latency_refuses_bad_numbers_before_measuring(option, value, capsys):
    """Issue 17: `bench latency --warmup-s nan` ran, then died in time.sleep with a traceback."""
    code, stdout, stderr = run_cli(["bench", "latency", option, value], capsys)
    assert code == 2 and stdout == ""
    assert f"argument {option}: must be" in error_line(stderr, "bench")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["bench", "--help"], ["<= 3600 s", "<= 4096", "<= 600 s"]),
        (["detect", "--help"], ["<= 1000000 Hz", "<= 65536", "--force"]),
        (["codec", "encode", "--help"], ["<= 1073741824", "--force"]),
        (["codec", "bench", "--help"], ["--skip-bad"]),
        (["report", "--help"], ["--force", "refused if it exists"]),
        (["link", "budget", "--help"], ["an integer >= 1 and <= 32"]),
    ],
)
def test_help_documents_the_ranges(argv, expected, capsys):
    code, stdout, _ = run_cli(argv, capsys)
    text = " ".join(stdout.split())  # argparse wraps help lines
    assert code == 0 and all(phrase in text for phrase in expected), text


def test_number_type_parses_strictly():
    from argparse import ArgumentTypeError

    from neurolace.cli.args import Number

    seconds = Number(float, minimum=0.0, exclusive_minimum=True, maximum=10.0, unit="s")
    assert seconds("2.5") == 2.5 and seconds("10") == 10.0
    for bad in ("0", "-1", "10.5", "nan", "inf", "-inf", "1e400", "", "ten"):
        with pytest.raises(ArgumentTypeError, match=r"must be a finite number > 0 and <= 10 s, got"):
            seconds(bad)
    count = Number(int, minimum=1)
    assert count("7") == 7
    for bad in ("0", "1.0", "1e3", "nan", "0x10"):
        with pytest.raises(ArgumentTypeError, match="must be an integer >= 1, got"):
            count(bad)


def test_detect_refuses_a_recording_larger_than_half_the_memory_before_reading_it(tmp_path, monkeypatch, capsys):
    from neurolace.cli import detect

    clip = _write_clip(tmp_path / "clip.wav", seconds=1.0, n_channels=4)  # 156 kB of samples
    monkeypatch.setattr(detect, "physical_memory_bytes", lambda: 200e3)
    monkeypatch.setattr(detect, "read_recording", lambda *a, **k: pytest.fail("the file was read"))
    code, _, stderr = run_cli(["detect", clip], capsys)
    assert code == 2
    assert "more than 50 % of this machine's 0.0 GB; detect reads the whole recording" in error_line(stderr, "detect")
    raw = tmp_path / "x.raw"
    raw.write_bytes(bytes(120_000))  # 30,000 int32 codes: 60 kB as int16, under the 100 kB share
    monkeypatch.setattr(detect, "read_recording", lambda *a, **k: (_ for _ in ()).throw(SystemError("read")))
    with pytest.raises(SystemError, match="read"):
        run_cli(["detect", raw, "--fs-hz", "1000", "--channels", "1", "--dtype", "int32"], capsys)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_run_refuses_a_duration_that_is_not_a_positive_finite_number(value, capsys):
    """Issue 17: ``run demo --duration-s nan`` never stopped."""
    from neurolace.cli.main import main

    assert main(["run", "demo", "--duration-s", value]) == 2
    assert "argument --duration-s: must be a finite number > 0" in capsys.readouterr().err
