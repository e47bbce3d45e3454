"""``neurolace vault``: create a site's vault, add and shred participants, list and decrypt entries.

A thin layer over :class:`neurolace.privacy.vault.Vault`; every key operation and every
decryption to a file is written to the site's audit log.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from neurolace.cli.args import Number, add_force, check_output

__all__ = ["register"]

SCRYPT_N = Number(int, minimum=2, maximum=1 << 20)

DESCRIPTION = """\
The site's encrypted vault: recordings, NWB exports and scores stored as chunked AEAD streams
under a per-participant data key, itself wrapped by the site key (scrypt from the passphrase).

The passphrase is never an argument: it comes from --passphrase-file FILE, else the environment
variable NEUROLACE_SITE_PASSPHRASE, else the OS keyring (service "neurolace", user the site's
absolute path; pip install 'neurolace[keyring]'); `init` asks twice when run in a terminal.
The site directory is --site, else $NEUROLACE_SITE_DIR, else ./out/site.

Shredding a participant destroys their data key: their files stay on disk and can never be
read again. `cat` writes clear data to a file only when asked (--out), mode 0600.

examples:
  neurolace vault init --site /srv/site
  neurolace vault add-participant P001
  neurolace vault list P001 --json
  neurolace vault cat P001 run.nlrec --out /secure/run.nlrec
  neurolace vault shred P001 --by dr_lee --yes
