"""neurolace benchmarks: `make bench` (or `python -m benchmarks [NAME ...] [--quick]`).

Each ``bench_*.py`` module exposes ``run(quick: bool) -> dict``; it prints its
own table (rich) and returns a JSON-serialisable result that includes the
baseline it was compared with in the same process. Results are written to
``bench-results/<name>.json``. Benchmarks measure; tests verify.
"""
