"""Run Python scripts in several processes that start their work at the same moment."""

from __future__ import annotations

import subprocess
import sys


def run_together(script: str, argument_lists: list[list[str]], *, timeout_s: float = 120.0) -> None:
    """Start ``python -c script ARGS...`` once per argument list, release them together, wait for all.

    Each script waits for one line on stdin before its work, so the processes are all
    started (imports done) when they begin and really run at the same time. Fails with a
    process's stderr if it exits non-zero.
    """
    workers = [subprocess.Popen([sys.executable, "-c", script, *map(str, arguments)], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE) for arguments in argument_lists]
    for worker in workers:
        worker.stdin.write(b"go\n")
        worker.stdin.flush()
    for worker in workers:
        _, error = worker.communicate(timeout=timeout_s)
        assert worker.returncode == 0, error.decode()
