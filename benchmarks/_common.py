"""Helpers shared by the benchmarks: data paths, timing, tables, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()
RESULTS_DIR = REPO_ROOT / "bench-results"
console = Console()


def shared_data(*parts: str) -> Path:
    """Path in ../shared/data; exit with a clear message when the data are missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        raise SystemExit(f"benchmark data missing: {path} (expected ../shared/data beside the repository)")
    return path


def repeat_timing(function: Callable[[], object], *, repeats: int = 5) -> dict:
    """Run ``function`` ``repeats`` times; return median, min and all wall times in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "all_s": times}


def table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    """Print a rich table."""
    output = Table(title=title)
    for column in columns:
        output.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        output.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(output)


def machine_info() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def write_result(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), "unix_time": time.time(), **result}
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
