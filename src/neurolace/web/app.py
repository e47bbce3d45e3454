"""The FastAPI application of the dashboard: REST endpoints, the live WebSocket, static files.

Endpoints (every one but ``/healthz`` and ``/api/login`` needs a token;
``/`` and ``/static/*`` are the login page and the app's own code, no data):

======================================  =====================================================
``GET  /healthz``                       200 ``{"status": "ok"}``
``POST /api/login``                     ``{username, password}`` -> ``{token, expires_s, user}``
``GET  /api/me``                        the caller
``GET  /api/sessions``                  live sessions the caller may see
``GET  /api/sessions/{id}``             state, BPS series, blocks, summary of one session
``GET  /api/sessions/{id}/runtime``     the runtime's per-node report (latency, CPU)
``GET  /api/sessions/{id}/export``      blocks, BPS series, latency samples (``neurolace report --session-json``)
``POST /api/sessions/{id}/control``     ``{action: start|stop|block|decoder, ...}`` (clinician, researcher)
``WS   /ws/sessions/{id}``              binary frames (:func:`neurolace.web.live.encode_frame`);
                                        JSON text in: ``ping``, ``control``
``POST /api/webgrid/games``             ``{grid_side, duration_s}`` -> a game (lit-cell sequence)
``POST /api/webgrid/games/{id}/clicks`` ``{clicks: [[t_s, x, y], ...]}`` -> the verified score
``GET  /api/webgrid/scores``            scores the caller may see, best first
``PUT  /api/participants/{id}/sharing`` ``{shared_with_roles}`` (that participant only)
======================================  =====================================================

Tokens come as ``Authorization: Bearer <token>``; browsers cannot set headers
on a WebSocket, so there the token rides in the subprotocol list
(``["neurolace.v1", "bearer.<token>"]``) and the server answers with
``neurolace.v1``. A refused WebSocket gets a real HTTP 401/404 on the
handshake. Request bodies over :data:`MAX_BODY_BYTES` get 413 before they are
read; WebSocket messages over :data:`MAX_WS_MESSAGE_BYTES` are refused with a
reason. Data of a participant the caller may not see answers exactly like an
unknown id (404), so ids do not leak.
"""


import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

from neurolace.core.errors import InvalidInputError
from neurolace.web.access import can_view
from neurolace.web.auth import AuthError, User, WebStore, check_role
from neurolace.web.games import GameBook, GameError
from neurolace.web.live import LiveSession

__all__ = ["MAX_BODY_BYTES", "MAX_WS_MESSAGE_BYTES", "STATIC_DIR", "WS_SUBPROTOCOL", "create_app"]

#: largest request body accepted (a 300 s game at 20 clicks/s is ~250 kB of JSON)
MAX_BODY_BYTES = 512 * 1024
#: largest WebSocket text message accepted from a browser
MAX_WS_MESSAGE_BYTES = 4096
#: the subprotocol the live WebSocket speaks
WS_SUBPROTOCOL = "neurolace.v1"
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: longest wait of the WebSocket sender for a new frame before it looks again
_FRAME_WAIT_S = 1.0


