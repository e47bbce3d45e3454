"""Batch work on Dask: throughput with 1 and 2 workers beside a single-process loop, overhead, chunked memory.

``python -m benchmarks batch [--quick]``; writes bench-results/batch.json. Measured in one run:

- **throughput** of ``compress`` and ``detect`` over the N1 clips of
  ../shared/data/neuralink-compression/wav (MB/s of WAV input, wall clock, median of repeats):
  the single-process loop calling the same task functions, then ``run_batch`` on a LocalCluster
  of 1 and of 2 workers (cluster started and warmed up before timing; each repeat writes into a
  fresh folder, so nothing is skipped); scaling efficiency = MB/s(2 workers) / (2 x MB/s(1)).
- **scheduler overhead per task**: wall time of ``client.map`` over tiny no-op tasks, per task.
- **chunked path**: one long synthetic recording (10 min of 1024 channels; ``--quick``: 1 min of
  256) generated on the workers chunk by chunk, never stored, through ``detect`` in time chunks of
  two lengths; the peak resident memory of each worker process (``getrusage``) against the int16
  bytes of one chunk with its margins, to show memory follows the chunk, not the recording.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._common import shared_data, table
from neurolace.batch import ChainSettings, open_client, run_batch
from neurolace.batch.tasks import chain_range_task, compress_task

FS_HZ = 19531.0
#: seconds of each generation block of the synthetic recording (random access by block index)
GENERATION_BLOCK_S = 1.0


@dataclass(frozen=True)
class SyntheticSource:
    """An N1-like recording made on demand: any ``[start, stop)`` from its seed, nothing stored.

    Background: a table of uniform noise (one block long, drawn once per process from ``seed``)
    read from a block-dependent offset; spikes: a 0.8 ms negative pulse at seeded times, 20 per
    channel per second. Each 1 s block depends only on (seed, block index), so ranges can be read
    in any order on any worker and overlapping ranges agree.
    """

    name: str
    n_channels: int
    n_samples: int
    seed: int = 0
    fs_hz: float = FS_HZ
    gain_uv: float = 0.195
    splittable: bool = True

    def _block(self, index: int) -> np.ndarray:
        length = round(GENERATION_BLOCK_S * self.fs_hz)
        table = _noise_table(self.seed, length, self.n_channels)
        offset = (index * 7919) % length
        block = np.concatenate([table[offset:], table[:offset]])
        rng = np.random.default_rng((self.seed, index))
        n_spikes = 20 * self.n_channels
        times = rng.integers(0, length - 16, n_spikes)
        channels = rng.integers(0, self.n_channels, n_spikes)
        for lag, value in enumerate((-60, -160, -220, -120, -20, 40, 60, 40, 20, 10)):
            np.add.at(block, (times + lag, channels), value)
        return block

    def read_segment(self, start: int, stop: int):
        from neurolace.core.recording import Recording

        length = round(GENERATION_BLOCK_S * self.fs_hz)
        pieces = []
        for index in range(start // length, (stop - 1) // length + 1):
            block = self._block(index)
            low, high = max(start, index * length) - index * length, min(stop, (index + 1) * length) - index * length
            pieces.append(block[low:high])
        return Recording(np.concatenate(pieces), fs_hz=self.fs_hz, gain_uv=self.gain_uv)


_TABLES: dict = {}


def _noise_table(seed: int, length: int, n_channels: int) -> np.ndarray:
    key = (seed, length, n_channels)
    if key not in _TABLES:
        _TABLES.clear()
        _TABLES[key] = np.random.default_rng(seed).integers(-40, 41, (length, n_channels), dtype=np.int16)
    return _TABLES[key]


def _noop(value: int) -> int:
    return value


def _single_process(operation: str, files: list[Path], out: Path) -> None:
    for path in files:
        if operation == "compress":
            compress_task(str(path), str(out / f"{path.stem}.nlx"))
        else:
            from neurolace.batch import RecordingSource

            source = RecordingSource.open(path)
            chain_range_task(source, ChainSettings(), kind="detect", start=0, stop=source.n_samples, read_start=0,
                             read_stop=source.n_samples, noise_uv=None, output_path=str(out / f"{path.stem}.csv"),
                             whole=True)


def _timed(function, root: Path, repeats: int) -> float:
    times = []
    for repeat in range(repeats):
        out = root / f"run{repeat}"
        out.mkdir()
        start = time.perf_counter()
        function(out)
        times.append(time.perf_counter() - start)
        shutil.rmtree(out)
    return statistics.median(times)


def _throughput(files: list[Path], root: Path, repeats: int) -> list[dict]:
    input_mb = sum(p.stat().st_size for p in files) / 1e6
    rows = []
    for operation in ("compress", "detect"):
        _single_process(operation, files[:2], root)  # numba kernels loaded once, untimed
        single_s = _timed(lambda out: _single_process(operation, files, out), root, repeats)
        row = {"operation": operation, "n_files": len(files), "input_mb": input_mb,
               "single_process_mb_s": input_mb / single_s, "single_process_s": single_s}
        for n_workers in (1, 2):
            with open_client("local", n_workers) as client:
                run_batch(operation, files[: 2 * n_workers], root / "warm", client=client)  # every worker warm
                shutil.rmtree(root / "warm")
                seconds = _timed(lambda out: run_batch(operation, files, out, client=client), root, repeats)
            row[f"workers_{n_workers}_mb_s"] = input_mb / seconds
            row[f"workers_{n_workers}_s"] = seconds
        row["scaling_efficiency"] = row["workers_2_mb_s"] / (2 * row["workers_1_mb_s"])
        row["workers_2_over_single_process"] = row["workers_2_mb_s"] / row["single_process_mb_s"]
        rows.append(row)
    return rows


def _overhead(n_tasks: int, repeats: int) -> dict:
    with open_client("local", 2) as client:
        client.gather(client.map(_noop, range(100), pure=False))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            client.gather(client.map(_noop, range(n_tasks), pure=False))
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"n_tasks": n_tasks, "median_s": median, "per_task_ms": 1e3 * median / n_tasks, "workers": 2}


def _chunked(duration_s: float, n_channels: int, chunk_lengths_s: tuple[float, ...], root: Path) -> list[dict]:
    rows = []
    source = SyntheticSource("synthetic", n_channels, round(duration_s * FS_HZ))
    for chunk_s in chunk_lengths_s:
        with open_client("local", 2) as client:
            out = root / f"chunked-{chunk_s:g}"
            start = time.perf_counter()
            report = run_batch("detect", [source], out, client=client, chunk_s=chunk_s)
            wall_s = time.perf_counter() - start
            peaks = client.run(_peak_rss_bytes)
        import json

        entry = json.loads((out / "manifest.json").read_text())["files"]["synthetic"]
        chunk_bytes = 2 * n_channels * round(chunk_s * FS_HZ)
        rows.append({
            "duration_s": duration_s, "n_channels": n_channels, "chunk_s": chunk_s, "n_chunks": entry["n_chunks"],
            "status": entry["status"], "n_spikes": entry["summary"].get("n_spikes"), "wall_s": wall_s,
            "x_real_time": duration_s / wall_s, "input_mb_s": 2 * n_channels * source.n_samples / 1e6 / wall_s,
            "chunk_int16_mb": chunk_bytes / 1e6, "peak_rss_mb_per_worker": sorted(v / 1e6 for v in peaks.values()),
            "n_failed": report.n_failed,
        })
        shutil.rmtree(out)
    return rows


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(quick: bool = False) -> dict:
    files = sorted(shared_data("neuralink-compression", "wav").glob("*.wav"))
    if not files:
        raise SystemExit("benchmark data missing: no *.wav in ../shared/data/neuralink-compression/wav")
    files = files[:40] if quick else files
    repeats = 1 if quick else 3
    root = Path(tempfile.mkdtemp(prefix="neurolace-bench-batch-"))
    try:
        throughput = _throughput(files, root, repeats)
        overhead = _overhead(200 if quick else 2000, repeats)
        if quick:
            chunked = _chunked(60.0, 256, (5.0, 20.0), root)
        else:
            chunked = _chunked(600.0, 1024, (10.0, 30.0), root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table(
        f"batch throughput, {len(files)} N1 clips ({throughput[0]['input_mb']:.1f} MB), MB/s of WAV input, "
        f"wall clock, median of {repeats}",
        ["operation", "1 process MB/s", "1 worker MB/s", "2 workers MB/s", "scaling eff.", "2 workers / 1 process"],
        [[r["operation"], r["single_process_mb_s"], r["workers_1_mb_s"], r["workers_2_mb_s"],
          r["scaling_efficiency"], r["workers_2_over_single_process"]] for r in throughput],
    )
    table(
        f"scheduler overhead: {overhead['n_tasks']} no-op tasks on 2 workers, median of {repeats}",
        ["tasks", "wall s", "ms per task"],
        [[overhead["n_tasks"], overhead["median_s"], overhead["per_task_ms"]]],
    )
    table(
        "chunked detect on a generated recording (never stored), 2 workers",
        ["recording", "chunk s", "chunks", "wall s", "x real time", "MB/s", "chunk int16 MB", "peak RSS MB / worker"],
        [[f"{r['duration_s'] / 60:g} min x {r['n_channels']} ch", r["chunk_s"], r["n_chunks"], r["wall_s"],
          r["x_real_time"], r["input_mb_s"], r["chunk_int16_mb"],
          ", ".join(f"{v:.0f}" for v in r["peak_rss_mb_per_worker"])] for r in chunked],
    )
    load = os.getloadavg()
    print(f"load average over the run's last 1/5/15 min: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"on {os.cpu_count()} cores (other work on the machine slows every row alike)")
    return {"throughput": throughput, "scheduler_overhead": overhead, "chunked": chunked, "repeats": repeats,
            "quick": quick, "load_average_1_5_15_min": list(load)}
