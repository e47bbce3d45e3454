"""``neurolace run SESSION``: run a node graph declared in a session file (or a preset)."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from neurolace.cli.args import Number
from neurolace.cli.output import stdout_console
from neurolace.core.errors import NeurolaceError

__all__ = ["register", "run_command"]

#: the sim_participant node's feature paths (neurolace.runtime.nodes.sources.PATHS; kept here so the
#: parser stays light, tests/test_runtime_cli.py checks they agree)
FEATURE_PATHS = ("implant", "counts")

DESCRIPTION = """\
Run a real-time session: the nodes (sources, dsp, decoder, effectors, task, recorder) and their
wiring are declared in a TOML session file; every node runs in its own supervised thread and
talks over a bus, in-process by default or Redis Streams with --bus redis://HOST:PORT, so the
same file can also run split across processes or machines (--nodes picks the ones to run here).

The file is checked before anything starts; a mistake is reported with the file, the line and
what was expected. SESSION may also name a preset (e.g. 'demo').

On the wall clock (the default) a closed loop with a simulated participant does not repeat
exactly, even with a fixed seed: what the participant sees of the cursor depends on how the
threads were scheduled. --clock stepped (or clock = "stepped" in [session]) advances the
session one source step at a time, each step seeing the feedback of the one before, and ends
after duration_s on the source's own clock, so the same seed gives the same run.

On a Redis bus every message is authenticated with a session key (HMAC-SHA256): a run of the
whole session in one process draws its own, --processes draws one and hands it to its children,
and processes started by hand share one through NEUROLACE_BUS_KEY (64 hex digits) or a key file
named in the session's [bus] table. The server's password goes in the URL or, better, in
NEUROLACE_REDIS_PASSWORD (and NEUROLACE_REDIS_USERNAME for an ACL user). A run that refused
forged or replayed messages says so and exits 1.

examples:
  neurolace run demo                       # through the implant: crossings + spike-band power
  neurolace run demo --path counts         # the fast mode: the participant's Poisson counts
  neurolace run sessions/closed_loop_sim.toml --duration-s 30
  neurolace run sessions/closed_loop_sim.toml --check
  neurolace run sessions/closed_loop_sim.toml --clock stepped   # the same score on every run
  neurolace run sessions/closed_loop_sim.toml --bus redis://127.0.0.1:6379 --nodes participant
  neurolace run --list-types
"""


#: Accepted values of the numeric options (checked by argparse before the session starts, shown in --help).
RUN_SECONDS = Number(float, minimum=0.0, exclusive_minimum=True, maximum=86400.0, unit="s")
WARMUP_SECONDS = Number(float, minimum=0.0, maximum=3600.0, unit="s")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run a real-time session file (node graph)", description=DESCRIPTION
    )
    parser.add_argument("session", nargs="?", help="session TOML file, or a preset name such as 'demo'")
    parser.add_argument("--bus", help="bus URL: inprocess:// (default) or redis://HOST:PORT[/DB]")
    parser.add_argument("--nodes", help="comma-separated node names to run in this process (default: all)")
    parser.add_argument(
        "--duration-s", type=RUN_SECONDS,
        help=RUN_SECONDS.help("run time in seconds (default: the session's duration_s)"),
    )
    parser.add_argument(
        "--processes",
        action="store_true",
        help="run every node in its own process (needs a redis:// bus); they start together",
    )
    parser.add_argument(
        "--clock",
        choices=["realtime", "stepped"],
        help="realtime: paced on the wall clock (default: the session's clock); stepped: one source step "
        "at a time, as fast as the graph settles, so a seeded run gives the same result every time",
    )
    parser.add_argument(
        "--path",
        choices=FEATURE_PATHS,
        help="features of every simulated participant (sim_participant node), overriding the file: implant "
        "(waveforms at 19.5 kHz -> on-implant chain -> threshold crossings + spike-band power; the demo "
        "preset's) or counts (Poisson counts, the fast mode)",
    )
    parser.add_argument(
        "--vault",
        action="store_true",
        help="every recorder writes into the site's encrypted vault (needs --participant; the passphrase "
        "comes from NEUROLACE_SITE_PASSPHRASE or the OS keyring)",
    )
    parser.add_argument("--participant", metavar="PID", help="with --vault: whose vault holds the recording")
    parser.add_argument("--site", metavar="DIR", help="with --vault: the site directory "
                        "(default: $NEUROLACE_SITE_DIR, else ./out/site)")
    parser.add_argument("--barrier", help=argparse.SUPPRESS)
    parser.add_argument(
        "--measure-after-s",
        type=WARMUP_SECONDS,
        default=0.0,
        help=WARMUP_SECONDS.help("forget latencies measured in the first seconds (warm-up)"),
    )
    parser.add_argument("--log", help="also write the run's events (failures, restarts, gaps) as JSON lines")
    parser.add_argument("--check", action="store_true", help="validate the session file and exit")
    parser.add_argument("--list-types", action="store_true", help="list the node types and their parameters")
    parser.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    parser.set_defaults(handler=run_command)


def _load(name: str):
    from neurolace.runtime.presets import PRESETS, preset_session
    from neurolace.runtime.session_file import load_session

    path = Path(name)
    if not path.exists() and name in PRESETS:
        return preset_session(name)
    return load_session(path)


def _nodes_of_type(session, type_name: str, what_option_does: str) -> list:
    """The ``type_name`` nodes of ``session``; an error saying what the option needs when there is none."""
    found = [spec for spec in session.nodes if spec.type_name == type_name]
    if not found:
        raise NeurolaceError(
            f"{what_option_does}, but session {session.name!r} has no {type_name} node; "
            f"nodes: {[spec.name for spec in session.nodes]}"
        )
    return found


def _set_feature_path(session, path: str) -> None:
    """``--path``: every ``sim_participant`` node of ``session`` emits ``path``'s features."""
    for spec in _nodes_of_type(session, "sim_participant", "--path sets the features of a simulated participant"):
        spec.params["path"] = spec.node_class.parameters["path"].check(path)


