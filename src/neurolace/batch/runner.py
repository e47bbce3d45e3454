"""Run one operation over many recordings on a Dask cluster: plan, submit, verify seams, merge, record.

:func:`run_batch` is the library form of ``neurolace batch``. It expands the inputs, skips every
file the manifest shows done (outputs present, checksums equal), submits one task per file (or,
for ``detect``/``features`` on a long WAV or raw file, one small noise task and one task per time
chunk, see :mod:`neurolace.batch.chunking`), and as tasks finish checks each seam between chunks,
re-runs a chunk whose seam disagrees with a longer margin, merges the parts into the output and
records the file in the manifest. A file that fails (unreadable, malformed, disk full, a worker
killed more often than Dask allows) is recorded with its error and the others go on.

Tasks are submitted with ``retries=`` (an exception in a task is retried that many times), and a
worker process that dies mid-task is restarted by its nanny and the scheduler runs the task
again elsewhere (up to ``distributed.scheduler.allowed-failures`` deaths, default 3).

The default cluster is a :class:`distributed.LocalCluster` of ``n_workers`` processes with one
thread each, listening on 127.0.0.1 with the dashboard off; ``scheduler="tcp://host:port"`` uses
an existing scheduler instead, whose workers must see the input and output paths (a shared file
system).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.batch.chunking import DEFAULT_CHUNK_S, ChainSettings, ChunkPlan, plan_chunks
from neurolace.batch.errors import BatchError
from neurolace.batch.manifest import MANIFEST_NAME, Manifest, input_stat
from neurolace.batch.sources import RecordingSource, expand_inputs
from neurolace.core.checks import check_in, check_int

__all__ = [
    "EXIT_SOME_FAILED",
    "OPERATIONS",
    "BatchReport",
    "RawLayout",
    "open_client",
    "output_paths",
    "run_batch",
]

#: The operations and, for each, the input suffixes a directory or glob selects and the output suffix.
OPERATIONS = {
    "compress": ((".wav",), ".nlx"),
    "decompress": ((".nlx",), ".wav"),
    "evaluate": ((".wav",), ".evaluate.json"),
    "detect": ((".wav", ".nwb", ".raw", ".bin", ".dat"), ".spikes.csv"),
    "features": ((".wav", ".nwb", ".raw", ".bin", ".dat"), ".features.npy"),
}
#: Exit status of ``neurolace batch`` when at least one file failed (the others are done).
EXIT_SOME_FAILED = 3
#: Times a chunk is re-run with a four times longer margin when its seam disagrees.
MAX_SEAM_RETRIES = 8
PARTS_DIRECTORY = ".parts"


@dataclass(frozen=True)
class RawLayout:
    """How to read headerless raw files (and the gain of any input): ``neurolace detect``'s options."""

    fs_hz: float | None = None
    n_channels: int | None = None
    dtype: str = "int16"
    gain_uv: float | None = None


@dataclass
class BatchReport:
    """What a run did.

    Attributes
    ----------
    manifest_path : Path
    n_files, n_ok, n_failed, n_skipped : int
        ``n_ok`` counts files done in this run; ``n_skipped`` those a previous run had done.
    failed : dict
        Input path -> error message.
    input_bytes : int
        Bytes of the inputs processed in this run.
    wall_seconds : float
        From the first submission to the last result.
    """

    manifest_path: Path
    n_files: int = 0
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    input_bytes: int = 0
    wall_seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        return EXIT_SOME_FAILED if self.n_failed else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest_path),
            "n_files": self.n_files,
            "n_ok": self.n_ok,
            "n_failed": self.n_failed,
            "n_skipped": self.n_skipped,
            "failed": self.failed,
            "input_bytes": self.input_bytes,
            "wall_seconds": self.wall_seconds,
            "input_mb_s": self.input_bytes / 1e6 / self.wall_seconds if self.wall_seconds > 0 else None,
        }


