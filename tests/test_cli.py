"""Every subcommand explains itself and reports its version."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neurolace import __version__
from neurolace.cli.main import build_parser, main


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_top_level_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"neurolace {__version__}"


def test_a_usage_error_is_returned_as_status_2_not_raised(capsys):
    assert main(["link", "budget", "--ratio", "nan"]) == 2
    assert "argument --ratio: must be a finite number > 0" in capsys.readouterr().err


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help_and_version(command, capsys):
    assert main([command, "--help"]) == 0
    help_text = capsys.readouterr().out
    assert f"neurolace {command}" in help_text and len(help_text.splitlines()) > 3
    assert main([command, "--version"]) == 0
    assert capsys.readouterr().out.strip() == f"neurolace {__version__}"


def test_console_entry_point_runs():
    completed = subprocess.run([sys.executable, "-m", "neurolace", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0 and __version__ in completed.stdout
