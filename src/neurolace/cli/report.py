"""``neurolace report``: an HTML report of a recorded session, with plots."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "run"]

DESCRIPTION = """\
Write one self-contained HTML report of a session: BPS and time to target per block, tuning curves
of ground-truth units, threshold-crossing and ground-truth detection rates, spike-band power, and a
loop-latency histogram. What the NWB file (and the optional --session-json summary) does not carry
is listed in the report as "not recorded in this file".

The closed-loop block scores are not in the NWB file yet: pass the summary that
'neurolace demo --json' prints (or a dashboard export, GET /api/sessions/<id>/export).

examples:
  neurolace report out/demo/demo.nwb --out report.html
  neurolace demo --json > out/demo/summary.json
  neurolace report out/demo/demo.nwb --session-json out/demo/summary.json --out report.html
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="HTML report of a session (NWB) with plots",
                                   description=DESCRIPTION)
    parser.add_argument("session", help="session NWB file (neurolace simulate / demo output)")
    parser.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    parser.add_argument("--session-json", help="JSON session summary: neurolace demo --json, or a dashboard export")
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from neurolace.web.report import build_report, load_session_summary

    summary = load_session_summary(args.session_json) if args.session_json else None
    console = Console(stderr=True)
    with console.status(f"reading {args.session} and drawing the report", spinner="dots"):
        sections = build_report(args.session, args.out, session_summary=summary)
    missing = [s.title for s in sections if not s.recorded]
    if args.json:
        sys.stdout.write(json.dumps({"out": str(args.out), "sections": [s.title for s in sections],
                                     "not_recorded": missing}) + "\n")
    else:
        print(f"wrote {args.out}: {len(sections)} sections"
              + (f"; not recorded in this file: {', '.join(missing)}" if missing else ""))
    return 0