class _BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``, by Content-Length or while reading a chunked body."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
                    return
        if not any(name == b"content-length" for name, _ in scope.get("headers", ())):
            # chunked upload: read it here, up to the limit, then hand the app the whole body
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                if len(body) > self.max_bytes:
                    await _send_json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
                    return
                if not message.get("more_body", False):
                    break
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def _send_json(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def create_app(store: WebStore, games: GameBook, sessions: dict[str, LiveSession]):
    """Build the FastAPI app over a user store, a game book and the live sessions (by id)."""
    from fastapi import Body, Depends, FastAPI, HTTPException, Request, WebSocket
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.websockets import WebSocketDisconnect

    app = FastAPI(title="neurolace dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.games = games
    app.state.sessions = sessions

    class Login(BaseModel):
        model_config = ConfigDict(extra="forbid")
        username: str = Field(max_length=64)
        password: str = Field(max_length=256)

    class Control(BaseModel):
        model_config = ConfigDict(extra="forbid")
        action: str
        decoder: str | None = None
        calibration_s: float | None = None
        duration_s: float | None = None
        name: str | None = Field(default=None, max_length=64)

    class GameRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        grid_side: int = 30
        duration_s: float = 30.0

    class Sharing(BaseModel):
        model_config = ConfigDict(extra="forbid")
        shared_with_roles: list[str] = Field(max_length=3)

    def _bearer(header: str | None) -> str | None:
        if header and header.lower().startswith("bearer "):
            return header[7:].strip()
        return None

    def current_user(request: Request) -> User:
        try:
            return store.authenticate(_bearer(request.headers.get("authorization")))
        except AuthError as exc:
            raise HTTPException(exc.status, detail=exc.reason, headers={"WWW-Authenticate": "Bearer"}) from exc

    CurrentUser = Annotated[User, Depends(current_user)]

    def visible_session(session_id: str, user: User) -> LiveSession:
        session = sessions.get(session_id)
        if session is None or not can_view(store, user, session.participant_id):
            raise HTTPException(404, detail=f"unknown session id {session_id[:64]!r}")
        return session

    def apply_control(session: LiveSession, user: User, control: dict) -> dict:
        if user.role not in ("clinician", "researcher"):
            raise AuthError(f"a {user.role} cannot control a session (clinicians and researchers can)", status=403)
        action = control.get("action")
        if action == "start":
            session.start(decoder=control.get("decoder"), calibration_s=control.get("calibration_s"))
        elif action == "stop":
            session.stop()
        elif action == "decoder":
            if not control.get("decoder"):
                raise InvalidInputError("action 'decoder' needs a 'decoder' name")
            session.start(decoder=control["decoder"], calibration_s=control.get("calibration_s"))
        elif action == "block":
            if control.get("duration_s") is None:
                raise InvalidInputError("action 'block' needs 'duration_s'")
            session.start_block(control["duration_s"], name=control.get("name"))
        else:
            raise InvalidInputError(f"action must be one of start, stop, decoder, block; got {action!r}")
        return session.snapshot()

    def control_error(exc: InvalidInputError | AuthError) -> HTTPException:
        if isinstance(exc, AuthError):
            return HTTPException(exc.status, detail=exc.reason)
        return HTTPException(400, detail=str(exc))

    @app.exception_handler(GameError)
    async def _game_error(request: Request, exc: GameError):
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/api/login")
    def login(body: Login) -> dict:
        try:
            user = store.login(body.username, body.password)
        except AuthError as exc:
            raise HTTPException(401, detail=exc.reason) from exc
        token = store.issue_token(user)
        return {"token": token, "expires_s": store.signer.lifetime_s, "user": user.to_dict()}

    @app.get("/api/me")
    def me(user: CurrentUser) -> dict:
        return user.to_dict()

    @app.get("/api/sessions")
    def list_sessions(user: CurrentUser) -> list[dict]:
        return [{"session_id": s.session_id, "participant_id": s.participant_id, "state": s.state,
                 "name": s.spec.name} for s in sessions.values() if can_view(store, user, s.participant_id)]

    @app.get("/api/sessions/{session_id}")
    def get_session(session_id: str, user: CurrentUser) -> dict:
        return visible_session(session_id, user).snapshot()

    @app.get("/api/sessions/{session_id}/runtime")
    def get_runtime(session_id: str, user: CurrentUser) -> dict:
        report = visible_session(session_id, user).graph_report()
        if report is None:
            raise HTTPException(409, detail=f"session {session_id!r} is not running")
        return json.loads(json.dumps(report, default=str))

    @app.get("/api/sessions/{session_id}/export")
    def export_session(session_id: str, user: CurrentUser) -> dict:
        return visible_session(session_id, user).export()

    @app.post("/api/sessions/{session_id}/control")
    def control(session_id: str, body: Control, user: CurrentUser) -> dict:
        session = visible_session(session_id, user)
        try:
            return apply_control(session, user, body.model_dump())
        except (InvalidInputError, AuthError) as exc:
            raise control_error(exc) from exc

    @app.post("/api/webgrid/games")
    def new_game(user: CurrentUser, body: Annotated[GameRequest | None, Body()] = None) -> dict:
        body = body if body is not None else GameRequest()
        return games.issue(user.name, user.participant_id, grid_side=body.grid_side,
                           duration_s=body.duration_s).public()

    @app.post("/api/webgrid/games/{game_id}/clicks")
    async def submit_clicks(game_id: str, request: Request, user: CurrentUser) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, detail=f"body must be JSON {{\"clicks\": [[t_s, x, y], ...]}}: {exc}") from exc
        if not isinstance(body, dict) or set(body) - {"clicks", "client_score"} or "clicks" not in body:
            raise HTTPException(400, detail="body must be a JSON object with 'clicks' (and optionally 'client_score')")
        result = games.verify(game_id, user.name, body["clicks"]).to_dict()
        result["client_score"] = body.get("client_score")
        return result

    @app.get("/api/webgrid/scores")
    def scores(user: CurrentUser) -> dict:
        visible = [s for s in games.scores()
                   if s["user"] == user.name or can_view(store, user, s["participant_id"])]
        visible.sort(key=lambda s: -s["bps"])
        decoders = []
        for session in sessions.values():
            if can_view(store, user, session.participant_id):
                decoders.extend({**block, "session_id": session.session_id} for block in session.snapshot()["blocks"])
        return {"scores": visible[:200], "decoder_blocks": decoders}

    @app.put("/api/participants/{participant_id}/sharing")
    def set_sharing(participant_id: str, body: Sharing, user: CurrentUser) -> dict:
        if user.role != "participant" or user.participant_id != participant_id:
            raise HTTPException(403, detail="only the participant can change who sees their data")
        try:
            for role in body.shared_with_roles:
                check_role(role)
            store.set_sharing(participant_id, body.shared_with_roles)
        except InvalidInputError as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        return {"participant_id": participant_id, "shared_with_roles": list(store.sharing(participant_id))}

    @app.websocket("/ws/sessions/{session_id}")
    async def live_socket(websocket: WebSocket, session_id: str) -> None:
        protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        token = _bearer(websocket.headers.get("authorization"))
        if token is None:
            token = next((p[7:] for p in protocols if p.startswith("bearer.")), None)
        try:
            user = store.authenticate(token)
        except AuthError as exc:
            await websocket.send_denial_response(JSONResponse({"detail": exc.reason}, status_code=exc.status))
            return
        session = sessions.get(session_id)
        if session is None or not can_view(store, user, session.participant_id):
            await websocket.send_denial_response(
                JSONResponse({"detail": f"unknown session id {session_id[:64]!r}"}, status_code=404))
            return
        await websocket.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in protocols else None)
        await websocket.send_text(json.dumps({"type": "hello", "user": user.to_dict(),
                                              "session": session.snapshot()}))
        sender = asyncio.create_task(_send_frames(websocket, session))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                # controls may stop and start a graph (joins threads): keep them off the event loop
                reply = await asyncio.to_thread(_handle_client_message, message, session, user, apply_control,
                                                control_error)
                await websocket.send_text(json.dumps(reply))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()

    @app.get("/")
    def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return _BodyLimit(app, MAX_BODY_BYTES)


