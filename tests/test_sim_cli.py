"""``neurolace simulate``: the NWB it writes holds exactly what simulate_implant produces."""

from __future__ import annotations

import json

import numpy as np
import pytest

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
        (["--seconds", "0"], "--seconds must be a positive number, got 0"),
        (["--seconds", "-2"], "--seconds must be a positive number, got -2"),
        (["--seconds", "nan"], "--seconds must be a positive number, got nan"),
        (["--seconds", "1", "--electrodes", "40"], "--electrodes: n_electrodes must be 1-16"),
        (["--seconds", "1", "--electrodes", "0"], "--electrodes: n_electrodes must be >= 1, got 0"),
        (["--seconds", "1", "--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--seconds", "1e7", "--electrodes", "1024"], "needs 400000.0 GB for the samples alone"),
    ],
)
def test_simulate_refuses_bad_arguments_without_writing(tmp_path, capsys, arguments, message):
    path = tmp_path / "x.nwb"
    assert main(["simulate", *arguments, "--out", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


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
