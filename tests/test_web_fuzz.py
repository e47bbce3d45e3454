"""Bounded fuzzing of the dashboard on a real server: the Webgrid click endpoint and the WebSocket messages.

Hypothesis draws bodies (random bytes, arbitrary JSON, near-valid clicks with
odd values, deep nesting, huge numbers) and WebSocket messages; every answer
must be the project's own: a 2xx, or a 4xx with a ``detail`` string (HTTP)
or an ``error`` reply with a 4xx ``status`` (WebSocket). A 5xx, a dropped
connection or a timeout fails the test, and the server (a separate
``neurolace serve --no-start`` process) must still run and answer
``/healthz`` afterwards. The counts are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import types

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

PROBE_TIMEOUT_S = 10.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
odd_numbers = st.sampled_from([b"1e400", b"-1e400", b"1" + b"0" * 400, b"NaN", b"Infinity", b"-0", b"0.5",
                               b"1", b"0", b"1.0000000000000002", b"5e-324", b'"0.5"', b"true", b"null"])


@st.composite
def click_bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "click", "deep", "raw-number"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values), allow_nan=True).encode()
    if kind == "click":
        body = {"x": draw(json_values | st.floats(0, 1)), "y": draw(json_values | st.floats(0, 1))}
        if draw(st.booleans()):
            body[draw(st.text(max_size=5))] = draw(json_values)
        return json.dumps(body, allow_nan=True).encode()
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        opener = draw(st.sampled_from([b"[", b'{"x":']))
        closer = b"]" if opener == b"[" else b"}"
        return opener * depth + b"0.5" + closer * depth
    return b'{"x": ' + draw(odd_numbers) + b', "y": ' + draw(odd_numbers) + b"}"


#: actions a clinician's socket may fuzz: ones that cannot start a graph on this machine
HARMLESS_ACTIONS = ["block", "stop", "nope"]
depths = st.sampled_from([1, 2, 8, 9, 500, 999, 1000, 1500, 2000]) | st.integers(1, 2000)


@st.composite
def socket_messages(draw, actions: list[str]) -> str | bytes:
    kind = draw(st.sampled_from(["text", "bytes", "json", "control", "raw-number", "deep"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values), allow_nan=True)
    if kind == "control":
        message = {"type": draw(st.sampled_from(["control", "ping", "pong", ""])),
                   "action": draw(st.sampled_from(actions) | json_values.filter(lambda v: v not in ("start", "decoder")))}
        for key in draw(st.lists(st.sampled_from(["decoder", "calibration_s", "duration_s", "name", "t", "zz"]),
                                 max_size=3)):
            message[key] = draw(json_values)
        return json.dumps(message, allow_nan=True)
    if kind == "raw-number":
        field = draw(st.sampled_from(["duration_s", "calibration_s", "t"]))
        message_type = "ping" if field == "t" else "control"
        number = draw(odd_numbers).decode()
        return f'{{"type": "{message_type}", "action": "{draw(st.sampled_from(actions))}", "{field}": {number}}}'
    depth = draw(depths)
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``neurolace serve --no-start`` in its own process (Hypothesis raises the recursion limit of ours)."""
    data_dir = tmp_path_factory.mktemp("web")

    def token(name: str, role: str, *extra: str) -> str:
        created = subprocess.run([sys.executable, "-m", "neurolace.cli.main", "serve", "--data-dir", str(data_dir),
                                  "--create-user", name, "--role", role, *extra, "--json"],
                                 capture_output=True, text=True, timeout=120, check=True)
        return json.loads(created.stdout)["token"]

    handle = types.SimpleNamespace(clinician=token("cleo", "clinician"),
                                   participant=token("p01", "participant", "--participant-id", "sim-001"))
    process = subprocess.Popen([sys.executable, "-m", "neurolace.cli.main", "serve", "--data-dir", str(data_dir),
                                "--port", "0", "--no-start", "--no-site"], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "300"})
    deadline = time.monotonic() + 120
    for line in process.stderr:  # 'neurolace dashboard at http://127.0.0.1:PORT/ ...'
        if (match := re.search(r"at (http://127\.0\.0\.1:\d+)/", line)) is not None:
            handle.url = match.group(1)
            break
        assert time.monotonic() < deadline and process.poll() is None, line
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining its log
    handle.process = process
    yield handle
    process.terminate()
    process.wait(30)


