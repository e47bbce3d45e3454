"""Entry point of the ``neurolace`` command.

Each subcommand lives in its own module under ``neurolace.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler``. Errors
that users cause (:class:`~neurolace.core.errors.NeurolaceError`, and the
operating system's refusals: a missing file, a full disk, a read-only folder)
become one line on stderr and exit status 2; bad option values are argparse
usage errors (exit status 2, checked by the types of :mod:`neurolace.cli.args`);
``--version`` and ``--help`` work on every subcommand.

When the reader of stdout goes away (``neurolace detect --json | head -c 300``),
the command stops quietly with exit status 1 and no traceback, as the Python
documentation recommends (``signal`` module, "Note on SIGPIPE"): stdout is
pointed at ``os.devnull`` so the interpreter's last flush cannot fail again.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    "neurolace.cli.stim",
    "neurolace.cli.surgery",
    "neurolace.cli.run",
    "neurolace.cli.bench",
    "neurolace.cli.serve",
    "neurolace.cli.report",
    "neurolace.cli.audit",
    "neurolace.cli.consent",
    "neurolace.cli.vault",
    "neurolace.cli.export",
    "neurolace.cli.batch",
)

EXIT_USAGE = 2
#: Exit status when stdout's reader closed the pipe (the Python documentation's choice).
EXIT_STDOUT_CLOSED = 1


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
    """Run ``neurolace ARGV`` and return its exit status (it never raises ``SystemExit``).

    ``--help`` and ``--version`` return 0 once printed; a bad option value returns 2 after
    argparse has printed the usage and one ``error:`` line.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_info:  # argparse has printed help, the version or a usage error
        return _exit_status(exit_info.code)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError as exc:
        if not _stdout_reader_gone():
            print(f"neurolace {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        _silence_stdout()
        return EXIT_STDOUT_CLOSED
    except (NeurolaceError, OSError) as exc:
        print(f"neurolace {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"neurolace {args.command}: interrupted", file=sys.stderr)
        return 130


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _stdout_fd() -> int | None:
    try:
        return sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness, or closed
        return None


def _stdout_reader_gone() -> bool:
    """True if stdout is a pipe or socket whose reader has closed it.

    A broken pipe elsewhere (a socket to a bus) is an error to report, not a
    reason to exit quietly, so the write end of stdout is polled: POSIX sets
    POLLERR on it once the last reader has gone.
    """
    fd = _stdout_fd()
    if fd is None:
        return False
    try:
        import select

        poller = select.poll()
    except (ImportError, AttributeError):  # no poll() on this platform: trust the exception
        return True
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _silence_stdout() -> None:
    fd = _stdout_fd()
    if fd is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
