"""The FastAPI application of the dashboard: REST endpoints, the live WebSocket, static files.

Endpoints (every one but ``/healthz`` and ``/api/login`` needs a token;
``/`` and ``/static/*`` are the login page and the app's own code, no data):

======================================  =====================================================
``GET  /healthz``                       200 ``{"status": "ok"}``
``POST /api/login``                     ``{username, password}`` -> ``{token, expires_s, user}``
``POST /api/logout``                    revokes the token it is sent with (only that one)
``GET  /api/me``                        the caller
``GET  /api/sessions``                  live sessions the caller may see
``GET  /api/sessions/{id}``             state, BPS series, blocks, summary of one session
``GET  /api/sessions/{id}/runtime``     the runtime's per-node report (latency, CPU)
``GET  /api/sessions/{id}/export``      blocks, BPS series, latency samples (``neurolace report --session-json``)
``POST /api/sessions/{id}/control``     ``{action: start|stop|block|decoder, ...}`` (clinician, researcher)
``WS   /ws/sessions/{id}``              binary frames (:func:`neurolace.web.live.encode_frame`);
                                        JSON text in: ``ping``, ``control``
``POST /api/webgrid/games``             ``{grid_side, duration_s}`` -> a game and its first lit cell
``POST /api/webgrid/games/{id}/clicks`` ``{x, y}`` -> the selection and the cell lit now (timed on arrival)
``POST /api/webgrid/games/{id}/finish`` the verified score, once the game's time is up
``GET  /api/webgrid/scores``            scores the caller may see, best first
``PUT  /api/participants/{id}/sharing`` ``{shared_with_roles}`` (that participant only; with a site:
                                        grants or withdraws consent ``clinician_view`` /
                                        ``research_sharing``)
======================================  =====================================================

Who sees whose data is decided by :class:`neurolace.web.access.Access`: with a
site, its consent records and audit log (login, login_failed, logout, access,
access_refused are recorded); without one, the user store's sharing choices.

Tokens come as ``Authorization: Bearer <token>``; browsers cannot set headers
on a WebSocket, so there the token rides in the subprotocol list
(``["neurolace.v1", "bearer.<token>"]``) and the server answers with
``neurolace.v1``. A refused WebSocket gets a real HTTP 401/403/404 on the
handshake (403: an ``Origin`` other than the server's own).

An open WebSocket stays under watch (:class:`_SocketGuard`, the one place
for it): its token and the user's access to the session are checked again
every :data:`RECHECK_S` seconds, at the token's expiry, on every change of
users, sharing or consent (this process's or, once seen, another's), and before
every message the client sends; when they no longer allow it the socket is
closed with code :data:`CLOSE_TOKEN` (4401: expired, revoked, logged out, user
removed or role changed) or :data:`CLOSE_ACCESS` (4403: the participant withdrew
the sharing or consent) and the reason.

Request bodies over :data:`MAX_BODY_BYTES` get 413 before they are read; a
click body over :data:`MAX_CLICK_BODY_BYTES`, nested deeper than
:data:`MAX_JSON_DEPTH`, or holding an integer of more than 20 digits or a
non-finite number gets a 4xx before (or instead of) parsing, as do WebSocket
messages over :data:`MAX_WS_MESSAGE_BYTES`. Failed logins are limited per
user name and per client address (:class:`~neurolace.web.auth.LoginLimiter`,
429 with ``Retry-After``). Every HTTP answer carries a Content-Security-Policy
(own origin only, no framing), ``X-Frame-Options: DENY``,
``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
Data of a participant the caller may not see answers exactly like an unknown
id (404), so ids do not leak.
"""


import asyncio
import contextlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from neurolace.core.errors import InvalidInputError
from neurolace.web.access import Access, allowed_actions, check_action
from neurolace.web.auth import AuthError, LoginLimiter, User, WebStore, bearer_token, request_user
from neurolace.web.games import GameBook, GameError
from neurolace.web.live import LiveSession

