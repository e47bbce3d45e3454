"""``neurolace demo`` runs the whole simulated session and reports it."""

from __future__ import annotations

import json

import pytest

from neurolace.cli.main import build_parser, main
from neurolace.io.nwb import read_nwb


def test_demo_headless_json(tmp_path, capsys):
    code = main(["demo", "--headless", "--json", "--seconds", "5", "--chain-seconds", "1.2",
                 "--electrodes", "64", "--out-dir", str(tmp_path), "--seed", "2",
                 "--open-loop-seconds", "30", "--closed-loop-seconds", "10"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # exactly one JSON object on stdout
    for key in ("bps", "ntpm", "grid_side", "decoder", "channels", "success_rate", "nwb_path", "ideal_bps"):
        assert key in summary
    assert summary["channels"] == 64 and summary["grid_side"] == 30 and summary["decoder"] == "kalman"
    # the default path: crossings then spike-band power of every channel from the implant's chain
    assert summary["path"] == "implant" and summary["n_features"] == 128
    assert summary["features"] == ["threshold_crossings", "spike_band_power_uv"]
    assert [b["kind"] for b in summary["blocks"]] == ["open-loop", "closed-loop", "refit", "webgrid"]
    assert [b["duration_s"] for b in summary["blocks"]] == [30.0, 10.0, 10.0, 5.0]
    assert summary["closed_loop_simulated_s"] == 55.0 and summary["closed_loop_cpu_s"] > 0
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
                 "--out-dir", str(tmp_path / "demo"), "--no-refit", "--port", "0",
                 "--open-loop-seconds", "20", "--closed-loop-seconds", "5"]) == 0
    captured = capsys.readouterr()
    assert "threshold crossings" in captured.out and "bits/s" in captured.out and "webgrid-1" in captured.out
    assert "(implant path: crossings + spike-band power of 16 channels)" in captured.out
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
                 "--out-dir", str(tmp_path), "--no-refit", "--blocks", "2", "--path", "counts"]) == 0
    assert [message.split()[0] for message, _ in seen] == [
        "simulating", "running", "writing", "closed", "closed", "closed", "closed"]
    # the session's own block count (closed loop, open loop, two Webgrid blocks) sets the total
    assert {total for _, total in seen[3:]} == {demo.IMPLANT_STEPS + 4}
    assert demo.n_closed_loop_blocks(build_parser().parse_args(["demo", "--no-refit", "--blocks", "2"])) == 4
    assert Recorder(Console(stderr=True), n_steps=1, quiet=True).progress.disable  # --json: no bar


def test_demo_counts_path_is_the_fast_mode_on_the_same_participant(tmp_path, capsys):
    """Same seed, both paths: the participant and the ceiling are shared, only the features differ."""
    argv = ["demo", "--headless", "--json", "--seconds", "4", "--chain-seconds", "1.1", "--electrodes", "32",
            "--seed", "3", "--open-loop-seconds", "20", "--closed-loop-seconds", "5", "--no-refit"]
    summaries = {}
    for path in ("counts", "implant"):
        assert main([*argv, "--out-dir", str(tmp_path / path), "--path", path]) == 0
        summaries[path] = json.loads(capsys.readouterr().out)
    counts, implant = summaries["counts"], summaries["implant"]
    assert (counts["path"], counts["n_features"], counts["features"]) == ("counts", 32, ["poisson_counts"])
    assert (implant["path"], implant["n_features"]) == ("implant", 64)
    # the perfect decoder never reads the features: one ceiling for both paths
    assert counts["ideal_bps"] == implant["ideal_bps"] > 0
    # the observation block is the autopilot's, whatever the features: the same targets are selected
    assert counts["blocks"][0]["correct"] == implant["blocks"][0]["correct"] > 0


def test_demo_sizes_are_the_paths_own_unless_given():
    from neurolace.cli import demo

    def sizes(*argv):
        args = build_parser().parse_args(["demo", *argv])
        demo._check_args(args)
        return args.path, args.electrodes, args.open_loop_seconds, args.closed_loop_seconds

    assert sizes() == ("implant", 256, 60.0, 40.0)
    assert sizes("--path", "counts") == ("counts", 1024, 120.0, 120.0)
    assert sizes("--electrodes", "1024", "--open-loop-seconds", "90") == ("implant", 1024, 90.0, 40.0)


def test_demo_and_run_list_the_runtime_paths():
    """The CLI's light copies of the path names agree with the runtime's."""
    from neurolace.cli import demo, run
    from neurolace.runtime.nodes.sources import PATHS

    assert demo.PATHS == run.FEATURE_PATHS == PATHS and PATHS[0] == "implant"


@pytest.mark.parametrize("argv,match", [
    (["--seconds", "0"], "--seconds must be a positive number"),
    (["--blocks", "0"], "--blocks must be >= 1"),
    (["--electrodes", "20"], "electrodes"),
    (["--open-loop-seconds", "0"], "--open-loop-seconds must be a positive number"),
    (["--closed-loop-seconds", "nan"], "--closed-loop-seconds must be a positive number"),
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
