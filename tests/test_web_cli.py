"""``neurolace serve`` user bootstrap: create users, print tokens, refuse bad requests."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys

import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.web.auth import AuthError, WebStore


def _run(argv: list[str]) -> int:
    from neurolace.cli import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", *argv])
    return args.handler(args)


def test_create_user_prints_one_json_object_with_a_working_token(tmp_path, capsys):
    assert _run(["--data-dir", str(tmp_path), "--create-user", "ana", "--role", "clinician", "--json",
                 "--token-hours", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["user"] == {"name": "ana", "role": "clinician", "participant_id": None}
    assert printed["expires_s"] == 7200.0
    user = WebStore(tmp_path).authenticate(printed["token"])
    assert user.name == "ana"


def test_participant_with_password_from_stdin_can_log_in(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    assert _run(["--data-dir", str(tmp_path), "--create-user", "p01", "--role", "participant",
                 "--participant-id", "sim-009", "--password-stdin"]) == 0
    assert "p01 (participant) token" in capsys.readouterr().out
    assert WebStore(tmp_path).login("p01", "a long passphrase").participant_id == "sim-009"


def test_token_for_an_existing_user(tmp_path, capsys):
    WebStore(tmp_path).create_user("bo", "researcher")
    assert _run(["--data-dir", str(tmp_path), "--token-for", "bo", "--json"]) == 0
    assert WebStore(tmp_path).authenticate(json.loads(capsys.readouterr().out)["token"]).role == "researcher"


@pytest.mark.parametrize("argv,message", [
    (["--create-user", "ana"], "--create-user needs --role"),
    (["--token-for", "nobody"], "--token-for: no user 'nobody'"),
    (["--json"], "--json applies to --create-user, --token-for and --revoke-tokens"),
    (["--revoke-tokens", "nobody"], "no user 'nobody'"),
    (["--port", "70000"], "--port must be 0-65535, got 70000"),
    (["--create-user", "x", "--role", "researcher", "--token-hours", "0"], "--token-hours must be a finite number"),
    (["--create-user", "x", "--role", "researcher", "--token-hours", "inf"], "at most 720 \\(30 days\\), got inf"),
    (["--create-user", "x", "--role", "researcher", "--token-hours", "1e300"], "got 1e\\+300"),
    (["--create-user", "x", "--role", "researcher", "--token-hours", "nan"], "got nan"),
    (["--token-for", "x", "--token-hours", "-1"], "got -1"),
    (["--token-for", "x", "--token-hours", "721"], "got 721"),
])
def test_bad_requests_are_one_clear_error(tmp_path, argv, message):
    with pytest.raises(InvalidInputError, match=message):
        _run(["--data-dir", str(tmp_path), *argv])


def test_longest_token_hours_are_accepted(tmp_path, capsys):
    assert _run(["--data-dir", str(tmp_path), "--create-user", "ana", "--role", "clinician", "--json",
                 "--token-hours", "720"]) == 0
    assert json.loads(capsys.readouterr().out)["expires_s"] == 720 * 3600.0


def _neurolace(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neurolace.cli.main", *argv], capture_output=True, text=True,
                          timeout=120)


def test_data_dir_that_is_a_file_is_exit_2_without_a_traceback(tmp_path):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    for argv in (["--create-user", "ana", "--role", "clinician"], ["--port", "0"]):
        result = _neurolace("serve", "--data-dir", str(a_file), *argv)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"data directory {a_file} is a file" in result.stderr


def test_corrupt_scores_file_is_exit_2_naming_the_file(tmp_path):
    (tmp_path / "scores.json").write_text('[{"user": "a", ')
    result = _neurolace("serve", "--data-dir", str(tmp_path), "--port", "0", "--no-start")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'scores.json'} is not valid JSON" in result.stderr
    assert not (tmp_path / "secret.key").exists() and not (tmp_path / "users.json").exists()


def test_revoke_tokens_ends_the_tokens_of_a_user(tmp_path, capsys):
    store = WebStore(tmp_path)
    token = store.issue_token(store.create_user("bo", "researcher"))
    assert _run(["--data-dir", str(tmp_path), "--revoke-tokens", "bo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"revoked": "bo"}
    with pytest.raises(AuthError, match="token revoked"):
        store.authenticate(token)
    assert _run(["--data-dir", str(tmp_path), "--token-for", "bo", "--json"]) == 0
    assert store.authenticate(json.loads(capsys.readouterr().out)["token"]).name == "bo"
