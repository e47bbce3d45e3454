"""Issue 17 on a real uvicorn server: sockets that outlive their token or sharing, origins, headers, limits.

Every test talks to ``start_in_background`` on 127.0.0.1 with real HTTP and
WebSocket clients (httpx, websockets), like a browser or an attacker would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from neurolace.core.errors import NeurolaceError
from neurolace.web.app import CLOSE_ACCESS, CLOSE_TOKEN
from neurolace.web.live import LiveSession
from neurolace.web.server import start_in_background

SHARED = "sim-shared-007"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveSession("live", SHARED)
    handle = start_in_background(port=0, data_dir=tmp_path_factory.mktemp("web"), sessions=[live],
                                 start_sessions=False)
    store = handle.store
    store.set_sharing(SHARED, ["clinician", "researcher"])
    handle.participant_token = store.issue_token(store.create_user("p07", "participant", participant_id=SHARED))
    store.create_user("rita", "researcher")
    store.create_user("cleo", "clinician", password="clinic-pass")
    live.start(wait=True)
    assert live.wait_for_frames(5), f"live session did not produce frames: {live.state} {live.error}"
    yield handle
    handle.stop()


def _ws_url(server, session_id: str = "live") -> str:
    return server.url.replace("http://", "ws://") + f"/ws/sessions/{session_id}"


async def _stream_until_closed(url: str, token: str, *, timeout_s: float, action=None, origin=None) -> dict:
    """Read frames until the server closes; ``action()`` runs (in a thread) after the first frames."""
    frames = 0
    acted_at_frame = None
    async with websockets.connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"], origin=origin) as ws:
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                message = await asyncio.wait_for(ws.recv(), 5.0)
                if isinstance(message, bytes):
                    frames += 1
                    if action is not None and frames == 10 and acted_at_frame is None:
                        acted_at_frame = frames
                        await asyncio.to_thread(action)
        except websockets.ConnectionClosed as closed:
            return {"frames": frames, "code": closed.rcvd.code if closed.rcvd else None,
                    "reason": closed.rcvd.reason if closed.rcvd else None, "closed_after_s": time.monotonic()}
    return {"frames": frames, "code": None, "reason": None}


def test_a_socket_is_closed_when_its_short_lived_token_expires(server):
    token = server.store.issue_token(server.store.user("rita"), lifetime_s=1.5)
    started = time.monotonic()
    result = asyncio.run(_stream_until_closed(_ws_url(server), token, timeout_s=10.0))
    assert result["frames"] > 5  # it streamed while the token held
    assert result["code"] == CLOSE_TOKEN and "token expired" in result["reason"]
    assert result["closed_after_s"] - started < 1.5 + 2.0  # at expiry, not 460 frames later
    response = httpx.get(server.url + "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401  # and REST agrees


async def _control_after_expiry(url: str, token: str, wait_s: float) -> dict:
    async with websockets.connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"]) as ws:
        await asyncio.sleep(wait_s)
        try:
            await ws.send(json.dumps({"type": "control", "action": "stop"}))
            while True:
                reply = await asyncio.wait_for(ws.recv(), 5.0)
                if isinstance(reply, str) and json.loads(reply)["type"] == "state":
                    return {"controlled": True}
        except websockets.ConnectionClosed as closed:
            return {"controlled": False, "code": closed.rcvd.code if closed.rcvd else None}


def test_an_expired_token_cannot_send_a_control(server):
    session = server.sessions["live"]
    token = server.store.issue_token(server.store.user("rita"), lifetime_s=0.8)
    result = asyncio.run(_control_after_expiry(_ws_url(server), token, 1.2))
    assert result == {"controlled": False, "code": CLOSE_TOKEN}
    assert session.running


def test_withdrawn_sharing_closes_the_researchers_socket(server):
    store = server.store
    token = store.issue_token(store.user("rita"))

    def withdraw() -> None:  # the participant, through the REST API
        response = httpx.put(f"{server.url}/api/participants/{SHARED}/sharing",
                             headers={"Authorization": f"Bearer {server.participant_token}"},
                             json={"shared_with_roles": ["clinician"]})
        assert response.status_code == 200

    try:
        withdrawn_at = time.monotonic()
        result = asyncio.run(_stream_until_closed(_ws_url(server), token, timeout_s=15.0, action=withdraw))
        assert result["code"] == CLOSE_ACCESS and "no longer see session 'live'" in result["reason"]
        assert result["closed_after_s"] - withdrawn_at < 15.0
        assert httpx.get(server.url + "/api/sessions/live",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 404
    finally:
        store.set_sharing(SHARED, ["clinician", "researcher"])


def test_a_role_change_by_the_cli_in_another_process_closes_the_socket(server):
    store = server.store
    store.create_user("ivo", "researcher")
    token = store.issue_token(store.user("ivo"))

    def demote() -> None:
        subprocess.run([sys.executable, "-m", "neurolace.cli.main", "serve", "--data-dir", str(store.data_dir),
                        "--create-user", "ivo", "--role", "participant", "--participant-id", "sim-ivo"],
                       check=True, capture_output=True, timeout=120)

    result = asyncio.run(_stream_until_closed(_ws_url(server), token, timeout_s=60.0, action=demote))
    assert result["code"] == CLOSE_TOKEN and "changed role" in result["reason"]


def test_revoked_tokens_close_their_sockets(server):
    store = server.store
    store.create_user("vera", "clinician")
    token = store.issue_token(store.user("vera"))
    result = asyncio.run(_stream_until_closed(_ws_url(server), token, timeout_s=15.0,
                                              action=lambda: store.revoke_tokens("vera")))
    assert result["code"] == CLOSE_TOKEN and result["reason"] == "token revoked; log in again"


async def _handshake_status(url: str, token: str, origin: str | None) -> int:
    try:
        async with websockets.connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"], origin=origin):
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        return exc.response.status_code


def test_the_socket_refuses_a_foreign_origin_and_accepts_its_own(server):
    token = server.store.issue_token(server.store.user("rita"))
    url = _ws_url(server)
    assert asyncio.run(_handshake_status(url, token, "http://evil.example")) == 403
    assert asyncio.run(_handshake_status(url, token, "null")) == 403
    assert asyncio.run(_handshake_status(url, token, server.url)) == 101
    assert asyncio.run(_handshake_status(url, token, None)) == 101  # a non-browser client sends no Origin


def _raw_upgrade_status(server, host_header: str) -> str:
    """Status line of a WebSocket handshake sent with ``host_header`` (a DNS-rebinding page sends its own name)."""
    token = server.store.issue_token(server.store.user("rita"))
    request = (f"GET /ws/sessions/live HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: neurolace.v1, bearer.{token}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(request.encode())
        return connection.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_a_foreign_host_header_is_refused_on_http_and_websocket(server):
    """DNS rebinding: evil.example resolving to 127.0.0.1 still sends Host: evil.example, and is refused."""
    refused = httpx.get(server.url + "/healthz", headers={"Host": f"evil.example:{server.port}"})
    assert refused.status_code == 400
    assert "Host header 'evil.example:" in refused.json()["detail"] and "127.0.0.1" in refused.json()["detail"]
    assert refused.headers["x-frame-options"] == "DENY"
    assert httpx.get(server.url + "/healthz", headers={"Host": f"localhost:{server.port}"}).status_code == 200
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert " 403 " in _raw_upgrade_status(server, f"evil.example:{server.port}") + " "
    assert " 101 " in _raw_upgrade_status(server, f"127.0.0.1:{server.port}") + " "


@pytest.mark.parametrize("path,status", [("/", 200), ("/static/app.js", 200), ("/api/me", 401), ("/healthz", 200)])
def test_every_answer_carries_the_security_headers(server, path, status):
    response = httpx.get(server.url + path)
    assert response.status_code == status
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_login_is_rate_limited_per_user(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        statuses = [client.post("/api/login", json={"username": "cleo", "password": f"guess-{k}"}).status_code
                    for k in range(11)]
        assert statuses == [401] * 10 + [429]
        limited = client.post("/api/login", json={"username": "cleo", "password": "clinic-pass"})
        assert limited.status_code == 429 and "too many failed logins for this user" in limited.json()["detail"]
        assert int(limited.headers["retry-after"]) > 0
    server._server.config.app.app.state.login_limiter.succeeded("cleo")  # let later tests log in


def _researcher(server) -> httpx.Client:
    token = server.store.issue_token(server.store.user("rita"))
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def test_deep_nesting_and_huge_numbers_get_4xx_and_the_game_plays_on(server):
    with _researcher(server) as client:
        game = client.post("/api/webgrid/games", json={"duration_s": 5}).json()
        clicks = f"/api/webgrid/games/{game['game_id']}/clicks"
        deep = b"[" * 100_000 + b"]" * 100_000
        assert client.post(clicks, content=deep).status_code == 413
        shallow_deep = b'{"x": ' + b"[" * 400 + b"]" * 400 + b', "y": 0.5}'
        response = client.post(clicks, content=shallow_deep)
        assert response.status_code == 400 and "nested deeper than 8" in response.json()["detail"]
        big_integer = b'{"x": 1' + b"0" * 400 + b', "y": 0.5}'
        response = client.post(clicks, content=big_integer)
        assert response.status_code == 400 and "integer of 401 digits" in response.json()["detail"]
        big_float = b'{"x": 1e400, "y": 0.5}'
        response = client.post(clicks, content=big_float)
        assert response.status_code == 400 and "out of the float range" in response.json()["detail"]
        assert client.post(clicks, content=b'{"x": NaN, "y": 0.5}').status_code == 400
        valid = client.post(clicks, json={"x": 0.5, "y": 0.5})
        assert valid.status_code == 200 and valid.json()["incorrect_total"] + valid.json()["correct_total"] == 1


def test_scripted_fast_clicks_through_the_api_are_not_a_score(server):
    with _researcher(server) as client:
        game = client.post("/api/webgrid/games", json={"duration_s": 5}).json()
        assert "targets" not in game  # only the lit cell: the sequence stays on the server
        target, side = game["target"], game["grid_side"]
        for _ in range(15):
            row, column = divmod(target, side)
            reply = client.post(f"/api/webgrid/games/{game['game_id']}/clicks",
                                json={"x": (column + 0.5) / side, "y": (row + 0.5) / side}).json()
            assert reply["correct"]
            target = reply["target"]
        deadline = time.monotonic() + 10  # the game runs 5 s: poll until its end
        while (finished := client.post(f"/api/webgrid/games/{game['game_id']}/finish")).status_code == 409:
            assert "still runs" in finished.json()["detail"] and time.monotonic() < deadline
            time.sleep(0.2)
        assert finished.status_code == 422 and "not a score" in finished.json()["detail"]
        assert all(s["game_id"] != game["game_id"] for s in server.games.scores())


def test_a_port_in_use_leaves_no_key_or_users_file(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(NeurolaceError, match="cannot listen on 127.0.0.1"):
            start_in_background(port=taken.getsockname()[1], data_dir=tmp_path / "web",
                                sessions=[LiveSession("x", "sim-x")], start_sessions=False)
    finally:
        taken.close()
    assert not (tmp_path / "web").exists()
