"""``neurolace export``: a session leaves the site as a de-identified NWB file, with consent, audited.

A thin layer over :func:`neurolace.privacy.deidentify.deidentify_nwb`: it resolves the session
(an NWB file, a recorder file, a vault entry), checks the participant's ``export_off_site``
consent, takes the participant's date offset and pseudonym from their secret in the vault,
writes the file and records the export in the site's audit log.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from neurolace.cli.args import add_force, check_output

__all__ = ["EXIT_REFUSED", "register", "run"]

EXIT_REFUSED = 3
"""Exit status of a privacy refusal: no consent, a withdrawn one, a key missing, an identifier left."""

PURPOSE = "export_off_site"
VAULT_PREFIX = "vault:"

DESCRIPTION = f"""\
Export a session for use off the site as one NWB file.

SESSION is an NWB file, a recorder file (.nlrec, converted to NWB first), or a vault entry
written vault:PID/NAME. The participant (--participant, or the PID of a vault entry) must have
consent for "{PURPOSE}" on record ('neurolace consent grant PID {PURPOSE} --by NAME'); without
it, or after a withdrawal, nothing is written and the command exits with status {EXIT_REFUSED}.

--deidentify (required to leave the site): the subject id becomes a pseudonym, names, places,
free text and device serials are removed, the date of birth becomes an age (90 or older as
'P90Y/'), every date moves by the participant's own offset (the same at every export, kept
in the vault, written nowhere in the file); the output is scanned for each removed identifier
and refused if one is left. The field list and its sources (HIPAA Safe Harbor, DANDI) are in
docs/privacy.md. Without --deidentify the export is refused, unless --identified is given
(the participant's consent still applies, and the export is audited as identified).

The site directory is --site, else $NEUROLACE_SITE_DIR, else ./out/site; the vault's passphrase
comes from --passphrase-file, else $NEUROLACE_SITE_PASSPHRASE, else the OS keyring. Every
export is written to the site's audit log. An existing --out is refused unless --force.

exit status: 0 written; {EXIT_REFUSED} refused for privacy (no consent or withdrawn, the participant
not in the vault or shredded, a wrong passphrase, an identifier or images left in the output);
2 bad input (a missing file, a bad option).

examples:
  neurolace consent grant P001 {PURPOSE} --by dr_lee --note "form v3 signed"
  neurolace export out/demo/demo.nwb --participant P001 --deidentify --out share/P001.nwb --by dr_lee
  neurolace export vault:P001/run.nlrec --deidentify --age P40Y --sex F --out share/run.nwb
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from neurolace.cli.vault import _common

    parser = subparsers.add_parser("export", help="de-identified NWB export of a session (consent, audit)",
                                   description=DESCRIPTION)
    parser.add_argument("session", metavar="SESSION", help="NWB file, recorder file (.nlrec) or vault:PID/NAME")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--deidentify", action="store_true",
                      help="strip and replace identifiers, shift dates (required to export off the site)")
    mode.add_argument("--identified", action="store_true",
                      help="export the identified file as it is (only with the participant's consent; audited)")
    parser.add_argument("--out", required=True, metavar="FILE.nwb", help="the NWB file to write")
    add_force(parser)
    parser.add_argument("--participant", metavar="PID",
                        help="whose session it is (required unless SESSION is vault:PID/NAME)")
    parser.add_argument("--species", help="Subject species when the file has none (e.g. 'Homo sapiens')")
    parser.add_argument("--sex", choices=("M", "F", "O", "U"), help="Subject sex when the file has none")
    parser.add_argument("--age", help="Subject age when the file has none, ISO 8601 (e.g. P40Y)")
    _common(parser, json_output=True)
    parser.set_defaults(handler=run)


def _session(args) -> tuple[str, str | None]:
    """``(participant id, vault entry name or None)`` of the command line."""
    from neurolace.core.errors import InvalidInputError
    from neurolace.privacy.site import check_name, check_participant_id

    if args.session.startswith(VAULT_PREFIX):
        pid, _, name = args.session[len(VAULT_PREFIX):].partition("/")
        check_participant_id(pid)
        check_name(name)
        if args.participant is not None and args.participant != pid:
            raise InvalidInputError(
                f"--participant {args.participant!r} is not the participant of {args.session!r}; give one of them"
            )
        return pid, name
    if args.participant is None:
        raise InvalidInputError("--participant PID is required for a file SESSION (whose consent applies)")
    return check_participant_id(args.participant), None


