"""``neurolace demo --task typing``: the demo's calibration, then typing with and without prediction."""

from __future__ import annotations

import json

from neurolace.cli.main import build_parser, main

ARGV = ["demo", "--task", "typing", "--headless", "--seconds", "10", "--chain-seconds", "1.05", "--electrodes",
        "160", "--path", "counts", "--no-link", "--no-refit", "--open-loop-seconds", "40",
        "--closed-loop-seconds", "10", "--seed", "2"]


def test_demo_typing_headless_json(tmp_path, capsys):
    assert main([*ARGV, "--json", "--out-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # exactly one JSON object on stdout
    for key in ("ccpm", "ccpm_without_prediction", "error_rate", "keystrokes_per_char", "ccpm_assisted",
                "prediction_gain", "wpm", "corrected_error_rate"):
        assert key in summary, key
    assert summary["task"] == "typing" and summary["decoder"] == "kalman" and summary["channels"] == 160
    blocks = {block["name"]: block for block in summary["typing_blocks"]}
    assert list(blocks) == ["no-prediction", "prediction", "prediction-assisted"]
    assert summary["ccpm"] == blocks["prediction"]["ccpm"]
    assert summary["ccpm_without_prediction"] == blocks["no-prediction"]["ccpm"]
    assert summary["ccpm_assisted"] == blocks["prediction-assisted"]["ccpm"]
    assert sum(block["chars_typed"] for block in blocks.values()) > 0  # something was typed
    assert not blocks["no-prediction"]["prediction"] and blocks["prediction"]["prediction"]
    # same seed: the same phrases in every block
    assert len({block["phrases"][0]["presented"] for block in blocks.values()}) == 1
    for name, block in blocks.items():  # each block's text was saved as it was typed
        assert block["text_path"] == str(tmp_path / f"typed-{name}.txt")
        assert (tmp_path / f"typed-{name}.txt").read_text() == block["text"]
    # the calibration blocks are the demo's (the dashboard charts them), then the typing blocks
    assert [b["kind"] for b in summary["blocks"]] == ["open-loop", "closed-loop"]
    assert summary["closed_loop_simulated_s"] == 40 + 10 + 3 * 10
    assert summary["path"] == "counts" and summary["link"] is None and summary["nwb_path"].endswith("demo.nwb")
    assert "…" not in captured.err


def test_demo_typing_text_summary(tmp_path, capsys):
    argv = [a if a != "160" else "32" for a in ARGV]
    assert main([*argv, "--seconds", "3", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "correct characters per minute with word prediction" in out and "no-prediction" in out
    assert f"saved as typed in {tmp_path / 'typed-prediction.txt'}" in out


def test_demo_task_choice_and_block_count():
    from neurolace.cli import demo

    args = build_parser().parse_args(["demo"])
    assert args.task == "webgrid" and demo.n_closed_loop_blocks(args) == 2 + 1 + 1
    args = build_parser().parse_args(["demo", "--task", "typing", "--blocks", "3"])
    assert demo.n_closed_loop_blocks(args) == 1 + demo.TYPING_BLOCKS == 4


def test_demo_unknown_task(tmp_path, capsys):
    assert main(["demo", "--task", "chess", "--headless", "--out-dir", str(tmp_path)]) == 2
    assert "invalid choice: 'chess'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
