"""``neurolace report``: an HTML report of a recorded session, with plots."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from neurolace.cli.args import add_force, check_output

__all__ = ["REPORT_PURPOSE", "register", "run"]

#: the consent a report of a vault session needs: a report is a clinical view of the session
REPORT_PURPOSE = "clinician_view"

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
  neurolace report vault:P001/closed-loop.nlrec --out report.html --by dr_lee

A vault session (vault:PID/NAME) is read only with the participant's clinician_view consent
('neurolace consent grant PID clinician_view --by NAME'); the read and the report are written to
the site's audit log, and a refusal exits with status 3 and writes nothing.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="HTML report of a session (NWB) with plots",
                                   description=DESCRIPTION)
    parser.add_argument("session", help="session NWB file (neurolace simulate / demo output), or vault:PID/NAME "
                                        "(a record or NWB in the site's vault: needs the participant's "
                                        f"{REPORT_PURPOSE} consent; audited)")
    parser.add_argument(
        "--out", default="report.html", help="HTML file to write (default report.html; refused if it exists)"
    )
    add_force(parser)
    parser.add_argument("--session-json", help="JSON session summary: neurolace demo --json, or a dashboard export")
    parser.add_argument("--allow-other-run", action="store_true",
                        help="draw a --session-json of another run than the NWB file's (warns) instead of refusing")
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the report")
    from neurolace.cli.vault import _common

    _common(parser)  # --site, --passphrase-file, --by: for a vault:PID/NAME session
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from neurolace.cli.export import VAULT_PREFIX

    if not args.session.startswith(VAULT_PREFIX):
        return _report(args, args.session)
    return _report_from_vault(args)


def _report_from_vault(args: argparse.Namespace) -> int:
    """A vault session: consent first (audited either way), then the entry decrypted into the site's scratch."""
    import tempfile

    from neurolace.cli.consent import _site
    from neurolace.cli.export import EXIT_REFUSED, VAULT_PREFIX, _nwb_source
    from neurolace.cli.vault import _passphrase
    from neurolace.privacy.audit import AuditLog
    from neurolace.privacy.consent import ConsentRegistry
    from neurolace.privacy.errors import PrivacyError
    from neurolace.privacy.site import check_name, check_participant_id
    from neurolace.privacy.vault import Vault, default_actor

    pid, _, name = args.session[len(VAULT_PREFIX):].partition("/")
    pid, name = check_participant_id(pid), check_name(name)
    check_output(args.out, "--out", force=args.force)
    site, actor = _site(args), args.by or default_actor()
    try:
        with AuditLog.for_site(site) as log:
            ConsentRegistry.for_site(site, audit=log).require(pid, REPORT_PURPOSE, actor=actor)
            vault = Vault.open(site, _passphrase(args), audit=log.append, actor=actor)
            with tempfile.TemporaryDirectory(prefix=".report-", dir=site) as scratch:
                source = _nwb_source(args, vault, pid, name, Path(scratch))
                if isinstance(source, bytes):
                    path = Path(scratch) / "session.nwb"
                    path.write_bytes(source)
                    source = path
                status = _report(args, str(source))
            log.append("access", actor=actor, participant_id=pid, purpose=REPORT_PURPOSE, session=args.session,
                       report=str(Path(args.out).resolve()))
            return status
    except PrivacyError as exc:
        print(f"neurolace report: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _report(args: argparse.Namespace, session: str) -> int:
    from rich.console import Console

    from neurolace.io.paths import check_input_file
    from neurolace.web.report import NEEDS_SESSION_RUN, RunCheckWarning, build_report, load_session_summary

    check_input_file(session, "session NWB file")
    if args.session_json:
        check_input_file(args.session_json, "--session-json file")
    check_output(args.out, "--out", force=args.force)
    summary = _load_summary(load_session_summary, args.session_json) if args.session_json else None
    console = Console(stderr=True)
    with warnings.catch_warnings(record=True) as caught, \
            console.status(f"reading {args.session} and drawing the report", spinner="dots"):
        warnings.simplefilter("always", RunCheckWarning)
        sections = build_report(session, args.out, session_summary=summary,
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
