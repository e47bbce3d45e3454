"""The dashboard's surgical-plan view: a ``neurolace surgery plan`` file, its overlay, and their endpoints.

``neurolace serve --plan plan.json [--plan-overlay plan.png]`` reads the plan once
at startup (:func:`load_plan_view`: a missing or malformed file is an
:class:`~neurolace.core.errors.InvalidInputError`, exit status 2) and adds
(:func:`register_plan`):

==========================  ===================================================================
``GET /plan``               the page (``static/plan.html`` + ``plan.js``; no data, like ``/``)
``GET /api/plan``           the plan as JSON (clinician, researcher; token needed)
``GET /api/plan/overlay``   the overlay PNG (same rule; 404 when none was given)
==========================  ===================================================================

The page reads the token the dashboard keeps (``sessionStorage``, or ``#token=``)
and shows the overlay, the sites (order, x_um, y_um, depth_um, margin_um,
hit_probability), the clearance, the smallest margin and the estimated duration.
A participant's token gets 403: a plan is a surgical team's document.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurolace.core.errors import InvalidInputError

__all__ = ["PLAN_ROLES", "SITE_FIELDS", "PlanView", "attach_plan", "check_plan", "load_plan_view", "register_plan"]

#: roles that may read a plan
PLAN_ROLES = ("clinician", "researcher")
#: the site fields the view shows, in its column order (every one a finite number)
SITE_FIELDS = ("order", "x_um", "y_um", "depth_um", "margin_um", "hit_probability")
#: the plan-wide numbers the view shows (``min_margin_um`` is null in a plan without sites)
SUMMARY_FIELDS = ("clearance_um", "min_margin_um", "estimated_duration_s")
#: largest plan file read (64 sites are ~30 kB; 4096 threads stay far below this)
MAX_PLAN_BYTES = 32 * 1024 * 1024
#: largest overlay read
MAX_OVERLAY_BYTES = 64 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class PlanView:
    """A plan as the dashboard serves it.

    Attributes
    ----------
    plan : dict
        The plan document (``neurolace.surgery.plan.Plan.to_dict``), checked by :func:`check_plan`.
    source : str
        The file it was read from (shown on the page).
    overlay_png : bytes or None
        The overlay image (``surgery plan --overlay``), if one was given.
    """

    plan: dict
    source: str
    overlay_png: bytes | None = None

    def public(self) -> dict:
        """The ``/api/plan`` answer: the plan, its source file name and whether an overlay exists."""
        return {"source": Path(self.source).name, "has_overlay": self.overlay_png is not None, "plan": self.plan}

    def __repr__(self) -> str:
        return (f"PlanView({Path(self.source).name!r}, {len(self.plan['sites'])} sites, "
                f"overlay={'yes' if self.overlay_png is not None else 'no'})")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_plan(document: Any, *, source: str = "plan") -> dict:
    """Check that ``document`` is a plan the view can show; return it.

    Parameters
    ----------
    document : object
        Parsed JSON of a ``neurolace surgery plan`` file.
    source : str
        Named in the messages (the file).

    Raises
    ------
    InvalidInputError
        Naming the first thing that is wrong: the format, a missing plan-wide number, or the site and field.
    """
    from neurolace.surgery.plan import PLAN_FORMAT

    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise InvalidInputError(f"{source}: not a neurolace surgery plan (format {found!r}, expected "
                                f"{PLAN_FORMAT!r}; write one with 'neurolace surgery plan')")
    for name in SUMMARY_FIELDS:
        value = document.get(name)
        if not (_finite(value) or (name == "min_margin_um" and value is None)):
            raise InvalidInputError(f"{source}: {name} must be a finite number, got {value!r:.40}")
    sites = document.get("sites")
    if not isinstance(sites, list):
        raise InvalidInputError(f"{source}: 'sites' must be a list, got {type(sites).__name__}")
    for index, site in enumerate(sites):
        if not isinstance(site, dict):
            raise InvalidInputError(f"{source}: site {index} must be an object, got {type(site).__name__}")
        for name in SITE_FIELDS:
            if not _finite(site.get(name)):
                raise InvalidInputError(f"{source}: site {index} field {name} must be a finite number, "
                                        f"got {site.get(name)!r:.40}")
    return document


def _read_limited(path: Path, option: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidInputError(f"{option} {path}: {size} bytes, over the {max_bytes}-byte limit")
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"{option} {path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{option} {path}: a directory, not a file") from None
    except OSError as exc:
        raise InvalidInputError(f"{option} {path}: cannot read it ({exc.strerror})") from None


def load_plan_view(plan_path: str | os.PathLike, overlay_path: str | os.PathLike | None = None) -> PlanView:
    """Read and check a plan file and, optionally, its overlay PNG.

    Parameters
    ----------
    plan_path : path
        ``plan.json`` of ``neurolace surgery plan --out``.
    overlay_path : path, optional
        ``plan.png`` of ``--overlay`` (must be a PNG).

    Raises
    ------
    InvalidInputError
        Missing, unreadable, not JSON, not a plan, or an overlay that is not a PNG (the CLI's exit status 2).
    """
    path = Path(plan_path)
    raw = _read_limited(path, "--plan", MAX_PLAN_BYTES)
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"--plan {path}: not JSON ({exc})") from None
    plan = check_plan(document, source=f"--plan {path}")
    overlay = None
    if overlay_path is not None:
        overlay = _read_limited(Path(overlay_path), "--plan-overlay", MAX_OVERLAY_BYTES)
        if not overlay.startswith(_PNG_SIGNATURE):
            raise InvalidInputError(f"--plan-overlay {overlay_path}: not a PNG image "
                                    "(write one with 'neurolace surgery plan --overlay plan.png')")
    return PlanView(plan, str(path), overlay)


def register_plan(app: Any, view: PlanView) -> None:
    """Add ``/plan``, ``/api/plan`` and ``/api/plan/overlay`` to a dashboard app serving ``view``.

    ``app``: the FastAPI app of :func:`neurolace.web.app.create_app` (inside its hardening
    middleware; the middleware itself is accepted too). Routes may be added to a running app.
    """
    from fastapi import HTTPException, Request
    from fastapi.responses import FileResponse, Response

    from neurolace.web.app import STATIC_DIR
    from neurolace.web.auth import request_user

    app = getattr(app, "app", app)  # the FastAPI app inside the hardening middleware
    store = app.state.store
    app.state.plan = view

    def reader(request: Request):
        user = request_user(store, request)
        if user.role not in PLAN_ROLES:
            raise HTTPException(403, detail=f"the surgical plan is for {' and '.join(r + 's' for r in PLAN_ROLES)}; "
                                            f"{user.name} is a {user.role}")
        return user

    @app.get("/plan")
    def plan_page():
        return FileResponse(STATIC_DIR / "plan.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/plan")
    def get_plan(request: Request) -> dict:
        reader(request)
        return view.public()

    @app.get("/api/plan/overlay")
    def get_overlay(request: Request):
        reader(request)
        if view.overlay_png is None:
            raise HTTPException(404, detail="no overlay was given (serve --plan-overlay plan.png)")
        return Response(view.overlay_png, media_type="image/png", headers={"Cache-Control": "no-store"})


def attach_plan(server: Any, view: PlanView) -> None:
    """Serve ``view`` on a running :class:`~neurolace.web.server.DashboardServer` (``neurolace serve --plan``)."""
    register_plan(server._server.config.app, view)