def _set_vault(session, args) -> None:
    """``--vault --participant PID --site DIR``: every ``recorder`` node records into the vault."""
    if not args.vault:
        if args.participant is not None or args.site is not None:
            raise NeurolaceError("--participant and --site go with --vault")
        return
    if not args.participant:
        raise NeurolaceError("--vault needs --participant PID (whose vault holds the recording)")
    for spec in _nodes_of_type(session, "recorder", "--vault records into the vault"):
        parameters = spec.node_class.parameters
        spec.params["vault"] = True
        spec.params["participant"] = parameters["participant"].check(args.participant)
        if args.site is not None:
            spec.params["site"] = parameters["site"].check(args.site)


def _list_types(as_json: bool) -> int:
    from neurolace.runtime.node import REQUIRED, node_types

    catalogue = {}
    for type_name, node_class in node_types().items():
        catalogue[type_name] = {
            "description": node_class.description,
            "inputs": {
                k: p.kind + (" (feedback)" if p.feedback else "") for k, p in node_class.inputs.items()
            },
            "outputs": {k: p.kind for k, p in node_class.outputs.items()},
            "parameters": {
                k: {
                    "expected": p.describe(),
                    "default": None if p.default is REQUIRED else p.default,
                    "required": p.default is REQUIRED,
                    "help": p.help,
                }
                for k, p in node_class.parameters.items()
            },
        }
    if as_json:
        print(json.dumps(catalogue))
        return 0
    for type_name, entry in catalogue.items():
        print(f"{type_name}: {entry['description']}")
        print(f"  inputs: {entry['inputs'] or '-'}  outputs: {entry['outputs'] or '-'}")
        for key, parameter in entry["parameters"].items():
            default = "REQUIRED" if parameter["required"] else repr(parameter["default"])
            print(f"  {key} = {default}   # {parameter['expected']}; {parameter['help']}")
    return 0


