"""``neurolace consent``: record a participant's consent or its withdrawal, and show what is on record.

Records go to the site's ``consent.json`` (never rewritten: each change is a new record) and are
audited in the site's ``audit.log``. A withdrawal takes effect at once, including in a running
dashboard (it re-reads the records at its next check).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from neurolace.privacy.consent import PURPOSES

__all__ = ["register"]

DESCRIPTION = f"""\
Consent per participant and purpose ({', '.join(PURPOSES)}).
No record means not allowed. Every grant and withdrawal keeps who recorded it (--by) and when,
and is written to the site's audit log. The site directory is --site, else $NEUROLACE_SITE_DIR,
else ./out/site; it must exist.

examples:
  neurolace consent grant P001 clinician_view --by dr_lee --note "signed form v3"
  neurolace consent withdraw P001 research_sharing --by dr_lee --note "phone call"
  neurolace consent show P001 --json
"""


def _site_option(parser) -> None:
    parser.add_argument("--site", type=Path, metavar="DIR",
                        help="the site directory (default: $NEUROLACE_SITE_DIR, else ./out/site)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("consent", help="record, withdraw and show participants' consent",
                                   description=DESCRIPTION)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    for verb, text in (("grant", "record that the participant consents"),
                       ("withdraw", "record that the participant withdraws consent")):
        change = actions.add_parser(verb, help=f"{text} to a purpose", description=DESCRIPTION)
        change.add_argument("participant", metavar="PID", help="participant id")
        change.add_argument("purpose", metavar="PURPOSE", choices=PURPOSES,
                            help=f"one of {', '.join(PURPOSES)}")
        change.add_argument("--by", required=True, metavar="NAME", help="who records it (your name)")
        change.add_argument("--note", default="",
                            help="free text kept with the record (e.g. the form's version)")
        _site_option(change)
        change.set_defaults(handler=change_command, granted=verb == "grant")
    show = actions.add_parser("show", help="the participant's consent now, and its history",
                              description=DESCRIPTION)
    show.add_argument("participant", metavar="PID", help="participant id")
    show.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _site_option(show)
    show.set_defaults(handler=show_command)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _site(args) -> Path:
    from neurolace.core.errors import InvalidInputError
    from neurolace.privacy.site import SITE_DIR_ENV, resolve_site_dir

    site = resolve_site_dir(args.site)
    if not site.is_dir():
        raise InvalidInputError(
            f"site directory {site} does not exist (give --site DIR or set {SITE_DIR_ENV})"
        )
    return site


def change_command(args) -> int:
    from neurolace.privacy.audit import AuditLog
    from neurolace.privacy.consent import ConsentRegistry

    site = _site(args)
    with AuditLog.for_site(site) as audit:
        registry = ConsentRegistry.for_site(site, audit=audit)
        change = registry.grant if args.granted else registry.withdraw
        record = change(args.participant, args.purpose, recorded_by=args.by, note=args.note)
    verb = "granted" if record.granted else "withdrawn"
    print(f"{record.pid}: {record.purpose} {verb} (recorded by {record.recorded_by})")
    return 0


def show_command(args) -> int:
    from neurolace.privacy.consent import ConsentRegistry

    registry = ConsentRegistry.for_site(_site(args))
    current = registry.current(args.participant)
    history = registry.history(args.participant)
    if args.json:
        print(json.dumps({"participant": args.participant, "allowed": current,
                          "history": [record.to_dict() for record in history]}))
        return 0
    print(f"participant {args.participant}")
    for purpose, allowed in current.items():
        print(f"  {purpose:<18} {'allowed' if allowed else 'not allowed'}")
    print("history:" if history else "history: no records")
    for record in history:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.time_ns / 1e9))
        verb = "grant   " if record.granted else "withdraw"
        note = f"  ({record.note})" if record.note else ""
        print(f"  {when}  {verb} {record.purpose:<18} by {record.recorded_by}{note}")
    return 0
