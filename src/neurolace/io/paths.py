"""Checks of input paths: a reader opens only a regular file, and says what else it was given.

A directory, a FIFO or a device given where a recording is expected would otherwise fail with an
``IsADirectoryError`` traceback or, for a FIFO, block forever in ``read()`` waiting for a writer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from neurolace.core.errors import InvalidInputError

__all__ = ["check_input_file"]


def check_input_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` if it names an existing regular file.

    Parameters
    ----------
    path : str or path-like
        The file to read (symbolic links are followed).
    what : str
        What the file should be, for messages, e.g. ``"WAV file"``.

    Raises
    ------
    FileNotFoundError
        Nothing exists at ``path``.
    IsADirectoryError
        ``path`` is a directory.
    InvalidInputError
        ``path`` is a FIFO, socket or device: reading it could block or never end.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a directory, expected a {what}")
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
        raise InvalidInputError(f"{path} is a {kind}, expected a regular {what} (neurolace reads regular files only)")
    return path