def _print_report(report: dict) -> None:
    from rich.table import Table

    console = stdout_console()
    table = Table(title=f"session {report['session']} on {report['bus']} ({report['wall_s']:.1f} s)")
    for column in (
        "node",
        "type",
        "state",
        "in",
        "out",
        "dropped",
        "restarts",
        "cpu %",
        "hop p99 µs",
        "backlog",
        "end-to-end p99 µs",
    ):
        table.add_column(column, justify="left" if column in ("node", "type", "state") else "right")
    for name, node in report["nodes"].items():
        hops = [h["p99_us"] for h in node["hop_latency_us"].values() if h["n"]]
        end_to_end = node.get("end_to_end_us", {}).get("p99_us")
        table.add_row(
            name,
            node["type"],
            node["state"],
            str(node["messages_in"]),
            str(node["messages_out"]),
            str(node["dropped"]),
            str(node["restarts"]),
            f"{100 * node['cpu_share']:.1f}",
            f"{max(hops):.0f}" if hops else "-",
            _backlog_cell(node.get("backlog", {})),
            f"{end_to_end:.0f}" if end_to_end is not None and not math.isnan(end_to_end) else "-",
        )
    console.print(table)
    refused = bus_refusals(report)
    if any(refused.values()):
        console.print(
            f"[red]bus {report['bus']}: refused {refused['forged']} forged and "
            f"{refused['replayed']} replayed messages[/red] (none reached a node)"
        )
    fitted = any(event["event"] == "decoder_fitted" for event in report["events"])
    for name, node in report["nodes"].items():
        if "bps" not in node:
            continue
        if node["correct"] + node["incorrect"] == 0:
            # A bare 0.00 bits/s reads as a broken decoder; usually the run ended
            # before (or soon after) the decoder's calibration block.
            reason = (
                "the decoder was fitted but no target was selected before the run ended"
                if fitted
                else "the run ended before the decoder finished calibrating; run longer (--duration-s)"
            )
            console.print(f"{name}: no Webgrid target scored ({reason})")
        else:
            console.print(
                f"{name}: {node['correct']} correct, {node['incorrect']} incorrect, {node['bps']:.2f} bits/s"
            )
    for event in report["events"]:
        sentence = _event_sentence(event)
        if sentence:
            console.print(sentence)


def _backlog_cell(backlog: dict) -> str:
    """The worst input queue of a node: verdict, depth p99 and slope, e.g. 'steady 0 (+0.0/s)'."""
    if not backlog:
        return "-"
    order = {"steady": 0, "growing": 1, "overflowing": 2}
    summary = max(backlog.values(), key=lambda b: (order[b["verdict"]], b["slope_per_s"]))
    depth = summary["depth_p99"]
    depth_text = "-" if math.isnan(depth) else f"{depth:.0f}"
    return f"{summary['verdict']} {depth_text} ({summary['slope_per_s']:+.1f}/s)"


def _event_sentence(event: dict) -> str | None:
    """One readable line for the run-log events a person should see, else None."""
    node = event.get("node", "?")
    kind = event["event"]
    if kind == "node_failed":
        return f"[yellow]node {node} failed:[/yellow] {event.get('error', 'unknown error')}"
    if kind == "node_gave_up":
        return f"[red]node {node} gave up after {event.get('restarts', '?')} restarts[/red]"
    if kind == "node_resumed":
        return f"[yellow]node {node} resumed after a {event.get('gap_s', '?')} s gap[/yellow]"
    if kind == "cursor_holding":
        return (
            f"[yellow]{node}: cursor held still at {event.get('position', '?')}[/yellow] "
            "(no velocity arrived for longer than the node's stale_ms)"
        )
    if kind == "decoder_fit_failed":
        return f"[red]{node}: decoder could not be fitted:[/red] {event.get('error', 'unknown error')}"
    if kind == "bus_refused":
        counts = event.get("refused", {})
        return (
            f"[red]the bus refused a {event.get('reason', '?')} message on {event.get('stream', '?')}[/red] "
            f"(so far: {counts.get('forged', 0)} forged, {counts.get('replayed', 0)} replayed)"
        )
    if kind == "bus_unauthenticated":
        return (
            f"[yellow]the bus {event.get('bus', '?')} runs without message authentication[/yellow] "
            "(authenticate = false: any client of the server can publish messages the nodes act on)"
        )
    if kind == "record_renamed":
        return (
            f"[yellow]{node}: {event.get('requested', '?')} already holds a record, so this run records to "
            f"{event.get('path', '?')}[/yellow] (a record is never overwritten)"
        )
    return None


def _bus_options(session, only: list[str] | None) -> dict:
    """How this process's bus authenticates: the session's [bus] table, else the environment's key.

    A run of the whole session in one process that was given no key draws a fresh one: no
    other process needs it, and no other process can then publish messages its nodes accept.
    """
    from neurolace.runtime.bus_auth import BUS_KEY_ENV, new_bus_key

    options = session.bus_options()
    whole = only is None or {spec.name for spec in session.nodes} <= set(only)
    if options["authenticate"] and "key_file" not in options and not os.environ.get(BUS_KEY_ENV) and whole:
        options["key"] = new_bus_key()
    return options


