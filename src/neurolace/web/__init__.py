"""The web dashboard: live view of a running session, browser Webgrid, session reports.

- :mod:`neurolace.web.auth`: signed expiring tokens, users and roles in a small JSON store;
- :mod:`neurolace.web.access`: :func:`~neurolace.web.access.can_view`, the one place that
  decides who sees a participant's data (consent records plug in there);
- :mod:`neurolace.web.live`: :class:`~neurolace.web.live.LiveSession`, a real-time session
  graph the dashboard controls and watches over the runtime bus;
- :mod:`neurolace.web.games`: browser Webgrid games issued and verified by the server;
- :mod:`neurolace.web.app`: the FastAPI application; :mod:`neurolace.web.server` runs it;
- :mod:`neurolace.web.report`: the HTML session report of ``neurolace report``.

FastAPI and uvicorn are imported only by :mod:`~neurolace.web.app` and
:mod:`~neurolace.web.server`, so the rest is usable without them.
"""

__all__ = ["access", "app", "auth", "games", "live", "report", "server"]
