"""The link's attack bench: every attack refused with its reason, nothing forged or replayed accepted; the CLI."""

from __future__ import annotations

import json
import stat

import pytest

from cli_helpers import error_line, run_cli
from neurolace.core.errors import InvalidInputError
from neurolace.link.attack import ATTACK_KINDS, HANDSHAKE_ATTACKS, run_attack_bench
from neurolace.link.keys import Keystore
from neurolace.link.session import initiate, respond

PROMISED_KEYS = {
    "sent", "delivered", "lost", "rejected", "forged_accepted", "replayed_accepted", "throughput_kbps",
    "added_latency_us_p99", "handshake_ms", "unpaired_refused", "attacks", "handshake_attacks",
}


@pytest.mark.parametrize("loss", [0.0, 0.2])
def test_every_attack_is_refused_with_its_reason(loss):
    report = run_attack_bench(loss=loss, seconds=2.0, seed=3)
    assert report["forged_accepted"] == 0 and report["replayed_accepted"] == 0
    assert report["sent"] == 100 and report["delivered"] + report["lost"] == report["sent"]
    if loss == 0.0:
        assert report["lost"] == 0  # 3.3 Mbit/s of bins on a 4 Mbit/s radio: nothing queued out
    else:
        assert report["lost"] > 0 and report["channel"]["lost"] > 0
    for kind, expected in ATTACK_KINDS.items():
        record = report["attacks"][kind]
        assert record["injected"] > 0, kind
        assert record["accepted"] == 0, kind
        assert record["rejected"].get(expected) == record["injected"], (kind, record)
    # the truncated frame's follower is a forged frame, refused on its own; nothing else is refused
    assert report["attacks"]["truncated"]["rejected"] == {
        "truncated": report["attacks"]["truncated"]["injected"],
        "tag_mismatch": report["attacks"]["truncated"]["injected"],
    }
    assert report["handshake_attacks"] == HANDSHAKE_ATTACKS
    assert report["unpaired_refused"] == 1
    # the host's own refusals are the attacks' and the radio's duplicates (refused as replays), no more
    by_attack = {}
    for record in report["attacks"].values():
        for reason, count in record["rejected"].items():
            by_attack[reason] = by_attack.get(reason, 0) + count
    duplicates = report["rejected"].get("replayed", 0) - by_attack.get("replayed", 0)
    assert 0 <= duplicates <= report["channel"]["duplicated"]
    assert {reason: count for reason, count in report["rejected"].items() if reason != "replayed"} == {
        reason: count for reason, count in by_attack.items() if reason != "replayed"
    }
    assert report["throughput_kbps"] == pytest.approx(report["delivered"] * 8192 * 8 / 1000 / 2.0)


def test_same_seed_same_counts():
    first, second = (run_attack_bench(loss=0.1, seconds=1.0, seed=11) for _ in range(2))
    for key in ("sent", "delivered", "lost", "rejected", "attacks", "channel"):
        assert first[key] == second[key], key  # the keys differ (from the OS), the frames' fate does not


def test_the_bench_catches_a_link_that_accepts_replays(monkeypatch):
    from neurolace.link.replay import ReplayWindow

    monkeypatch.setattr(ReplayWindow, "check", lambda self, sequence: None)
    monkeypatch.setattr(ReplayWindow, "accept", lambda self, sequence: None)
    report = run_attack_bench(seconds=1.0, seed=0)
    assert report["replayed_accepted"] > 0
    assert report["attacks"]["replayed_in_window"]["accepted"] > 0


def test_the_bench_catches_a_link_that_does_not_authenticate(monkeypatch, capsys):
    from neurolace.link.session import SecureSession

    monkeypatch.setattr(SecureSession, "open", lambda self, nonce, header, body: body[:-16])
    report = run_attack_bench(seconds=1.0, seed=0)
    assert report["forged_accepted"] > 0
    assert report["attacks"]["tampered_body"]["accepted"] > 0
    code, out, _ = run_cli(["link", "bench", "--json", "--seconds", "1"], capsys)
    assert code == 1 and json.loads(out)["forged_accepted"] > 0


