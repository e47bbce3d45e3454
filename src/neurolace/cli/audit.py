"""``neurolace audit``: check the audit log's chain and signatures, list its entries, print its signed head.

``verify``: every edited, deleted, inserted or reordered entry, bad signature, cut or malformed
line, with its line and seq (exit status 3 when there is any, 0 when the log is intact).
``show``: the entries, filtered by participant or action.
``head``: the signed head of the last checkpoint, to keep off the site (an attacker holding the
signing key can rewrite the whole log; a head kept elsewhere exposes that).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["EXIT_PROBLEMS", "register"]

#: Exit status of ``audit verify`` when the log is not intact.
EXIT_PROBLEMS = 3

DESCRIPTION = """\
The audit log (site/audit.log) records every access, export, consent change, key operation,
login and stimulation command as one JSON line. Each entry carries the hash of the one before,
and a checkpoint signed with Ed25519 (audit_signing.key) follows every 64 entries; the last
checkpoint's signed head is kept in audit.head beside the log.

verify  exit 0 when intact; exit 3 listing every problem (line, seq, kind: edited, deleted,
        inserted, reordered, bad_signature, truncated, malformed, unsigned_tail).
        Entries after the last checkpoint are counted as an unsigned tail (an error only with
        --require-signed-tail). --head FILE compares with a head kept off the site.
show    the entries, oldest first, optionally only one participant's or one action's.
head    the signed head, one JSON line, for safe keeping elsewhere (with audit_signing.pub).

examples:
  neurolace audit verify out/site/audit.log
  neurolace audit show out/site/audit.log --participant P001 --action access_refused
  neurolace audit head out/site/audit.log > offsite/audit-head.json
  neurolace audit verify out/site/audit.log --head offsite/audit-head.json --json
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="verify, show and escrow the audit log", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    verify = actions.add_parser("verify", help="check the chain and signatures; exit 3 on any problem",
                                description=DESCRIPTION)
    verify.add_argument("log", type=Path, metavar="LOG", help="the audit log (site/audit.log)")
    verify.add_argument("--public-key", type=Path, metavar="PUB",
                        help="Ed25519 public key, PEM (default: audit_signing.pub beside the log)")
    verify.add_argument("--head", type=Path, metavar="FILE",
                        help="a head kept off the site ('neurolace audit head' output): the log must hold it")
    verify.add_argument("--require-signed-tail", action="store_true",
                        help="report entries after the last checkpoint as a problem")
    verify.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    verify.set_defaults(handler=verify_command)

    show = actions.add_parser("show", help="list the entries", description=DESCRIPTION)
    show.add_argument("log", type=Path, metavar="LOG", help="the audit log (site/audit.log)")
    show.add_argument("--participant", metavar="P", help="only entries about this participant id")
    show.add_argument("--action", dest="only_action", metavar="A", help="only entries of this action")
    show.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    show.set_defaults(handler=show_command)

    head = actions.add_parser(
        "head", help="print the signed head for off-site escrow", description=DESCRIPTION
    )
    head.add_argument("log", type=Path, metavar="LOG", help="the audit log (site/audit.log)")
    head.add_argument("--public-key", type=Path, metavar="PUB",
                      help="Ed25519 public key that must verify the head "
                           "(default: audit_signing.pub beside the log)")
    head.set_defaults(handler=head_command)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def verify_command(args) -> int:
    from neurolace.privacy.audit import verify_log

    report = verify_log(args.log, public_key_path=args.public_key,
                        require_signed_tail=args.require_signed_tail, expected_head=args.head)
    if args.json:
        print(json.dumps({"log": str(args.log), **report.to_dict()}))
    else:
        for problem in report.problems:
            where = f"line {problem.line}" if problem.line is not None else "head"
            seq = f", seq {problem.seq}" if problem.seq is not None else ""
            print(f"{where}{seq}: {problem.kind}: {problem.message}")
        verdict = "intact" if report.ok else f"NOT intact, {len(report.problems)} problem(s)"
        print(f"{args.log}: {verdict}; {report.n_entries} entries, "
              f"{report.n_checkpoints} signed checkpoints, "
              f"{report.unsigned_tail} entries after the last checkpoint")
    return 0 if report.ok else EXIT_PROBLEMS


def _when(time_ns: int) -> str:
    seconds, remainder = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{remainder // 1_000_000:03d}Z"


def show_command(args) -> int:
    from neurolace.privacy.audit import read_entries

    selected = []
    for line, entry in read_entries(args.log):
        if entry is None:
            if args.participant is None and args.only_action is None:
                selected.append({"line": line, "malformed": True})
            continue
        if args.participant is not None and entry["participant_id"] != args.participant:
            continue
        if args.only_action is not None and entry["action"] != args.only_action:
            continue
        selected.append({"line": line, **entry})
    if args.json:
        print(json.dumps({"log": str(args.log), "entries": selected}))
        return 0
    for entry in selected:
        if entry.get("malformed"):
            print(f"line {entry['line']}: (malformed line)")
            continue
        details = {key: value for key, value in entry["details"].items() if key != "signature"}
        print(f"{_when(entry['time_ns'])}  seq {entry['seq']:>6}  {entry['action']:<16} {entry['actor']:<16} "
              f"{entry['participant_id'] or '-':<12} {json.dumps(details, sort_keys=True)}")
    return 0


def head_command(args) -> int:
    from neurolace.privacy.audit import verify_head

    print(json.dumps(verify_head(args.log, public_key_path=args.public_key), sort_keys=True))
    return 0
