"""Issue 17: the Redis bus logs in with a password and refuses every message not published by the session.

A real redis-server with a password (or an ACL user), a session on it, and a forging client that
knows the password but not the session key: none of its messages reach a node, they are counted by
reason, reported, and the run exits 1. Also: a wrong password is one clear error that never shows
the password; a genuine entry published again is refused as replayed; a bus without a key refuses
to start unless told ``authenticate = false``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from runtime_fixtures import REPO_ROOT, SPLIT_SESSION, bus_key, redis_server  # noqa: F401  (fixtures)

from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.runtime import bus_auth
from neurolace.runtime.bus import open_bus
from neurolace.runtime.bus_auth import (
    BUS_KEY_ENV,
    REDIS_PASSWORD_ENV,
    REDIS_USERNAME_ENV,
    BusCredentialsError,
    MessageAuthenticator,
    RefusalCounter,
    new_bus_key,
    read_key_file,
    redact_url,
    split_credentials,
    write_key_file,
)
from neurolace.runtime.messages import Message, encode, now_ns
from neurolace.runtime.redis_bus import BusSecurityWarning
from neurolace.runtime.session_file import parse_session

PASSWORD = "correct-horse-battery"
WITH_PASSWORD = [{"password": PASSWORD}]
VELOCITY_KEY = b"neurolace:decoder.velocity"


def raw_client(server, password: str | None = PASSWORD):
    """A plain redis-py client: knows the server's password, not the session's key."""
    import redis

    return redis.Redis(host="127.0.0.1", port=server.port, password=password)


# -- the pieces, without a server ------------------------------------------------------------
def test_a_tag_binds_the_key_the_redis_stream_and_every_byte():
    key = new_bus_key()
    authenticator = MessageAuthenticator(key)
    data = encode(Message("decoder.velocity", np.array([0.1, -0.2, 0.0]), sequence=7))
    tag = authenticator.tag(b"neurolace:decoder.velocity", data)
    assert len(tag) == 32 and authenticator.verify(b"neurolace:decoder.velocity", data, tag)
    altered = bytearray(data)
    altered[-1] ^= 1
    assert not authenticator.verify(b"neurolace:decoder.velocity", bytes(altered), tag)
    assert not authenticator.verify(b"neurolace:participant.intention", data, tag)  # moved to another stream
    assert not authenticator.verify(b"other:decoder.velocity", data, tag)  # another session prefix
    assert not MessageAuthenticator(new_bus_key()).verify(b"neurolace:decoder.velocity", data, tag)
    assert not authenticator.verify(b"neurolace:decoder.velocity", data, None)
    assert not authenticator.verify(b"neurolace:decoder.velocity", data, tag[:16])
    assert key.hex() not in repr(authenticator)
    with pytest.raises(InvalidInputError, match="a bus key is 32 bytes, got 16"):
        MessageAuthenticator(bytes(16))


def test_key_file_is_private_and_holds_one_key(tmp_path):
    path = tmp_path / "bus.key"
    key = write_key_file(path)
    assert (path.stat().st_mode & 0o777) == 0o600 and read_key_file(path) == key
    with pytest.raises(InvalidInputError, match="already exists; a key is never overwritten"):
        write_key_file(path)
    path.chmod(0o644)
    with pytest.raises(InvalidInputError, match=r"may be read by other users \(mode 0644\); run chmod 600"):
        read_key_file(path)
    short = tmp_path / "short.key"
    write_key_file(short, bytes(32))
    short.write_text("abcd\n")
    with pytest.raises(InvalidInputError, match="must be 64 hex digits"):
        read_key_file(short)
    with pytest.raises(InvalidInputError, match="does not exist; create one with"):
        read_key_file(tmp_path / "missing.key")


def test_urls_are_shown_without_their_password_and_children_get_it_in_the_environment():
    assert redact_url("redis://alice:s3cret@127.0.0.1:6379/0") == "redis://alice:***@127.0.0.1:6379/0"
    assert redact_url("redis://:s3cret@localhost:6379") == "redis://:***@localhost:6379"
    assert redact_url("redis://127.0.0.1:6379") == "redis://127.0.0.1:6379"
    url, environment = split_credentials("redis://alice:p%40ss@127.0.0.1:6379/2")
    assert url == "redis://127.0.0.1:6379/2"
    assert environment == {REDIS_PASSWORD_ENV: "p@ss", REDIS_USERNAME_ENV: "alice"}
    assert split_credentials("redis://127.0.0.1:1") == ("redis://127.0.0.1:1", {})


def test_refusals_warn_the_first_time_then_at_most_once_a_second(monkeypatch):
    clock = iter([0.0, 0.3, 0.9, 1.0, 1.5, 2.2])
    monkeypatch.setattr(bus_auth.time, "monotonic", lambda: next(clock))
    events = []
    counter = RefusalCounter(lambda event, **fields: events.append((event, fields)))
    for reason in ("forged", "forged", "replayed", "forged", "forged", "replayed"):
        counter.refuse(reason, "decoder.velocity")
    assert counter.counts == {"forged": 4, "replayed": 2} and counter.total == 6
    assert [fields["refused"] for _, fields in events] == [
        {"forged": 1, "replayed": 0},  # t = 0: the first
        {"forged": 3, "replayed": 1},  # t = 1.0: a second later
        {"forged": 4, "replayed": 2},  # t = 2.2
    ]
    assert {event for event, _ in events} == {"bus_refused"}


def test_the_bus_table_of_a_session_is_checked(tmp_path):
    spec = parse_session(
        '[bus]\nkey_file = "keys/bus.key"\n[nodes.p]\ntype = "sim_participant"\n',
        source=str(tmp_path / "s.toml"),
    )
    assert spec.bus_options() == {"authenticate": True, "key_file": tmp_path / "keys" / "bus.key"}
    with pytest.raises(InvalidInputError, match=r"s\.toml:2: \[bus\] authenticate must be true .* got 'no'"):
        parse_session('[bus]\nauthenticate = "no"\n[nodes.p]\ntype = "sim_participant"\n', source="s.toml")
    with pytest.raises(InvalidInputError, match=r"s\.toml:2: unknown key 'password' in \[bus\]"):
        parse_session('[bus]\npassword = "x"\n[nodes.p]\ntype = "sim_participant"\n', source="s.toml")


# -- credentials -----------------------------------------------------------------------------
WITH_PASSWORD_AND_USER = [{"password": PASSWORD, "users": {"alice": "wonderland"}}]


@pytest.mark.parametrize("redis_server", WITH_PASSWORD_AND_USER, indirect=True)
def test_wrong_or_missing_credentials_are_one_clear_error_that_never_shows_the_password(
    redis_server, bus_key, monkeypatch  # noqa: F811  (fixtures)
):
    monkeypatch.delenv(REDIS_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(REDIS_USERNAME_ENV, raising=False)
    with pytest.raises(BusCredentialsError) as refused:
        open_bus(redis_server.url_with("", "not-the-password"))
    message = str(refused.value)
    redacted = f"redis://:***@127.0.0.1:{redis_server.port}"
    assert f"the Redis server at {redacted} refused the user 'default'" in message
    assert "not-the-password" not in message
    with pytest.raises(BusCredentialsError, match=f"requires a password: .* {REDIS_PASSWORD_ENV}"):
        open_bus(redis_server.url)
    with pytest.raises(BusCredentialsError, match="refused the user 'alice'"):
        open_bus(redis_server.url_with("alice", "looking-glass"))
    for url in (redis_server.url_with("", PASSWORD), redis_server.url_with("alice", "wonderland")):
        bus = open_bus(url)
        assert "***" in bus.url and PASSWORD not in repr(bus) and "wonderland" not in repr(bus)
        bus.close()
    monkeypatch.setenv(REDIS_USERNAME_ENV, "alice")
    monkeypatch.setenv(REDIS_PASSWORD_ENV, "wonderland")
    open_bus(redis_server.url).close()  # from the environment: no secret in the URL


@pytest.mark.parametrize("redis_server", WITH_PASSWORD, indirect=True)
def test_the_run_command_refuses_a_wrong_password_without_printing_it(
    redis_server, tmp_path, capsys  # noqa: F811  (fixture)
):
    from neurolace.cli.main import main

    session = tmp_path / "one.toml"
    session.write_text('[nodes.participant]\ntype = "sim_participant"\nn_channels = 4\nmax_bins = 5\n')
    status = main(["run", str(session), "--bus", redis_server.url_with("", "hunter2-wrong"), "--json"])
    captured = capsys.readouterr()
    assert status == 2
    assert "refused the user 'default' and its password" in captured.err
    assert f"redis://:***@127.0.0.1:{redis_server.port}" in captured.err
    assert "hunter2-wrong" not in captured.out + captured.err


# -- the message key ------------------------------------------------------------------------
def test_a_bus_without_a_key_refuses_to_start_unless_told_not_to_authenticate(
    redis_server, monkeypatch  # noqa: F811  (fixture)
):
    monkeypatch.delenv(BUS_KEY_ENV, raising=False)
    with pytest.raises(NeurolaceError, match=f"has no message key, .* set {BUS_KEY_ENV} to 64 hex digits"):
        open_bus(redis_server.url)
    events = []
    with pytest.warns(BusSecurityWarning, match="runs without message authentication"):
        bus = open_bus(redis_server.url, authenticate=False, log=lambda event, **f: events.append(event))
    try:
        subscription = bus.subscribe("a.x")
        bus.publish(Message("a.x", np.array([1.0])))
        assert subscription.get(timeout_s=1.0).payload[0] == 1.0
        assert bus.stats()["authenticated"] is False and events == ["bus_unauthenticated"]
    finally:
        bus.close()


def test_processes_started_by_hand_share_the_key_of_a_key_file(
    redis_server, tmp_path, monkeypatch  # noqa: F811  (fixture)
):
    monkeypatch.delenv(BUS_KEY_ENV, raising=False)
    write_key_file(tmp_path / "bus.key")
    spec = parse_session('[bus]\nkey_file = "bus.key"\n[nodes.p]\ntype = "sim_participant"\n',
                         source=str(tmp_path / "s.toml"))
    publisher = open_bus(redis_server.url, **spec.bus_options())
    reader = open_bus(redis_server.url, **spec.bus_options())
    stranger = open_bus(redis_server.url, key=new_bus_key())
    try:
        subscription = reader.subscribe("p.features")
        publisher.publish(Message("p.features", np.array([1.0, 2.0])))
        stranger.publish(Message("p.features", np.array([6.0, 6.0])))
        publisher.publish(Message("p.features", np.array([3.0, 4.0])))
        got = [subscription.get(timeout_s=1.0) for _ in range(2)]
        assert [m.payload.tolist() for m in got] == [[1.0, 2.0], [3.0, 4.0]]
        assert subscription.get(timeout_s=0.05) is None and subscription.refused == {"forged": 1}
    finally:
        for bus in (publisher, reader, stranger):
            bus.close()


@pytest.mark.parametrize("redis_server", WITH_PASSWORD, indirect=True)
def test_forged_moved_and_replayed_entries_never_reach_a_reader(redis_server, bus_key):  # noqa: F811
    events = []
    bus = open_bus(redis_server.url_with("", PASSWORD), log=lambda event, **fields: events.append(fields))
    client = raw_client(redis_server)
    try:
        queue = bus.subscribe("decoder.velocity")
        newest = bus.subscribe("decoder.velocity", maxlen=1, mode="latest")
        bus.publish(Message("decoder.velocity", np.array([0.1, 0.2, 0.0])))
        bus.publish(Message("participant.intention", np.array([0.5, 0.5, 0.0])))
        first = queue.get(timeout_s=1.0)
        assert first.sequence == 0 and newest.latest().sequence == 0
        # a forger with the password: well-formed messages with no tag, a made-up tag, junk, a genuine
        # entry of another stream moved here, then a genuine entry of this stream added again
        click = Message("decoder.velocity", np.array([0.9, -0.9, 1.0]), sequence=1000, timestamp_ns=now_ns())
        forged = encode(click)
        client.xadd(VELOCITY_KEY, {b"m": forged})
        client.xadd(VELOCITY_KEY, {b"m": forged, b"t": os.urandom(32)})
        client.xadd(VELOCITY_KEY, {b"m": b"NLM1 junk", b"t": os.urandom(32)})
        (_, moved), = client.xrange(b"neurolace:participant.intention")
        client.xadd(VELOCITY_KEY, moved)
        (_, genuine), = client.xrange(VELOCITY_KEY, count=1)
        client.xadd(VELOCITY_KEY, genuine)
        assert newest.latest() is None and newest.refused == {"replayed": 1}  # the newest entry is the replay
        bus.publish(Message("decoder.velocity", np.array([0.3, 0.4, 0.0])))
        second = queue.get(timeout_s=1.0)
        assert second.sequence == 1 and second.payload.tolist() == [0.3, 0.4, 0.0]
        assert queue.get(timeout_s=0.05) is None
        assert queue.refused == {"forged": 4, "replayed": 1} and queue.dropped == 0
        assert bus.stats()["refused"] == {"forged": 4, "replayed": 2}
        # the first refusal (the "latest" reader's) was reported at once
        assert events[0] == {
            "reason": "replayed", "stream": "decoder.velocity", "refused": {"forged": 0, "replayed": 1}
        }
    finally:
        client.close()
        bus.close()


# -- end to end: a run on a password-protected server with a forging client ------------------------
#: the split session of tests/test_runtime_redis.py, running long enough to be forged into
FORGED_SESSION = SPLIT_SESSION.replace("max_bins = 60", "max_bins = 150")
N_FORGED = 200
N_REPLAYED = 3


@pytest.mark.parametrize("redis_server", WITH_PASSWORD, indirect=True)
def test_a_forging_client_with_the_password_moves_nothing_and_fails_the_run(
    redis_server, tmp_path  # noqa: F811  (fixture)
):
    """Issue 17: 643 forged decoder.velocity messages (click = 1) were all taken, exit 0, no warning."""
    session = tmp_path / "forged.toml"
    session.write_text(FORGED_SESSION)
    environment = {key: value for key, value in os.environ.items() if key != BUS_KEY_ENV}
    environment[REDIS_PASSWORD_ENV] = PASSWORD  # the run draws its own key: the whole session is in it
    run = subprocess.Popen(
        [sys.executable, "-m", "neurolace", "run", str(session), "--bus", redis_server.url,
         "--duration-s", "60", "--json"],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    client = raw_client(redis_server)
    try:
        while client.xlen(VELOCITY_KEY) < N_REPLAYED and run.poll() is None:
            time.sleep(0.02)  # wait for the run's first velocities: forge while it runs
        genuine = client.xrange(VELOCITY_KEY, count=N_REPLAYED)
        newest_sequence = int.from_bytes(client.xrevrange(VELOCITY_KEY, count=1)[0][1][b"m"][4:12], "little")
        pipe = client.pipeline(transaction=False)
        for index in range(N_FORGED):
            message = Message("decoder.velocity", np.array([0.9, -0.9, 1.0]),  # full speed and click
                              sequence=newest_sequence + 1 + index, timestamp_ns=now_ns())
            fields = {b"m": encode(message)}
            if index % 2:
                fields[b"t"] = os.urandom(32)  # a guessed tag
            pipe.xadd(VELOCITY_KEY, fields)
        for _, fields in genuine:
            pipe.xadd(VELOCITY_KEY, fields)  # genuine entries, published again
        pipe.execute()
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        client.close()
    assert run.returncode == 1, stderr[-2000:]
    report = json.loads(stdout)
    cursor, decoder = report["nodes"]["cursor"], report["nodes"]["decoder"]
    assert report["nodes"]["participant"]["bins"] == 150
    # every forged entry was refused, none was taken: the cursor took at most what the decoder sent
    assert cursor["refused"] == {"forged": N_FORGED, "replayed": N_REPLAYED}
    assert cursor["messages_in"] <= decoder["messages_out"] == 150
    assert report["bus_stats"]["refused"] == {"forged": N_FORGED, "replayed": N_REPLAYED}
    assert report["bus_stats"]["authenticated"] is True
    assert any(event["event"] == "bus_refused" for event in report["events"])
    assert f"refused {N_FORGED} forged messages" in stderr
    assert f"refused {N_REPLAYED} replayed messages" in stderr
    assert PASSWORD not in stdout + stderr


@pytest.mark.parametrize("redis_server", WITH_PASSWORD, indirect=True)
def test_processes_get_the_run_key_and_the_password_in_their_environment(
    redis_server, tmp_path, capsys, monkeypatch  # noqa: F811  (fixture)
):
    from neurolace.cli.main import main

    monkeypatch.delenv(BUS_KEY_ENV, raising=False)
    session = tmp_path / "two.toml"
    session.write_text(textwrap.dedent("""
        [nodes.participant]
        type = "sim_participant"
        n_channels = 8
        max_bins = 30
        [nodes.decoder]
        type = "decoder"
        inputs = { features = "participant.features", intention = "participant.intention" }
    """))
    url = redis_server.url_with("", PASSWORD)
    status = main(["run", str(session), "--bus", url, "--processes", "--duration-s", "3", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert status == 0, captured.err
    assert report["nodes"]["decoder"]["messages_in"] == 60 and report["nodes"]["decoder"]["refused"] == {}
    for part in report["bus_stats"].values():  # one per process
        assert part["authenticated"] and not any(part["refused"].values())
    assert report["bus"] == f"redis://:***@127.0.0.1:{redis_server.port}"
    assert PASSWORD not in captured.out + captured.err
    # a process started by hand with only some of the nodes needs the session's key
    assert main(["run", str(session), "--bus", url, "--nodes", "decoder", "--duration-s", "1"]) == 2
    assert "has no message key" in capsys.readouterr().err