@contextlib.contextmanager
def open_client(scheduler: str = "local", n_workers: int = 2) -> Iterator[Any]:
    """A :class:`distributed.Client`: a new LocalCluster (``"local"``) or the scheduler at ``tcp://...``."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        n_workers = check_int(n_workers, "n_workers", minimum=1)
        with warnings.catch_warnings():
            # without a dashboard the scheduler still serves /health on 127.0.0.1, port 8787 or,
            # when another cluster holds it, any free one: that is no news for the user
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            cluster = LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                host="127.0.0.1", silence_logs=logging.CRITICAL,
            )
        with cluster, Client(cluster) as client:
            yield client
        return
    if not scheduler.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        raise BatchError(f"scheduler must be 'local' or an address such as tcp://HOST:8786, got {scheduler!r}")
    with Client(scheduler, timeout="20s") as client:
        yield client


def output_paths(operation: str, files: list[Path], out_dir: Path) -> list[Path]:
    """The output of each input: ``OUT/<name without suffix><operation's suffix>``.

    Raises
    ------
    BatchError
        Two inputs would write the same output (same name in two folders).
    """
    suffix = OPERATIONS[operation][1]
    outputs = [out_dir / (path.name[: -len(path.suffix)] + suffix if path.suffix else path.name + suffix)
               for path in files]
    seen: dict[Path, Path] = {}
    for source, output in zip(files, outputs):
        if output in seen:
            raise BatchError(f"{seen[output]} and {source} would both write {output}; run them into different --out folders")
        seen[output] = source
    return outputs


@dataclass
class _FileJob:
    """The tasks of one input file in flight."""

    input_path: Path
    output_path: Path
    stat: dict[str, Any]
    submitted_s: float
    plan: ChunkPlan | None = None
    source: RecordingSource | None = None
    noise: Any = None
    chunks: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> result
    margins: dict[int, int] = field(default_factory=dict)  # index -> margin before used
    redone: int = 0
    n_tasks: int = 0
    failed: bool = False
    task_results: list[dict[str, Any]] = field(default_factory=list)


def run_batch(
    operation: str,
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    client: Any = None,
    scheduler: str = "local",
    n_workers: int = 2,
    chunk_s: float = DEFAULT_CHUNK_S,
    settings: ChainSettings | None = None,
    raw: RawLayout | None = None,
    codec_mode: str = "context",
    retries: int = 2,
    progress: Callable[[int, int, str], None] | None = None,
    task_wrapper: Callable | None = None,
) -> BatchReport:
    """Run ``operation`` over ``inputs`` into ``out_dir``; see the module docstring.

    Parameters
    ----------
    operation : {"compress", "decompress", "evaluate", "detect", "features"}
    inputs : list of str, path-like or source
        Files, directories or glob patterns (:func:`~neurolace.batch.sources.expand_inputs`); for
        ``detect`` and ``features`` also objects with the interface of
        :class:`~neurolace.batch.sources.RecordingSource` (``name``, ``fs_hz``, ``n_channels``,
        ``n_samples``, ``splittable``, ``read_segment``), e.g. a recording generated on the
        workers chunk by chunk, never stored; the output is named after ``name``.
    out_dir : str or path-like
        Outputs and ``manifest.json`` go here (created if missing).
    client : distributed.Client, optional
        Use this client; default: open one with ``scheduler`` and ``n_workers``.
    scheduler : str, default "local"
        ``"local"`` for a LocalCluster, or a scheduler address ``tcp://HOST:PORT``.
    n_workers : int, default 2
        Worker processes of the LocalCluster.
    chunk_s : float, default 60
        Time-chunk length of ``detect``/``features`` on WAV and raw files.
    settings : ChainSettings, optional
        Signal-chain options (``detect``, ``features``); default as ``neurolace detect``.
    raw : RawLayout, optional
        Rate, channels, dtype and gain of raw files (and gain of any input).
    codec_mode : {"context", "fast"}
        Codec mode of ``compress`` and ``evaluate``.
    retries : int, default 2
        Retries of a task that raised (Dask's ``retries=``).
    progress : callable, optional
        Called as ``progress(tasks_done, tasks_total, description)``.
    task_wrapper : callable, optional
        ``task_wrapper(function)`` returns the function submitted in its place (fault injection
        in tests, instrumentation in benchmarks); default the task itself.

    Returns
    -------
    BatchReport
        ``exit_status`` is 0 when every file is done, :data:`EXIT_SOME_FAILED` otherwise.

    Raises
    ------
    BatchError
        Before any work: an unknown operation, no inputs, colliding outputs, an unusable output
        folder or manifest.
    """
    check_in(operation, "operation", tuple(OPERATIONS))
    check_in(codec_mode, "codec_mode", ("context", "fast"))
    retries = check_int(retries, "retries", minimum=0)
    settings = ChainSettings() if settings is None else settings
    raw = RawLayout() if raw is None else raw
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BatchError(f"the output folder {out_dir} is not writable")
    generated = [item for item in inputs if hasattr(item, "read_segment")]
    if generated and operation not in ("detect", "features"):
        raise BatchError(f"{operation} reads files; only detect and features take generated recordings")
    paths = [item for item in inputs if not hasattr(item, "read_segment")]
    files = expand_inputs(paths, extensions=OPERATIONS[operation][0]) if paths or not generated else []
    outputs = output_paths(operation, files + [Path(item.name) for item in generated], out_dir)
    files = files + generated
    options = {"operation": operation, "codec_mode": codec_mode, "chain": settings.to_json(),
               "raw": vars(raw) if operation in ("detect", "features") else None}
    if operation in ("detect", "features"):
        options["chunk_s"] = chunk_s  # parts differ only in where they are cut; kept for the record
    manifest = Manifest.open(out_dir / MANIFEST_NAME, operation, options)
    report = BatchReport(manifest_path=manifest.path, n_files=len(files))
    todo = []
    for path, output in zip(files, outputs):
        if manifest.verified(path, [output]):
            report.n_skipped += 1
        else:
            todo.append((path, output))
    manifest.save(report.n_skipped)
    if not todo:
        return report
    runner = _Runner(operation, manifest, report, settings, raw, codec_mode, chunk_s, retries, progress,
                     task_wrapper or (lambda function: function))
    try:
        if client is not None:
            runner.run(client, todo)
        else:
            with open_client(scheduler, n_workers) as opened:
                runner.run(opened, todo)
    finally:  # interrupted or not, what is done is recorded
        manifest.save(report.n_skipped)
    return report


class _Runner:
    """The client side of one run: submissions, completions, seams, merges, manifest entries."""

    def __init__(self, operation, manifest, report, settings, raw, codec_mode, chunk_s, retries, progress, wrap):
        self.operation = operation
        self.manifest = manifest
        self.report = report
        self.settings = settings
        self.raw = raw
        self.codec_mode = codec_mode
        self.chunk_s = chunk_s
        self.retries = retries
        self.progress = progress
        self.wrap = wrap
        self.total = 0
        self.done = 0
        self.futures: dict[Any, tuple[_FileJob, str, int]] = {}

    # -- submission ------------------------------------------------------------------------
    def submit(self, job: _FileJob, role: str, index: int, function, *args, **kwargs):
        future = self.client.submit(self.wrap(function), *args, retries=self.retries, pure=False, **kwargs)
        self.futures[future] = (job, role, index)
        self.pending.add(future)
        job.n_tasks += 1
        self.total += 1
        return future

    def run(self, client, todo: list[tuple[Path, Path]]) -> None:
        from distributed import as_completed

        from neurolace.batch import tasks

        self.client = client
        self.pending = as_completed()
        start = time.perf_counter()
        for path, output in todo:
            if hasattr(path, "read_segment"):  # generated on the workers: nothing on disk to stat
                stat = {"path": path.name, "size_bytes": 2 * path.n_samples * path.n_channels, "mtime_ns": None}
                self.submit_chain(_FileJob(path, output, stat, time.perf_counter()))
                continue
            try:
                stat = input_stat(path)
            except OSError as exc:
                self.fail(_FileJob(path, output, {"path": str(path)}, time.perf_counter()), exc)
                continue
            job = _FileJob(path, output, stat, time.perf_counter())
            if self.operation == "compress":
                self.submit(job, "file", 0, tasks.compress_task, str(path), str(output), mode=self.codec_mode)
            elif self.operation == "decompress":
                self.submit(job, "file", 0, tasks.decompress_task, str(path), str(output))
            elif self.operation == "evaluate":
                self.submit(job, "file", 0, tasks.evaluate_task, str(path), str(output), mode=self.codec_mode)
            else:
                self.submit_chain(job)
        self.tick("submitted")
        for future in self.pending:
            job, role, index = self.futures.pop(future)
            self.done += 1
            if job.failed:
                future.release()
                self.tick(_name(job))
                continue
            try:
                self.completed(job, role, index, future.result())
            except Exception as exc:  # noqa: BLE001 - any task error is this file's failure, reported
                self.fail(job, exc)
            future.release()
            self.tick(_name(job))
        self.report.wall_seconds = time.perf_counter() - start

    def tick(self, description: str) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, description)

    def submit_chain(self, job: _FileJob) -> None:
        from neurolace.batch import tasks

        try:
            source = job.input_path if hasattr(job.input_path, "read_segment") else RecordingSource.open(
                job.input_path, fs_hz=self.raw.fs_hz, n_channels=self.raw.n_channels, dtype=self.raw.dtype,
                gain_uv=self.raw.gain_uv,
            )
            if source.n_samples == 0:
                raise BatchError(f"{job.input_path} holds no samples: nothing to process")
            plan = plan_chunks(source.n_samples, source.fs_hz, self.settings, chunk_s=self.chunk_s,
                               features=self.operation == "features")
            if not source.splittable:
                plan = ChunkPlan(plan.n_samples, [(0, plan.n_samples)], 0, 0, plan.block_samples,
                                 plan.noise_window_samples)
        except Exception as exc:  # noqa: BLE001 - an unreadable input is this file's failure
            self.fail(job, exc)
            return
        job.source, job.plan = source, plan
        if plan.n_chunks == 1:
            self.submit(job, "whole", 0, tasks.chain_range_task, source, self.settings, kind=self.operation,
                        start=0, stop=source.n_samples, read_start=0, read_stop=source.n_samples,
                        noise_uv=None, output_path=str(job.output_path), whole=True)
            return
        job.noise = self.submit(job, "noise", 0, tasks.first_noise_task, source, self.settings)
        for index in range(plan.n_chunks):
            self.submit_chunk(job, index, plan.margin_before_samples)

    def part_path(self, job: _FileJob, index: int) -> Path:
        return job.output_path.parent / PARTS_DIRECTORY / f"{job.output_path.name}.{index:05d}"

    def submit_chunk(self, job: _FileJob, index: int, margin_before: int) -> None:
        from neurolace.batch import tasks

        start, stop = job.plan.cores[index]
        read_start, read_stop = job.plan.read_range(index, margin_before)
        job.margins[index] = margin_before
        self.submit(job, "chunk", index, tasks.chain_range_task, job.source, self.settings, kind=self.operation,
                    start=start, stop=stop, read_start=read_start, read_stop=read_stop,
                    noise_uv=None if read_start == 0 else job.noise, output_path=str(self.part_path(job, index)),
                    whole=False)

    # -- completion ------------------------------------------------------------------------
    def completed(self, job: _FileJob, role: str, index: int, result: Any) -> None:
        if role == "noise":
            return
        if role == "merge":
            for i in range(job.plan.n_chunks):
                with contextlib.suppress(OSError):
                    self.part_path(job, i).unlink()
            summaries = [job.chunks[i]["summary"] for i in range(job.plan.n_chunks)]
            self.finish(job, [result], _sum_summaries(summaries))
            return
        job.task_results.append(result)
        if role == "chunk":
            job.chunks[index] = result
            if len(job.chunks) == job.plan.n_chunks and not self.resubmit_bad_seams(job):
                parts = [str(self.part_path(job, i)) for i in range(job.plan.n_chunks)]
                from neurolace.batch import tasks

                self.submit(job, "merge", 0, tasks.merge_parts, self.operation, parts, str(job.output_path))
            return
        self.finish(job, result["outputs"], result.get("summary", {}))

    def resubmit_bad_seams(self, job: _FileJob) -> bool:
        """Re-run the first chunk whose seam with its predecessor disagrees; True if one was resubmitted."""
        for index in range(1, job.plan.n_chunks):
            before, after = job.chunks[index - 1]["seam"], job.chunks[index]["seam"]
            same_events = np.array_equal(before["tail_events"], after["head_events"])
            same_state = self.operation != "features" or _same_state(before["tail_state"], after["head_state"])
            if same_events and same_state:
                continue
            margin = job.margins[index]
            if job.redone >= MAX_SEAM_RETRIES or job.plan.read_range(index, margin)[0] == 0:
                raise BatchError(f"{job.input_path}: chunk {index} does not join chunk {index - 1} even read from sample 0")
            job.redone += 1
            del job.chunks[index]
            self.submit_chunk(job, index, min(job.plan.cores[index][0], 4 * margin))
            return True
        return False

    def finish(self, job: _FileJob, outputs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        entry = {
            "status": "ok",
            "input": job.stat,
            "outputs": outputs,
            "n_tasks": job.n_tasks,
            "n_chunks": 1 if job.plan is None else job.plan.n_chunks,
            "redone_chunks": job.redone,
            "task_seconds": sum(r.get("seconds", 0.0) for r in job.task_results),
            "wall_seconds": time.perf_counter() - job.submitted_s,
            "workers": sorted({r.get("worker", "") for r in job.task_results}),
            "peak_rss_bytes": max((r.get("peak_rss_bytes", 0) for r in job.task_results), default=0),
            "summary": summary,
            "error": None,
        }
        self.manifest.record(job.input_path, entry)
        self.report.n_ok += 1
        self.report.input_bytes += int(job.stat.get("size_bytes", 0))

    def fail(self, job: _FileJob, exc: BaseException) -> None:
        job.failed = True
        message = str(exc) or type(exc).__name__
        entry = {
            "status": "failed",
            "input": job.stat,
            "outputs": [],
            "n_tasks": job.n_tasks,
            "task_seconds": sum(r.get("seconds", 0.0) for r in job.task_results),
            "wall_seconds": time.perf_counter() - job.submitted_s,
            "error": {"type": type(exc).__name__, "message": message},
        }
        self.manifest.record(job.input_path, entry)
        self.report.n_failed += 1
        self.report.failed[_name(job) if hasattr(job.input_path, "read_segment") else str(job.input_path)] = f"{type(exc).__name__}: {message}"


def _name(job: _FileJob) -> str:
    return str(getattr(job.input_path, "name", job.input_path))


def _same_state(first: Any, second: Any) -> bool:
    if first is None or second is None:
        return first is None and second is None
    return bool(np.array_equal(first, second))


def _sum_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-chunk summaries added up (counts and seconds); other keys from the first."""
    total: dict[str, Any] = dict(summaries[0])
    for key in ("n_spikes", "n_bins", "seconds_of_recording"):
        if key in total:
            total[key] = sum(s.get(key, 0) for s in summaries)
    return total