class Tally:
    def __init__(self) -> None:
        self.counts = {"probes": 0, "accepted": 0, "clean_errors": 0, "tracebacks": 0, "hangs": 0}
        self.examples: list = []

    def add(self, outcome: str, example=None) -> None:
        self.counts["probes"] += 1
        self.counts[outcome] += 1
        if outcome in ("tracebacks", "hangs") and len(self.examples) < 5:
            self.examples.append(example)


def test_fuzz_click_endpoint(server):
    tally = Tally()
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.clinician}"},
                          timeout=PROBE_TIMEOUT_S)
    game = {"id": client.post("/api/webgrid/games", json={"duration_s": 300}).json()["game_id"]}

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(click_bodies())
    def probe(body: bytes) -> None:
        try:
            response = client.post(f"/api/webgrid/games/{game['id']}/clicks", content=body)
        except httpx.TimeoutException:
            tally.add("hangs", body[:80])
            return
        except httpx.TransportError:
            tally.add("tracebacks", body[:80])
            return
        if response.status_code == 429:  # the click rate cap: a clean refusal; a fresh game keeps probing
            game["id"] = client.post("/api/webgrid/games", json={"duration_s": 300}).json()["game_id"]
        if 200 <= response.status_code < 300:
            tally.add("accepted")
        elif 400 <= response.status_code < 500 and isinstance(response.json().get("detail"), str):
            tally.add("clean_errors")
        else:
            tally.add("tracebacks", (response.status_code, body[:80]))

    probe()
    print(f"\nclick endpoint fuzz: {tally.counts}")
    assert server.process.poll() is None and client.get("/healthz").status_code == 200
    client.close()
    assert tally.counts["tracebacks"] == 0 and tally.counts["hangs"] == 0, tally.examples
    assert tally.counts["clean_errors"] > 0 and tally.counts["accepted"] > 0  # both paths were reached


def _fuzz_socket(server, token: str, actions: list[str], tally: Tally) -> None:
    url = server.url.replace("http://", "ws://") + "/ws/sessions/live"
    with connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"], open_timeout=PROBE_TIMEOUT_S) as socket:
        assert json.loads(socket.recv(PROBE_TIMEOUT_S))["type"] == "hello"

        @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(socket_messages(actions))
        def probe(message) -> None:
            try:
                socket.send(message)
                while isinstance(reply := socket.recv(PROBE_TIMEOUT_S), bytes):
                    pass  # frames of a running session: not the answer
            except TimeoutError:
                tally.add("hangs", message[:80])
                return
            except Exception as exc:  # noqa: BLE001 - a dropped socket is what we count
                tally.add("tracebacks", (type(exc).__name__, message[:80]))
                return
            answer = json.loads(reply)
            if answer["type"] in ("pong", "state"):
                tally.add("accepted")
            elif answer["type"] == "error" and 400 <= answer["status"] < 500 and isinstance(answer["reason"], str):
                tally.add("clean_errors")
            else:
                tally.add("tracebacks", (answer, message[:80]))

        probe()


def test_fuzz_websocket_messages(server):
    tally = Tally()
    # a participant may see the session but not control it (controls are checked field by field, then 403);
    # the clinician's controls reach the session, limited to actions that start no graph
    for token, actions in ((server.participant, ["start", "stop", "block", "decoder", "x"]),
                           (server.clinician, HARMLESS_ACTIONS)):
        try:
            _fuzz_socket(server, token, actions, tally)
        except Exception as exc:  # noqa: BLE001 - the socket died under us: that is a finding
            tally.add("tracebacks", type(exc).__name__)
    print(f"\nWebSocket message fuzz: {tally.counts}")
    assert server.process.poll() is None and httpx.get(server.url + "/healthz").status_code == 200
    assert tally.counts["tracebacks"] == 0 and tally.counts["hangs"] == 0, tally.examples
    assert tally.counts["clean_errors"] > 0 and tally.counts["accepted"] > 0
