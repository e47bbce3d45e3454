"""Runtime latency: in-process bus and Redis Streams, beside a queue.Queue hand-off, same run.

Runs :func:`neurolace.runtime.benchmark.measure_latency` (1024 channels x
19,531.25 Hz in 1 ms blocks -> dsp -> Kalman -> cursor) on both buses. The
Redis server is started here on a free 127.0.0.1 port (redis-server must be
installed: Debian package ``redis-server``). Full run: 60 s per bus after a 5 s
warm-up; --quick: 8 s. Beside the latencies: the spike filter's fixed delay
(part of end to end), and each hop's backlog (hops whose queue grew or
overflowed, and the steepest fitted slope of queue depth).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from benchmarks._common import console, table

#: seconds before measuring: filters settle and the dsp clears the backlog of its first noise window
WARMUP_S = 5.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_redis() -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: install the Debian package redis-server")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}"


def run(quick: bool) -> dict:
    from neurolace.runtime.benchmark import AIMS, measure_latency

    duration_s = 8.0 if quick else 60.0
    results = {"inprocess": measure_latency(bus=None, duration_s=duration_s, warmup_s=WARMUP_S)}
    process, url = _start_redis()
    try:
        results["redis"] = measure_latency(bus=url, duration_s=duration_s, warmup_s=WARMUP_S)
    finally:
        process.terminate()
        process.wait(timeout=10)
    rows, hop_rows = [], []
    for name, result in results.items():
        baseline = result["queue_baseline_us"]
        rows.append(
            [
                name,
                result["hop_p50_us"],
                result["hop_p99_us"],
                1e3 * result["end_to_end_p99_ms"],
                1e3 * result["filter_delay_ms"],
                result["loop_jitter_us"]["p99_us"],
                baseline["p50_us"],
                baseline["p99_us"],
                result["hop_p99_us"] / baseline["p99_us"] if baseline["p99_us"] else float("nan"),
            ]
        )
        for hop, summary in result["hops"].items():
            backlog = result["backlog"][hop]
            hop_rows.append(
                [
                    name,
                    hop,
                    summary["p99_us"],
                    summary["max_us"],
                    backlog["depth_max"],
                    backlog["slope_per_s"],
                    backlog["dropped"],
                    backlog["verdict"],
                ]
            )
    table(
        "runtime latency, 1024 ch x 19.5 kHz (µs; worst hop)",
        [
            "bus",
            "hop p50",
            "hop p99",
            "e2e p99",
            "of it filter",
            "jitter p99",
            "Queue p50",
            "Queue p99",
            "p99 / Queue",
        ],
        rows,
    )
    table(
        "per hop: latency (µs) and backlog (messages waiting)",
        ["bus", "hop", "p99", "max", "depth max", "slope /s", "dropped", "verdict"],
        hop_rows,
    )
    console.print(f"aims: {AIMS}")
    return {"duration_s": duration_s, "results": results, "aims": AIMS}
