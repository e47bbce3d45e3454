"""The Redis Streams bus against a real redis-server: same session, separate processes, reconnection."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from runtime_fixtures import (  # noqa: F401  (fixtures)
    REPO_ROOT,
    SPLIT_SESSION,
    RedisServer,
    bus_key,
    redis_server,
)

from neurolace.core.errors import NeurolaceError
from neurolace.runtime.bus import open_bus
from neurolace.runtime.graph import Graph
from neurolace.runtime.messages import Message
from neurolace.runtime.session_file import parse_session

# every bus here shares one session key through NEUROLACE_BUS_KEY (tests/test_runtime_redis_auth.py
# covers the key, the credentials and the refusals)
pytestmark = pytest.mark.usefixtures("bus_key")


def test_round_trip_order_and_gap_counting(redis_server):  # noqa: F811  (pytest fixture)
    bus = open_bus(redis_server.url, prefix="t1:")
    try:
        subscription = bus.subscribe(["a.raw", "b.velocity"])
        block = np.arange(20 * 1024, dtype=np.int16).reshape(20, 1024)
        for index in range(5):
            bus.publish(Message("a.raw", block + index, sample_index=20 * index))
            bus.publish(Message("b.velocity", np.array([index, 0.0, 1.0])))
        got = [subscription.get(timeout_s=1.0) for _ in range(10)]
        raw = [m for m in got if m.stream == "a.raw"]
        assert [m.sample_index for m in raw] == [0, 20, 40, 60, 80]
        np.testing.assert_array_equal(raw[3].payload, block + 3)
        assert [m.payload[0] for m in got if m.stream == "b.velocity"] == [0, 1, 2, 3, 4]
        assert subscription.get(timeout_s=0.05) is None and subscription.dropped == 0
        # a reader that falls behind the broker's bound sees the gap and counts it
        small = open_bus(redis_server.url, prefix="t2:", stream_maxlen=5)
        lagging = small.subscribe("c.x")
        for index in range(500):
            small.publish(Message("c.x", np.array([index])))
        values = []
        while (message := lagging.get(timeout_s=0.05)) is not None:
            values.append(int(message.payload[0]))
        assert values[-1] == 499 and len(values) < 500
        assert lagging.dropped == 500 - len(values)
        small.close()
    finally:
        bus.close()


def test_unreachable_server_is_a_clear_error():
    from runtime_fixtures import free_port

    with pytest.raises(NeurolaceError, match=r"cannot reach the Redis server at redis://127\.0\.0\.1:\d+"):
        open_bus(f"redis://127.0.0.1:{free_port()}", connect_timeout_s=0.5)


def test_lost_connection_is_reestablished_without_stalling_the_publisher():
    server = RedisServer().start()
    bus = open_bus(server.url, prefix="t3:", reconnect_interval_s=0.05)
    subscription = bus.subscribe("a.x")
    try:
        bus.publish(Message("a.x", np.array([1.0])))
        assert subscription.get(timeout_s=1.0).payload[0] == 1.0
        server.stop()
        started = time.monotonic()
        for index in range(20):
            bus.publish(Message("a.x", np.array([2.0])))  # must return, not hang or raise
        assert time.monotonic() - started < 2.0
        assert subscription.get(timeout_s=0.05) is None
        assert bus.publish_failures >= 1
        RedisServer(port=server.port).start()
        time.sleep(0.1)
        received = None
        deadline = time.monotonic() + 5.0
        while received is None and time.monotonic() < deadline:
            bus.publish(Message("a.x", np.array([3.0])))
            received = subscription.get(timeout_s=0.1)
        assert received is not None and received.payload[0] == 3.0
        assert bus.stats()["reconnects"] >= 1 and bus.stats()["subscriber_reconnects"] >= 1
    finally:
        bus.close()
        subprocess.run(
            ["redis-cli", "-p", str(server.port), "shutdown", "nosave"], capture_output=True, check=False
        )


def test_same_session_split_across_two_processes(redis_server, tmp_path):  # noqa: F811  (pytest fixture)
    session_path = tmp_path / "split.toml"
    session_path.write_text(SPLIT_SESSION)
    bus = open_bus(redis_server.url)
    graph = Graph(parse_session(SPLIT_SESSION, source=str(session_path)), bus, only=["decoder", "cursor"])
    graph.start()
    script = textwrap.dedent(f"""
        from neurolace.runtime.graph import run_session
        report = run_session({str(session_path)!r}, bus={redis_server.url!r}, only=["participant"])
        assert report["nodes"]["participant"]["bins"] == 60, report
    """)
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    deadline = time.monotonic() + 5.0
    while graph.runners["cursor"].messages_in < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    graph.stop()
    report = graph.report()
    bus.close()
    assert report["nodes"]["decoder"]["messages_in"] == 120
    assert report["nodes"]["cursor"]["messages_in"] == 60 and report["dropped"] == 0
    hops = report["nodes"]["decoder"]["hop_latency_us"]["participant.features"]
    assert hops["n"] == 60 and hops["p50_us"] > 0  # measured across processes on the shared monotonic clock


def test_one_process_per_node_released_together(redis_server, tmp_path, capsys):  # noqa: F811  (pytest fixture)
    from neurolace.cli import main as cli_main

    session = tmp_path / "two.toml"
    session.write_text(
        '[nodes.participant]\ntype = "sim_participant"\nn_channels = 8\nmax_bins = 30\n'
        '[nodes.decoder]\ntype = "decoder"\ninputs = { features = "participant.features", '
        'intention = "participant.intention" }\n'
    )
    code = cli_main.main(
        ["run", str(session), "--bus", redis_server.url, "--processes", "--duration-s", "3", "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["processes"] == 2
    assert report["nodes"]["participant"]["bins"] == 30
    assert report["nodes"]["decoder"]["messages_in"] == 60 and report["dropped"] == 0
    assert cli_main.main(["run", str(session), "--processes", "--duration-s", "1"]) == 2
    assert "--processes needs a shared bus: give --bus redis://HOST:PORT" in capsys.readouterr().err


def test_barrier_times_out_with_a_count(redis_server):  # noqa: F811  (pytest fixture)
    bus = open_bus(redis_server.url, prefix="t4:")
    try:
        with pytest.raises(NeurolaceError, match=r"only 1 of 2 processes reached barrier 'b' within 0\.2 s"):
            bus.barrier("b", 2, timeout_s=0.2)
    finally:
        bus.close()


def test_a_run_that_loses_its_redis_server_exits_with_the_reason(tmp_path, capsys):
    """Issue 17: Redis killed mid-run gave 3884 publish failures and exit 0 with nothing on stderr."""
    import threading

    from neurolace.cli.main import main

    server = RedisServer().start()
    session = tmp_path / "lost.toml"
    session.write_text(textwrap.dedent("""
        [nodes.participant]
        type = "sim_participant"
        n_channels = 16
    """))
    killer = threading.Timer(1.5, server.stop)
    killer.start()
    try:
        status = main(["run", str(session), "--bus", server.url, "--duration-s", "3"])
    finally:
        killer.cancel()
        server.stop()
    assert status == 1
    err = capsys.readouterr().err
    assert "could not deliver" in err and "published messages" in err
