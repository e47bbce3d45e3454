"""Terminal output shared by the subcommands: a console wide enough for the result tables.

rich falls back to 80 columns when stdout is not a terminal (a pipe, a CI log), which
squeezes the tables' columns to ellipses; summaries printed for people use at least
120 columns instead.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["stdout_console"]

MIN_TABLE_WIDTH = 120


def stdout_console() -> Console:
    """A console on stdout at least ``MIN_TABLE_WIDTH`` columns wide."""
    detected = Console()
    return Console(width=max(detected.width, MIN_TABLE_WIDTH))
