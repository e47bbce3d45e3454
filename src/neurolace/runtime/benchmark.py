"""Latency of the runtime, measured: per hop, end to end, loop jitter, CPU per node, against queue.Queue.

:func:`measure_latency` runs the real pipeline at implant scale on a chosen bus::

    sim_implant (1024 ch x 19,531.25 Hz, 1 ms blocks) -> dsp (SignalChain, 20 ms bins)
        -> decoder (Kalman, step per bin) -> cursor (effector)

and reports, from the monotonic-ns stamps every message carries:

- per hop (``receive - publish``): p50, p99, max of each of the three hops;
- end to end (cursor apply time - time the bin's last raw sample was published),
  which excludes the bin width by construction, and apart from it the spike
  filter's fixed delay it includes (``filter_delay_ms``; a bin can close only
  once the filter has seen that far past its end);
- jitter of the 20 ms loop: how far each interval between cursor moves is from 20 ms;
- the backlog of each hop: depth of the reader's queue over time, its fitted
  slope (messages/s; near 0 when the reader keeps up), drops, and a verdict
  (``steady``, ``growing``, ``overflowing``);
- dropped messages and CPU share of each node's thread;
- a baseline measured in the same run: the same 1 ms raw blocks handed from one
  thread to another through a plain :class:`queue.Queue`.

Reference numbers (BRAND, Ali et al. 2024, J Neural Eng 21:026046): < 600 µs
per hop at 1024 channels x 30 kHz over Redis, < 8 ms from neural input to an
RNN decoder's output; earlier systems 15-33 ms.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.runtime.bus import open_bus, wait_until_ns
from neurolace.runtime.bus_auth import BUS_KEY_ENV, whole_graph_bus_key
from neurolace.runtime.graph import Graph, RunLog, backlogged_hops, hop_backlog
from neurolace.runtime.latency import LatencyLog, summarise_ns
from neurolace.runtime.messages import now_ns
from neurolace.runtime.session_file import parse_session

__all__ = ["latency_session_text", "measure_latency", "queue_baseline"]

#: aims of the issue, for the report
AIMS = {"inprocess_hop_p99_us": 200.0, "redis_hop_p99_us": 600.0, "end_to_end_p99_ms": 2.0}


def queue_baseline(*, n_messages: int, n_channels: int, block_samples: int, period_ns: int) -> dict:
    """Hand ``n_messages`` int16 blocks between two threads through ``queue.Queue`` at the block rate."""
    handoff: queue.Queue = queue.Queue()
    latencies = LatencyLog(max(n_messages, 1))
    block = np.zeros((block_samples, n_channels), dtype=np.int16)

    def consume() -> None:
        for _ in range(n_messages):
            sent_ns, _payload = handoff.get()
            latencies.add(now_ns() - sent_ns)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    start = now_ns()
    for index in range(n_messages):
        wait_until_ns(start + index * period_ns)
        handoff.put((now_ns(), block))
    consumer.join(timeout=10.0)
    return latencies.summary_us()


def latency_session_text(
    *, model_path: str, n_channels: int, block_ms: float, bin_ms: float, implant_s: float, seed: int
) -> str:
    """The session TOML the benchmark runs (also a worked example of a raw-signal pipeline)."""
    return f"""
[session]
name = "latency-bench"
seed = {seed}

[nodes.implant]
type = "sim_implant"
n_channels = {n_channels}
duration_s = {implant_s}
block_ms = {block_ms}
loop = true

[nodes.dsp]
type = "dsp"
n_channels = {n_channels}
bin_ms = {bin_ms}
noise_window_s = 0.2
inputs = {{ raw = "implant.raw" }}

[nodes.decoder]
type = "decoder"
model_path = "{model_path}"
bin_ms = {bin_ms}
inputs = {{ features = "dsp.features" }}