def run_command(args) -> int:
    from neurolace.runtime.bus import open_bus
    from neurolace.runtime.graph import Graph, RunLog

    if args.list_types:
        return _list_types(args.json)
    if not args.session:
        raise NeurolaceError("give a SESSION file or preset name (or --list-types)")
    session = _load(args.session)
    if args.path is not None:
        _set_feature_path(session, args.path)
    _set_vault(session, args)
    if args.check:
        summary = {
            "session": session.name,
            "path": session.path,
            "valid": True,
            "nodes": {spec.name: spec.type_name for spec in session.nodes},
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"{session.path}: valid session {session.name!r} with nodes "
                + ", ".join(f"{s.name} ({s.type_name})" for s in session.nodes)
            )
        return 0
    only = None if not args.nodes else [name.strip() for name in args.nodes.split(",") if name.strip()]
    duration_s = session.duration_s if args.duration_s is None else args.duration_s
    if args.processes:
        report = _run_processes(args, session, only, duration_s)
        if args.json:
            print(json.dumps(report, default=str))
        else:
            _print_report(report)
        return _exit_status(report)
    barrier = None
    if args.barrier:
        name, _, parties = args.barrier.rpartition(":")
        barrier = (name, int(parties))
    directory = Path(session.path).resolve().parent if Path(session.path).exists() else None
    log = RunLog(args.log)
    try:
        url = args.bus if args.bus is not None else session.bus
        bus = open_bus(url, log=log, **_bus_options(session, only))
    except BaseException:
        log.close()
        raise
    try:
        graph = Graph(
            session,
            bus,
            only=only,
            log=log,
            session_directory=directory,
            clock=args.clock,
            duration_s=duration_s,
        )
        graph.start(barrier=barrier)
        try:
            _wait_with_progress(graph, duration_s, measure_after_s=args.measure_after_s)
        finally:
            graph.stop()
        report = graph.report()
    finally:
        log.close()
        bus.close()
    if args.json:
        print(json.dumps(report, default=str))
    else:
        _print_report(report)
    return _exit_status(report)


def _bus_stats_parts(report: dict) -> list[dict]:
    """The bus counters of a report: one dict for one process, one per process for ``--processes``."""
    stats = report.get("bus_stats") or {}
    if not stats or "publish_failures" in stats:
        return [stats]
    return [part for part in stats.values() if isinstance(part, dict)]


def bus_refusals(report: dict) -> dict[str, int]:
    """Messages the bus refused in a run, by reason (``forged``, ``replayed``), over every process."""
    from neurolace.runtime.bus_auth import REFUSAL_REASONS

    totals = dict.fromkeys(REFUSAL_REASONS, 0)
    for part in _bus_stats_parts(report):
        for reason, count in (part.get("refused") or {}).items():
            totals[reason] = totals.get(reason, 0) + int(count)
    return totals


def run_failures(report: dict) -> list[str]:
    """Why a finished run did not do its job, one sentence each (empty: it did).

    A node that failed for good, messages the bus could not deliver (a Redis server lost
    mid-run: the loop kept going, but what it published is gone), and messages the bus refused
    as forged or replayed (another client wrote to the Redis server) all make the run fail.
    """
    failures = [f"node {name} failed" for name in report.get("failed_nodes", [])]
    bus = report.get("bus", "")
    lost = sum(int(part.get("publish_failures", 0)) for part in _bus_stats_parts(report))
    if lost:
        failures.append(f"the bus {bus} could not deliver {lost} published messages "
                        "(the Redis server was lost or refused them)")
    refused = bus_refusals(report)
    if refused["forged"]:
        failures.append(f"the bus {bus} refused {refused['forged']} forged messages (without a valid tag "
                        "under the session key: another client published on the Redis server); "
                        "no node acted on them")
    if refused["replayed"]:
        failures.append(f"the bus {bus} refused {refused['replayed']} replayed messages (genuine messages "
                        "published again by another client); no node acted on them")
    return failures


