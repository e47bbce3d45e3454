"""``neurolace detect``: outputs on WAV, raw and NWB input, and one-line errors with no partial files."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

from cli_helpers import error_line, run_cli

from neurolace.cli.main import main
from neurolace.core import Recording
from neurolace.dsp import run_signal_chain
from neurolace.io import read_recording, write_nwb, write_raw, write_wav

FS_HZ = 19531


def _recording(n_channels: int = 2, seconds: float = 0.6) -> Recording:
    rng = np.random.default_rng(4)
    n_samples = int(seconds * FS_HZ)
    codes = rng.normal(0, 12, size=(n_samples, n_channels))
    for channel in range(n_channels):
        for start in range(300 + 50 * channel, n_samples - 20, 400):
            codes[start : start + 6, channel] -= np.array([20, 60, 120, 90, 40, 10])
    return Recording(np.round(codes).astype(np.int16), fs_hz=float(FS_HZ), gain_uv=1.0)


def _expected_rows(path, **read_options) -> np.ndarray:
    events = run_signal_chain(read_recording(path, **read_options)).events
    return np.column_stack([events.sample_index, events.channel_index])


def test_wav_to_csv_matches_the_library(tmp_path, capsys):
    path = write_wav(tmp_path / "clip.wav", _recording())
    out = tmp_path / "spikes.csv"
    assert main(["detect", str(path), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "sample_index,channel"
    rows = np.array([[int(v) for v in line.split(",")] for line in lines[1:]])
    expected = _expected_rows(path)
    assert expected.shape[0] > 10
    np.testing.assert_array_equal(rows, expected)
    stdout = capsys.readouterr().out
    assert f"{expected.shape[0]} spikes on 2 channel(s)" in stdout


def test_json_prints_exactly_one_object_with_the_summary(tmp_path, capsys):
    path = write_wav(tmp_path / "clip.wav", _recording())
    assert main(["detect", str(path), "--json", "--chunk-ms", "7"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # fails if anything else is on stdout
    expected = _expected_rows(path)
    assert report["n_spikes"] == expected.shape[0]
    assert report["n_channels"] == 2
    assert report["seconds"] == pytest.approx(int(0.6 * FS_HZ) / FS_HZ)
    assert report["realtime_factor"] > 0
    counts = np.bincount(expected[:, 1], minlength=2)
    np.testing.assert_allclose(report["rates_hz_per_channel"], counts / report["seconds"])
    assert report["rate_hz"]["mean"] == pytest.approx(counts.mean() / report["seconds"])
    assert len(report["noise_uv_per_channel"]) == 2 and report["noise_uv"]["median"] > 0


@pytest.mark.parametrize("design", ["fir", "butterworth", "moving_average"])
def test_filter_option_reaches_the_chain(tmp_path, capsys, design):
    path = write_wav(tmp_path / "clip.wav", _recording())
    out = tmp_path / "spikes.csv"
    assert main(["detect", str(path), "--filter", design, "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    events = run_signal_chain(read_recording(path), filter_design=design).events
    assert report["filter"] == design and report["n_spikes"] == events.n_spikes
    rows = np.loadtxt(out, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    np.testing.assert_array_equal(rows[:, 0], events.sample_index)


def test_long_file_shows_progress_on_stderr_only(tmp_path, capsys):
    codes = np.random.default_rng(1).normal(0, 10, size=(int(10.5 * FS_HZ), 1)).astype(np.int16)
    path = write_wav(tmp_path / "long.wav", Recording(codes, fs_hz=float(FS_HZ), gain_uv=1.0))
    assert main(["detect", str(path), "--json", "--chunk-ms", "500"]) == 0
    report = json.loads(capsys.readouterr().out)  # the progress bar did not leak onto stdout
    assert report["seconds"] == pytest.approx(10.5, abs=1e-3)


def test_raw_input_needs_and_uses_rate_and_channels(tmp_path, capsys):
    path = write_raw(tmp_path / "tetrode.raw", _recording(n_channels=4))
    assert main(["detect", str(path), "--fs-hz", str(FS_HZ), "--channels", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_channels"] == 4
    assert report["n_spikes"] == _expected_rows(path, fs_hz=FS_HZ, n_channels=4).shape[0]


def test_nwb_input(tmp_path, capsys):
    path = write_nwb(tmp_path / "session.nwb", _recording(n_channels=3))
    assert main(["detect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_channels"] == 3 and report["n_spikes"] == _expected_rows(path).shape[0]


def _non_pcm_wav(path):
    samples = np.zeros(100, dtype="<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, FS_HZ, FS_HZ * 4, 4, 32)
    header += b"data" + struct.pack("<I", len(samples))
    path.write_bytes(header + samples)


def _truncated_wav(path):
    write_wav(path, _recording())
    path.write_bytes(path.read_bytes()[:1000])


BAD_INPUTS = [
    (
        "unknown extension",
        "clip.txt",
        lambda p: p.write_text("1,2,3"),
        [],
        r"extension '\.txt' is not supported",
    ),
    ("empty wav", "empty.wav", lambda p: p.write_bytes(b""), [], "truncated WAV header"),
    (
        "empty raw",
        "empty.raw",
        lambda p: p.write_bytes(b""),
        ["--fs-hz", "1000", "--channels", "1"],
        "the file is empty",
    ),
    ("truncated wav", "cut.wav", _truncated_wav, [], "truncated WAV file"),
    (
        "non-PCM wav",
        "float.wav",
        _non_pcm_wav,
        [],
        "WAV is not supported: neurolace reads 16-bit integer PCM only",
    ),
    (
        "wrong dtype",
        "x.raw",
        lambda p: p.write_bytes(np.zeros(8, "<f4").tobytes()),
        ["--fs-hz", "1000", "--channels", "1", "--dtype", "float32"],
        "dtype must be an integer type",
    ),
    (
        "zero rate",
        "x.raw",
        lambda p: p.write_bytes(np.zeros(8, "<i2").tobytes()),
        ["--fs-hz", "0", "--channels", "1"],
        r"argument --fs-hz: must be a finite number > 0 and <= 1000000 Hz, got '0'",
    ),
    (
        "negative rate",
        "x.raw",
        lambda p: p.write_bytes(np.zeros(8, "<i2").tobytes()),
        ["--fs-hz", "-19531", "--channels", "1"],
        "argument --fs-hz: must be a finite number > 0",
    ),
    (
        "NaN rate",
        "x.raw",
        lambda p: p.write_bytes(np.zeros(8, "<i2").tobytes()),
        ["--fs-hz", "nan", "--channels", "1"],
        "argument --fs-hz: must be a finite number > 0 and <= 1000000 Hz, got 'nan'",
    ),
    (
        "NaN threshold",
        "clip.wav",
        lambda p: write_wav(p, _recording()),
        ["--threshold", "nan"],
        "argument --threshold: must be a finite number >= -1000 and <= 1000, got 'nan'",
    ),
    (
        "raw without rate",
        "x.raw",
        lambda p: p.write_bytes(np.zeros(8, "<i2").tobytes()),
        ["--channels", "1"],
        "needs fs_hz",
    ),
    (
        "band above Nyquist",
        "x.raw",
        lambda p: p.write_bytes(np.zeros(800, "<i2").tobytes()),
        ["--fs-hz", "10000", "--channels", "1"],
        r"high_hz must lie between low_hz \(300\) and the Nyquist frequency \(5000 Hz\)",
    ),
    ("missing file", "absent.wav", lambda p: None, [], "not found"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_no_output_file(tmp_path, capsys, case):
    _, name, make, extra, message = case
    path = tmp_path / name
    make(path)
    out = tmp_path / "spikes.csv"
    code, stdout, stderr = run_cli(["detect", path, "--out", out, "--json", *extra], capsys)
    assert code == 2
    assert stdout == ""
    line = error_line(stderr, "detect")
    assert re.search(message, line), line
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".spikes")] == []


def test_wav_with_no_samples_is_refused(tmp_path, capsys):
    path = tmp_path / "silent.wav"
    write_wav(path, Recording(np.zeros((0, 1), np.int16), fs_hz=float(FS_HZ), gain_uv=1.0))
    out = tmp_path / "spikes.csv"
    assert main(["detect", str(path), "--out", str(out)]) == 2
    assert "holds no samples" in capsys.readouterr().err
    assert not out.exists()


def test_help_explains_the_command(capsys):
    assert main(["detect", "--help"]) == 0
    text = capsys.readouterr().out
    assert "sample_index,channel" in text and "--fs-hz" in text and "--threshold" in text