[nodes.cursor]
type = "cursor"
bin_ms = {bin_ms}
inputs = {{ velocity = "decoder.velocity" }}
"""


def _fit_decoder(n_channels: int, path: Path, seed: int) -> None:
    """A Kalman decoder fitted on seeded Poisson counts (its accuracy is irrelevant; its cost is real)."""
    from neurolace.decode import KalmanFilter

    rng = np.random.default_rng(seed)
    velocity = rng.normal(0.0, 1.0, (600, 3))
    rates = 0.2 + 0.1 * np.abs(velocity @ rng.normal(0.0, 1.0, (3, n_channels)))
    counts = rng.poisson(rates).astype(np.float64)
    decoder = KalmanFilter(feature_transform="sqrt").fit(counts, velocity)
    from neurolace.decode.persist import save_decoder

    save_decoder(decoder, path)


def _drain_times(watcher) -> list[int]:
    times = []
    while (message := watcher.get(timeout_s=0)) is not None:
        times.append(message.timestamp_ns)
    return times


def _wait(duration_s: float, progress) -> None:
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if progress is not None:
            progress(min(1.0, 1.0 - (deadline - time.monotonic()) / duration_s))


def _run_in_process(
    text: str, bus: str | None, duration_s: float, warmup_s: float, progress
) -> tuple[dict, list]:
    session = parse_session(text, source="<latency bench>")
    options = {}
    if bus and bus.startswith("redis"):
        options = {"prefix": f"neurolace:bench:{time.time_ns()}:", "key": whole_graph_bus_key()}
    active_bus = open_bus(bus, **options)
    try:
        graph = Graph(session, active_bus, log=RunLog())
        watcher = active_bus.subscribe("cursor.cursor", maxlen=1_000_000)
        graph.start()
        try:
            time.sleep(warmup_s)
            graph.reset_measurements()
            _drain_times(watcher)
            _wait(duration_s, progress)
        finally:
            graph.stop()
        move_ns = _drain_times(watcher)
        watcher.close()
        return graph.report(), move_ns
    finally:
        active_bus.close()


def _run_in_processes(
    text: str, directory: Path, bus: str | None, duration_s: float, warmup_s: float, progress
) -> tuple[dict, list]:
    import json
    import subprocess
    import sys

    if not bus or not bus.startswith("redis"):
        raise InvalidInputError(f"processes=True needs a redis:// bus, got {bus!r}")
    session_path = directory / "latency.toml"
    session_path.write_text(text)
    key = whole_graph_bus_key()  # the children and this watcher share it through the environment
    active_bus = open_bus(bus, key=key)
    watcher = active_bus.subscribe("cursor.cursor", maxlen=1_000_000)
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "neurolace",
                "run",
                str(session_path),
                "--bus",
                bus,
                "--processes",
                "--json",
                "--duration-s",
                repr(warmup_s + duration_s),
                "--measure-after-s",
                repr(warmup_s),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, BUS_KEY_ENV: key.hex()},
        )
        # the children need a few seconds to start; measure cursor moves from their warm-up's end
        while not _drain_times(watcher):
            if child.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(warmup_s)
        _drain_times(watcher)
        stdout, stderr = child.communicate(timeout=warmup_s + duration_s + 300.0)
        if child.returncode not in (0, 1) or not stdout.strip():
            raise NeurolaceError(
                f"the multi-process run failed: {(stderr.strip().splitlines() or ['?'])[-1]}"
            )
        move_ns = _drain_times(watcher)
        return json.loads(stdout), move_ns
    finally:
        watcher.close()
        active_bus.close()


def measure_latency(
    *,
    bus: str | None = None,
    duration_s: float = 10.0,
    n_channels: int = 1024,
    block_ms: float = 1.0,
    bin_ms: float = 20.0,
    seed: int = 0,
    warmup_s: float = 1.5,
    processes: bool = False,
    progress=None,
) -> dict:
    """Run the benchmark pipeline on ``bus`` for ``duration_s`` and return the measurements (see module doc).

    Returns
    -------
    dict
        ``bus``, ``hop_p50_us`` and ``hop_p99_us`` (the worst hop), ``end_to_end_p99_ms``,
        ``dropped``, per-hop detail, ``backlog`` per hop (see
        :meth:`~neurolace.runtime.bus.Subscription.backlog`) and ``backlogged_hops``
        (those not steady), ``dsp_batches``, ``end_to_end_us``, ``loop_jitter_us``, ``cpu_share``,
        ``queue_baseline_us`` and the aims. Measurements start after ``warmup_s`` (the dsp
        chain holds detection for its first noise window, then catches up). With
        ``processes`` (Redis only) every node runs in its own process, as BRAND runs its
        nodes, so they do not share one interpreter lock.
    """
    fs_hz = 19531.25
    block_samples = max(1, round(block_ms / 1e3 * fs_hz))
    period_ns = round(block_samples / fs_hz * 1e9)
    baseline = queue_baseline(
        n_messages=int(min(duration_s, 5.0) * 1e9 / period_ns),
        n_channels=n_channels,
        block_samples=block_samples,
        period_ns=period_ns,
    )
    with tempfile.TemporaryDirectory(prefix="neurolace-bench-") as directory:
        model_path = Path(directory) / "kalman.npz"
        _fit_decoder(n_channels, model_path, seed)
        text = latency_session_text(
            model_path=model_path.as_posix(),
            n_channels=n_channels,
            block_ms=block_ms,
            bin_ms=bin_ms,
            implant_s=1.0,
            seed=seed,
        )
        if processes:
            report, move_ns = _run_in_processes(text, Path(directory), bus, duration_s, warmup_s, progress)
        else:
            report, move_ns = _run_in_process(text, bus, duration_s, warmup_s, progress)
    nodes = report["nodes"]
    hops = {}
    for node in ("dsp", "decoder", "cursor"):
        for stream, summary in nodes[node]["hop_latency_us"].items():
            hops[f"{stream} -> {node}"] = summary
    backlog = {hop: summary for hop, summary in hop_backlog(nodes).items() if hop in hops}
    intervals = np.diff(np.asarray(move_ns, dtype=np.int64))
    jitter = (
        summarise_ns(np.abs(intervals - int(bin_ms * 1e6))) if intervals.size else summarise_ns(np.zeros(0))
    )
    end_to_end = nodes["cursor"]["end_to_end_us"]
    return {
        "bus": report["bus"] + (" (one process per node)" if processes else ""),
        "n_channels": n_channels,
        "fs_hz": fs_hz,
        "block_ms": block_ms,
        "bin_ms": bin_ms,
        "duration_s": duration_s,
        "hop_p50_us": float(max(h["p50_us"] for h in hops.values())),
        "hop_p99_us": float(max(h["p99_us"] for h in hops.values())),
        "hop_max_us": float(max(h["max_us"] for h in hops.values())),
        "end_to_end_p50_ms": end_to_end["p50_us"] / 1e3,
        "end_to_end_p99_ms": end_to_end["p99_us"] / 1e3,
        "end_to_end_max_ms": end_to_end["max_us"] / 1e3,
        # part of every end-to-end figure: the spike filter's fixed delay (0 for a causal design)
        "filter_delay_ms": nodes["dsp"].get("filter_delay_us", 0.0) / 1e3,
        "end_to_end_p99_beyond_filter_ms": (end_to_end["p99_us"] - nodes["dsp"].get("filter_delay_us", 0.0)) / 1e3,
        "dropped": int(report["dropped"]),
        "bins": int(nodes["cursor"]["moves"]),
        "raw_blocks": int(nodes["implant"]["blocks"]),
        "hops": hops,
        "backlog": backlog,
        "backlogged_hops": backlogged_hops(backlog),
        "dsp_batches": {key: int(nodes["dsp"].get(key, 0)) for key in ("batches", "batched_blocks")},
        "loop_jitter_us": jitter,
        "source_pacing_us": nodes["implant"]["pacing_jitter_us"],
        "cpu_share": {name: node["cpu_share"] for name, node in nodes.items()},
        "queue_baseline_us": baseline,
        "bus_stats": report["bus_stats"],
        "aims": AIMS,
    }
