"""Argument types of the ``neurolace`` command, declared once for every subcommand.

A :class:`Number` is an argparse ``type=``: it parses the text, refuses NaN and infinity and
checks the documented range before any work starts, so ``--warmup-s nan`` is a usage error
(exit status 2, one ``error:`` line naming the option, the range and the value) instead of a
traceback minutes later. Its :meth:`Number.help` appends the range to the option's ``--help``
line, so the limits users read are the limits the code checks.

:func:`add_force` and :func:`check_output` give every command that writes a file the same rule:
an existing output is refused unless ``--force``, and an output that cannot be written (its
parent is a file, it is a directory, its folder is read-only) is refused before the work.
:func:`physical_memory_bytes` is what the resource caps of ``simulate`` and ``detect`` compare with.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

__all__ = ["Number", "add_force", "check_output", "physical_memory_bytes"]


def _format(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


@dataclass(frozen=True)
class Number:
    """An argparse type: a finite ``int`` or ``float`` inside a documented range.

    Parameters
    ----------
    kind : type
        ``int`` or ``float``. ``int`` accepts decimal integers only (no ``1e3``, no ``2.0``).
    minimum, maximum : float, optional
        Bounds, inclusive unless ``exclusive_minimum``. ``None`` means unbounded on that side;
        NaN and infinity are refused in every case.
    exclusive_minimum : bool
        ``minimum`` itself is refused (``> 0`` rather than ``>= 0``).
    unit : str
        Shown after the range in messages and help ("s", "Hz", "ms").
    """

    kind: type = float
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    unit: str = ""

    @property
    def __name__(self) -> str:  # argparse names the type in some of its own messages
        return "integer" if self.kind is int else "number"

    def range_text(self) -> str:
        """The allowed values in words, e.g. ``"a finite number > 0 and <= 3600 s"``."""
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {_format(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"<= {_format(self.maximum)}")
        noun = "an integer" if self.kind is int else "a finite number"
        text = " ".join([noun, " and ".join(parts)]) if parts else noun
        return f"{text} {self.unit}".rstrip()

    def help(self, text: str) -> str:
        """``text`` followed by the allowed range, for ``add_argument(help=...)``."""
        return f"{text}; {self.range_text()}"

    def __call__(self, text: str) -> int | float:
        try:
            value = int(text, 10) if self.kind is int else float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {self.range_text()}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {self.range_text()}, got {text!r}")
        below = self.minimum is not None and (
            value <= self.minimum if self.exclusive_minimum else value < self.minimum
        )
        above = self.maximum is not None and value > self.maximum
        if below or above:
            raise argparse.ArgumentTypeError(f"must be {self.range_text()}, got {text!r}")
        return value


def physical_memory_bytes() -> float | None:
    """This machine's physical memory in bytes, or None where the platform does not say."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def add_force(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: without it, a command refuses to replace an existing output file."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output file (without it an existing output is refused and left alone)",
    )


def check_output(path: str | os.PathLike, option: str, *, force: bool) -> None:
    """Refuse an output the command could not write, or one that exists without ``--force``.

    Called before the work, so a mistake costs nothing; :func:`neurolace.io.atomic.atomic_output`
    checks again when it writes (the file may appear meanwhile).

    Raises
    ------
    neurolace.core.errors.InvalidInputError
        The output exists and ``force`` is false (the message says to pass ``--force``), it is
        a directory, a parent is a file, or its folder is not writable; the message names
        ``option`` and the path the user gave.
    """
    from neurolace.io.atomic import OutputExistsError, check_output_path

    try:
        check_output_path(path, name=option, overwrite=force)
    except OutputExistsError as exc:
        raise OutputExistsError(f"{exc} (pass --force to replace it)") from None