def test_bad_arguments_are_named():
    with pytest.raises(InvalidInputError, match="loss must be a number >= 0 and < 1"):
        run_attack_bench(loss=1.0, seconds=1.0)
    with pytest.raises(InvalidInputError, match="seconds must be a positive finite number"):
        run_attack_bench(seconds=float("nan"))
    with pytest.raises(InvalidInputError, match="feature_bytes must be >= 64"):
        run_attack_bench(seconds=1.0, feature_bytes=8)


def test_cli_bench_json_has_the_promised_keys(capsys):
    code, out, _ = run_cli(["link", "bench", "--json", "--seconds", "1", "--loss", "0.05", "--seed", "2"], capsys)
    assert code == 0
    report = json.loads(out)
    assert PROMISED_KEYS <= set(report)
    assert report["forged_accepted"] == 0 and report["replayed_accepted"] == 0 and report["sent"] == 50


def test_cli_bench_table(capsys):
    code, out, _ = run_cli(["link", "bench", "--seconds", "1"], capsys)
    assert code == 0
    for text in ("frames sent / delivered / lost", "replayed accepted", "tampered_header", "unpaired handshake"):
        assert text in out


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--loss", "1.5"], "--loss"),
        (["--loss", "nan"], "--loss"),
        (["--seconds", "nan"], "--seconds"),
        (["--seconds", "0"], "--seconds"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_cli_bench_bad_arguments_exit_2_naming_the_option(argv, option, capsys):
    code, _, err = run_cli(["link", "bench", *argv], capsys)
    assert code == 2
    assert f"argument {option}: must be" in error_line(err, "link")


def test_cli_pair_makes_keystores_that_handshake(tmp_path, capsys):
    directory = tmp_path / "keys"
    code, out, _ = run_cli(["link", "pair", directory, "--yes"], capsys)
    assert code == 0
    codes = [line.split()[-1] for line in out.splitlines() if " shows " in line]
    assert len(codes) == 2 and codes[0] == codes[1] and len(codes[0]) == 6 and codes[0].isdigit()
    implant, host = Keystore.load(directory / "implant.json"), Keystore.load(directory / "host.json")
    for path in (directory / "implant.json", directory / "host.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert implant.status(host.public_key) == "paired" and host.status(implant.public_key) == "paired"
    message1, pending = initiate(host, "implant")
    message2, implant_session = respond(implant, message1)
    host_session = pending.finish(message2)
    header = b"h" * 28
    assert implant_session.open(0, header, host_session.seal(0, header, b"stim")) == b"stim"

    before = (directory / "implant.json").read_bytes()
    code, _, err = run_cli(["link", "pair", directory, "--yes"], capsys)
    assert code == 2 and "pass --force" in error_line(err, "link")
    assert (directory / "implant.json").read_bytes() == before
    assert run_cli(["link", "pair", directory, "--yes", "--force"], capsys)[0] == 0
    assert (directory / "implant.json").read_bytes() != before


def test_cli_pair_asks_and_writes_nothing_unless_confirmed(tmp_path, capsys, monkeypatch):
    answers = iter(["n", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    code, _, err = run_cli(["link", "pair", tmp_path / "keys"], capsys)
    assert code == 1 and "not confirmed" in err
    assert not (tmp_path / "keys" / "implant.json").exists() and not (tmp_path / "keys" / "host.json").exists()
    assert run_cli(["link", "pair", tmp_path / "keys"], capsys)[0] == 0
    assert (tmp_path / "keys" / "host.json").exists()


def test_cli_pair_refuses_a_file_as_dir(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = run_cli(["link", "pair", target, "--yes"], capsys)
    assert code == 2 and "is a file, not a folder" in error_line(err, "link")


def test_cli_bench_every_numeric_option_refuses_bad_numbers(capsys):
    """Generated from the parser, so an option added later is probed too."""
    import argparse

    from neurolace.cli.args import Number
    from neurolace.cli.main import build_parser

    parser = build_parser()
    for path in ("link", "bench"):
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[path]
    options = [action for action in parser._actions if isinstance(action.type, Number)]
    assert {action.option_strings[0] for action in options} == {"--loss", "--seconds", "--seed"}
    for action in options:
        for value in ("nan", "inf", "-1e400", "abc", "1e300"):
            code, _, err = run_cli(["link", "bench", "--seconds", "1", f"{action.option_strings[0]}={value}"], capsys)
            assert code == 2, (action.option_strings[0], value)
            assert f"argument {action.option_strings[0]}: must be" in error_line(err, "link")
