"""The dashboard's HTTP and WebSocket API on a real uvicorn server: tokens, roles, bad input, live frames."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from neurolace.web.live import LiveSession, decode_frame
from neurolace.web.server import start_in_background

OTHER_PARTICIPANT = "sim-secret-042"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveSession("live", "sim-001")
    hidden = LiveSession("hidden", OTHER_PARTICIPANT)
    handle = start_in_background(port=0, data_dir=tmp_path_factory.mktemp("web"), sessions=[live, hidden],
                                 start_sessions=False, token_lifetime_s=600.0)
    store = handle.store
    store.set_sharing(OTHER_PARTICIPANT, ["clinician"])
    handle.tokens = {
        "researcher": handle.bootstrap_token,
        "clinician": store.issue_token(store.create_user("cleo", "clinician", password="clinic-pass")),
        "participant": store.issue_token(store.create_user("p01", "participant", participant_id="sim-001")),
    }
    live.start(wait=True)
    assert live.wait_for_frames(5), f"live session did not produce frames: {live.state} {live.error}"
    yield handle
    handle.stop()


def _client(server, role: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server.tokens[role]}"} if role else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30.0)


def _ws_url(server, session_id: str = "live") -> str:
    return server.url.replace("http://", "ws://") + f"/ws/sessions/{session_id}"


def test_health_is_public(server):
    response = httpx.get(server.url + "/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/me"), ("GET", "/api/sessions"), ("GET", "/api/sessions/live"),
    ("GET", "/api/sessions/live/runtime"), ("GET", "/api/sessions/live/export"),
    ("POST", "/api/sessions/live/control"), ("POST", "/api/webgrid/games"),
    ("POST", "/api/webgrid/games/abc/clicks"), ("POST", "/api/webgrid/games/abc/finish"),
    ("GET", "/api/webgrid/scores"),
    ("PUT", "/api/participants/sim-001/sharing"), ("GET", "/api/sessions/does-not-exist"),
    ("POST", "/api/logout"),
    # the channel inspector's endpoints (neurolace.web.inspect)
    ("GET", "/api/sessions/live/inspector"), ("GET", "/api/sessions/live/channels/3"),
    ("PUT", "/api/sessions/live/inspector/mask"), ("PUT", "/api/sessions/live/inspector/threshold"),
])
def test_every_api_endpoint_needs_a_token(server, method, path):
    response = httpx.request(method, server.url + path, json={})
    assert response.status_code == 401
    assert "missing token" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_every_route_of_the_app_is_covered_by_the_401_test(server):
    app = server._server.config.app.app  # inside the hardening middleware
    routes = {route.path for route in app.routes if hasattr(route, "methods") or route.path.startswith("/ws")}
    public = {"/healthz", "/api/login", "/", "/static"}
    checked = {"/api/me", "/api/sessions", "/api/sessions/{session_id}", "/api/sessions/{session_id}/runtime",
               "/api/sessions/{session_id}/export", "/api/sessions/{session_id}/control", "/api/webgrid/games",
               "/api/webgrid/games/{game_id}/clicks", "/api/webgrid/games/{game_id}/finish", "/api/webgrid/scores",
               "/api/participants/{participant_id}/sharing", "/ws/sessions/{session_id}", "/api/logout",
               "/api/sessions/{session_id}/inspector", "/api/sessions/{session_id}/channels/{channel}",
               "/api/sessions/{session_id}/inspector/mask", "/api/sessions/{session_id}/inspector/threshold"}
    assert routes - public == checked


def test_expired_and_forged_tokens_get_401_with_a_reason(server):
    expired = server.store.issue_token(server.store.user("cleo"), lifetime_s=1.0, now_s=time.time() - 100)
    response = httpx.get(server.url + "/api/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and "token expired" in response.json()["detail"]
    forged = server.tokens["participant"][:-4] + "AAAA"
    response = httpx.get(server.url + "/api/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and response.json()["detail"] == "invalid token signature"


def test_login_gives_a_working_token_and_one_message_for_failures(server):
    with _client(server) as client:
        good = client.post("/api/login", json={"username": "cleo", "password": "clinic-pass"})
        assert good.status_code == 200 and good.json()["user"]["role"] == "clinician"
        me = client.get("/api/me", headers={"Authorization": f"Bearer {good.json()['token']}"})
        assert me.json()["name"] == "cleo"
        for body in ({"username": "cleo", "password": "wrong-pass"}, {"username": "nobody", "password": "x"}):
            bad = client.post("/api/login", json=body)
            assert bad.status_code == 401 and bad.json()["detail"] == "unknown user or wrong password"
        assert client.post("/api/login", json={"username": "cleo"}).status_code == 422


def test_participant_sees_only_their_own_session_and_nothing_leaks(server):
    with _client(server, "participant") as client:
        listed = client.get("/api/sessions")
        assert [s["session_id"] for s in listed.json()] == ["live"]
        for path in ("/api/sessions/hidden", "/api/sessions/hidden/export", "/api/sessions/nope"):
            response = client.get(path)
            assert response.status_code == 404
            assert OTHER_PARTICIPANT not in response.text
        assert client.get("/api/sessions/hidden").json() == {"detail": "unknown session id 'hidden'"}
    with _client(server, "researcher") as client:  # sim-secret-042 shares with clinicians only
        assert client.get("/api/sessions/hidden").status_code == 404
    with _client(server, "clinician") as client:
        assert client.get("/api/sessions/hidden").json()["participant_id"] == OTHER_PARTICIPANT


def test_participant_cannot_control_and_only_owner_sets_sharing(server):
    with _client(server, "participant") as client:
        response = client.post("/api/sessions/live/control", json={"action": "stop"})
        assert response.status_code == 403 and "a participant cannot control a session" in response.json()["detail"]
        assert client.put("/api/participants/sim-002/sharing", json={"shared_with_roles": []}).status_code == 403
        bad_role = client.put("/api/participants/sim-001/sharing", json={"shared_with_roles": ["boss"]})
        assert bad_role.status_code == 400 and "role must be one of" in bad_role.json()["detail"]
    assert server.sessions["live"].running


def test_bad_control_requests_get_a_reason(server):
    with _client(server, "researcher") as client:
        cases = [
            ({"action": "explode"}, 400, "action must be one of start, stop, decoder, block; got 'explode'"),
            ({"action": "decoder", "decoder": "gpt"}, 400, "decoder must be one of"),
            ({"action": "block"}, 400, "action 'block' needs 'duration_s'"),
            ({"action": "block", "duration_s": -3}, 400, "duration_s must be"),
            ({"action": "start", "calibration_s": 1e9}, 400, "calibration_s must be between 0 and 600 seconds"),
        ]
        for body, status, message in cases:
            response = client.post("/api/sessions/live/control", json=body)
            assert response.status_code == status and message in response.json()["detail"], response.text
        assert client.post("/api/sessions/live/control", json={"action": "stop", "evil": 1}).status_code == 422
        assert client.post("/api/sessions/live/control", content=b"{not json",
                           headers={"Content-Type": "application/json"}).status_code == 422
    assert server.sessions["live"].running


def test_oversized_bodies_get_413_before_they_are_read(server):
    with _client(server, "researcher") as client:
        huge = b'{"clicks": [' + b"[1, 0.5, 0.5]," * 60_000 + b"[1, 0.5, 0.5]]}"
        response = client.post("/api/webgrid/games/whatever/clicks", content=huge,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and "request body over 524288 bytes" in response.json()["detail"]

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(100):
                yield b"x" * 10_000

        response = client.post("/api/webgrid/games/whatever/clicks", content=chunks())
        assert response.status_code == 413


def test_game_endpoints_refuse_bad_input(server):
    with _client(server, "researcher") as client:
        assert client.post("/api/webgrid/games", json={"grid_side": 8}).json() == {
            "detail": "grid_side must be one of (30, 35), got 8"}
        game = client.post("/api/webgrid/games", json={"duration_s": 5}).json()
        assert "targets" not in game and isinstance(game["target"], int)
        clicks = f"/api/webgrid/games/{game['game_id']}/clicks"
        early = client.post(f"/api/webgrid/games/{game['game_id']}/finish")
        assert early.status_code == 409 and "lasts 5 s and still runs for" in early.json()["detail"]
        not_json = client.post(clicks, content=b"\xff\xfe")
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
        old_style = client.post(clicks, json={"clicks": [[1, 0.5, 0.5]]})
        assert old_style.status_code == 400 and 'body must be a JSON object {"x"' in old_style.json()["detail"]
        outside = client.post(clicks, json={"x": 2, "y": 0.5})
        assert outside.status_code == 400 and outside.json()["detail"] == "x must be a number in [0, 1], got 2.0"
        assert client.post(clicks, json={"x": 0.5, "y": 0.5}).status_code == 200  # the game is still playable
        unknown = client.post("/api/webgrid/games/nope/clicks", json={"x": 0.5, "y": 0.5})
        assert unknown.status_code == 404 and unknown.json()["detail"] == "unknown game id 'nope'"
    with _client(server, "clinician") as client:  # another user's game is not theirs to play
        assert client.post(clicks, json={"x": 0.5, "y": 0.5}).status_code == 404
        assert client.post(f"/api/webgrid/games/{game['game_id']}/finish").status_code == 404


async def _collect_frames(url: str, token: str, seconds: float) -> tuple[dict, list]:
    async with websockets.connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"]) as socket:
        assert socket.subprotocol == "neurolace.v1"
        hello = json.loads(await socket.recv())
        frames = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = await asyncio.wait_for(socket.recv(), 5.0)
            if isinstance(message, bytes):
                frames.append(decode_frame(message))
        return hello, frames


def test_websocket_streams_frames_of_all_channels_with_a_moving_cursor(server):
    hello, frames = asyncio.run(_collect_frames(_ws_url(server), server.tokens["clinician"], 1.5))
    assert hello["type"] == "hello" and hello["session"]["n_channels"] == 1024
    assert len(frames) >= 20  # one frame per 20 ms bin, minus what a busy machine skips
    headers = [header for header, _ in frames]
    # the live session runs the implant path: 1024 channels of crossings, then 1024 of spike-band power
    assert all(h["sbp_scale"] is not None and len(channels) == 2 * 1024 for h, channels in frames)
    assert len({tuple(h["cursor"][:2]) for h in headers}) > 10
    assert all(h["link_bytes_per_s"] > 0 for h in headers[-5:])
    sequences = [h["seq"] for h in headers]
    assert sequences == sorted(sequences)
    latency = headers[-1]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] < 1000


async def _refused_status(url: str, subprotocols: list[str] | None) -> int:
    try:
        async with websockets.connect(url, subprotocols=subprotocols):
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        return exc.response.status_code


def test_websocket_without_token_or_for_hidden_session_is_refused(server):
    assert asyncio.run(_refused_status(_ws_url(server), None)) == 401
    assert asyncio.run(_refused_status(_ws_url(server), ["neurolace.v1", "bearer.nl1.bad.token"])) == 401
    participant = ["neurolace.v1", f"bearer.{server.tokens['participant']}"]
    assert asyncio.run(_refused_status(_ws_url(server, "hidden"), participant)) == 404


async def _talk(url: str, token: str, messages: list) -> list[dict]:
    replies = []
    async with websockets.connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"]) as socket:
        for message in messages:
            await socket.send(message)
            while True:
                reply = await asyncio.wait_for(socket.recv(), 10.0)
                if isinstance(reply, str) and json.loads(reply)["type"] != "hello":
                    replies.append(json.loads(reply))
                    break
    return replies


def test_malformed_websocket_messages_get_errors_and_the_socket_lives_on(server):
    messages = ["not json", b"\x00\x01", "[1, 2]", json.dumps({"type": "dance"}), "x" * 5000,
                json.dumps({"type": "control", "action": "block", "duration_s": "ten"}),
                json.dumps({"type": "control", "action": "stop", "rm": "-rf"}),
                json.dumps({"type": "ping", "t": 7})]
    replies = asyncio.run(_talk(_ws_url(server), server.tokens["participant"], messages))
    assert [r["type"] for r in replies] == ["error"] * 7 + ["pong"]
    assert [r["status"] for r in replies[:7]] == [400, 400, 400, 400, 413, 400, 400]
    assert "message is not JSON" in replies[0]["reason"]
    assert "not binary" in replies[1]["reason"]
    assert "unknown message type 'dance'" in replies[3]["reason"]
    assert "duration_s must be a number" in replies[5]["reason"]
    assert "unknown control fields ['rm']" in replies[6]["reason"]
    assert replies[7]["t"] == 7
    assert server.sessions["live"].running


def test_websocket_control_from_a_participant_is_forbidden(server):
    replies = asyncio.run(_talk(_ws_url(server), server.tokens["participant"],
                                [json.dumps({"type": "control", "action": "stop"})]))
    assert replies[0]["status"] == 403
    assert server.sessions["live"].running


def test_timed_block_is_scored_and_exported(server):
    session = server.sessions["live"]
    with _client(server, "researcher") as client:
        started = client.post("/api/sessions/live/control", json={"action": "block", "duration_s": 1, "name": "b1"})
        assert started.status_code == 200 and started.json()["block"]["name"] == "b1"
        again = client.post("/api/sessions/live/control", json={"action": "block", "duration_s": 1})
        assert again.status_code == 400 and "block 'b1' is still running" in again.json()["detail"]
        deadline = time.monotonic() + 10
        while not session.blocks and time.monotonic() < deadline:
            time.sleep(0.05)
        block = client.get("/api/sessions/live").json()["blocks"][-1]
        assert block["name"] == "b1" and block["duration_s"] == 1 and not block["aborted"]
        export = client.get("/api/sessions/live/export").json()
        assert export["blocks"][-1]["name"] == "b1" and len(export["latency_ms"]) > 10
        runtime = client.get("/api/sessions/live/runtime").json()
        # the task node is the one closed loop; the secure link's two nodes carry its features
        # (and the channel inspector's mask node before the decoder, neurolace.web.inspect)
        assert set(runtime["nodes"]) - {"inspector_mask"} == {"participant", "implant_link", "host_link", "task"}
