"""Run the dashboard: uvicorn in the foreground (``neurolace serve``) or in a background thread.

:func:`start_in_background` is what ``neurolace demo`` (and the tests) use::

    from neurolace.web.server import start_in_background

    server = start_in_background(port=8000)      # serves the 'demo' preset live, started
    print(server.url, server.bootstrap_token)    # open the URL, paste the token
    ...
    server.stop()

It listens on 127.0.0.1 unless told otherwise, binds before returning (port 0
picks a free port, see ``server.port``), and creates a researcher ``admin``
with a printed token when the user store is empty, so a first run is usable.
The port is bound before the data directory is touched, so a port in use
leaves no token secret or users file behind.

With ``site_dir`` (``neurolace serve --site DIR``) the site's consent records
decide what clinicians and researchers see and its audit log records logins,
logouts and every access (:class:`neurolace.web.access.Access`); nothing is
granted on anyone's behalf, so a simulated participant of a site needs its
consents recorded like any other (``neurolace consent grant``). Without a site
(``neurolace demo``, a plain ``start_in_background``) the user store's sharing
choices decide, the simulated participant shares with clinicians and
researchers, and nothing is audited.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurolace.core.errors import NeurolaceError
from neurolace.web.access import Access
from neurolace.web.auth import DEFAULT_TOKEN_LIFETIME_S, WebStore, default_data_dir
from neurolace.web.games import GameBook
from neurolace.web.live import LiveSession

__all__ = ["DEFAULT_PORT", "DashboardServer", "build_app", "default_data_dir", "open_site_access",
           "start_in_background"]

DEFAULT_PORT = 8000
#: roles the simulated participant of a live session shares its data with (without a site)
SIMULATED_SHARING = ["clinician", "researcher"]


def open_site_access(store: WebStore, site_dir: str | os.PathLike) -> Access:
    """:class:`Access` over ``store`` with the site's consent records and audit log (created when absent).

    Parameters
    ----------
    store : WebStore
    site_dir : path
        The site directory (:mod:`neurolace.privacy.site`); ``consent.json``, ``audit.log`` and the
        audit signing key live there.

    Raises
    ------
    PrivacyError
        A damaged consent file or audit signing key, naming the file.
    """
    from neurolace.privacy.audit import AuditLog
    from neurolace.privacy.consent import ConsentRegistry

    audit = AuditLog.for_site(site_dir)
    try:
        consent = ConsentRegistry.for_site(site_dir, audit=audit)
    except BaseException:
        audit.close()
        raise
    return Access(store, consent=consent, audit=audit)


def build_app(*, data_dir: str | os.PathLike | None = None, sessions: list[LiveSession] | None = None,
              token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S, host: str = "127.0.0.1",
              site_dir: str | os.PathLike | None = None) -> tuple[Any, WebStore, GameBook, dict]:
    """The app and its parts: ``(asgi_app, store, games, sessions_by_id)``; its :class:`Access` is ``app.state.access``.

    ``sessions`` default to one ``LiveSession()`` (the ``demo`` preset, not started). The app answers
    to the loopback names and, when it listens on another address, to that address. ``site_dir``:
    the site whose consent records and audit log govern (None: the store's sharing, no audit).
    """
    from neurolace.web.app import LOOPBACK_HOSTS, create_app

    allowed_hosts = LOOPBACK_HOSTS if host in ("127.0.0.1", "localhost", "::1") else (*LOOPBACK_HOSTS, host)

    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    games = GameBook(directory)  # reads scores.json: a corrupt file stops us before the store writes a key
    store = WebStore(directory, token_lifetime_s=token_lifetime_s)
    live = sessions if sessions is not None else [LiveSession()]
    by_id = {}
    for session in live:
        if session.session_id in by_id:
            raise NeurolaceError(f"two live sessions share the id {session.session_id!r}")
        by_id[session.session_id] = session
        if site_dir is None:
            store.ensure_participant(session.participant_id, SIMULATED_SHARING)
    access = open_site_access(store, site_dir) if site_dir is not None else Access(store)
    return create_app(store, games, by_id, allowed_hosts=allowed_hosts, access=access), store, games, by_id


@dataclass
class DashboardServer:
    """A dashboard running in a background thread; :meth:`stop` ends it and its sessions."""

    host: str
    port: int
    store: WebStore
    games: GameBook
    sessions: dict[str, LiveSession]
    bootstrap_token: str | None = None
    access: Access | None = None
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def login_url(self, user: str = "admin") -> str:
        """The dashboard URL with a token in its fragment: the bootstrap token, else a fresh one for ``user``.

        For a local run (``neurolace demo`` printing where to look). Browsers do
        not send the fragment to the server, so the token stays out of request logs.
        """
        token = self.bootstrap_token
        if token is None:
            known = self.store.user(user)
            if known is None:
                raise NeurolaceError(f"no user {user!r} in {self.store.data_dir}; create one with "
                                     f"'neurolace serve --create-user NAME --role researcher'")
            token = self.store.issue_token(known)
        return f"{self.url}/#token={token}"

    def set_summary(self, summary: dict) -> None:
        """Show a finished session's summary (``neurolace demo --json``) as BPS per block on the first session."""
        if self.sessions:
            next(iter(self.sessions.values())).set_summary(summary)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        for session in self.sessions.values():
            session.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.access is not None and self.access.audit is not None:
            self.access.audit.close()  # signs what was appended since the last checkpoint


def _bootstrap(store: WebStore) -> str | None:
    """Create researcher ``admin`` and return a token when the store has no users yet."""
    if store.users():
        return None
    return store.issue_token(store.create_user("admin", "researcher"))


class _DenialLogFilter(logging.Filter):
    """Drop uvicorn's "returned without completing handshake" after a deliberate 401/404 denial.

    The sans-I/O WebSocket protocol of uvicorn sends the denial response
    correctly but then logs it as an error; every path of our WebSocket handler
    either accepts or denies, so the line only ever reports a refusal we meant.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing handshake" not in record.getMessage()


def _uvicorn_config(app, host: str, port: int, log_level: str):
    import uvicorn

    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialLogFilter) for f in error_log.filters):
        error_log.addFilter(_DenialLogFilter())

    from neurolace.web.app import MAX_WS_MESSAGE_BYTES

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off",
                          ws="websockets-sansio",
                          ws_max_size=max(MAX_WS_MESSAGE_BYTES * 4, 65536),
                          ws_per_message_deflate=False)


def start_in_background(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                        data_dir: str | os.PathLike | None = None, sessions: list[LiveSession] | None = None,
                        start_sessions: bool = True, summary: dict | None = None,
                        token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S, log_level: str = "warning",
                        startup_timeout_s: float = 20.0,
                        site_dir: str | os.PathLike | None = None) -> DashboardServer:
    """Start the dashboard in a daemon thread and return once it accepts connections.

    Parameters
    ----------
    host, port : str, int
        Where to listen (port 0: a free port, read it from ``.port``).
    data_dir : path, optional
        Users, token secret, Webgrid scores (default :func:`default_data_dir`).
    sessions : list of LiveSession, optional
        Default one ``LiveSession()`` on the ``demo`` preset.
    start_sessions : bool
        Start every session's graph now.
    summary : dict, optional
        A finished session's summary (``neurolace demo --json``) shown on the first session.
    site_dir : path, optional
        The site whose consent records decide who sees what and whose audit log records
        logins and access; None (the default, ``neurolace demo``): the store's sharing, no audit.
    """
    import socket

    import uvicorn

    # bind first: a port in use must leave no key or users file behind
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise NeurolaceError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    try:
        app, store, games, by_id = build_app(data_dir=data_dir, sessions=sessions,
                                             token_lifetime_s=token_lifetime_s, host=host, site_dir=site_dir)
        token = _bootstrap(store)
    except BaseException:
        listener.close()
        raise
    listener.listen(64)
    bound_port = listener.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(app, host, bound_port, log_level))
    server.install_signal_handlers = lambda: None  # the owner of the main thread handles signals
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True,
                              name="neurolace-dashboard")
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise NeurolaceError(f"the dashboard did not start on {host}:{bound_port}")
        time.sleep(0.01)
    handle = DashboardServer(host, bound_port, store, games, by_id, token, app.state.access, server, thread)
    if summary is not None:
        handle.set_summary(summary)
    if start_sessions:
        for session in by_id.values():
            session.start()
    return handle


def serve_forever(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, data_dir: str | os.PathLike | None = None,
                  sessions: list[LiveSession] | None = None, start_sessions: bool = True,
                  summary: dict | None = None, on_ready=None, log_level: str = "warning",
                  site_dir: str | os.PathLike | None = None) -> None:
    """Run the dashboard in this thread until Ctrl-C; ``on_ready(server)`` is called once it listens."""
    handle = start_in_background(host=host, port=port, data_dir=data_dir, sessions=sessions,
                                 start_sessions=start_sessions, summary=summary, log_level=log_level,
                                 site_dir=site_dir)
    try:
        if on_ready is not None:
            on_ready(handle)
        while handle._thread.is_alive():
            handle._thread.join(0.5)
    finally:
        handle.stop()
