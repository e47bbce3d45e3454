"""``neurolace run`` and ``neurolace bench latency`` from the command line."""

from __future__ import annotations

import json

import pytest
from runtime_fixtures import REPO_ROOT

from neurolace.cli import main as cli_main


@pytest.fixture(autouse=True)
def _runtime_commands(monkeypatch):
    modules = tuple(cli_main.SUBCOMMAND_MODULES)
    for name in ("neurolace.cli.run", "neurolace.cli.bench"):
        if name not in modules:
            modules += (name,)
    monkeypatch.setattr(cli_main, "SUBCOMMAND_MODULES", modules)


def test_check_accepts_the_example_and_the_preset(capsys):
    assert cli_main.main(["run", str(REPO_ROOT / "sessions" / "closed_loop_sim.toml"), "--check"]) == 0
    assert (
        "valid session 'closed-loop-sim' with nodes participant (sim_participant)" in capsys.readouterr().out
    )
    assert cli_main.main(["run", "demo", "--check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nodes"] == {
        "participant": "sim_participant", "implant_link": "link_implant", "host_link": "link_host", "task": "closed_loop"}


def test_the_demo_preset_is_the_closed_loop_sim_graph_through_the_implant():
    from neurolace.runtime.presets import preset_session
    from neurolace.runtime.session_file import load_session

    preset, shipped = preset_session("demo"), load_session(REPO_ROOT / "sessions" / "closed_loop_sim.toml")
    assert [(n.name, n.type_name, n.params, n.inputs, n.feedback) for n in preset.nodes] == [
        (n.name, n.type_name, n.params, n.inputs, n.feedback) for n in shipped.nodes]
    assert preset.node("participant").params["path"] == "implant"
    assert preset.duration_s == shipped.duration_s


def test_path_option_sets_every_simulated_participant(tmp_path, capsys):
    from neurolace.cli.run import _set_feature_path
    from neurolace.core.errors import NeurolaceError
    from neurolace.runtime.presets import preset_session
    from neurolace.runtime.session_file import parse_session

    spec = preset_session("demo")
    _set_feature_path(spec, "counts")
    assert spec.node("participant").params["path"] == "counts"
    raw_only = parse_session('[nodes.implant]\ntype = "sim_implant"\nn_channels = 16\n', source="raw.toml")
    with pytest.raises(NeurolaceError, match=r"--path sets the features of a simulated participant, but session "
                                             r"'raw' has no sim_participant node; nodes: \['implant'\]"):
        _set_feature_path(raw_only, "implant")
    session = tmp_path / "s.toml"
    session.write_text(
        '[session]\nduration_s = 5.0\n[nodes.p]\ntype = "sim_participant"\nn_channels = 16\n'
        "max_bins = 20\nrealtime = false\n"
        '[nodes.d]\ntype = "decoder"\ncalibration_s = 0.2\n'
        'inputs = { features = "p.features", intention = "p.intention" }\n'
    )
    assert cli_main.main(["run", str(session), "--json", "--path", "implant"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not report["failed_nodes"] and report["nodes"]["p"]["bins"] == 20
    assert report["nodes"]["d"]["messages_in"] == 40
    assert cli_main.main(["run", str(session), "--path", "spikes"]) == 2
    assert "invalid choice: 'spikes'" in capsys.readouterr().err


def test_malformed_session_is_one_line_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[nodes.a]\ntype = "sim_participant"\n\n[nodes.b]\ntype = "cursor"\n'
        'inputs = { velocity = "a.features" }\n'
    )
    assert cli_main.main(["run", str(bad)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith(f"neurolace run: error: {bad}:6: node 'b': type mismatch on inputs.velocity")


def test_run_json_reports_every_node(tmp_path, capsys):
    session = tmp_path / "s.toml"
    session.write_text(
        '[session]\nduration_s = 5.0\n[nodes.p]\ntype = "sim_participant"\nn_channels = 8\n'
        "max_bins = 20\nrealtime = false\n"
        '[nodes.d]\ntype = "decoder"\ncalibration_s = 0.2\n'
        'inputs = { features = "p.features", intention = "p.intention" }\n'
    )
    assert cli_main.main(["run", str(session), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bus"] == "inprocess://" and report["dropped"] == 0
    assert report["nodes"]["p"]["bins"] == 20 and report["nodes"]["d"]["messages_in"] == 40


def test_run_clock_stepped_ends_on_the_source_clock_and_shows_the_backlog(tmp_path, capsys):
    session = tmp_path / "s.toml"
    session.write_text(
        '[session]\nduration_s = 0.5\n[nodes.p]\ntype = "sim_participant"\nn_channels = 8\n'
        '[nodes.d]\ntype = "decoder"\ncalibration_s = 0.2\n'
        'inputs = { features = "p.features", intention = "p.intention" }\n'
    )
    assert cli_main.main(["run", str(session), "--json", "--clock", "stepped"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clock"] == "stepped" and report["nodes"]["p"]["bins"] == 25  # 0.5 s of 20 ms bins
    assert report["backlog"]["p.features -> d"]["verdict"] == "steady" and report["backlogged_hops"] == []
    assert cli_main.main(["run", str(session), "--clock", "stepped"]) == 0
    assert "steady" in capsys.readouterr().out  # the table's backlog column


def test_list_types_and_missing_session(capsys):
    assert cli_main.main(["run", "--list-types", "--json"]) == 0
    catalogue = json.loads(capsys.readouterr().out)
    assert catalogue["replay"]["parameters"]["path"]["required"] is True
    assert cli_main.main(["run", "nothere.toml"]) == 2
    assert "session file not found: nothere.toml" in capsys.readouterr().err


def test_bench_latency_json_has_the_promised_keys(capsys):
    # keys and types only: drop counts and timings depend on the machine's load (the drop
    # mechanism is pinned deterministically in test_runtime_messages_bus.py)
    assert (
        cli_main.main(
            ["bench", "latency", "--json", "--duration-s", "1", "--channels", "32", "--warmup-s", "0.3"]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["bus"] == "inprocess://"
    for key in ("hop_p50_us", "hop_p99_us", "end_to_end_p99_ms"):
        assert isinstance(result[key], float)
    for key in ("dropped", "bins", "raw_blocks"):
        assert isinstance(result[key], int) and result[key] >= 0
    assert set(result["hops"]) == {
        "implant.raw -> dsp",
        "dsp.features -> decoder",
        "decoder.velocity -> cursor",
    }
    assert isinstance(result["queue_baseline_us"]["n"], int)
    assert set(result["backlog"]) == set(result["hops"])
    for summary in result["backlog"].values():
        assert summary["verdict"] in ("steady", "growing", "overflowing")
        assert isinstance(summary["slope_per_s"], float) and isinstance(summary["depth_max"], int)
    assert set(result["backlogged_hops"]) <= set(result["hops"])
    assert result["filter_delay_ms"] > 0  # the default spike filter is linear-phase: a fixed delay
    assert result["end_to_end_p99_beyond_filter_ms"] < result["end_to_end_p99_ms"]
    assert cli_main.main(["bench", "latency", "--duration-s", "0.5", "--channels", "16", "--warmup-s", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "backlog per hop" in out and "spike filter's fixed delay of" in out


def _report_with(webgrid: dict, events: list[dict]) -> dict:
    node = {
        "type": "webgrid",
        "state": "stopped",
        "messages_in": 0,
        "messages_out": 0,
        "dropped": 0,
        "restarts": 0,
        "cpu_share": 0.0,
        "hop_latency_us": {},
        **webgrid,
    }
    return {"session": "s", "bus": "inprocess://", "wall_s": 1.0, "nodes": {"task": node}, "events": events}


def test_summary_says_why_nothing_was_scored_instead_of_zero_bps(capsys):
    from neurolace.cli import run as run_cli

    run_cli._print_report(_report_with({"correct": 0, "incorrect": 0, "bps": 0.0}, []))
    out = capsys.readouterr().out
    assert "0.00 bits/s" not in out
    assert "no Webgrid target scored" in out and "before the decoder finished calibrating" in out

    fitted = [{"event": "decoder_fitted", "node": "decoder", "bins": 1000}]
    run_cli._print_report(_report_with({"correct": 0, "incorrect": 0, "bps": 0.0}, fitted))
    assert "fitted but no target was selected" in capsys.readouterr().out

    run_cli._print_report(_report_with({"correct": 5, "incorrect": 1, "bps": 1.234}, fitted))
    assert "5 correct, 1 incorrect, 1.23 bits/s" in capsys.readouterr().out


def test_run_log_events_print_as_sentences(capsys):
    from neurolace.cli import run as run_cli

    events = [
        {"event": "cursor_holding", "node": "cursor", "position": [0.5, 0.25]},
        {"event": "node_failed", "node": "decoder", "error": "ValueError: bad bin"},
        {"event": "session_started", "node": "graph"},
    ]
    run_cli._print_report(_report_with({"correct": 1, "incorrect": 0, "bps": 0.5}, events))
    out = capsys.readouterr().out
    assert "cursor: cursor held still at [0.5, 0.25]" in out and "stale_ms" in out
    assert "node decoder failed: ValueError: bad bin" in out
    assert "session_started" not in out
