"""Entry point of the ``neurolace`` command.

Each subcommand lives in its own module under ``neurolace.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler``. Errors
that users cause (:class:`~neurolace.core.errors.NeurolaceError`, missing
files) become one line on stderr and exit status 2; ``--version`` and
``--help`` work on every subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from neurolace import __version__
from neurolace.core.errors import NeurolaceError

__all__ = ["build_parser", "main"]

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMAND_MODULES = (
    "neurolace.cli.demo",
    "neurolace.cli.simulate",
    "neurolace.cli.detect",
    "neurolace.cli.codec",
    "neurolace.cli.link",
    "neurolace.cli.run",
    "neurolace.cli.bench",
    "neurolace.cli.serve",
    "neurolace.cli.report",
)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that adds ``--version`` to every subcommand it creates."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"neurolace {__version__}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neurolace",
        description=(
            "neurolace: software for an intracortical brain-computer interface, from the implant's\n"
            "signal chain to the decoded cursor. Run 'neurolace demo' for a simulated session,\n"
            "'neurolace COMMAND --help' for any command."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except (NeurolaceError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"neurolace {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"neurolace {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