def _exit_status(report: dict) -> int:
    failures = run_failures(report)
    for failure in failures:
        print(f"neurolace run: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _run_processes(args, session, only, duration_s: float) -> dict:
    """One child ``neurolace run --nodes NAME`` per node on a Redis bus, released together by a barrier."""
    from neurolace.runtime.bus_auth import BUS_KEY_ENV, new_bus_key, redact_url, split_credentials
    from neurolace.runtime.graph import backlogged_hops, hop_backlog
    from neurolace.runtime.presets import PRESETS, preset_text
    from neurolace.runtime.secure_link import LINK_PAIRING_ENV, write_run_pairing

    url = args.bus if args.bus is not None else session.bus
    if not url or not url.startswith(("redis://", "rediss://", "unix://")):
        raise NeurolaceError("--processes needs a shared bus: give --bus redis://HOST:PORT")
    if not duration_s:
        raise NeurolaceError("--processes needs a duration: give --duration-s or set duration_s in [session]")
    if (args.clock or session.clock) == "stepped":
        raise NeurolaceError("--processes runs on the wall clock; the stepped clock needs one process")
    names = only or [spec.name for spec in session.nodes]
    # no secret on a command line: the password and the run's key reach the children in their environment
    child_url, environment = split_credentials(url)
    environment = {**os.environ, **environment}
    if session.bus_authenticate and session.bus_key_file is None and not environment.get(BUS_KEY_ENV):
        environment[BUS_KEY_ENV] = new_bus_key().hex()
    with tempfile.TemporaryDirectory(prefix="neurolace-run-") as directory:
        linked = [spec for spec in session.nodes if spec.type_name in ("link_implant", "link_host")]
        if any(not spec.params.get("pairing") for spec in linked) and not environment.get(LINK_PAIRING_ENV):
            # the two ends of the secure link run in different processes: pair them for this run on disk
            environment[LINK_PAIRING_ENV] = str(write_run_pairing(Path(directory) / "link"))
        path = session.path
        if not Path(path).exists() and args.session in PRESETS:
            path = str(Path(directory) / f"{args.session}.toml")
            Path(path).write_text(preset_text(args.session))
        barrier = f"{session.name}-{time.time_ns()}:{len(names)}"
        children = {
            name: subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "neurolace",
                    "run",
                    path,
                    "--bus",
                    child_url,
                    "--nodes",
                    name,
                    "--barrier",
                    barrier,
                    "--duration-s",
                    repr(duration_s),
                    "--measure-after-s",
                    repr(args.measure_after_s),
                    *(["--path", args.path] if args.path else []),
                    *(["--vault", "--participant", args.participant] if args.vault else []),
                    *(["--site", args.site] if args.vault and args.site else []),
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment,
            )
            for name in names
        }
        outputs = {name: child.communicate(timeout=duration_s + 180.0) for name, child in children.items()}
    report = {
        "session": session.name,
        "bus": redact_url(url),
        "wall_s": 0.0,
        "nodes": {},
        "dropped": 0,
        "restarts": 0,
        "failed_nodes": [],
        "bus_stats": {},
        "events": [],
        "processes": len(names),
    }
    for name, (stdout, stderr) in outputs.items():
        if children[name].returncode not in (0, 1) or not stdout.strip():
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            raise NeurolaceError(f"the process of node {name!r} failed: {last}")
        part = json.loads(stdout)
        report["nodes"].update(part["nodes"])
        report["wall_s"] = max(report["wall_s"], part["wall_s"])
        for key in ("dropped", "restarts"):
            report[key] += part[key]
        report["failed_nodes"] += part["failed_nodes"]
        report["events"] += part["events"]
        report["bus_stats"][name] = part["bus_stats"]
    report["backlog"] = hop_backlog(report["nodes"])
    report["backlogged_hops"] = backlogged_hops(report["backlog"])
    return report


def _wait_with_progress(graph, duration_s: float, *, measure_after_s: float = 0.0) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if not duration_s or graph.stepped:  # a stepped run ends on the source's own clock
        graph.wait(None)
        return
    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("running"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("run", total=duration_s)
        start = time.monotonic()
        measuring = measure_after_s <= 0
        while True:
            elapsed = time.monotonic() - start
            if not measuring and elapsed >= measure_after_s:
                graph.reset_measurements()
                measuring = True
            progress.update(task, completed=min(elapsed, duration_s))
            if (
                elapsed >= duration_s
                or graph.sources_done()
                or all(r.finished_event.is_set() for r in graph.runners.values())
            ):
                return
            time.sleep(0.1)
