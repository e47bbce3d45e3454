"""``neurolace bench latency``: measure the runtime's latency on this machine."""

from __future__ import annotations

import json
import sys

from neurolace.cli.args import Number
from neurolace.cli.output import stdout_console

__all__ = ["bench_command", "register"]

#: Accepted values of the numeric options (checked by argparse, shown in --help). The caps keep a
#: measurement bounded: an hour at most, and at most four N1 implants of channels.
DURATION_S = Number(float, minimum=0.0, exclusive_minimum=True, maximum=3600.0, unit="s")
CHANNELS = Number(int, minimum=1, maximum=4096)
WARMUP_S = Number(float, minimum=0.0, maximum=600.0, unit="s")

DESCRIPTION = """\
Measure the real-time runtime at implant scale: the simulated implant (1024 channels x
19,531.25 Hz, 1 ms blocks) -> streaming dsp (20 ms bins) -> Kalman decoder -> cursor, on the
in-process bus or on Redis Streams (--bus redis://HOST:PORT). Reports per-hop latency
(p50/p99/max), end-to-end latency from a bin's last sample to the cursor move, dropped messages,
the jitter of the 20 ms loop and CPU share per node, beside a plain queue.Queue hand-off measured
in the same run, and the backlog of each hop: the depth of its queue over time, the fitted slope
(messages/s, near 0 when the reader keeps up), drops, and whether it is steady, growing or
overflowing. End to end is shown with the spike filter's fixed delay apart.
Aims: in-process hop p99 < 200 us, Redis hop p99 < 600 us, end to end p99 < 2 ms.

examples:
  neurolace bench latency
  neurolace bench latency --bus redis://127.0.0.1:6379 --duration-s 30 --json
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="measure the runtime (latency)", description=DESCRIPTION)
    parser.add_argument("what", choices=["latency"], help="what to measure")
    parser.add_argument("--bus", help="bus URL (default in-process; redis://HOST:PORT for Redis Streams)")
    parser.add_argument(
        "--duration-s", type=DURATION_S, default=10.0, help=DURATION_S.help("measured seconds (default 10)")
    )
    parser.add_argument("--channels", type=CHANNELS, default=1024, help=CHANNELS.help("channels (default 1024)"))
    parser.add_argument(
        "--warmup-s", type=WARMUP_S, default=1.5, help=WARMUP_S.help("seconds before measuring (default 1.5)")
    )
    parser.add_argument(
        "--processes", action="store_true", help="run every node in its own process (needs --bus redis://...)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(handler=bench_command)


def bench_command(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from neurolace.runtime.benchmark import measure_latency

    duration_s, channels = args.duration_s, args.channels
    err = Console(file=sys.stderr)
    with Progress(
        TextColumn("measuring latency"), BarColumn(), console=err, transient=True, disable=not err.is_terminal
    ) as progress:
        task = progress.add_task("bench", total=1.0)
        result = measure_latency(
            bus=args.bus,
            duration_s=duration_s,
            n_channels=channels,
            warmup_s=args.warmup_s,
            processes=args.processes,
            progress=lambda fraction: progress.update(task, completed=fraction),
        )
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    from rich.table import Table

    out = stdout_console()
    table = Table(
        title=f"latency on {result['bus']}: {channels} ch, {result['duration_s']:g} s, "
        f"{result['bins']} bins, {result['dropped']} dropped"
    )
    for column in ("path", "n", "p50 µs", "p99 µs", "max µs"):
        table.add_column(column, justify="left" if column == "path" else "right")

    def add_row(name: str, n: int, p50_us: float, p99_us: float, max_us: float) -> None:
        table.add_row(name, str(n), f"{p50_us:.1f}", f"{p99_us:.1f}", f"{max_us:.1f}")

    def add_summary(name: str, summary: dict) -> None:
        add_row(name, summary["n"], summary["p50_us"], summary["p99_us"], summary["max_us"])

    for hop, summary in result["hops"].items():
        add_summary(hop, summary)
    add_summary("queue.Queue baseline (raw block)", result["queue_baseline_us"])
    e2e = result["end_to_end_p50_ms"], result["end_to_end_p99_ms"], result["end_to_end_max_ms"]
    add_row("end to end (bin's last sample -> cursor)", result["bins"], *(1e3 * value for value in e2e))
    add_summary("20 ms loop jitter |interval - 20 ms|", result["loop_jitter_us"])
    out.print(table)
    out.print(
        f"end to end includes the spike filter's fixed delay of {result['filter_delay_ms']:.2f} ms; "
        f"beyond it, p99 {result['end_to_end_p99_beyond_filter_ms']:.2f} ms"
    )
    out.print(_backlog_table(result["backlog"]))
    batches = result["dsp_batches"]
    if batches["batches"]:
        out.print(f"dsp caught up {batches['batches']} times, {batches['batched_blocks']} raw blocks in batches")
    out.print(
        "CPU share per node: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in result["cpu_share"].items())
    )
    return 0


def _backlog_table(backlog: dict):
    """Queue depth per hop: percentiles, fitted slope, drops, verdict (steady / growing / overflowing)."""
    from rich.table import Table

    table = Table(title="backlog per hop (messages waiting when the reader took one)")
    for column in ("hop", "depth p50", "depth p99", "depth max", "slope msg/s", "dropped", "verdict"):
        table.add_column(column, justify="left" if column in ("hop", "verdict") else "right")
    for hop, summary in backlog.items():
        verdict = summary["verdict"]
        colour = {"steady": "green", "growing": "yellow"}.get(verdict, "red")
        table.add_row(
            hop,
            f"{summary['depth_p50']:.0f}",
            f"{summary['depth_p99']:.0f}",
            str(summary["depth_max"]),
            f"{summary['slope_per_s']:+.2f}",
            str(summary["dropped"]),
            f"[{colour}]{verdict}[/{colour}]",
        )
    return table