"""


def _common(parser, *, json_output: bool = False) -> None:
    parser.add_argument("--site", type=Path, metavar="DIR",
                        help="the site directory (default: $NEUROLACE_SITE_DIR, else ./out/site)")
    parser.add_argument("--passphrase-file", type=Path, metavar="FILE",
                        help="read the site passphrase from FILE (its first line)")
    parser.add_argument("--by", metavar="NAME",
                        help="who does it, for the audit log (default: your user name)")
    if json_output:
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def register(subparsers) -> None:
    parser = subparsers.add_parser("vault", help="the site's encrypted vault (keys, participants, entries)",
                                   description=DESCRIPTION)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    init = actions.add_parser("init", help="create the site's vault", description=DESCRIPTION)
    init.add_argument("--scrypt-n", type=SCRYPT_N, default=2**15,
                      help=SCRYPT_N.help("scrypt cost, a power of two (default 32768)"))
    init.add_argument("--keyring", action="store_true", help="also keep the passphrase in the OS keyring")
    _common(init, json_output=True)
    init.set_defaults(handler=init_command)
    add = actions.add_parser("add-participant", help="give a participant a data key", description=DESCRIPTION)
    add.add_argument("participant", metavar="PID", help="participant id (letters, digits, '_', '-')")
    _common(add, json_output=True)
    add.set_defaults(handler=add_command)
    listing = actions.add_parser("list", help="participants, or one participant's entries",
                                 description=DESCRIPTION)
    listing.add_argument("participant", metavar="PID", nargs="?", help="list this participant's entries")
    _common(listing, json_output=True)
    listing.set_defaults(handler=list_command)
    shred = actions.add_parser("shred", help="destroy a participant's data key (irreversible)",
                               description=DESCRIPTION)
    shred.add_argument("participant", metavar="PID", help="participant id")
    shred.add_argument("--yes", action="store_true", help="confirm: their files can never be read again")
    _common(shred, json_output=True)
    shred.set_defaults(handler=shred_command)
    cat = actions.add_parser("cat", help="decrypt an entry to a file", description=DESCRIPTION)
    cat.add_argument("participant", metavar="PID", help="participant id")
    cat.add_argument("name", metavar="NAME", help="entry name (see `vault list PID`)")
    cat.add_argument("--out", required=True, metavar="FILE", help="the clear file to write (mode 0600)")
    cat.add_argument("--recover", action="store_true",
                     help="write the intact part of a damaged or unfinished entry instead of refusing")
    add_force(cat)
    _common(cat)
    cat.set_defaults(handler=cat_command)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _site(args) -> Path:
    from neurolace.privacy.site import resolve_site_dir

    return resolve_site_dir(args.site)


def _passphrase(args) -> str | None:
    from neurolace.core.errors import InvalidInputError

    if args.passphrase_file is None:
        return None
    try:
        lines = args.passphrase_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read --passphrase-file {args.passphrase_file}: {exc}") from None
    if not lines or not lines[0]:
        raise InvalidInputError(f"--passphrase-file {args.passphrase_file} is empty")
    return lines[0]


def _audit(site: Path):
    """The site's audit log's ``append``, opened at its first use (so a refused command makes no log)."""
    from neurolace.privacy.audit import AuditLog

    opened = []

    def append(action, **fields):
        if not opened:
            opened.append(AuditLog.for_site(site))
        return opened[0].append(action, **fields)

    return append


def _open(args):
    from neurolace.privacy.vault import Vault

    site = _site(args)
    return Vault.open(site, _passphrase(args), audit=_audit(site), actor=args.by)


def _print(args, document: dict, text: str) -> None:
    print(json.dumps(document) if getattr(args, "json", False) else text)


def _ask_new_passphrase(site: Path) -> str | None:
    """In a terminal: the new passphrase, typed twice; else None (the vault says where to put one)."""
    import getpass

    from neurolace.core.errors import InvalidInputError
    from neurolace.privacy.site import PASSPHRASE_ENV

    if os.environ.get(PASSPHRASE_ENV) or not sys.stdin.isatty():
        return None
    first = getpass.getpass(f"new passphrase for site {site}: ")
    if getpass.getpass("the same passphrase again: ") != first:
        raise InvalidInputError("the two passphrases differ; nothing was created")
    if not first:
        raise InvalidInputError("the passphrase is empty; nothing was created")
    return first


def init_command(args) -> int:
    from neurolace.privacy.vault import Vault, resolve_passphrase, keyring_username

    site = _site(args)
    passphrase = _passphrase(args) or _ask_new_passphrase(site)
    if args.keyring:
        import keyring

        passphrase = resolve_passphrase(site, passphrase)
    vault = Vault.create(site, passphrase, scrypt_n=args.scrypt_n, audit=_audit(site), actor=args.by)
    if args.keyring:
        keyring.set_password("neurolace", keyring_username(site), passphrase)
    _print(args, {"site": str(vault.site_dir), "created": True, "keyring": bool(args.keyring)},
           f"created the vault of site {vault.site_dir}"
           + (" (passphrase kept in the keyring)" if args.keyring else ""))
    return 0


def add_command(args) -> int:
    vault = _open(args)
    vault.add_participant(args.participant, actor=args.by)
    _print(args, {"site": str(vault.site_dir), "participant": args.participant, "added": True},
           f"participant {args.participant} has a data key in site {vault.site_dir}")
    return 0


def list_command(args) -> int:
    vault = _open(args)
    if args.participant is None:
        document = {"site": str(vault.site_dir), "participants": vault.participants(),
                    "shredded": vault.shredded()}
        text = "\n".join(document["participants"]) or "(no participants)"
        if document["shredded"]:
            text += "\nshredded: " + ", ".join(document["shredded"])
        _print(args, document, text)
        return 0
    entries = vault.list(args.participant)
    rows = [{"name": e.name, "kind": e.kind, "size_bytes": e.size_bytes, "created_ns": e.created_ns,
             "complete": e.complete, "problem": e.problem} for e in entries]
    text = "\n".join(
        f"{row['name']:<40} {row['kind']:<10} {row['size_bytes']:>12} B"
        + ("" if row["complete"] else "  (unfinished)")
        + (f"  PROBLEM: {row['problem']}" if row["problem"] else "")
        for row in rows
    ) or f"(no entries for {args.participant})"
    _print(args, {"site": str(vault.site_dir), "participant": args.participant, "entries": rows}, text)
    return 0


def shred_command(args) -> int:
    from neurolace.core.errors import InvalidInputError

    if not args.yes:
        raise InvalidInputError(
            f"shredding {args.participant} destroys their data key for good; add --yes to confirm"
        )
    vault = _open(args)
    from neurolace.privacy.vault import default_actor

    vault.shred(args.participant, actor=args.by or default_actor())
    _print(args, {"site": str(vault.site_dir), "participant": args.participant, "shredded": True},
           f"participant {args.participant}'s data key is destroyed; their files can no longer be read")
    return 0


def default_actor() -> str:
    from neurolace.privacy.vault import default_actor as default

    return default()


def cat_command(args) -> int:
    from neurolace.io.atomic import atomic_output
    from neurolace.privacy.vault import default_actor

    check_output(args.out, "--out", force=args.force)
    vault = _open(args)
    with vault.reader(args.participant, args.name, strict=not args.recover) as reader:
        with atomic_output(args.out, overwrite=True) as temporary:
            os.chmod(temporary, 0o600)  # before a clear byte is in it
            with open(temporary, "wb") as stream:
                for chunk in reader:
                    stream.write(chunk)
        problem = reader.problem
    vault.audit("export", actor=args.by or default_actor(), participant_id=args.participant, name=args.name,
                out=str(Path(args.out).resolve()), recovered=bool(args.recover), problem=problem)
    message = f"wrote {args.participant}/{args.name} to {args.out}"
    if problem:
        message += f" (intact part only: {problem})"
    print(message, file=sys.stderr if problem else sys.stdout)
    return 0
