"""``neurolace report``: an HTML report of a recorded session, with plots."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from neurolace.cli.args import add_force, check_output

__all__ = ["register", "run"]

DESCRIPTION = """\
Write one self-contained HTML report of a session.

From the NWB recording alone: raw traces, a spike raster, threshold-crossing rate and noise per
channel, detection rates (against ground truth for simulated files), spike-band power and the
ground-truth tuning curves. Crossings, features and noise the file does not store are computed by
running the on-implant chain on its raw samples, and those sections say so.

From a closed-loop session run only (--session-json): BPS and time to target per block, and the
loop-latency histogram. An NWB recording holds the implant's signals, not the Webgrid blocks or the
loop's timing, so without a summary these are listed as "not recorded in this file" with what they
need. The summary must come from the run that wrote the NWB file ('neurolace demo' writes one run
id into both); a summary of another run is refused (exit status 2) unless --allow-other-run.
An existing --out file is refused unless --force.

examples:
  neurolace simulate --seconds 2 --electrodes 64 --seed 3 --out small.nwb
  neurolace report small.nwb --out report.html
  neurolace demo --headless --json > summary.json
  neurolace report out/demo/demo.nwb --session-json summary.json --out report.html
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="HTML report of a session (NWB) with plots",
                                   description=DESCRIPTION)
    parser.add_argument("session", help="session NWB file (neurolace simulate / demo output)")
    parser.add_argument(
        "--out", default="report.html", help="HTML file to write (default report.html; refused if it exists)"
    )
    add_force(parser)
    parser.add_argument("--session-json", help="JSON session summary: neurolace demo --json, or a dashboard export")
    parser.add_argument("--allow-other-run", action="store_true",
                        help="draw a --session-json of another run than the NWB file's (warns) instead of refusing")
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from neurolace.web.report import NEEDS_SESSION_RUN, RunCheckWarning, build_report, load_session_summary

    from neurolace.io.paths import check_input_file

    check_input_file(args.session, "session NWB file")
    if args.session_json:
        check_input_file(args.session_json, "--session-json file")
    check_output(args.out, "--out", force=args.force)
    summary = _load_summary(load_session_summary, args.session_json) if args.session_json else None
    console = Console(stderr=True)
    with warnings.catch_warnings(record=True) as caught, \
            console.status(f"reading {args.session} and drawing the report", spinner="dots"):
        warnings.simplefilter("always", RunCheckWarning)
        sections = build_report(args.session, args.out, session_summary=summary,
                                session_name=args.session_json or "the session summary",
                                allow_other_run=args.allow_other_run)
    run_warnings = [str(w.message) for w in caught if issubclass(w.category, RunCheckWarning)]
    for message in run_warnings:
        console.print(f"[bold red]WARNING[/bold red]: {message}", soft_wrap=True, highlight=False)
    missing = [s.title for s in sections if not s.recorded]
    computed = [s.title for s in sections if s.computed]
    if args.json:
        sys.stdout.write(json.dumps({"out": str(args.out), "sections": [s.title for s in sections],
                                     "not_recorded": missing, "needs": {s.title: s.needs for s in sections
                                                                        if not s.recorded},
                                     "computed_from_raw": computed, "warnings": run_warnings}) + "\n")
        return 0
    drawn = len(sections) - len(missing)
    print(f"wrote {args.out}: {drawn} of {len(sections)} sections drawn"
          + (f" ({len(computed)} from crossings, features or noise computed by the on-implant chain)"
             if computed else ""))
    by_need: dict[str, list[str]] = {}
    for section in sections:
        if not section.recorded:
            by_need.setdefault(section.needs or "data this file lacks", []).append(section.title)
    for need, titles in by_need.items():
        hint = " (pass --session-json with 'neurolace demo --json' output)" if need == NEEDS_SESSION_RUN else ""
        print(f"  not recorded in this file, needs {need}: {', '.join(titles)}{hint}")
    return 0


def _load_summary(load_session_summary, path: str) -> dict:
    """The --session-json summary; a file that is not text is a clear error, not a traceback."""
    from neurolace.core.errors import InvalidInputError

    try:
        return load_session_summary(path)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"--session-json {path!r} is not a UTF-8 text file (byte {exc.start} cannot be decoded); "
            "expected the JSON that 'neurolace demo --json' prints"
        ) from None
