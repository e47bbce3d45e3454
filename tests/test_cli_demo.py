"""``neurolace demo`` runs the whole simulated session and reports it."""

from __future__ import annotations

import json

import pytest

from neurolace.cli.main import build_parser, main
from neurolace.io.nwb import read_nwb


def test_demo_headless_json(tmp_path, capsys):
    code = main(["demo", "--headless", "--json", "--seconds", "5", "--chain-seconds", "1.2",
                 "--electrodes", "64", "--out-dir", str(tmp_path), "--seed", "2"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # exactly one JSON object on stdout
    for key in ("bps", "ntpm", "grid_side", "decoder", "channels", "success_rate", "nwb_path"):
        assert key in summary
    assert summary["channels"] == 64 and summary["grid_side"] == 30 and summary["decoder"] == "kalman"
    assert [b["kind"] for b in summary["blocks"]] == ["open-loop", "closed-loop", "refit", "webgrid"]
    implant = summary["implant"]
    assert implant["n_spikes"] > 0 and implant["realtime_factor"] > 0
    contents = read_nwb(summary["nwb_path"])
    assert contents.recording.n_channels == 64
    assert contents.events.n_spikes == implant["n_spikes"]
    assert contents.units.n_spikes > 0 and contents.features
    # one run id in both, so neurolace report can pair the summary with its recording
    assert summary["run_id"].startswith("neurolace-demo-")
    assert contents.recording.metadata["identifier"] == summary["run_id"]
    assert "…" not in captured.err  # --json: no status lines either
    summary_path = tmp_path / "summary.json"
    summary_path.write_text(captured.out)
    assert main(["report", summary["nwb_path"], "--session-json", str(summary_path),
                 "--out", str(tmp_path / "report.html"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["warnings"] == [] and report["not_recorded"] == ["Loop latency"]


def test_demo_text_summary_with_dashboard(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the dashboard keeps its users under ./out/web
    assert main(["demo", "--seconds", "3", "--chain-seconds", "1.1", "--electrodes", "16",
                 "--out-dir", str(tmp_path / "demo"), "--no-refit", "--port", "0"]) == 0
    captured = capsys.readouterr()
    assert "threshold crossings" in captured.out and "bits/s" in captured.out and "webgrid-1" in captured.out
    assert "dashboard: http://127.0.0.1:" in captured.err


def test_demo_steps_count_the_implant_steps_and_every_block(tmp_path, monkeypatch):
    """The progress bar's total is the three implant steps plus the session's own blocks."""
    from rich.console import Console

    from neurolace.cli import demo

    seen = []

    class Recorder(demo._Steps):
        def __call__(self, message, *, total=None):
            seen.append((message, total))
            super().__call__(message, total=total)

    monkeypatch.setattr(demo, "_Steps", Recorder)
    assert main(["demo", "--headless", "--seconds", "2", "--chain-seconds", "1.1", "--electrodes", "16",
                 "--out-dir", str(tmp_path), "--no-refit", "--blocks", "2"]) == 0
    assert [message.split()[0] for message, _ in seen] == [
        "simulating", "running", "writing", "closed", "closed", "closed", "closed"]
    # the session's own block count (closed loop, open loop, two Webgrid blocks) sets the total
    assert {total for _, total in seen[3:]} == {demo.IMPLANT_STEPS + 4}
    assert demo.n_closed_loop_blocks(build_parser().parse_args(["demo", "--no-refit", "--blocks", "2"])) == 4
    assert Recorder(Console(stderr=True), n_steps=1, quiet=True).progress.disable  # --json: no bar


@pytest.mark.parametrize("argv,match", [
    (["--seconds", "0"], "--seconds must be a positive number"),
    (["--blocks", "0"], "--blocks must be >= 1"),
    (["--electrodes", "20"], "electrodes"),
])
def test_demo_bad_arguments(tmp_path, capsys, argv, match):
    assert main(["demo", "--headless", "--out-dir", str(tmp_path), *argv]) == 2
    assert match in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_still_serving_line_leaves_the_login_link_alone_between_spaces():
    from urllib.parse import urlsplit

    from neurolace.cli.demo import still_serving_message

    url = "http://127.0.0.1:8000/#token=abc.DEF-123_x"
    words = still_serving_message(url).split()
    links = [word for word in words if word.startswith("http")]
    assert links == [url]
    assert urlsplit(links[0]).fragment == "token=abc.DEF-123_x"