def _handle_client_message(message: dict, session: LiveSession, user: User, apply_control, control_error) -> dict:
    """Answer one message from a dashboard: ``ping`` or ``control``; errors are replies, not crashes."""
    text = message.get("text")
    if text is None:
        return {"type": "error", "status": 400, "reason": "send JSON text messages, not binary"}
    if len(text.encode()) > MAX_WS_MESSAGE_BYTES:
        return {"type": "error", "status": 413, "reason": f"message over {MAX_WS_MESSAGE_BYTES} bytes"}
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return {"type": "error", "status": 400, "reason": f"message is not JSON: {exc.msg} at {exc.pos}"}
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return {"type": "error", "status": 400, "reason": "message must be a JSON object with a 'type'"}
    if data["type"] == "ping":
        return {"type": "pong", "t": data.get("t"), "server_time_s": time.time()}
    if data["type"] == "control":
        allowed = {"type", "action", "decoder", "calibration_s", "duration_s", "name"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            return {"type": "error", "status": 400, "reason": f"unknown control fields {unknown}"}
        for key in ("calibration_s", "duration_s"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                return {"type": "error", "status": 400, "reason": f"{key} must be a number, got {value!r:.40}"}
        for key in ("action", "decoder", "name"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                return {"type": "error", "status": 400, "reason": f"{key} must be a string"}
        try:
            snapshot = apply_control(session, user, data)
        except (InvalidInputError, AuthError) as exc:
            error = control_error(exc)
            return {"type": "error", "status": error.status_code, "reason": error.detail}
        return {"type": "state", "session": snapshot}
    return {"type": "error", "status": 400, "reason": f"unknown message type {data['type'][:40]!r}; "
                                                      "expected 'ping' or 'control'"}


async def _send_frames(websocket, session: LiveSession) -> None:
    """Send the newest frame whenever there is one (a slow browser skips frames, never queues them).

    The feed thread wakes this task through ``call_soon_threadsafe`` once per
    frame, so an idle dashboard costs nothing and a busy one one wake-up per bin.
    """
    loop = asyncio.get_running_loop()
    new_frame = asyncio.Event()

    def notify() -> None:
        with contextlib.suppress(RuntimeError):  # the event loop closed under us: nothing to wake
            loop.call_soon_threadsafe(new_frame.set)

    session.add_listener(notify)
    last = 0
    try:
        while True:
            new_frame.clear()
            sequence, frame = session.frame_sequence, session.latest_frame
            if sequence != last and frame is not None:
                last = sequence
                await websocket.send_bytes(frame)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(new_frame.wait(), _FRAME_WAIT_S)
    finally:
        session.remove_listener(notify)
