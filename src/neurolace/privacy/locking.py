"""Locks shared by threads and processes, and the stamp that tells when a file was replaced.

The audit log and the consent records are files that several processes touch at once
(the dashboard server, the CLI, a recording run). Each change happens under one
exclusive :func:`fcntl.flock` lock on a file, held together with a
:class:`threading.Lock` (``flock`` locks belong to an open file, so two threads
sharing one handle would not exclude each other). :func:`file_stamp` is the
(inode, size, mtime) triple a reader compares to see, without reading, that another
process has replaced or grown a file since it last looked, and :class:`Listeners` the
callbacks it then tells (an open dashboard session re-checks its access).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from neurolace.privacy.site import SECRET_FILE_MODE

__all__ = ["FileStamp", "Listeners", "file_stamp", "locked"]

#: ``(st_ino, st_size, st_mtime_ns)`` of a file, or None when it does not exist.
FileStamp = tuple[int, int, int] | None


def file_stamp(path: str | os.PathLike) -> FileStamp:
    """The ``(inode, size, mtime_ns)`` stamp of ``path``, or None when it does not exist."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns)


@contextlib.contextmanager
def locked(lock_path: str | os.PathLike, thread_lock: threading.Lock) -> Iterator[None]:
    """Hold ``thread_lock`` and an exclusive ``flock`` on ``lock_path`` (created 0600) for the block.

    The lock file is never replaced or removed, so every process locks the same inode.
    """
    with thread_lock:
        descriptor = os.open(Path(lock_path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, SECRET_FILE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the flock


class Listeners:
    """Callbacks called with no arguments after a change; thread-safe to add and remove."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: tuple = ()

    def add(self, callback):
        """Call ``callback()`` at every :meth:`notify` from now on; returns a function that stops it."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks = tuple(c for c in self._callbacks if c is not callback)

        return unsubscribe

    def notify(self) -> None:
        """Call every callback, in the order they were added."""
        for callback in self._callbacks:
            callback()
