"""The supervisor: one thread per node that runs it, watches it and restarts it.

:class:`NodeRunner` owns a node's life cycle (``starting -> ready -> running
-> stopped``, or ``failed``). When the node raises, the runner logs the error,
tears the node down, waits a short back-off and builds a fresh instance; the
interval during which the node was down is logged as a gap. Messages that
queued up while it was down are discarded (counted as ``stale_discarded``)
rather than fed to the new instance late: downstream nodes see silence, not
stale data, and effectors hold still on silence (see
:class:`~neurolace.runtime.nodes.effectors.CursorNode`).

Each runner also measures what crossed it: the hop latency of every input
message (receive time minus publish time), the messages a shared bus refused
on its inputs as forged or replayed (``refused``, never handed to the node),
the backlog of its input queue (depth over time and its slope, see :meth:`Subscription.backlog
<neurolace.runtime.bus.Subscription.backlog>`) and the CPU time of its thread.

A node that sets ``max_batch`` above 1 (the dsp node) is handed, when several
messages of one input port are already waiting, up to that many at once
through :meth:`Node.on_batch <neurolace.runtime.node.Node.on_batch>`, so it can
catch up in one call instead of one call per message; a message that is alone
in the queue is handed over at once, so batching adds no waiting.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

from neurolace.runtime.bus import Bus, Subscription
from neurolace.runtime.latency import LatencyLog
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.node import NodeContext, NodeState
from neurolace.runtime.session_file import NodeSpec

__all__ = ["NodeRunner"]

_IDLE_TIMEOUT_S = 0.05


class NodeRunner:
    """Runs one node in its own thread under supervision.

    Parameters
    ----------
    spec : NodeSpec
        The validated node.
    bus : Bus
        Where its inputs come from and its outputs go.
    seed : int
        Session seed (each node derives its own generator from it and its name).
    log : callable
        ``log(event, node=..., **fields)``.
    start_event, stop_event : threading.Event
        The graph's start barrier and stop signal.
    """

    def __init__(
        self,
        spec: NodeSpec,
        bus: Bus,
        *,
        seed: int,
        log: Callable[..., None],
        start_event: threading.Event,
        stop_event: threading.Event,
        session_directory=None,
        restart_backoff_s: float = 0.05,
        clock: str = "realtime",
        settle: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        #: stepped clock, sources only: called after each produce, returns once the graph is idle
        self.settle = settle
        #: seconds the session runs (the stepped clock's sources end by themselves after it)
        self.duration_s = 0.0
        #: input messages taken and finished with (handled, failed on, or discarded as stale)
        self.handled = 0
        self.bus = bus
        self.seed = seed
        self._log = log
        self.start_event = start_event
        self.stop_event = stop_event
        self.session_directory = session_directory
        self.restart_backoff_s = restart_backoff_s
        self.state = NodeState.STARTING
        self.ready_event = threading.Event()
        self.finished_event = threading.Event()
        self.restarts = 0
        self.failures: list[str] = []
        self.gaps_s: list[float] = []
        self.stale_discarded = 0
        self.messages_in = 0
        self.emitted = 0
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.exhausted = False
        self.node = None
        self.hop_latency: dict[str, LatencyLog] = {}
        self.subscription: Subscription | None = None
        self.feedback_subscriptions: dict[str, Subscription] = {}
        self._feedback_latest: dict[str, Message | None] = {}
        self._port_of_stream: dict[str, str] = {}
        self._node_summary: dict = {}
        #: survives restarts of the node (a fitted model, a device handle's settings)
        self.store: dict = {}
        for port, streams in spec.inputs.items():
            for stream in streams:
                self._port_of_stream[stream] = port
                self.hop_latency[stream] = LatencyLog()
        self.thread = threading.Thread(target=self._main, name=f"node:{spec.name}", daemon=True)

    # -- wiring ----------------------------------------------------------------
    def subscribe(self) -> None:
        """Subscribe before any node starts, so no early message is missed."""
        if self._port_of_stream:
            self.subscription = self.bus.subscribe(list(self._port_of_stream), maxlen=self.spec.queue_length)
        for port, stream in self.spec.feedback.items():
            self.feedback_subscriptions[port] = self.bus.subscribe(stream, maxlen=1, mode="latest")
            self._feedback_latest[port] = None

    def _feedback(self, port: str) -> Message | None:
        subscription = self.feedback_subscriptions.get(port)
        if subscription is None:
            return None
        newest = subscription.latest()
        if newest is not None:
            self._feedback_latest[port] = newest
        return self._feedback_latest[port]

    def log(self, event: str, **fields) -> None:
        self._log(event, node=self.spec.name, **fields)

    def _emit(self, message: Message) -> Message:
        self.emitted += 1
        return self.bus.publish(message)

    def _build(self):
        context = NodeContext(
            name=self.spec.name,
            outputs=self.spec.output_streams(),
            seed=self.seed,
            emit_function=self._emit,
            log=self.log,
            feedback=self._feedback,
            stop_requested=self.stop_event.is_set,
            session_directory=self.session_directory,
            extra=self.store,
            clock=self.clock,
            duration_s=self.duration_s,
        )
        return self.spec.node_class(self.spec.params, context)

    # -- thread ----------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        wall_start = time.monotonic()
        cpu_start = time.thread_time()
        down_since_ns: int | None = None
        try:
            while not self.stop_event.is_set():
                node = None
                try:
                    self.state = NodeState.STARTING
                    node = self._build()
                    self.node = node
                    node.setup()
                    self.state = NodeState.READY
                    self.ready_event.set()
                    while not self.start_event.wait(0.05):
                        if self.stop_event.is_set():
                            break
                    if self.stop_event.is_set():
                        break
                    if down_since_ns is not None:
                        gap_s = (now_ns() - down_since_ns) / 1e9
                        self.gaps_s.append(gap_s)
                        self._discard_backlog()
                        self.log("node_resumed", gap_s=round(gap_s, 6), restarts=self.restarts)
                        down_since_ns = None
                    self.state = NodeState.RUNNING
                    self._loop(node)
                    self.state = NodeState.STOPPED
                    break
                except Exception as exc:  # noqa: BLE001  (the supervisor's job: any node error is caught and logged)
                    self.state = NodeState.FAILED
                    detail = f"{type(exc).__name__}: {exc}"
                    self.failures.append(detail)
                    self.log("node_failed", error=detail, traceback=traceback.format_exc(limit=4))
                    if down_since_ns is None:
                        down_since_ns = now_ns()
                    if not self.spec.restart or self.restarts >= self.spec.max_restarts:
                        self.log("node_gave_up", restarts=self.restarts)
                        self.ready_event.set()
                        break
                    backoff_s = min(self.restart_backoff_s * 2**self.restarts, 1.0)
                    self.restarts += 1
                    self.log("node_restarting", attempt=self.restarts, backoff_s=backoff_s)
                    if self.stop_event.wait(backoff_s):
                        break
                finally:
                    if node is not None:
                        self._node_summary = self._safe_summary(node)
                        self.emitted_by_node = node.emitted
                        try:
                            node.teardown()
                        except Exception as exc:  # noqa: BLE001  (a failing teardown must not hide the first error)
                            self.log("teardown_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if self.state not in (NodeState.FAILED,):
                self.state = NodeState.STOPPED
            self.cpu_s = time.thread_time() - cpu_start
            self.wall_s = time.monotonic() - wall_start
            self.ready_event.set()
            self.finished_event.set()

    @staticmethod
    def _safe_summary(node) -> dict:
        try:
            return node.summary()
        except Exception as exc:  # noqa: BLE001  (summary is reporting only)
            return {"summary_error": str(exc)}

    def _discard_backlog(self) -> None:
        if self.subscription is None:
            return
        while True:
            message = self.subscription.get(timeout_s=0)
            if message is None:
                break
            self.stale_discarded += 1
            self.handled += 1
        if self.stale_discarded:
            self.log("stale_discarded", messages=self.stale_discarded)

    def _loop(self, node) -> None:
        stop = self.stop_event
        if node.is_source:
            settle = self.settle
            while not stop.is_set():
                if not node.produce():
                    self.exhausted = True
                    self.log("source_exhausted")
                    break
                if settle is not None:
                    settle()
            return
        subscription = self.subscription
        if subscription is None:  # only feedback inputs: tick on idle
            while not stop.is_set():
                time.sleep(_IDLE_TIMEOUT_S)
                node.on_idle()
            return
        port_of_stream = self._port_of_stream
        carried: Message | None = None  # taken while batching, but for another port
        while not stop.is_set():
            if carried is not None:
                message, carried = carried, None
            else:
                message = subscription.get(timeout_s=_IDLE_TIMEOUT_S)
                if message is None:
                    node.on_idle()
                    continue
                self._count_in(message)
            port = port_of_stream[message.stream]
            limit = node.max_batch
            if limit <= 1 or not subscription.pending():
                try:
                    node.on_message(port, message)
                finally:
                    self.handled += 1
                continue
            batch = [message]
            while len(batch) < limit:
                waiting = subscription.get(timeout_s=0)
                if waiting is None:
                    break
                self._count_in(waiting)
                if port_of_stream[waiting.stream] != port:
                    carried = waiting
                    break
                batch.append(waiting)
            try:
                node.on_batch(port, batch)
            finally:
                self.handled += len(batch)

    def idle(self) -> bool:
        """True when every message delivered to this node's queue was handled (or the node has ended)."""
        subscription = self.subscription
        if subscription is None or self.finished_event.is_set():
            return True
        return subscription.delivered <= self.handled + subscription.dropped

    def _count_in(self, message: Message) -> None:
        self.hop_latency[message.stream].add(message.received_ns - message.timestamp_ns)
        self.messages_in += 1

    def reset_measurements(self) -> None:
        """Forget latencies measured so far (call after a warm-up); counters of messages are kept."""
        for log in self.hop_latency.values():
            log.clear()
        if self.subscription is not None:
            self.subscription.reset_backlog()
        node = self.node
        if node is not None and hasattr(node, "end_to_end"):
            node.end_to_end.clear()

    def drain(self, timeout_s: float) -> None:
        """Wait until the input queue is empty (at the end of a run), up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        subscription = self.subscription
        while subscription is not None and time.monotonic() < deadline:
            pending = getattr(subscription, "pending", None)
            if pending is None or pending() == 0:
                break
            time.sleep(0.005)

    def _refused(self) -> dict[str, int]:
        """Entries the bus refused on this node's inputs and feedback, by reason (forged, replayed)."""
        totals: dict[str, int] = {}
        subscriptions = [self.subscription, *self.feedback_subscriptions.values()]
        for subscription in subscriptions:
            for reason, count in getattr(subscription, "refused", {}).items():
                totals[reason] = totals.get(reason, 0) + count
        return totals

    def summary(self) -> dict:
        dropped = self.subscription.dropped if self.subscription is not None else 0
        result = {
            "type": self.spec.type_name,
            "state": self.state.value,
            "restarts": self.restarts,
            "failures": self.failures[-3:],
            "gaps_s": [round(g, 6) for g in self.gaps_s],
            "messages_in": self.messages_in,
            "messages_out": self.emitted,
            "dropped": dropped,
            "stale_discarded": self.stale_discarded,
            "cpu_s": round(self.cpu_s, 4),
            "cpu_share": round(self.cpu_s / self.wall_s, 4) if self.wall_s > 0 else 0.0,
            "hop_latency_us": {stream: log.summary_us() for stream, log in self.hop_latency.items()},
            "backlog": self.subscription.backlog() if self.subscription is not None else {},
            "refused": self._refused(),
        }
        result.update(self._node_summary)
        return result
