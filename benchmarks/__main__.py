"""Run the benchmarks: ``python -m benchmarks [NAME ...] [--quick] [--avx2]``.

Examples: ``python -m benchmarks chain --quick`` (one benchmark, small sizes);
``python -m benchmarks codec --avx2`` (numba and numpy limited to AVX2, as on the
2-core AMD EPYC machine the aims are judged on). Each benchmark prints its table
and the machine it ran on, and writes bench-results/NAME.json.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks._common import AVX2_EMULATION_ENV, console, write_result


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available())})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--avx2",
        action="store_true",
        help="re-run with numba compiling for Haswell and numpy's AVX-512 paths off (the users' machine kind)",
    )
    args = parser.parse_args(argv)
    if args.avx2 and any(os.environ.get(k) != v for k, v in AVX2_EMULATION_ENV.items()):
        # numpy reads NPY_DISABLE_CPU_FEATURES once, at import: a fresh interpreter is the only way.
        forwarded = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--avx2"]
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *forwarded], {**os.environ, **AVX2_EMULATION_ENV})
    names = args.names or available()
    unknown = set(names) - set(available())
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {available()}")
    elapsed_s: dict[str, float] = {}
    for name in names:
        console.rule(f"benchmark: {name}")
        start = time.perf_counter()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        result = module.run(quick=args.quick)
        elapsed_s[name] = time.perf_counter() - start
        path = write_result(name, result)
        console.print(f"wrote {path} ({elapsed_s[name] / 60:.1f} min)")
    if len(elapsed_s) > 1:  # what `make bench` costs, benchmark by benchmark (the README quotes the total)
        console.rule("wall time")
        for name, seconds in elapsed_s.items():
            console.print(f"{name:>20}  {seconds / 60:6.1f} min")
        console.print(f"{'total':>20}  {sum(elapsed_s.values()) / 60:6.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