def _nwb_source(args, vault, pid: str, name: str | None, scratch: Path):
    """The session as NWB: a path or the bytes of one (a record is converted into ``scratch``)."""
    from neurolace.io.paths import check_input_file
    from neurolace.runtime.recorder import RECORD_KIND, record_to_nwb

    if name is not None:
        with vault.reader(pid, name) as reader:
            kind = reader.kind
        if kind == RECORD_KIND:
            converted = scratch / "session.nwb"
            record_to_nwb(vault.ref(pid, name), converted)
            return converted
        return vault.read_bytes(pid, name)
    path = check_input_file(args.session, "SESSION file")
    if path.suffix == ".nlrec":
        converted = scratch / "session.nwb"
        record_to_nwb(path, converted)
        return converted
    return path


def run(args: argparse.Namespace) -> int:
    from neurolace.core.errors import InvalidInputError
    from neurolace.privacy.errors import PrivacyError

    if not (args.deidentify or args.identified):
        raise InvalidInputError(
            "refusing to export off the site without --deidentify (or --identified, for an identified "
            "export the participant consented to)"
        )
    pid, name = _session(args)
    check_output(args.out, "--out", force=args.force)
    try:
        document = _export(args, pid, name)
    except PrivacyError as exc:
        print(f"neurolace export: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        sys.stdout.write(json.dumps(document) + "\n")
    elif args.deidentify:
        print(f"wrote {args.out}: de-identified export of {pid} as {document['pseudonym']} "
              f"({len(document['changes'])} field(s) changed, {document['strings_checked']} string(s) "
              "checked for identifiers)")
        for note in document["notes"]:
            print(f"  note: {note}")
    else:
        print(f"wrote {args.out}: IDENTIFIED export of {pid}")
    return 0


def _export(args, pid: str, name: str | None) -> dict:
    from neurolace.cli.consent import _site
    from neurolace.privacy.audit import AuditLog
    from neurolace.privacy.consent import ConsentRegistry
    from neurolace.privacy.vault import default_actor

    site = _site(args)
    actor = args.by or default_actor()
    with AuditLog.for_site(site) as log:
        # audited as "access" or "access_refused"; a refusal raises before anything is read or written
        ConsentRegistry.for_site(site, audit=log).require(pid, PURPOSE, actor=actor)
        return _export_consented(args, pid, name, site, actor, log.append)


def _export_consented(args, pid: str, name: str | None, site: Path, actor: str, audit) -> dict:
    from neurolace.cli.vault import _passphrase
    from neurolace.io.atomic import atomic_output
    from neurolace.privacy.deidentify import (
        deidentify_nwb,
        derive_date_offset_days,
        derive_pseudonym,
        participant_secret,
    )
    from neurolace.privacy.errors import PrivacyError
    from neurolace.privacy.vault import Vault

    needs_vault = args.deidentify or name is not None
    vault = Vault.open(site, _passphrase(args), audit=audit, actor=actor) if needs_vault else None
    out = Path(args.out)
    details = {"session": args.session, "out": str(out.resolve()), "purpose": PURPOSE}
    with tempfile.TemporaryDirectory(prefix=".export-", dir=site) as scratch:
        source = _nwb_source(args, vault, pid, name, Path(scratch))
        if args.identified:
            with atomic_output(out, overwrite=args.force) as temporary:
                data = source if isinstance(source, bytes) else Path(source).read_bytes()
                temporary.write_bytes(data)
            audit("export", actor=actor, participant_id=pid, deidentified=False, **details)
            return {"out": str(out), "participant": pid, "deidentified": False}
        secret = participant_secret(vault, pid)
        subject = {key: getattr(args, key) for key in ("species", "sex", "age") if getattr(args, key)}
        try:
            report = deidentify_nwb(
                source, out, participant_id=pid, date_offset_days=derive_date_offset_days(secret, pid),
                pseudonym=derive_pseudonym(secret, pid), subject=subject or None, overwrite=args.force,
            )
        except PrivacyError as exc:
            audit("export", actor=actor, participant_id=pid, deidentified=True, refused=str(exc), **details)
            raise
    audit("export", actor=actor, participant_id=pid, deidentified=True, pseudonym=report.pseudonym,
          fields_changed=len(report.changes), **details)
    return {"participant": pid, **report.to_dict()}
