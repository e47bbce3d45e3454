"""``neurolace simulate``: the NWB it writes holds exactly what simulate_implant produces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import error_line, run_cli

from neurolace.cli.main import main
from neurolace.io.nwb import read_nwb
from neurolace.sim import simulate_implant


def test_simulate_writes_the_recording_and_ground_truth_as_nwb(tmp_path, capsys):
    path = tmp_path / "session.nwb"
    status = main(
        ["simulate", "--seconds", "0.3", "--electrodes", "16", "--seed", "5", "--out", str(path), "--json"]
    )
    assert status == 0
    out = capsys.readouterr().out
    summary = json.loads(out)  # exactly one JSON object on stdout
    expected = simulate_implant(duration_s=0.3, n_electrodes=16, seed=5)
    truth = expected.ground_truth
    assert summary["path"] == str(path)
    assert summary["seconds"] == 0.3 and summary["electrodes"] == 16 and summary["seed"] == 5
    assert summary["units"] == truth.n_units
    assert summary["spikes"] == truth.units.n_spikes
    assert summary["noise_rms_uv"] == pytest.approx(float(np.median(truth.noise_rms_uv)))

    contents = read_nwb(path)
    np.testing.assert_array_equal(contents.recording.samples, expected.recording.samples)
    assert contents.recording.gain_uv == pytest.approx(2.0)
    assert contents.recording.fs_hz == pytest.approx(19531.25)
    np.testing.assert_allclose(contents.recording.geometry.depth_um, expected.recording.geometry.depth_um)
    # ground-truth spikes: same samples and units (compare as sorted (unit, sample) pairs)
    got = np.lexsort((contents.units.sample_index, contents.units.unit_id))
    want = np.lexsort((truth.units.sample_index, truth.units.unit_id))
    np.testing.assert_array_equal(contents.units.unit_id[got], truth.units.unit_id[want])
    np.testing.assert_array_equal(contents.units.sample_index[got], truth.units.sample_index[want])
    np.testing.assert_array_equal(contents.units.channel_index[got], truth.units.channel_index[want])
    np.testing.assert_array_equal(contents.unit_table["unit_id"], np.arange(truth.n_units))
    np.testing.assert_allclose(contents.unit_table["snr"], truth.snr)
    np.testing.assert_allclose(contents.unit_table["position_um"], truth.unit_positions_um)
    np.testing.assert_allclose(
        contents.unit_table["preferred_direction_rad"], truth.tuning.preferred_direction_rad
    )


def test_simulate_prints_a_readable_summary(tmp_path, capsys):
    path = tmp_path / "one.nwb"
    assert main(["simulate", "--seconds", "0.05", "--electrodes", "1", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path}" in out
    assert "1 electrodes at 19531.25 Hz, seed 0" in out
    assert path.is_file()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--seconds", "0"], "argument --seconds: must be a finite number > 0 and <= 86400 s, got '0'"),
        (["--seconds", "-2"], "argument --seconds: must be a finite number > 0 and <= 86400 s, got '-2'"),
        (["--seconds", "nan"], "argument --seconds: must be a finite number > 0 and <= 86400 s, got 'nan'"),
        (["--seconds", "inf"], "got 'inf'"),
        (["--seconds", "1e400"], "got '1e400'"),
        (["--seconds", "1e7"], "<= 86400 s, got '1e7'"),
        (["--seconds", "1", "--electrodes", "40"], "--electrodes: n_electrodes must be 1-16"),
        (["--seconds", "1", "--electrodes", "0"], "argument --electrodes: must be an integer >= 1"),
        (["--seconds", "1", "--electrodes", "2.5"], "argument --electrodes: must be an integer"),
        (["--seconds", "1", "--seed", "-1"], "argument --seed: must be an integer >= 0"),
        (["--seconds", "1", "--seed", "nan"], "argument --seed: must be an integer >= 0"),
        (["--seconds", "1", "--max-memory-gb", "nan"], "argument --max-memory-gb: must be a finite number > 0"),
        (["--seconds", "80000", "--electrodes", "1024"], "needs about 4800.1 GB"),
        (["--seconds", "100", "--electrodes", "1024"], "needs about 6.1 GB"),
        (["--seconds", "100", "--electrodes", "1024"], "above the budget of 4 GB; raise --max-memory-gb"),
        (["--seconds", "10", "--max-memory-gb", "0.5"], "needs about 0.7 GB"),
        (["--seconds", "0.2", "--electrodes", "100000"], "--electrodes 100000 is above the cap of 4096"),
        (["--seconds", "0.2", "--electrodes", "100000", "--allow-large", "--max-memory-gb", "8"],
         "needs about 9.2 GB"),
    ],
)
def test_simulate_refuses_bad_arguments_without_writing(tmp_path, capsys, arguments, message):
    path = tmp_path / "x.nwb"
    code, stdout, stderr = run_cli(["simulate", *arguments, "--out", path], capsys)
    assert code == 2
    assert stdout == ""
    assert message in error_line(stderr, "simulate")
    assert list(tmp_path.iterdir()) == []


def test_the_large_session_of_the_issue_is_refused_with_a_memory_estimate(tmp_path, capsys):
    """Issue 17: `simulate --electrodes 100000 --seconds 0.2` ran for minutes; now it stops at once."""
    code, _, stderr = run_cli(
        ["simulate", "--electrodes", "100000", "--seconds", "0.2", "--out", tmp_path / "x.nwb"], capsys
    )
    line = error_line(stderr, "simulate")
    assert code == 2 and "needs about 9.2 GB" in line and "--allow-large" in line


def test_memory_estimate_follows_the_documented_model():
    from neurolace.cli import simulate
    from neurolace.sim.spiking import N1_FS_HZ

    small, longer, wider = (simulate.estimate_peak_bytes(s, e) for s, e in ((1.0, 16), (3.0, 16), (1.0, 32)))
    per_second_16 = round(N1_FS_HZ) * 16 * simulate.ESTIMATE_BYTES_PER_CHANNEL_SAMPLE
    assert longer - small == pytest.approx(2 * per_second_16, rel=1e-3)
    assert wider - small == pytest.approx(16 * simulate.ESTIMATE_BYTES_PER_ELECTRODE + per_second_16, rel=1e-3)
    # the cap lifted by --allow-large, and the machine's own memory still refusing
    assert simulate.check_resources(0.2, 8192, allow_large=True) > 0
    with pytest.raises(Exception, match="this machine has"):
        simulate.check_resources(86400.0, 1024, allow_large=True)


def test_help_documents_the_caps(capsys):
    assert main(["simulate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("<= 86400 s", "at most 4096 without --allow-large", "--max-memory-gb", "--force"):
        assert expected in text


def test_an_existing_output_is_refused_unless_force(tmp_path, capsys):
    path = tmp_path / "x.nwb"
    path.write_bytes(b"keep me")
    arguments = ["simulate", "--seconds", "0.01", "--electrodes", "1", "--out", path]
    code, _, stderr = run_cli(arguments, capsys)
    assert code == 2 and "already exists; refusing to overwrite it (pass --force" in error_line(stderr, "simulate")
    assert path.read_bytes() == b"keep me"
    assert run_cli([*arguments, "--force"], capsys)[0] == 0
    assert read_nwb(path).recording.n_channels == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nwb"]


def test_simulate_refuses_unwritable_or_odd_paths(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    folder = tmp_path / "folder.nwb"
    folder.mkdir()
    for out, message in [
        (blocker / "x.nwb", "is not a directory"),
        (folder, "is a directory"),
        (tmp_path / "x.h5", "--out must name a .nwb file"),
    ]:
        assert main(["simulate", "--seconds", "0.01", "--electrodes", "1", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder.nwb"]
    assert list(folder.iterdir()) == []


def test_a_failed_write_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    from neurolace.io import nwb

    original = nwb._add_raw_series

    def broken(*arguments, **keywords):
        original(*arguments, **keywords)
        raise PermissionError("disk went away")

    monkeypatch.setattr(nwb, "_add_raw_series", broken)
    path = tmp_path / "x.nwb"
    assert main(["simulate", "--seconds", "0.01", "--electrodes", "1", "--out", str(path)]) == 2
    assert "disk went away" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
