"""Run ``neurolace`` in-process and read its exit status and error line, for the CLI tests.

``main`` returns the exit status: bad option values are argparse usage errors (the usage, then
one ``error:`` line); errors found by a command are that one line alone. :func:`error_line`
reads both the same way, so a test states the status and the message, not the mechanism.
"""

from __future__ import annotations

import re

from neurolace.cli.main import main


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``neurolace ARGV``, run in this process."""
    code = main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(stderr: str, command: str) -> str:
    """The one ``neurolace COMMAND [ACTION]: error: ...`` line of ``stderr``; fail if there is none or more.

    Lines before it may only be argparse's usage text (indented continuation lines included).
    argparse names the action of ``codec`` and ``link`` (``neurolace codec encode: error:``),
    errors raised by the command do not (``neurolace codec: error:``).
    """
    lines = stderr.strip().splitlines()
    pattern = re.compile(rf"neurolace {re.escape(command)}( [a-z]+)?: error: ")
    errors = [line for line in lines if pattern.match(line)]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    usage = lines[:-1]
    assert not usage or (usage[0].startswith("usage: ") and all(line.startswith(" ") for line in usage[1:])), stderr
    return errors[0]
