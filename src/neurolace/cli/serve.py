"""``neurolace serve``: the web dashboard, and its users (``--create-user``, ``--token-for``, ``--revoke-tokens``).

Which site governs (``--site DIR``, ``--no-site``, else the default site directory when it
exists) is decided once, here, by :func:`site_for`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from neurolace.core.errors import InvalidInputError

__all__ = ["register", "run"]

DESCRIPTION = """\
Serve the live dashboard: the Webgrid with the decoded cursor and the lit target, BPS and NTPM over
time, all channels as a heat map and a raster, spike-band power, link bandwidth and loop latency,
controls for calibration, timed blocks and decoders; Webgrid playable with a mouse, scored by the
server; scores per user. Every endpoint but /healthz and /api/login needs a token.

By default a simulated session (the 'demo' preset: simulated participant -> Kalman decoder ->
cursor -> Webgrid) runs live; --session runs another session file or preset.

Users and the token secret live in --data-dir (default $NEUROLACE_WEB_DIR or ./out/web). On the
first run a researcher 'admin' is created and its token printed. Add users with --create-user:

examples:
  neurolace serve
  neurolace serve --port 8080 --session sessions/closed_loop_sim.toml
  neurolace serve --create-user ana --role clinician
  neurolace serve --create-user p01 --role participant --participant-id sim-001 --password-stdin < pw.txt
  neurolace serve --token-for ana --token-hours 2 --json
  neurolace serve --revoke-tokens ana        # every token of ana issued so far stops working

