"""The session report: detection rates on known answers, what each input adds, bad input, the CLI."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.runtime.closed_loop import BlockResult, SessionResult
from neurolace.web.report import NOT_RECORDED, build_report, detection_rates, load_session_summary


@pytest.fixture(scope="module")
def small_nwb(tmp_path_factory):
    """A 16-electrode, 1 s simulated session through the chain, written like neurolace demo writes it."""
    from neurolace.dsp.chain import run_signal_chain
    from neurolace.io.nwb import write_nwb
    from neurolace.sim.implant import simulate_implant

    simulated = simulate_implant(duration_s=1.0, n_electrodes=16, seed=4)
    chain = run_signal_chain(simulated.recording)
    path = tmp_path_factory.mktemp("report") / "small.nwb"
    write_nwb(path, simulated.recording, events=chain.events, features=[chain.features],
              units=simulated.ground_truth.units, unit_table=simulated.ground_truth.unit_table(),
              session_description="report test", subject_id="sim")
    return path


def _summary() -> dict:
    session = SessionResult("kalman", 16, 30, 0, True, 1.2)
    for name, kind, correct, incorrect, time_s in (("open-loop", "open-loop", 30, 2, 1.5),
                                                   ("webgrid-1", "webgrid", 40, 4, 1.25)):
        session.blocks.append(BlockResult(name, kind, 60.0, 30 if kind == "webgrid" else 6, 0.0, 0.0, correct,
                                          incorrect, 0.9, time_s, 0.3, 0.8, 1.0, 0.0))
    session.blocks[1].ntpm = 36.0
    session.blocks[1].bps = 36.0 / 60.0 * math.log2(899)
    return session.to_dict()


def test_detection_rate_counts_crossings_near_each_ground_truth_spike():
    fs_hz = 20_000.0  # 0.5 ms = 10 samples
    units = SpikeEvents([100, 200, 300, 400, 150, 250], [0, 0, 0, 0, 2, 2], fs_hz=fs_hz, n_channels=3,
                        unit_id=[0, 0, 0, 0, 1, 1])
    crossings = SpikeEvents([50, 105, 211, 400, 255, 999], [1, 0, 0, 0, 2, 2], fs_hz=fs_hz, n_channels=3)
    rates = detection_rates(crossings, units, np.array([0, 2, 1]))
    # unit 0 (peak channel 0): 100 (5 samples off) and 400 hit, 200 (11 off) and 300 miss;
    # unit 1 (peak channel 2): 150 misses (105 off), 250 hits (5 off); unit 2 never fires
    assert rates[0] == pytest.approx(0.5)
    assert rates[1] == pytest.approx(0.5)
    assert math.isnan(rates[2])


def test_detection_rate_ignores_spikes_before_detection_started():
    units = SpikeEvents([10, 500], [0, 0], fs_hz=20_000.0, n_channels=1, unit_id=[0, 0])
    crossings = SpikeEvents([500], [0], fs_hz=20_000.0, n_channels=1)
    assert detection_rates(crossings, units, np.array([0])).tolist() == [1.0]


def test_report_of_a_file_alone_names_what_is_missing(small_nwb, tmp_path):
    out = tmp_path / "report.html"
    sections = build_report(small_nwb, out)
    by_title = {s.title: s for s in sections}
    assert [s.title for s in sections if not s.recorded] == ["BPS per block", "Time to target", "Loop latency"]
    assert by_title["Tuning curves"].png.startswith(b"\x89PNG")
    assert by_title["Spike-band power"].png.startswith(b"\x89PNG")
    rows = dict(map(tuple, by_title["Detection rates"].rows))
    assert rows["channels"] == "16"
    text = out.read_text()
    assert text.count(NOT_RECORDED) == 3 and text.count("data:image/png;base64,") == 3
    assert not list(tmp_path.glob("*.part"))


def test_report_with_a_demo_summary_shows_blocks_and_latency(small_nwb, tmp_path):
    summary = {**_summary(), "latency_ms": [0.1, 0.2, 0.2, 0.3, 5.0]}
    sections = build_report(small_nwb, tmp_path / "r.html", session_summary=summary)
    assert all(s.recorded for s in sections)
    bps = next(s for s in sections if s.title == "BPS per block")
    assert [row[0] for row in bps.rows] == ["open-loop", "webgrid-1"]
    assert bps.rows[1][-1] == f"{36.0 / 60.0 * math.log2(899):.2f}" == "5.89"
    assert next(s for s in sections if s.title == "Loop latency").png.startswith(b"\x89PNG")
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64,") == 6


def test_session_json_is_checked(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(InvalidInputError, match=r"bad.json: not JSON"):
        load_session_summary(bad)
    bad.write_text(json.dumps({"bps": 3}))
    with pytest.raises(InvalidInputError, match="expected an object with 'blocks'"):
        load_session_summary(bad)
    bad.write_text(json.dumps({"blocks": 3}))
    with pytest.raises(InvalidInputError, match="'blocks' must be a list"):
        load_session_summary(bad)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="session file not found"):
        build_report(tmp_path / "nope.nwb", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli_writes_the_report_and_one_json_object(small_nwb, tmp_path, capsys):
    from neurolace.cli import report

    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers())
    summary_path = tmp_path / "summary.json"
    summary_path.write_text(json.dumps(_summary()))
    args = parser.parse_args(["report", str(small_nwb), "--out", str(tmp_path / "r.html"),
                              "--session-json", str(summary_path), "--json"])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["not_recorded"] == ["Loop latency"] and (tmp_path / "r.html").exists()
