"""The session report: detection rates on known answers, what each input adds, the run check, bad input, the CLI."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.runtime.closed_loop import BlockResult, SessionResult
from neurolace.web.report import (
    NEEDS_SESSION_RUN,
    NOT_RECORDED,
    RunCheckWarning,
    RunMismatchError,
    build_report,
    detection_rates,
    load_session_summary,
)

RUN_ID = "neurolace-demo-test-run"
SIGNAL_SECTIONS = ["Raw traces", "Spike raster", "Crossing rate per channel", "Noise per channel", "Detection rates",
                   "Spike-band power", "Tuning curves"]
SESSION_SECTIONS = ["BPS per block", "Time to target", "Loop latency"]


@pytest.fixture(scope="module")
def simulated():
    from neurolace.sim.implant import simulate_implant

    return simulate_implant(duration_s=1.0, n_electrodes=16, seed=4)


@pytest.fixture(scope="module")
def small_nwb(tmp_path_factory, simulated):
    """A 16-electrode, 1 s simulated session through the chain, written like neurolace demo writes it."""
    from neurolace.dsp.chain import run_signal_chain
    from neurolace.io.nwb import write_nwb

    chain = run_signal_chain(simulated.recording)
    path = tmp_path_factory.mktemp("report") / "small.nwb"
    write_nwb(path, simulated.recording, events=chain.events, features=[chain.features],
              units=simulated.ground_truth.units, unit_table=simulated.ground_truth.unit_table(),
              session_description="report test", subject_id="sim", identifier=RUN_ID)
    return path


@pytest.fixture(scope="module")
def bare_nwb(tmp_path_factory, simulated):
    """The same session written like neurolace simulate writes it: raw samples and ground truth only."""
    from neurolace.io.nwb import write_nwb

    path = tmp_path_factory.mktemp("report") / "bare.nwb"
    write_nwb(path, simulated.recording, units=simulated.ground_truth.units,
              unit_table=simulated.ground_truth.unit_table(), session_description="bare", subject_id="sim")
    return path


def _summary() -> dict:
    session = SessionResult("kalman", 16, 30, 0, True, 1.2)
    for name, kind, correct, incorrect, time_s in (("open-loop", "open-loop", 30, 2, 1.5),
                                                   ("webgrid-1", "webgrid", 40, 4, 1.25)):
        session.blocks.append(BlockResult(name, kind, 60.0, 30 if kind == "webgrid" else 6, 0.0, 0.0, correct,
                                          incorrect, 0.9, time_s, 0.3, 0.8, 1.0, 0.0))
    session.blocks[1].ntpm = 36.0
    session.blocks[1].bps = 36.0 / 60.0 * math.log2(899)
    return {**session.to_dict(), "run_id": RUN_ID}


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
    assert [s.title for s in sections] == SIGNAL_SECTIONS + SESSION_SECTIONS
    assert [s.title for s in sections if not s.recorded] == SESSION_SECTIONS
    assert all(by_title[title].needs == NEEDS_SESSION_RUN for title in SESSION_SECTIONS)
    assert all(by_title[title].png.startswith(b"\x89PNG") for title in SIGNAL_SECTIONS)
    # the file stores crossings and features; only the noise estimate is computed from the raw samples
    assert [s.title for s in sections if s.computed] == ["Noise per channel"]
    rows = dict(map(tuple, by_title["Detection rates"].rows))
    assert rows["channels"] == "16"
    text = out.read_text()
    assert text.count(NOT_RECORDED) == 3 and text.count("data:image/png;base64,") == len(SIGNAL_SECTIONS)
    assert "needs a session run" in text
    assert not list(tmp_path.glob("*.part"))


def test_bare_recording_gets_every_signal_section_from_the_chain(small_nwb, bare_nwb, simulated, tmp_path):
    from neurolace.dsp.chain import run_signal_chain

    sections = build_report(bare_nwb, tmp_path / "bare.html")
    by_title = {s.title: s for s in sections}
    assert [s.title for s in sections if s.recorded] == SIGNAL_SECTIONS
    assert {s.title for s in sections if s.computed} == set(SIGNAL_SECTIONS) - {"Tuning curves"}
    assert "the file stores no threshold crossings" in by_title["Spike raster"].note
    # the crossings computed from the raw samples are the chain's, as stored by the full file
    expected = run_signal_chain(simulated.recording).events
    rows = dict(map(tuple, by_title["Detection rates"].rows))
    assert rows["crossings"] == str(expected.n_spikes) and expected.n_spikes > 0
    stored = {s.title: s for s in build_report(small_nwb, tmp_path / "full.html")}
    assert by_title["Detection rates"].rows == stored["Detection rates"].rows
    assert by_title["Noise per channel"].rows == stored["Noise per channel"].rows


def test_report_with_a_demo_summary_shows_blocks_and_latency(small_nwb, tmp_path):
    summary = {**_summary(), "latency_ms": [0.1, 0.2, 0.2, 0.3, 5.0]}
    sections = build_report(small_nwb, tmp_path / "r.html", session_summary=summary)
    assert all(s.recorded for s in sections)
    bps = next(s for s in sections if s.title == "BPS per block")
    assert [row[0] for row in bps.rows] == ["open-loop", "webgrid-1"]
    assert bps.rows[1][-1] == f"{36.0 / 60.0 * math.log2(899):.2f}" == "5.89"
    assert next(s for s in sections if s.title == "Loop latency").png.startswith(b"\x89PNG")
    text = (tmp_path / "r.html").read_text()
    assert text.count("data:image/png;base64,") == len(SIGNAL_SECTIONS) + 3
    assert "same run" in text and "class='warning'" not in text


def test_summary_of_another_run_is_refused_naming_both_files(small_nwb, tmp_path):
    summary = {**_summary(), "run_id": "neurolace-demo-another-run"}
    out = tmp_path / "r.html"
    with pytest.raises(RunMismatchError, match=(r"other\.json \(run neurolace-demo-another-run\) and "
                                                r".*small\.nwb \(run neurolace-demo-test-run\) come from "
                                                "different runs")):
        build_report(small_nwb, out, session_summary=summary, session_name="other.json")
    assert not out.exists()


def test_summary_of_another_run_is_drawn_with_a_loud_warning_when_allowed(small_nwb, tmp_path):
    summary = {**_summary(), "run_id": "neurolace-demo-another-run"}
    with pytest.warns(RunCheckWarning, match="come from different runs"):
        build_report(small_nwb, tmp_path / "r.html", session_summary=summary, session_name="other.json",
                     allow_other_run=True)
    text = (tmp_path / "r.html").read_text()
    assert "class='warning'" in text and "different runs" in text


def test_summary_without_a_run_id_warns_that_it_cannot_be_checked(small_nwb, tmp_path):
    summary = {key: value for key, value in _summary().items() if key != "run_id"}
    with pytest.warns(RunCheckWarning, match="carries no 'run_id'"):
        sections = build_report(small_nwb, tmp_path / "r.html", session_summary=summary)
    assert next(s for s in sections if s.title == "BPS per block").recorded


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
    bad.write_text(json.dumps({"blocks": [], "run_id": 7}))
    with pytest.raises(InvalidInputError, match="'run_id' must be a string, got int"):
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
    assert printed["needs"] == {"Loop latency": NEEDS_SESSION_RUN} and printed["warnings"] == []


def test_cli_refuses_a_summary_of_another_run_with_exit_status_2(small_nwb, tmp_path, capsys):
    from neurolace.cli.main import main

    summary_path = tmp_path / "other.json"
    summary_path.write_text(json.dumps({**_summary(), "run_id": "neurolace-demo-another-run"}))
    argv = ["report", str(small_nwb), "--out", str(tmp_path / "r.html"), "--session-json", str(summary_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "neurolace report: error:" in error and str(summary_path) in error and str(small_nwb) in error
    assert not (tmp_path / "r.html").exists()
    assert main([*argv, "--allow-other-run"]) == 0
    captured = capsys.readouterr()
    assert "WARNING" in captured.err and "different runs" in captured.err
    assert (tmp_path / "r.html").exists()


def test_cli_says_which_sections_need_a_session_run(bare_nwb, tmp_path, capsys):
    from neurolace.cli.main import main

    assert main(["report", str(bare_nwb), "--out", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert "7 of 10 sections drawn" in out
    assert "needs a session run: BPS per block, Time to target, Loop latency" in out


def test_a_binary_session_summary_is_a_clear_error(tmp_path):
    """Issue 17: a binary --session-json raised UnicodeDecodeError inside the report module."""
    from neurolace.web.report import load_session_summary

    path = tmp_path / "summary.json"
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(InvalidInputError, match="not a text file"):
        load_session_summary(path)


def test_tuning_curves_get_distinct_colours():
    from neurolace.web.report import N_TUNING_UNITS, tuning_styles

    styles = tuning_styles(N_TUNING_UNITS)
    assert len({colour for colour, _ in styles}) == N_TUNING_UNITS  # 12 units, 12 colours (tab10 had 10)
    assert len(set(tuning_styles(40))) == 40  # past 20 colours the line style tells them apart


def test_report_header_and_unit_count_match_what_simulate_says(bare_nwb, simulated, tmp_path):
    import neurolace
    from neurolace.io.nwb import read_nwb
    from neurolace.web.report import unit_count_text

    contents = read_nwb(bare_nwb)
    n_units = simulated.ground_truth.n_units  # what neurolace simulate prints ("353 units, ...")
    fired = np.unique(simulated.ground_truth.units.unit_id).size
    assert unit_count_text(contents) == f"{n_units} ({fired} fired in this recording)"
    build_report(bare_nwb, tmp_path / "bare.html")
    page = (tmp_path / "bare.html").read_text()
    assert f"<td>ground-truth units</td><td>{n_units} (" in page
    assert f"<td>neurolace</td><td>{neurolace.__version__}</td>" in page
    assert "<td>recorded</td><td>20" in page and "<td>report written</td><td>20" in page
    assert "<td>decoder</td><td>none named: a session summary" in page
    build_report(bare_nwb, tmp_path / "with-summary.html", session_summary={**_summary(), "run_id": None} | {
        "run_id": contents.recording.metadata["identifier"]})
    assert "<td>decoder</td><td>kalman</td>" in (tmp_path / "with-summary.html").read_text()


def test_report_of_a_plain_simulated_file_fits_a_phone_and_draws_detection(bare_nwb, tmp_path):
    """In Chromium at 390 x 844: no horizontal scroll (viewport meta), the detection figure drawn."""
    import shutil
    import tempfile

    from playwright.sync_api import sync_playwright

    from tests.test_web_browser import launch_chromium

    build_report(bare_nwb, tmp_path / "report.html")
    user_data_dir = tempfile.mkdtemp(prefix="neurolace-chromium-")
    try:
        with sync_playwright() as playwright:
            context = launch_chromium(playwright, user_data_dir)
            page = context.new_page()
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto((tmp_path / "report.html").as_uri())
            width = page.evaluate("document.documentElement.scrollWidth")
            detection = page.evaluate("""() => {
                const heading = [...document.querySelectorAll('h2')].find((h) => h.textContent === 'Detection rates');
                let node = heading.nextElementSibling;
                while (node && node.tagName !== 'IMG' && node.tagName !== 'H2') node = node.nextElementSibling;
                return node && node.tagName === 'IMG' ? node.naturalWidth : 0; }""")
            context.close()
    finally:
        shutil.rmtree(user_data_dir, ignore_errors=True)
    assert width == 390
    assert detection > 100