Tokens live at most 720 hours (30 days). A running server sees users created, changed or revoked
here within a second, and closes the live views of tokens that no longer hold. POST /api/logout
(the dashboard's "Sign out") ends only the token it is sent with.

Consent and audit: with a site (--site DIR, or $NEUROLACE_SITE_DIR / ./out/site when that directory
exists; --no-site ignores it), the site's consent records decide what clinicians ('clinician_view')
and researchers ('research_sharing') see, a participant sees only their own data, and logins,
logouts, revocations and every access go to the site's audit log. Nothing is granted on anyone's
behalf: record consent with 'neurolace consent grant PID PURPOSE --by NAME --site DIR' (a withdrawal
closes open live views within a second). Without a site (a plain 'neurolace demo'), participants'
sharing choices in the user store decide and the simulated participant shares with clinicians
and researchers.

  neurolace serve --site /srv/site-a
  neurolace serve --revoke-tokens ana --site /srv/site-a   # recorded as token_revoked
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve the live web dashboard (FastAPI, WebSocket)",
                                   description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--data-dir", help="users, token secret, scores (default $NEUROLACE_WEB_DIR or out/web)")
    parser.add_argument("--session", default="demo", help="session TOML file or preset to run live (default demo)")
    parser.add_argument("--session-id", default="live", help="id of the live session in URLs (default live)")
    parser.add_argument("--participant-id", help="participant the live session belongs to (default sim-001); "
                        "with --create-user: the participant's id")
    parser.add_argument("--no-start", action="store_true", help="serve, but wait for a user to start the session")
    parser.add_argument("--summary-json", help="a 'neurolace demo --json' summary to show as BPS per block")
    parser.add_argument("--plan", metavar="PLAN.json", help="a 'neurolace surgery plan' file to show at /plan "
                        "(clinicians, researchers); --plan-overlay PLAN.png adds its overlay")
    parser.add_argument("--plan-overlay", metavar="PLAN.png", help="the overlay 'surgery plan --overlay' drew")
    parser.add_argument("--create-user", metavar="NAME", help="create (or replace) a user, print a token, exit")
    parser.add_argument("--role", choices=("participant", "clinician", "researcher"), help="role of --create-user")
    parser.add_argument("--password-stdin", action="store_true", help="read the new user's password from stdin")
    parser.add_argument("--token-for", metavar="NAME", help="print a fresh token for an existing user, exit")
    parser.add_argument("--revoke-tokens", metavar="NAME", help="end every token of an existing user issued so far, exit")
    parser.add_argument("--token-hours", type=float, default=12.0,
                        help="validity of printed tokens in hours (default 12, at most 720)")
    parser.add_argument("--json", action="store_true", help="with --create-user/--token-for: print one JSON object")
    site = parser.add_mutually_exclusive_group()
    site.add_argument("--site", metavar="DIR", help="site directory whose consent records govern and whose audit "
                      "log records access (default $NEUROLACE_SITE_DIR or out/site, used when it exists)")
    site.add_argument("--no-site", action="store_true", help="ignore any site: the user store's sharing decides, "
                      "nothing is audited")
    parser.set_defaults(handler=run)


def site_for(args: argparse.Namespace) -> Path | None:
    """The site directory ``serve`` works with: ``--site``, else the default one if it exists, else None.

    ``--no-site`` gives None. An explicit ``--site`` is used (and its consent and audit files created)
    even when new; the default (:func:`neurolace.privacy.site.default_site_dir`) only when it is
    already a directory, so a first ``neurolace serve`` or ``demo`` runs without a site.
    """
    from neurolace.privacy.site import default_site_dir, resolve_site_dir

    if args.no_site:
        return None
    if args.site is not None:
        return resolve_site_dir(args.site)
    default = default_site_dir()
    return default if default.is_dir() else None


def _store(args):
    from neurolace.web.auth import WebStore, default_data_dir

    return WebStore(args.data_dir or default_data_dir(), token_lifetime_s=_token_lifetime_s(args.token_hours))


def _token_lifetime_s(token_hours: float) -> float:
    """``--token-hours`` in seconds: finite, above 0, at most 720 h (the store's 30-day maximum)."""
    from neurolace.web.auth import MAX_TOKEN_LIFETIME_S

    max_hours = MAX_TOKEN_LIFETIME_S / 3600.0
    if not (math.isfinite(token_hours) and 0 < token_hours <= max_hours):
        raise InvalidInputError(f"--token-hours must be a finite number of hours above 0 and at most "
                                f"{max_hours:g} (30 days), got {token_hours:g}")
    return token_hours * 3600.0


def _print_token(args, user, token: str) -> int:
    if args.json:
        sys.stdout.write(json.dumps({"user": user.to_dict(), "token": token,
                                     "expires_s": args.token_hours * 3600.0}) + "\n")
    else:
        print(f"{user.name} ({user.role}) token, valid {args.token_hours:g} h:\n{token}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.create_user:
        if not args.role:
            raise InvalidInputError("--create-user needs --role participant|clinician|researcher")
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        store = _store(args)
        user = store.create_user(args.create_user, args.role, participant_id=args.participant_id, password=password)
        return _print_token(args, user, store.issue_token(user))
    if args.token_for:
        store = _store(args)
        user = store.user(args.token_for)
        if user is None:
            raise InvalidInputError(f"--token-for: no user {args.token_for!r} in {store.data_dir}")
        return _print_token(args, user, store.issue_token(user))
    if args.revoke_tokens:
        store = _store(args)
        store.revoke_tokens(args.revoke_tokens)
        _audit_revocation(args, store)
        if args.json:
            sys.stdout.write(json.dumps({"revoked": args.revoke_tokens}) + "\n")
        else:
            print(f"revoked every token of {args.revoke_tokens} issued so far")
        return 0
    if args.json:
        raise InvalidInputError("--json applies to --create-user, --token-for and --revoke-tokens")
    if not 0 <= args.port <= 65535:
        raise InvalidInputError(f"--port must be 0-65535, got {args.port}")
    return _serve(args)


def _audit_revocation(args: argparse.Namespace, store) -> None:
    """Record ``--revoke-tokens`` as ``token_revoked`` in the site's audit log (when there is a site)."""
    site = site_for(args)
    if site is None:
        return
    from neurolace.web.server import open_site_access

    access = open_site_access(store, site)
    try:
        access.record("token_revoked", actor="cli", user=args.revoke_tokens, scope="every token issued so far")
    finally:
        access.audit.close()


def _load_session(name: str):
    from neurolace.runtime.presets import PRESETS, preset_session
    from neurolace.runtime.session_file import load_session

    if not Path(name).exists() and name in PRESETS:
        return preset_session(name)
    return load_session(name)


def _serve(args: argparse.Namespace) -> int:
    from rich.console import Console

    from neurolace.web.live import LiveSession
    from neurolace.web.server import serve_forever

    summary = None
    if args.summary_json:
        try:
            summary = json.loads(Path(args.summary_json).read_text())
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"--summary-json {args.summary_json}: not JSON ({exc})") from exc
    if args.plan_overlay and not args.plan:
        raise InvalidInputError("--plan-overlay needs --plan")
    from neurolace.web.plan import attach_plan, load_plan_view

    plan = load_plan_view(args.plan, args.plan_overlay) if args.plan else None  # a bad plan: exit 2, nothing served
    session = LiveSession(args.session_id, args.participant_id or "sim-001", spec=_load_session(args.session))
    site = site_for(args)
    console = Console(stderr=True)

    def ready(server) -> None:
        if plan is not None:
            attach_plan(server, plan)
            console.print(f"surgical plan {args.plan} at {server.url}/plan", soft_wrap=True, highlight=False)
        # soft_wrap: a URL with a token must stay on one line to be copied
        console.print(f"[bold]neurolace dashboard[/bold] at {server.url}/  (session '{session.spec.name}', "
                      f"data in {server.store.data_dir}); Ctrl-C stops", soft_wrap=True)
        if site is None:
            console.print("no site: participants' sharing in the user store decides; nothing is audited "
                          "(serve --site DIR for consent and an audit log)", soft_wrap=True, highlight=False)
        else:
            console.print(f"site {site}: consent records decide who sees what; access is audited in "
                          f"{site / 'audit.log'}", soft_wrap=True, highlight=False)
            from neurolace.web.access import VIEW_PURPOSES

            shared = server.access.sharing(session.participant_id)
            missing = [f"{purpose} ({role}s)" for role, purpose in VIEW_PURPOSES.items() if role not in shared]
            if missing:
                console.print(f"participant {session.participant_id!r} has no consent on record for "
                              f"{' or '.join(missing)} to see the live session; record it with 'neurolace consent "
                              f"grant {session.participant_id} PURPOSE --by NAME --site {site}'",
                              soft_wrap=True, highlight=False)
        if server.bootstrap_token:
            console.print(f"first run: created researcher 'admin'; open {server.url}/#token={server.bootstrap_token}",
                          soft_wrap=True, highlight=False)
        else:
            console.print("get a token with: neurolace serve --token-for NAME", soft_wrap=True)

    serve_forever(host=args.host, port=args.port, data_dir=args.data_dir, sessions=[session],
                  start_sessions=not args.no_start, summary=summary, on_ready=ready, site_dir=site)
    return 0