__all__ = ["CLOSE_ACCESS", "CLOSE_TOKEN", "MAX_BODY_BYTES", "MAX_CLICK_BODY_BYTES", "MAX_JSON_DEPTH",
           "MAX_WS_MESSAGE_BYTES", "RECHECK_S", "SECURITY_HEADERS", "STATIC_DIR", "WS_SUBPROTOCOL", "create_app",
           "parse_json_limited"]

#: largest request body accepted by any endpoint
MAX_BODY_BYTES = 512 * 1024
#: largest click body (``{"x": ..., "y": ...}`` is ~40 bytes)
MAX_CLICK_BODY_BYTES = 1024
#: deepest JSON nesting parsed from a client (clicks and WebSocket messages need 1)
MAX_JSON_DEPTH = 8
#: largest WebSocket text message accepted from a browser
MAX_WS_MESSAGE_BYTES = 4096
#: seconds between two re-checks of an open WebSocket's token and access
RECHECK_S = 1.0
#: WebSocket close code when the token no longer holds (expired, revoked, user removed, role changed)
CLOSE_TOKEN = 4401
#: WebSocket close code when the user may no longer see the session (sharing or consent withdrawn)
CLOSE_ACCESS = 4403
#: headers on every HTTP answer: own-origin code only, no framing, no MIME sniffing, no referrer
SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
#: Host header names the dashboard answers to (DNS-rebinding protection: a page from another site that
#: resolves its own name to 127.0.0.1 sends its own name as Host, and is refused)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: the subprotocol the live WebSocket speaks
WS_SUBPROTOCOL = "neurolace.v1"
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: longest wait of the WebSocket sender for a new frame before it looks again
_FRAME_WAIT_S = 1.0


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of arrays and objects in JSON text ``raw`` (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise InvalidInputError(f"integer of {len(text.lstrip('-'))} digits; at most 20 are accepted")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInputError(f"number {text[:40]} is out of the float range")
    return value


def _parse_constant(text: str) -> float:
    raise InvalidInputError(f"{text} is not a JSON number")


def parse_json_limited(raw: bytes | str, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from a client after checking its size and nesting, refusing numbers Python cannot hold.

    Parameters
    ----------
    raw : bytes or str
        The body or message.
    max_bytes : int
        Largest accepted size (UTF-8 bytes).
    max_depth : int
        Deepest accepted nesting of arrays and objects.

    Returns
    -------
    The parsed value; integers have at most 20 digits, floats are finite.

    Raises
    ------
    InvalidInputError
        Naming what is wrong; ``status`` (413 for size, 400 otherwise) says how to answer.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        error = InvalidInputError(f"JSON of {len(data)} bytes is over the {max_bytes}-byte limit")
        error.status = 413
        raise error
    if _json_depth(data) > max_depth:
        error = InvalidInputError(f"JSON nested deeper than {max_depth} levels")
        error.status = 400
        raise error
    try:
        return json.loads(data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except InvalidInputError as exc:
        exc.status = 400
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        error = InvalidInputError(f"not JSON: {exc}")
        error.status = 400
        raise error from exc


def _host_name(value: bytes) -> str:
    """The name of a Host header without its port: ``127.0.0.1:8765`` -> ``127.0.0.1``, ``[::1]:80`` -> ``[::1]``."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class _Hardening:
    """ASGI middleware: the Host check, security headers on every HTTP answer, 413 for bodies over ``max_bytes``.

    A request or WebSocket whose Host header is not one of ``allowed_hosts``
    is refused (HTTP 400; a WebSocket handshake is closed, which the server
    answers with 403) before any route sees it. Bodies are measured by
    Content-Length, or counted while reading a chunked body.
    """

    def __init__(self, app, max_bytes: int, allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)

    @property
    def state(self):
        """The inner app's state: ``store``, ``games``, ``sessions``, ``access``, ``guard``, ``login_limiter``."""
        return self.app.state

    def _host_refusal(self, scope) -> str | None:
        hosts = [value for name, value in scope.get("headers", ()) if name == b"host"]
        name = _host_name(hosts[0]) if len(hosts) == 1 else ""
        if name in self.allowed_hosts:
            return None
        shown = hosts[0].decode("latin-1")[:80] if hosts else "none"
        return f"Host header {shown!r} refused; the dashboard answers to {sorted(self.allowed_hosts)}"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._host_refusal(scope)
        if scope["type"] == "websocket":
            if refusal is not None:
                await receive()  # the websocket.connect event, then refuse the handshake
                await send({"type": "websocket.close", "code": 1008, "reason": refusal[:120]})
                return
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
            await send(message)

        if refusal is not None:
            await _send_json(send_with_headers, 400, {"detail": refusal})
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_json(send_with_headers, 413, {"detail": f"request body over {self.max_bytes} bytes"})
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
                    await _send_json(send_with_headers, 413, {"detail": f"request body over {self.max_bytes} bytes"})
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

            await self.app(scope, replay, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


@dataclass(eq=False)
class _Connection:
    """One open live WebSocket: who, with which token, on which session, and how to wake its watch."""

    token: str
    session_id: str
    user: User
    loop: asyncio.AbstractEventLoop
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """Ask the watch to re-check now (safe from any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop closed: the socket is gone anyway
            self.loop.call_soon_threadsafe(self.changed.set)


class _SocketGuard:
    """The one place that admits live WebSockets and keeps checking them while they are open.

    :meth:`admit` is the handshake's check (recorded in the site's audit log
    as ``access`` or ``access_refused``) and :meth:`refusal` the same check
    repeated, unrecorded until it closes the socket: the token (signature,
    expiry, revocation, logout, the user's existence and role) and
    :meth:`Access.can_view <neurolace.web.access.Access.can_view>` on the
    session. :meth:`watch` repeats it every :data:`RECHECK_S`, at the token's
    expiry and whenever :meth:`wake_all` is called (the user store and the
    consent registry call it on every change, once they see it).
    """

    def __init__(self, access: Access, sessions: dict[str, LiveSession]) -> None:
        self.access = access
        self.store = access.store
        self.sessions = sessions
        self._lock = threading.Lock()
        self._open: set[_Connection] = set()
        access.on_change(self.wake_all)

    def admit(self, token: str | None, session_id: str, *, record: bool = True) -> tuple[User, LiveSession]:
        """The user and the session if the token is valid and the user may see it; :class:`AuthError` else.

        ``record``: write the decision on a participant's session to the audit log (the handshake does).
        """
        user = self.store.authenticate(token)
        session = self.sessions.get(session_id)
        if session is None:
            raise AuthError(f"unknown session id {session_id[:64]!r}", status=404)
        if record:
            allowed = self.access.check(user, session.participant_id, resource="live_socket", session_id=session_id)
        else:
            allowed = self.access.can_view(user, session.participant_id)
        if not allowed:
            raise AuthError(f"unknown session id {session_id[:64]!r}", status=404)
        return user, session

    def refusal(self, connection: _Connection) -> tuple[int, str] | None:
        """None while ``connection`` may stay open, else the close code and reason (a lost access is recorded)."""
        try:
            connection.user, _ = self.admit(connection.token, connection.session_id, record=False)
        except AuthError as exc:
            if exc.status == 401:
                return CLOSE_TOKEN, exc.reason[:120]
            session = self.sessions.get(connection.session_id)
            with contextlib.suppress(AuthError):  # closing anyway: a log that cannot write changes nothing
                self.access.record("access_refused", actor=connection.user.name,
                                   participant_id=session.participant_id if session else None,
                                   resource="live_socket", role=connection.user.role,
                                   session_id=connection.session_id, closed=True)
            return CLOSE_ACCESS, f"you may no longer see session {connection.session_id[:40]!r}"[:120]
        return None

    def open(self, connection: _Connection) -> None:
        with self._lock:
            self._open.add(connection)

    def close(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)

    @property
    def n_open(self) -> int:
        with self._lock:
            return len(self._open)

    def wake_all(self) -> None:
        """Re-check every open connection now (after a change of users, roles or sharing)."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.wake()

    async def watch(self, connection: _Connection) -> tuple[int, str]:
        """Return the close code and reason once the connection is no longer allowed."""
        while True:
            try:
                expires_in_s = self.store.signer.verify(connection.token).expires_s - time.time()
            except AuthError:
                expires_in_s = 0.0
            await _wait_event(connection.changed, max(0.0, min(RECHECK_S, expires_in_s)) + 1e-3)
            connection.changed.clear()
            refusal = self.refusal(connection)
            if refusal is not None:
                return refusal


async def _wait_event(event: asyncio.Event, timeout_s: float) -> None:
    """Wait until ``event`` is set or ``timeout_s`` passed, and never swallow a cancellation.

    Python 3.11's :func:`asyncio.wait_for` drops a cancellation that arrives as the awaited event
    fires (CPython issue gh-86296, fixed in 3.12); with a frame every 25 ms, a live socket's sender
    could then outlive its own closing and stream on. :func:`asyncio.timeout` does not.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


async def _send_json(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def create_app(store: WebStore, games: GameBook, sessions: dict[str, LiveSession], *,
               allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS, access: Access | None = None):
    """Build the FastAPI app over a user store, a game book and the live sessions (by id).

    ``allowed_hosts``: the names the Host header may carry (default the loopback names).
    ``access``: who sees whose data and the audit trail (default ``Access(store)``: the store's
    sharing choices, nothing recorded); give one with a site's consent registry and audit log.
    """
    from fastapi import Body, Depends, FastAPI, HTTPException, Request, WebSocket
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.websockets import WebSocketDisconnect

    app = FastAPI(title="neurolace dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.games = games
    app.state.sessions = sessions
    if access is None:
        access = Access(store)
    elif access.store is not store:
        raise InvalidInputError("access must be built over the app's own user store")
    app.state.access = access
    app.state.guard = guard = _SocketGuard(access, sessions)
    app.state.login_limiter = limiter = LoginLimiter()

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

    def current_user(request: Request) -> User:
        return request_user(store, request)

    CurrentUser = Annotated[User, Depends(current_user)]

    def checked(decide):
        """``decide()``, its :class:`AuthError` (an audit log that cannot write: 503) as an HTTP answer."""
        try:
            return decide()
        except AuthError as exc:
            raise HTTPException(exc.status, detail=exc.reason) from exc

    def visible_session(session_id: str, user: User, resource: str) -> LiveSession:
        session = sessions.get(session_id)
        if session is None or not checked(lambda: access.check(user, session.participant_id, resource=resource,
                                                               session_id=session_id)):
            raise HTTPException(404, detail=f"unknown session id {session_id[:64]!r}")
        return session

    def record_views(user: User, participant_ids, resource: str) -> None:
        """One ``access`` entry per participant whose data a listing showed ``user``."""
        for participant_id in sorted({pid for pid in participant_ids if pid is not None}):
            checked(lambda pid=participant_id: access.record("access", actor=user.name, participant_id=pid,
                                                             resource=resource, role=user.role))

    def client_json(raw: bytes, max_bytes: int) -> Any:
        try:
            return parse_json_limited(raw, max_bytes=max_bytes)
        except InvalidInputError as exc:
            raise HTTPException(getattr(exc, "status", 400), detail=str(exc)) from exc

    def apply_control(session: LiveSession, user: User, control: dict) -> dict:
        action = control.get("action")
        if action in ("start", "stop", "decoder", "block") or not allowed_actions(user):
            check_action(user, action)
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
    def login(body: Login, request: Request) -> dict:
        address = request.client.host if request.client else "unknown"
        try:
            limiter.check(body.username, address)
            user = store.login(body.username, body.password)
        except AuthError as exc:
            checked(lambda: access.record("login_failed", actor=body.username, address=address,
                                          reason="rate limited" if exc.status == 429 else "wrong credentials"))
            if exc.status == 429:
                raise HTTPException(429, detail=exc.reason,
                                    headers={"Retry-After": str(math.ceil(exc.retry_after_s))}) from exc
            limiter.failed(body.username, address)
            raise HTTPException(401, detail=exc.reason) from exc
        limiter.succeeded(body.username)
        token = store.issue_token(user)
        checked(lambda: access.record("login", actor=user.name, address=address, role=user.role,
                                      token_id=store.signer.verify(token).token_id))
        return {"token": token, "expires_s": store.signer.lifetime_s, "user": user.to_dict()}

    @app.post("/api/logout")
    def logout(request: Request, user: CurrentUser) -> dict:
        """Revoke the token of this request (the user's other tokens stay valid); its sockets close at once."""
        claims = checked(lambda: store.revoke_token(bearer_token(request.headers.get("authorization"))))
        checked(lambda: access.record("logout", actor=user.name, role=user.role, token_id=claims.token_id))
        return {"logged_out": user.name, "token_id": claims.token_id}

    @app.get("/api/me")
    def me(user: CurrentUser) -> dict:
        """The caller and the actions their role may take (the page shows those controls and no others)."""
        return {**user.to_dict(), "actions": list(allowed_actions(user))}

    @app.get("/api/sessions")
    def list_sessions(user: CurrentUser) -> list[dict]:
        visible = [s for s in sessions.values() if checked(lambda s=s: access.can_view(user, s.participant_id))]
        record_views(user, (s.participant_id for s in visible), "session_list")
        return [{"session_id": s.session_id, "participant_id": s.participant_id, "state": s.state,
                 "name": s.spec.name} for s in visible]

    @app.get("/api/sessions/{session_id}")
    def get_session(session_id: str, user: CurrentUser) -> dict:
        return visible_session(session_id, user, "session").snapshot()

    @app.get("/api/sessions/{session_id}/runtime")
    def get_runtime(session_id: str, user: CurrentUser) -> dict:
        session = visible_session(session_id, user, "session_runtime")
        checked(lambda: check_action(user, "runtime"))
        report = session.graph_report()
        if report is None:
            raise HTTPException(409, detail=f"session {session_id!r} is not running")
        return json.loads(json.dumps(report, default=str))

    @app.get("/api/sessions/{session_id}/export")
    def export_session(session_id: str, user: CurrentUser) -> dict:
        session = visible_session(session_id, user, "session_export")
        checked(lambda: check_action(user, "export"))
        return session.export()

    @app.post("/api/sessions/{session_id}/control")
    def control(session_id: str, body: Control, user: CurrentUser) -> dict:
        session = visible_session(session_id, user, "session_control")
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
    async def click(game_id: str, request: Request, user: CurrentUser) -> dict:
        # timed here, on arrival: the server's clock is the game's only clock
        body = client_json(await request.body(), MAX_CLICK_BODY_BYTES)
        if not isinstance(body, dict) or set(body) != {"x", "y"}:
            raise HTTPException(400, detail='body must be a JSON object {"x": 0-1, "y": 0-1} (task units, y up)')
        return games.click(game_id, user.name, body["x"], body["y"])

    @app.post("/api/webgrid/games/{game_id}/finish")
    def finish_game(game_id: str, user: CurrentUser) -> dict:
        return games.finish(game_id, user.name).to_dict()

    @app.get("/api/webgrid/scores")
    def scores(user: CurrentUser) -> dict:
        visible = [s for s in games.scores()
                   if s["user"] == user.name or checked(lambda s=s: access.can_view(user, s["participant_id"]))]
        visible.sort(key=lambda s: -s["bps"])
        visible = visible[:200]
        decoders, shown = [], [s["participant_id"] for s in visible]
        for session in sessions.values():
            if checked(lambda session=session: access.can_view(user, session.participant_id)):
                decoders.extend({**block, "session_id": session.session_id} for block in session.snapshot()["blocks"])
                shown.append(session.participant_id)
        record_views(user, shown, "scores")
        return {"scores": visible, "decoder_blocks": decoders}

    @app.put("/api/participants/{participant_id}/sharing")
    def set_sharing(participant_id: str, body: Sharing, user: CurrentUser) -> dict:
        try:
            roles = access.set_sharing(user, participant_id, body.shared_with_roles)
        except AuthError as exc:
            raise HTTPException(exc.status, detail=exc.reason) from exc
        except InvalidInputError as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        return {"participant_id": participant_id, "shared_with_roles": list(roles)}

    @app.websocket("/ws/sessions/{session_id}")
    async def live_socket(websocket: WebSocket, session_id: str) -> None:
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host", "")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            await websocket.send_denial_response(JSONResponse(
                {"detail": f"WebSocket from origin {origin[:80]!r} refused: only the dashboard's own page may "
                           "connect"}, status_code=403))
            return
        protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        token = bearer_token(websocket.headers.get("authorization"))
        if token is None:
            token = next((p[7:] for p in protocols if p.startswith("bearer.")), None)
        try:
            user, session = guard.admit(token, session_id)
        except AuthError as exc:
            await websocket.send_denial_response(JSONResponse({"detail": exc.reason}, status_code=exc.status))
            return
        try:
            await websocket.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in protocols else None)
            await websocket.send_text(json.dumps({"type": "hello", "user": user.to_dict(),
                                                  "session": session.snapshot()}))
        except (WebSocketDisconnect, RuntimeError, OSError):  # the tab closed during the handshake: nothing to say
            return
        connection = _Connection(token, session_id, user, asyncio.get_running_loop())
        guard.open(connection)
        sender = asyncio.create_task(_send_frames(websocket, session))
        watch = asyncio.create_task(guard.watch(connection))
        receiver = asyncio.create_task(_receive(websocket, session, connection, guard, apply_control, control_error))
        try:
            done, _ = await asyncio.wait({watch, receiver}, return_when=asyncio.FIRST_COMPLETED)
            refusal = next((task.result() for task in done if not task.cancelled() and task.exception() is None
                            and task.result() is not None), None)
        finally:
            guard.close(connection)
            for task in (sender, watch, receiver):
                task.cancel()
            await asyncio.gather(sender, watch, receiver, return_exceptions=True)
        if refusal is not None:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(code=refusal[0], reason=refusal[1])

    @app.get("/")
    def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    from neurolace.web.inspect import register_inspector  # the channel inspector's endpoints (D2, web/inspect.py)
    register_inspector(app)
    return _Hardening(app, MAX_BODY_BYTES, allowed_hosts)


async def _receive(websocket, session: LiveSession, connection: _Connection, guard: _SocketGuard, apply_control,
                   control_error) -> tuple[int, str] | None:
    """Answer the client's messages until it leaves (None) or may no longer talk (the close code and reason).

    Every message is preceded by the guard's check, so a control cannot
    slip in between two timed re-checks.
    """
    from starlette.websockets import WebSocketDisconnect

    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            refusal = guard.refusal(connection)
            if refusal is not None:
                return refusal
            # controls may stop and start a graph (joins threads): keep them off the event loop
            reply = await asyncio.to_thread(_handle_client_message, message, session, connection.user,
                                            apply_control, control_error)
            await websocket.send_text(json.dumps(reply))
    except (WebSocketDisconnect, RuntimeError):  # the client went away mid-reply
        return None


def _handle_client_message(message: dict, session: LiveSession, user: User, apply_control, control_error) -> dict:
    """Answer one message from a dashboard: ``ping`` or ``control``; errors are replies, not crashes."""
    text = message.get("text")
    if text is None:
        return {"type": "error", "status": 400, "reason": "send JSON text messages, not binary"}
    if len(text.encode("utf-8", "surrogatepass")) > MAX_WS_MESSAGE_BYTES:
        return {"type": "error", "status": 413, "reason": f"message over {MAX_WS_MESSAGE_BYTES} bytes"}
    try:
        data: Any = parse_json_limited(text, max_bytes=MAX_WS_MESSAGE_BYTES)
    except InvalidInputError as exc:
        return {"type": "error", "status": 400, "reason": f"message is not JSON: {exc}"[:300]}
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
            await _wait_event(new_frame, _FRAME_WAIT_S)
    finally:
        session.remove_listener(notify)
