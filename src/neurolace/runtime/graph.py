"""Run a validated session: one supervised thread per node, on one bus.

:func:`run_session` is the whole of ``neurolace run``: build the bus, start
every node (all subscribe first, then all set up, then all start together so no
early message is lost), run for the session's duration or until every source is
exhausted, stop sources first and let queues drain, then stop the rest and
report per-node counters, latencies, CPU shares and the backlog of every hop
(``report["backlog"]``, keyed ``"stream -> node"``: queue depth, its slope in
messages per second, drops; ``report["backlogged_hops"]`` lists those not steady).

Two clocks (``[session] clock``). ``"realtime"``: sources pace themselves on
the wall clock and every node reacts as soon as it gets the interpreter, so a
closed loop's feedback (the cursor the simulated participant sees) depends on
thread scheduling and a seeded run does not repeat exactly. ``"stepped"``: the
one source runs as fast as the graph settles -- after each ``produce`` it waits
until every node has handled every message that step caused, so each step sees
the feedback of the one before -- the decoder fits synchronously, and the
source ends after ``duration_s`` on its own sample clock; the same seed then
gives the same run, message for message (in-process bus, one source).

``only`` runs a subset of the nodes in this process; with a Redis bus the
others run in other processes or on other machines from the same session file
(``neurolace run SESSION.toml --bus redis://host:6379 --nodes decoder,cursor``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from neurolace.core.checks import check_in
from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.runtime.bus import Bus, InProcessBus, open_bus
from neurolace.runtime.messages import now_ns
from neurolace.runtime.node import NodeState
from neurolace.runtime.session_file import CLOCKS, SessionSpec, load_session, parse_session
from neurolace.runtime.supervisor import NodeRunner

__all__ = ["GIL_SWITCH_INTERVAL_S", "Graph", "RunLog", "backlogged_hops", "hop_backlog", "run_session"]

#: How often CPython lets another thread take the GIL while a graph runs (default 5 ms).
#: Nodes are threads, so with the default a busy node (the dsp chain) can keep a ready
#: message waiting for up to 5 ms. Measured on the 1024-channel latency benchmark
#: (in-process, 8 s runs, lightly loaded 2-core machine): hop p99 184 µs at 5 ms,
#: 136 µs at 0.5 ms, 81 µs at 0.1 ms, with the median within noise. 0.2 ms keeps most of
#: the gain without switching needlessly often.
GIL_SWITCH_INTERVAL_S = 0.0002

#: how often the stepped clock looks whether the graph has settled after a source step
_SETTLE_POLL_S = 0.0001


class RunLog:
    """Structured events of a run (node failures, restarts, gaps), optionally mirrored to a JSON-lines file."""

    def __init__(self, path: str | Path | None = None, echo: Callable[[dict], None] | None = None) -> None:
        self.events: list[dict] = []
        self._lock = threading.Lock()
        # kept open for the whole run, closed by close()
        self._stream = open(path, "a", buffering=1) if path is not None else None  # noqa: SIM115
        self._echo = echo

    def __call__(self, event: str, **fields) -> None:
        record = {"time_ns": now_ns(), "event": event, **fields}
        with self._lock:
            self.events.append(record)
            if self._stream is not None:
                self._stream.write(json.dumps(record, default=str) + "\n")
        if self._echo is not None:
            self._echo(record)

    def of(self, event: str) -> list[dict]:
        return [e for e in self.events if e["event"] == event]

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class Graph:
    """The nodes of a session wired to a bus.

    Parameters
    ----------
    session : SessionSpec
    bus : Bus
    only : iterable of str, optional
        Names of the nodes to run here (default: all).
    log : RunLog, optional
    session_directory : path, optional
        Where nodes resolve relative paths (the session file's folder).
    """

    def __init__(
        self,
        session: SessionSpec,
        bus: Bus,
        *,
        only: Iterable[str] | None = None,
        log: RunLog | None = None,
        session_directory: str | Path | None = None,
        restart_backoff_s: float = 0.05,
        clock: str | None = None,
        duration_s: float | None = None,
    ) -> None:
        self.session = session
        self.bus = bus
        self.log = log if log is not None else RunLog()
        self.clock = check_in(session.clock if clock is None else clock, "clock", CLOCKS)
        self.duration_s = float(session.duration_s if duration_s is None else duration_s)
        names = [spec.name for spec in session.nodes]
        selected = list(names) if only is None else list(only)
        unknown = [name for name in selected if name not in names]
        if unknown:
            raise InvalidInputError(f"nodes {unknown} are not in session {session.name!r}; nodes: {names}")
        if self.stepped:
            _check_steppable(session, bus, selected)
        self.start_event = threading.Event()
        self.stop_event = threading.Event()
        self.sources_stop_event = threading.Event()
        self.runners: dict[str, NodeRunner] = {}
        for spec in session.nodes:
            if spec.name not in selected:
                continue
            is_source = spec.node_class.is_source_type()
            self.runners[spec.name] = NodeRunner(
                spec,
                bus,
                seed=session.seed,
                log=self.log,
                start_event=self.start_event,
                stop_event=self.sources_stop_event if is_source else self.stop_event,
                session_directory=session_directory,
                restart_backoff_s=restart_backoff_s,
                clock=self.clock,
                settle=self.settle if is_source and self.stepped else None,
            )
        self.started_ns = 0
        self.stopped_ns = 0

    def start(self, *, setup_timeout_s: float = 120.0, barrier: tuple[str, int] | None = None) -> None:
        """Subscribe, set up every node, then release them together; raise if a node cannot start.

        ``barrier = (name, parties)`` also waits, on the bus, for ``parties``
        processes that run parts of the same session (``neurolace run --processes``).
        """
        self._previous_switch_interval_s = sys.getswitchinterval()
        sys.setswitchinterval(min(GIL_SWITCH_INTERVAL_S, self._previous_switch_interval_s))
        for runner in self.runners.values():
            runner.duration_s = self.duration_s
            runner.subscribe()
        for runner in self.runners.values():
            runner.start()
        deadline = time.monotonic() + setup_timeout_s
        for name, runner in self.runners.items():
            if not runner.ready_event.wait(max(deadline - time.monotonic(), 0.0)):
                self.stop()
                raise NeurolaceError(f"node {name!r} did not become ready within {setup_timeout_s:g} s")
            if runner.state is NodeState.FAILED or runner.finished_event.is_set():
                self.stop()
                reason = runner.failures[-1] if runner.failures else "stopped during setup"
                raise NeurolaceError(f"node {name!r} ({runner.spec.type_name}) failed to start: {reason}")
        if barrier is not None:
            try:
                self.bus.barrier(barrier[0], barrier[1], timeout_s=setup_timeout_s)
            except NeurolaceError:
                self.stop()
                raise
        self.log("session_started", session=self.session.name, bus=self.bus.url, nodes=list(self.runners))
        self.started_ns = now_ns()
        self.start_event.set()

    def reset_measurements(self) -> None:
        """Forget the latencies measured so far, e.g. after a warm-up (filters settling, first noise window)."""
        for runner in self.runners.values():
            runner.reset_measurements()

    def sources_done(self) -> bool:
        sources = [r for r in self.runners.values() if r.spec.node_class.is_source_type()]
        return bool(sources) and all(r.finished_event.is_set() for r in sources)

    @property
    def stepped(self) -> bool:
        return self.clock == "stepped"

    def settle(self) -> None:
        """Stepped clock: return once every node has handled every message delivered to it (or stop)."""
        readers = [r for r in self.runners.values() if not r.spec.node_class.is_source_type()]
        while not self.stop_event.is_set() and not self.sources_stop_event.is_set():
            if all(runner.idle() for runner in readers):
                return
            time.sleep(_SETTLE_POLL_S)

    def wait(self, duration_s: float | None) -> None:
        """Block until ``duration_s`` passed (0/None: until the sources end) or every node finished.

        On the stepped clock the sources end by themselves after the session's
        duration on their own clock, so wall time does not bound the wait.
        """
        deadline = None if not duration_s or self.stepped else time.monotonic() + duration_s
        has_sources = any(r.spec.node_class.is_source_type() for r in self.runners.values())
        while True:
            if all(r.finished_event.is_set() for r in self.runners.values()):
                return
            if has_sources and self.sources_done():
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def stop(self, *, drain_timeout_s: float = 2.0) -> None:
        """Stop sources, let the other nodes empty their queues, stop them, join every thread."""
        self.sources_stop_event.set()
        for runner in self.runners.values():
            if runner.spec.node_class.is_source_type() and runner.thread.is_alive():
                runner.thread.join(timeout=5.0)
        for name in [spec.name for spec in self.session.nodes if spec.name in self.runners]:
            self.runners[name].drain(drain_timeout_s)
        self.stop_event.set()
        self.start_event.set()
        for runner in self.runners.values():
            if runner.thread.is_alive():
                runner.thread.join(timeout=10.0)
        self.stopped_ns = now_ns()
        previous = getattr(self, "_previous_switch_interval_s", None)
        if previous is not None:
            sys.setswitchinterval(previous)
            self._previous_switch_interval_s = None
        self.log("session_stopped", session=self.session.name)

    def run(self, duration_s: float | None = None) -> dict:
        """Start, wait, stop; return the report (see :meth:`report`)."""
        if duration_s is not None:
            self.duration_s = float(duration_s)
        self.start()
        try:
            self.wait(self.duration_s)
        finally:
            self.stop()
        return self.report()

    def report(self) -> dict:
        wall_s = (self.stopped_ns - self.started_ns) / 1e9 if self.stopped_ns else 0.0
        nodes = {name: runner.summary() for name, runner in self.runners.items()}
        backlog = hop_backlog(nodes)
        return {
            "session": self.session.name,
            "bus": self.bus.url,
            "clock": self.clock,
            "wall_s": round(wall_s, 4),
            "nodes": nodes,
            "dropped": int(sum(n["dropped"] for n in nodes.values())),
            "restarts": int(sum(n["restarts"] for n in nodes.values())),
            "failed_nodes": [name for name, n in nodes.items() if n["state"] == NodeState.FAILED.value],
            "backlog": backlog,
            "backlogged_hops": backlogged_hops(backlog),
            "bus_stats": self.bus.stats(),
            "events": [
                e for e in self.log.events if e["event"] not in ("session_started", "session_stopped")
            ][-50:],
        }


def _check_steppable(session: SessionSpec, bus: Bus, selected: list[str]) -> None:
    """Refuse a stepped run whose result could still depend on scheduling, saying why."""
    if not isinstance(bus, InProcessBus):
        raise InvalidInputError(
            f"the stepped clock needs the in-process bus (it counts every delivery), not {bus.url}"
        )
    if len(selected) != len(session.nodes):
        raise InvalidInputError("the stepped clock runs the whole session in one process; drop --nodes")
    sources = [spec.name for spec in session.nodes if spec.node_class.is_source_type()]
    if len(sources) != 1:
        raise InvalidInputError(
            f"the stepped clock needs exactly one source node (the order of two would depend on "
            f"scheduling), got {sources or 'none'}"
        )


def hop_backlog(nodes: dict) -> dict[str, dict]:
    """The backlog of every hop, keyed ``"stream -> node"``, from the per-node summaries of a report."""
    return {
        f"{stream} -> {name}": summary
        for name, node in nodes.items()
        for stream, summary in node.get("backlog", {}).items()
    }


def backlogged_hops(backlog: dict[str, dict]) -> list[str]:
    """The hops of :func:`hop_backlog` whose queue is not steady (growing or overflowing)."""
    return [hop for hop, summary in backlog.items() if summary["verdict"] != "steady"]


def run_session(
    session: SessionSpec | str | Path,
    *,
    bus: str | Bus | None = None,
    only: Iterable[str] | None = None,
    duration_s: float | None = None,
    log_path: str | Path | None = None,
    clock: str | None = None,
) -> dict:
    """Validate (if given a path) and run a session; return the report dict.

    Parameters
    ----------
    session : SessionSpec, path, or TOML text
    bus : str or Bus, optional
        Bus URL (overrides the session's ``bus``) or an open bus.
    only : iterable of str, optional
        Run only these nodes here.
    duration_s : float, optional
        Overrides the session's ``duration_s``.
    log_path : path, optional
        Also write the run's events as JSON lines.
    clock : {"realtime", "stepped"}, optional
        Overrides the session's ``clock`` (see the module docstring).
    """
    directory = None
    if isinstance(session, SessionSpec):
        spec = session
        directory = Path(spec.path).parent if Path(spec.path).exists() else None
    elif isinstance(session, Path) or (isinstance(session, str) and "\n" not in session):
        spec = load_session(session)
        directory = Path(session).resolve().parent
    else:
        spec = parse_session(session)
    own_bus = not isinstance(bus, Bus)
    if isinstance(bus, Bus):
        active_bus = bus
    else:
        url = bus if bus is not None else spec.bus
        options = spec.bus_options() if url and url.startswith(("redis", "unix")) else {}
        if options and only is None and options.get("authenticate", True) and "key" not in options:
            from neurolace.runtime.bus_auth import whole_graph_bus_key

            options["key"] = whole_graph_bus_key(key_file=options.pop("key_file", None))
        active_bus = open_bus(url, **options)
    log = RunLog(log_path)
    try:
        graph = Graph(spec, active_bus, only=only, log=log, session_directory=directory, clock=clock)
        return graph.run(duration_s)
    finally:
        log.close()
        if own_bus:
            active_bus.close()
