"""Helpers shared by the benchmarks: data paths, timing, tables, JSON output."""

from __future__ import annotations

import functools
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
    console.print(f"machine: {machine_line()}")


# The SIMD extensions that decide how fast numpy and numba kernels run here; the
# aims are judged on a 2-core AVX2 machine without AVX-512, so a figure measured
# with AVX-512 must say so.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni")

# Environment that makes this process behave like the AVX2-only machine kind: numba
# compiles for Haswell with Haswell's own features (NUMBA_CPU_NAME alone keeps the host's
# feature list, AVX-512 included: kernels built so still used zmm registers, which an
# earlier version of this setting missed), and numpy's dispatcher leaves out every AVX-512
# target it has (X86_V4 alone left AVX512_ICL kernels in use on numpy 2.4; names a numpy
# build lacks only draw a warning).
AVX2_EMULATION_ENV = {
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    """CPU model name and the SIMD_FLAGS it has, from /proc/cpuinfo (Linux; elsewhere, what platform says)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first core speaks for all
    except OSError:
        pass
    present = set(fields.get("flags", "").split())
    model = fields.get("model name") or platform.processor() or platform.machine()
    return model, [flag for flag in SIMD_FLAGS if flag in present]


@functools.cache  # the environment it reads is fixed for the life of the process
def machine_info() -> dict:
    """The machine a figure was measured on: CPU model, cores, SIMD in hardware and in use."""
    model, flags = _cpu_model_and_flags()
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "cpu_simd": flags,
        "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME", "host"),
        "numba_cpu_features": os.environ.get("NUMBA_CPU_FEATURES", "host"),
        "numpy_disabled_cpu_features": os.environ.get("NPY_DISABLE_CPU_FEATURES", ""),
    }
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # numpy >= 2

        info["numpy_simd_in_use"] = sorted(name for name, on in __cpu_features__.items() if on)
    except ImportError:  # older numpy keeps it elsewhere; the hardware flags above still say enough
        pass
    return info


def machine_line() -> str:
    """One line for beside a table: model, cores, SIMD, and whether AVX2 emulation is on."""
    info = machine_info()
    numba_avx512 = info["numba_cpu_name"] == "host" or info["numba_cpu_features"] == "host"
    disabled = info["numpy_disabled_cpu_features"].split()
    numpy_avx512 = not {"X86_V4", "AVX512_ICL"} <= set(disabled)
    avx512_in_use = "avx512f" in info["cpu_simd"] and (numba_avx512 or numpy_avx512)
    emulation = "AVX-512 in use" if avx512_in_use else "AVX2 code paths (AVX-512 off or absent)"
    return (
        f"{info['cpu_model']}, {info['cpu_count']} cores, SIMD {' '.join(info['cpu_simd']) or 'unknown'}; "
        f"numba target {info['numba_cpu_name']}; {emulation}"
    )


def write_result(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), "unix_time": time.time(), **result}
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
