"""Crash-safe output files: check the target, write to a temporary file, then rename.

Every writer in neurolace goes through :func:`atomic_output`, so an error or a
kill half-way leaves either the previous file or nothing, never half a file.
:func:`check_output_path` says before any work whether a target can be written
(and, with ``overwrite=False``, whether it already exists); errors always name
the target, never the temporary ``.part`` file beside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from neurolace.core.errors import InvalidInputError

__all__ = ["OutputExistsError", "atomic_output", "check_output_path"]


class OutputExistsError(InvalidInputError):
    """The output file exists and the caller asked not to replace it."""


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path with none)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing if str(existing) else Path(".")


def check_output_path(path: str | os.PathLike, *, name: str = "output", overwrite: bool = True) -> Path:
    """Check that ``path`` can be written as a file, before any work is spent on it.

    Parameters
    ----------
    path : str or path-like
        The file to write. Missing parent folders are fine (:func:`atomic_output` creates them).
    name : str
        What to call the path in messages, e.g. ``"--out"``.
    overwrite : bool
        If false, an existing file is refused with :class:`OutputExistsError`.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    InvalidInputError
        ``path`` is a directory, one of its parents is a file, or the folder that would
        hold it is not writable.
    """
    target = Path(path)
    if not str(path) or target.name in ("", ".", ".."):
        raise InvalidInputError(f"{name} must name a file, got {str(path)!r}")
    if target.is_dir():
        raise InvalidInputError(f"cannot write {name} {str(path)!r}: it is a directory")
    parent = _first_existing(target.parent if str(target.parent) else Path("."))
    if not parent.is_dir():
        raise InvalidInputError(f"cannot write {name} {str(path)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"cannot write {name} {str(path)!r}: directory {str(parent)!r} is not writable")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise OutputExistsError(f"{name} {str(path)!r} already exists; refusing to overwrite it")
    return target


def _name_the_target(exc: BaseException, temporary: Path, target: Path) -> None:
    """Make ``exc`` name ``target`` where it named the temporary file (messages are for users)."""
    replacements = ((str(temporary), str(target)), (temporary.name, target.name))

    def fix(text):
        if not isinstance(text, str):
            return text
        for old, new in replacements:
            text = text.replace(old, new)
        return text

    if isinstance(exc, OSError):
        # str() of an OSError with an errno is built from strerror and the file names. Assign only
        # the attributes that are set: an OSError given a file name prints "[Errno None] None".
        for attribute in ("strerror", "filename", "filename2"):
            if getattr(exc, attribute) is not None:
                setattr(exc, attribute, fix(getattr(exc, attribute)))
    exc.args = tuple(fix(argument) for argument in exc.args)


def _publish(temporary: Path, target: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # atomic, and fails if target appeared meanwhile
    except FileExistsError:
        raise OutputExistsError(f"output {str(target)!r} appeared while it was written; refusing to overwrite it")
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: check, then rename (a small race remains)
        if target.exists():
            raise OutputExistsError(f"output {str(target)!r} appeared while it was written; refusing to overwrite it")
        os.replace(temporary, target)
        return
    temporary.unlink()


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, *, suffix: str | None = None, overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary file lives in the same directory (so the rename is atomic on
    POSIX) and keeps the target's suffix (so libraries that look at the
    extension, like pynwb, are happy). On any exception it is removed, and the
    exception's message names ``path``, not the temporary file.

    Parameters
    ----------
    path : str or path-like
        The file to write; missing parent folders are created.
    suffix : str, optional
        Suffix of the temporary file (default: the target's).
    overwrite : bool
        If false, an existing ``path`` is refused before writing, and the result is
        published with a hard link that fails if ``path`` appeared meanwhile.

    Raises
    ------
    OutputExistsError
        ``overwrite`` is false and ``path`` exists.
    InvalidInputError
        ``path`` cannot be a file (see :func:`check_output_path`).
    """
    target = check_output_path(path, overwrite=overwrite)
    directory = target.parent if str(target.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=(suffix if suffix is not None else target.suffix) + ".part",
            dir=directory,
        )
    except OSError as exc:  # e.g. the disk is full: say which output could not be started
        exc.filename = str(target)
        raise
    os.close(handle)
    temporary_path = Path(temporary)
    # mkstemp creates the file private (0600); give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary_path, 0o666 & ~umask)
    try:
        yield temporary_path
        with open(temporary_path, "rb+") as stream:
            os.fsync(stream.fileno())
        _publish(temporary_path, target, overwrite=overwrite)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            temporary_path.unlink()
        _name_the_target(exc, temporary_path, target)
        raise
