"""A live session the dashboard runs and watches: the runtime graph on a bus, read as frames.

:class:`LiveSession` owns one real-time session graph
(:class:`neurolace.runtime.graph.Graph`, default the ``demo`` preset: the
simulated participant through the implant -> crossings and spike-band power ->
the ``closed_loop`` node) on an in-process bus, and the controls a team needs:
start a calibration, stop, switch decoders (a new calibration), and timed
Webgrid blocks scored with :func:`~neurolace.tasks.webgrid_bps`. A
``closed_loop`` session calibrates through the schedule of every loop
(:class:`~neurolace.runtime.closed_loop.SessionPlan`: observation block with
lag-aligned labels, first decoder, closed-loop block, ReFIT) and then plays
Webgrid until stopped; a session with ``decoder``/``cursor`` nodes calibrates
as its decoder node does.

It only *subscribes* to the graph's streams (the bus never waits for a slow
reader, see :mod:`neurolace.runtime.bus`), so a dashboard cannot slow the
loop. A feed thread folds the messages into *frames*, one per feature bin:

- the cursor (x, y, click) and the lit target (x, y, width);
- counts of every channel in the bin (and spike-band power when the feature
  stream carries it, i.e. ``2 * n_channels`` columns from a ``dsp`` node);
- loop latency: cursor publish time minus the ``origin_ns`` of the bin it came
  from (the runtime's provenance stamps; the bin width is excluded);
- link bandwidth: payload bytes per second on the feature stream, what the
  implant link carries in this session;
- the score and a BPS/NTPM series over a trailing window;
- the calibration's progress (:class:`CalibrationProgress`: stage ``collecting``,
  ``fitting``, ``closed_loop`` or ``refit``, then ``done``; time left in the stage
  and in the whole calibration, estimated from the bins the graph really
  delivers per second), read from the ``closed_loop`` node's ``block`` stream
  (the block index of its :class:`~neurolace.runtime.closed_loop.SessionPlan`)
  and the ``decoder_fitted`` event;
- the state of a ``recorder`` node, when the session has one (file, messages,
  bytes, elapsed time);
- ``run``, a number that changes at every start, and ``bin_index``, the number of
  feature bins of this run so far, so a viewer starts new series when the
  graph restarts and draws every bin, also those a slow connection skipped.

A frame is bytes for a binary WebSocket message (:func:`encode_frame`): a
little-endian uint32 header length, a UTF-8 JSON header, then the channel
bytes (uint8 counts per bin, clipped at 255; then uint8 SBP scaled to the
header's ``sbp_scale``). 1024 channels at 50 bins/s is ~1.3 kB per frame.
"""

from __future__ import annotations

import collections
import json
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.core.checks import check_in, check_positive
from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.decode.registry import DECODERS
from neurolace.runtime.messages import now_ns
from neurolace.tasks import net_targets_per_minute, webgrid_bps

__all__ = [
    "CALIBRATION_STAGES",
    "LIVE_DECODERS",
    "SESSION_STATES",
    "CalibrationProgress",
    "LiveSession",
    "LiveStreams",
    "cursor_latency_us",
    "decode_frame",
    "encode_frame",
]

#: states a live session reports ("watching": reading a graph someone else runs)
SESSION_STATES = ("stopped", "starting", "calibrating", "decoding", "watching", "failed")
#: decoders the dashboard offers: those of the one registry (neurolace.decode.DECODERS) that fit in
#: about a second on 1024 channels, so a live calibration does not stall (no ReFIT block, no torch fit)
LIVE_DECODERS = tuple(name for name in DECODERS if name in ("kalman", "wiener"))
#: a live closed_loop session's Webgrid blocks after calibration: 24 blocks of an hour (the node's score
#: stream restarts at each block; the dashboard's own timed blocks score any window within one)
LIVE_WEBGRID_BLOCK_S = 3600.0
LIVE_WEBGRID_BLOCKS = 24
#: stages of a live calibration, in schedule order: observation bins collected, a decoder fitted, the first
#: decoder in closed loop (ReFIT's data), the ReFIT check block, over
CALIBRATION_STAGES = ("collecting", "fitting", "closed_loop", "refit", "done")
#: seconds over which the feed measures how many bins per second the graph really delivers
_RATE_WINDOW_S = 5.0
#: trailing window of the BPS/NTPM series
BPS_WINDOW_S = 30.0
_FRAME_HEADER = struct.Struct("<I")


@dataclass(frozen=True)
class LiveStreams:
    """Names of the streams the dashboard reads, found from the node types of a session.

    Attributes
    ----------
    features : str
        Feature bins (counts per channel, optionally followed by SBP).
    cursor, target, score : str or None
    n_channels : int
    grid_side : int
        Grid of the session's Webgrid node (for BPS).
    decoder_node : str or None
        Name of the node the controls change: the ``closed_loop`` node (the session
        schedule of :class:`~neurolace.runtime.closed_loop.SessionRunner`) or a
        ``decoder`` node.
    calibration_parameter : str or None
        That node's parameter the calibration length sets: ``open_loop_s`` (the
        observation block of a ``closed_loop`` node) or ``calibration_s``.
    """

    features: str
    cursor: str | None
    target: str | None
    score: str | None
    n_channels: int
    grid_side: int
    decoder_node: str | None
    calibration_parameter: str | None = None
    link: str | None = None
    block: str | None = None

    def with_link(self, spec: Any) -> LiveStreams:
        """These streams plus the health stream of the session's secure link, if it has one."""
        from dataclasses import replace

        hosts = [node for node in spec.nodes if node.type_name == "link_host"]
        return replace(self, link=f"{hosts[0].name}.link") if hosts else self

    @classmethod
    def from_session(cls, spec: Any) -> LiveStreams:
        return cls._node_streams(spec).with_link(spec)

    @classmethod
    def _node_streams(cls, spec: Any) -> LiveStreams:
        by_type: dict[str, Any] = {}
        for node in spec.nodes:
            by_type.setdefault(node.type_name, node)
        source = by_type.get("dsp") or by_type.get("sim_participant")
        if source is None:
            raise InvalidInputError(
                f"session {spec.name!r} has no 'sim_participant' or 'dsp' node for the dashboard to read features from")
        n_channels = int(source.params["n_channels"])
        loop = by_type.get("closed_loop")
        if loop is not None:  # one node is decoder, cursor and task
            return cls(features=f"{source.name}.features", cursor=f"{loop.name}.cursor",
                       target=f"{loop.name}.target", score=f"{loop.name}.score", n_channels=n_channels,
                       grid_side=int(loop.params["grid_side"]), decoder_node=loop.name,
                       calibration_parameter="open_loop_s", block=f"{loop.name}.block")
        task = by_type.get("webgrid")
        return cls(
            features=f"{source.name}.features",
            cursor=f"{by_type['cursor'].name}.cursor" if "cursor" in by_type else None,
            target=f"{task.name}.target" if task else None,
            score=f"{task.name}.score" if task else None,
            n_channels=n_channels,
            grid_side=int(task.params["grid_side"]) if task else 30,
            decoder_node=by_type["decoder"].name if "decoder" in by_type else None,
            calibration_parameter="calibration_s" if "decoder" in by_type else None,
        )

    def names(self) -> list[str]:
        return [name for name in (self.features, self.cursor, self.target, self.score, self.link, self.block) if name]


def encode_frame(header: dict, channels: bytes = b"") -> bytes:
    """One binary WebSocket frame: uint32 header length, JSON header, channel bytes."""
    encoded = json.dumps(header, separators=(",", ":")).encode()
    return _FRAME_HEADER.pack(len(encoded)) + encoded + channels


def decode_frame(data: bytes) -> tuple[dict, bytes]:
    """Inverse of :func:`encode_frame`."""
    if len(data) < _FRAME_HEADER.size:
        raise InvalidInputError(f"frame of {len(data)} bytes is shorter than its length prefix")
    (length,) = _FRAME_HEADER.unpack_from(data)
    header = json.loads(data[_FRAME_HEADER.size:_FRAME_HEADER.size + length])
    return header, data[_FRAME_HEADER.size + length:]


class _FeedSubscriptions:
    """How the feed reads a bus without competing with the loop.

    The feed blocks only on the *trigger* stream: the cursor, published after
    the decoder and the cursor node handled a bin (the features themselves when
    a session has no cursor). Every other stream has its own "latest"
    subscription read without waiting, so nothing wakes the feed while the
    loop is still working on the bin, and the frame is built in the loop's
    idle time.
    """

    def __init__(self, bus: Any, streams: LiveStreams) -> None:
        self.trigger_stream = streams.cursor or streams.features
        self.trigger = bus.subscribe(self.trigger_stream, maxlen=256, mode="queue")
        self.latest = {name: bus.subscribe(name, maxlen=4, mode="latest")
                       for name in streams.names() if name != self.trigger_stream}

    def close(self) -> None:
        self.trigger.close()
        for subscription in self.latest.values():
            subscription.close()


def cursor_latency_us(graph: Any) -> dict | None:
    """End-to-end latency summary of the running ``cursor`` node of ``graph`` (None if there is none)."""
    if graph is None:
        return None
    for runner in graph.runners.values():
        node = getattr(runner, "node", None)
        if runner.spec.type_name in ("cursor", "closed_loop") and node is not None and hasattr(node, "end_to_end"):
            return node.end_to_end.summary_us()
    return None


def session_bin_ms(spec: Any) -> float:
    """The session's bin width (control period) in ms: its ``closed_loop`` or ``sim_participant`` node's ``loop_ms``."""
    for type_name in ("closed_loop", "sim_participant"):
        node = next((n for n in spec.nodes if n.type_name == type_name), None)
        if node is not None and "loop_ms" in node.params:
            return float(node.params["loop_ms"])
    return 20.0


def _quantiles_ms(values_ns: collections.deque) -> dict:
    if not values_ns:
        return {"last": None, "p50": None, "p99": None}
    array = np.fromiter(values_ns, dtype=np.float64) / 1e6
    p50, p99 = np.percentile(array, [50, 99])
    return {"last": round(float(array[-1]), 3), "p50": round(float(p50), 3), "p99": round(float(p99), 3)}


class CalibrationProgress:
    """Where a live calibration is: its stage, and the time left in the stage and in the whole calibration.

    The schedule is the decoder node's: for a ``closed_loop`` node the
    calibration blocks of its :class:`~neurolace.runtime.closed_loop.SessionPlan`
    (observation, first closed loop, ReFIT check; the Webgrid blocks after them
    are decoding), for a ``decoder`` node one observation block of
    ``calibration_s``. The feed calls :meth:`on_bin` once per control step with
    the block index the node published, and :meth:`on_fitted` on the node's
    ``decoder_fitted`` event. A fit runs after a block's last bin, so a block
    whose bins are all in, with a fit to come, is ``fitting``.

    Times left are in wall-clock seconds: the bins still to come divided by the
    bins per second the graph delivered over the last :data:`_RATE_WINDOW_S`
    (a graph slower than real time says so, ``speed`` < 1), never the nominal
    block length alone.

    Parameters
    ----------
    blocks : list of (name, kind, duration_s)
        The calibration blocks in order; ``kind`` of the
        :class:`~neurolace.runtime.closed_loop.BlockPlan` (``open-loop``,
        ``closed-loop``, ``refit``).
    bin_s : float
        Bin width (control period) in seconds.
    """

    _STAGE_OF_KIND = {"open-loop": "collecting", "closed-loop": "closed_loop", "refit": "refit"}

    def __init__(self, blocks: list[tuple[str, str, float]], bin_s: float) -> None:
        self.bin_s = check_positive(bin_s, "bin_s")
        self.blocks = [(name, kind, max(1, round(float(duration_s) / self.bin_s))) for name, kind, duration_s in blocks]
        self.block_index = 0
        self.bins_in_block = 0
        self.fitted = False
        self.total_bins = 0
        self._rate: collections.deque = collections.deque()  # (wall time ns, total bins)
        self._fitting_since_ns: int | None = None

    @classmethod
    def for_session(cls, spec: Any, streams: LiveStreams, calibration_s: float) -> CalibrationProgress | None:
        """The progress of the session's decoder node with a calibration of ``calibration_s``; None without one."""
        if streams.decoder_node is None or calibration_s <= 0:
            return None
        node = spec.node(streams.decoder_node)
        if node.type_name != "closed_loop":
            return cls([("observation", "open-loop", calibration_s)], session_bin_ms(spec) / 1e3)
        from neurolace.runtime.closed_loop import SessionPlan

        params = node.params
        plan = SessionPlan.build(seed=0, decoder=params["decoder"], grid_side=params["grid_side"],
                                 webgrid_seconds=params["webgrid_s"], n_webgrid_blocks=params["n_webgrid_blocks"],
                                 open_loop_seconds=calibration_s, closed_loop_seconds=params["closed_loop_s"],
                                 calibration_grid_side=params["calibration_grid_side"], variants=(params["refit"],))
        blocks = [(b.name, b.kind, b.duration_s) for b in plan.blocks if b.kind != "webgrid"]
        return cls(blocks, session_bin_ms(spec) / 1e3)

    def on_bin(self, block_index: int | None, time_ns: int) -> None:
        """One control step of the loop, in block ``block_index`` (None: the session publishes no blocks)."""
        if block_index is not None and block_index != self.block_index:
            self.block_index = block_index
            self.bins_in_block = 0
            self._fitting_since_ns = None
        else:
            self.bins_in_block += 1
        self.total_bins += 1
        self._rate.append((time_ns, self.total_bins))
        while time_ns - self._rate[0][0] > _RATE_WINDOW_S * 1e9:
            self._rate.popleft()

    def on_fitted(self) -> None:
        """The node fitted its first decoder."""
        self.fitted = True

    @property
    def stage(self) -> str:
        if self.block_index >= len(self.blocks) or (len(self.blocks) == 1 and self.fitted):
            return "done"
        _, kind, n_bins = self.blocks[self.block_index]
        next_kind = self.blocks[self.block_index + 1][1] if self.block_index + 1 < len(self.blocks) else None
        # the fit after the observation block, and ReFIT's fit after the first closed-loop block
        fit_follows = (kind == "open-loop" and not self.fitted) or (kind == "closed-loop" and next_kind == "refit")
        if fit_follows and self.bins_in_block >= n_bins - 1:
            return "fitting"
        return self._STAGE_OF_KIND[kind]

    def bins_per_s(self) -> float:
        """Bins the graph delivered per wall-clock second lately (nominal ``1 / bin_s`` until measured)."""
        if not self._rate:
            return 1.0 / self.bin_s
        (first_ns, first_bins), (last_ns, last_bins) = self._rate[0], self._rate[-1]
        span_s = (last_ns - first_ns) / 1e9
        return (last_bins - first_bins) / span_s if span_s >= 1.0 else 1.0 / self.bin_s

    def public(self, time_ns: int) -> dict:
        """The header's ``calibration`` object: stage, block, times left (wall-clock s), progress 0-1, speed."""
        stage = self.stage
        total = sum(n for _, _, n in self.blocks)
        if stage == "done":
            return {"stage": "done", "block": None, "stage_remaining_s": 0.0, "remaining_s": 0.0, "progress": 1.0,
                    "total_s": round(total * self.bin_s, 2), "speed": None, "fitting_s": None}
        name, _, n_bins = self.blocks[self.block_index]
        in_block = min(self.bins_in_block, n_bins)
        done_bins = sum(n for _, _, n in self.blocks[:self.block_index]) + in_block
        rate = max(self.bins_per_s(), 1e-3)
        fitting_s = None
        if stage == "fitting":
            if self._fitting_since_ns is None:
                self._fitting_since_ns = time_ns
            fitting_s = round((time_ns - self._fitting_since_ns) / 1e9, 1)
        return {
            "stage": stage,
            "block": name,
            "stage_remaining_s": round((n_bins - in_block) / rate, 1),
            "remaining_s": round((total - done_bins) / rate, 1),
            "progress": round(done_bins / total, 4),
            "total_s": round(total * self.bin_s, 2),
            "speed": round(rate * self.bin_s, 3),
            "fitting_s": fitting_s,
        }


class LiveSession:
    """A real-time session graph with dashboard controls and a frame feed.

    Parameters
    ----------
    session_id : str
        Name in URLs (``/api/sessions/<id>``).
    participant_id : str
        Whose data this session is (for :func:`neurolace.web.access.can_view`).
    spec : SessionSpec, optional
        The session to run; default the ``demo`` preset.
    bus_url : str, optional
        Bus URL (default in-process).
    """

    def __init__(self, session_id: str = "live", participant_id: str = "sim-001", *, spec: Any = None,
                 bus_url: str | None = None) -> None:
        from neurolace.runtime.presets import preset_session

        self.session_id = session_id
        self.participant_id = participant_id
        self.spec = spec if spec is not None else preset_session("demo")
        self.streams = LiveStreams.from_session(self.spec)
        self.bin_ms = session_bin_ms(self.spec)
        self.bus_url = bus_url
        decoder_node = self._decoder_spec()
        self.decoder = decoder_node.params["decoder"] if decoder_node else None
        self.calibration_s = float(decoder_node.params[self.streams.calibration_parameter]) if decoder_node else 0.0
        self.state = "stopped"
        self.error: str | None = None
        self.blocks: list[dict] = []
        self.summary: dict | None = None
        self._typing: dict | None = None  # a typing block's keyboard state (set_typing); None: Webgrid
        self._typing_keys: list | None = None  # its keys, in the next frame after they change and in snapshots
        self._typing_keys_sent = True
        self._lock = threading.RLock()
        self._graph = None
        self._bus = None
        self._subscription = None
        self._feed_thread: threading.Thread | None = None
        self._feed_stop = threading.Event()
        self._owns_bus = True
        self._listeners: list = []
        self._generation = 0  # bumped by start/stop, so a graph that finishes starting too late is dropped
        self._reset_feed_state()

    # graph control ----------------------------------------------------------------------------
    def _decoder_spec(self):
        if self.streams.decoder_node is None:
            return None
        return self.spec.node(self.streams.decoder_node)

    def _reset_feed_state(self) -> None:
        self.frame_sequence = 0
        self.latest_frame: bytes | None = None
        self.started_ns = now_ns()
        self._cursor = [0.5, 0.5, 0.0]
        self._target = [0.5, 0.5, 0.0]
        self._score = [0, 0, 0.0]
        self._link: dict | None = None  # the secure link's health (runtime.secure_link.LINK_STATUS_FIELDS)
        self._latency_ns: collections.deque = collections.deque(maxlen=500)  # recent: the live quantiles
        self._latency_log_ns: collections.deque = collections.deque(maxlen=60_000)  # 20 min of bins: export
        self._feature_counts: collections.deque = collections.deque()  # (time_ns, messages so far), last second
        self._feature_nbytes = 0
        self._features_seen = 0
        self._bins_seen = 0  # control steps (cursors; features without a cursor) of this run: the frame's bin_index
        self._last_features: np.ndarray | None = None
        self._latency_summary = _quantiles_ms(self._latency_ns)
        self._latency_summary_ns = 0
        self._score_history: collections.deque = collections.deque()  # (time_s, correct, incorrect)
        self.series: collections.deque = collections.deque(maxlen=1200)  # (time_s, ntpm, bps)
        self._last_series_s = 0.0
        self._block: dict | None = None
        self.progress = CalibrationProgress.for_session(self.spec, self.streams, self.calibration_s)
        self._block_message = None
        self._block_index: int | None = None
        self._recorder: dict | None = None  # the recorder node's state (kept after a stop)
        self._recorder_started_ns: int | None = None
        self._recorder_checked_ns = 0

    def start(self, *, decoder: str | None = None, calibration_s: float | None = None,
              wait: bool = False, timeout_s: float = 60.0) -> None:
        """(Re)start the graph: a new calibration block, then decoding with ``decoder``.

        The graph is built and started in a background thread (node setup takes
        a moment); ``wait`` blocks until it runs or failed.
        """
        if self.state == "watching":
            raise InvalidInputError("this session is watched, not run, by the dashboard: start and stop it "
                                    "where it runs")
        if decoder is not None:
            check_in(decoder, "decoder", LIVE_DECODERS)
        if calibration_s is not None:
            calibration_s = float(calibration_s)
            if not 0.0 <= calibration_s <= 600.0:
                raise InvalidInputError(f"calibration_s must be between 0 and 600 seconds, got {calibration_s:g}")
            spec = self._decoder_spec()
            if spec is not None:  # e.g. a closed_loop session always starts with an observation block
                parameter = spec.node_class.parameters[self.streams.calibration_parameter]
                try:
                    parameter.check(calibration_s)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"calibration_s for node {spec.name!r} ({spec.type_name}, "
                                            f"{self.streams.calibration_parameter}): {exc}") from None
        self.stop()
        with self._lock:
            if decoder is not None:
                self.decoder = decoder
            if calibration_s is not None:
                self.calibration_s = calibration_s
            self.state = "starting"
            self.error = None
            self._reset_feed_state()
            self._generation += 1
            generation = self._generation
        ready = threading.Event()
        thread = threading.Thread(target=self._start_graph, args=(ready, generation), daemon=True,
                                  name=f"live:{self.session_id}")
        thread.start()
        if wait:
            ready.wait(timeout_s)

    def _session_with_controls(self):
        import copy

        spec = copy.deepcopy(self.spec)
        if self.streams.decoder_node is not None:
            node = spec.node(self.streams.decoder_node)
            node.params["decoder"] = self.decoder
            node.params[self.streams.calibration_parameter] = self.calibration_s
            if node.type_name == "closed_loop":
                # the schedule's calibration blocks, then Webgrid until stopped (one block a live hour)
                node.params["webgrid_s"] = LIVE_WEBGRID_BLOCK_S
                node.params["n_webgrid_blocks"] = LIVE_WEBGRID_BLOCKS
        return spec

    def _start_graph(self, ready: threading.Event, generation: int) -> None:
        from neurolace.runtime.bus import open_bus
        from neurolace.runtime.bus_auth import whole_graph_bus_key
        from neurolace.runtime.graph import Graph, RunLog

        try:
            redis = bool(self.bus_url) and not self.bus_url.startswith("inprocess")
            bus = open_bus(self.bus_url, **({"key": whole_graph_bus_key()} if redis else {}))
            graph = Graph(self._session_with_controls(), bus, log=RunLog(echo=self._on_event))
            subscription = _FeedSubscriptions(bus, self.streams)
            graph.start()
        except (NeurolaceError, OSError, ImportError) as exc:  # shown on the dashboard; the server keeps running
            with self._lock:
                if generation == self._generation:
                    self.state = "failed"
                    self.error = f"{type(exc).__name__}: {exc}"
            ready.set()
            return
        with self._lock:
            current = generation == self._generation
            if current:
                self._bus, self._graph, self._owns_bus = bus, graph, True
                self.state = "calibrating" if self.calibration_s > 0 and self.decoder else "decoding"
                self._start_feed(subscription)
        if not current:  # stopped or restarted while this graph was starting
            graph.stop()
            subscription.close()
            bus.close()
        ready.set()

    def _start_feed(self, subscription) -> None:
        self._subscription = subscription
        self.started_ns = now_ns()
        self._feed_stop.clear()
        self._feed_thread = threading.Thread(target=self._feed, daemon=True, name=f"feed:{self.session_id}")
        self._feed_thread.start()

    def add_listener(self, callback) -> None:
        """Call ``callback()`` (from the feed thread; keep it tiny) after each new frame."""
        with self._lock:
            self._listeners = [*self._listeners, callback]

    def remove_listener(self, callback) -> None:
        with self._lock:
            self._listeners = [c for c in self._listeners if c is not callback]

    def watch(self, bus: Any) -> None:
        """Read the streams of a graph someone else runs on ``bus`` (controls other than blocks are off).

        This is how a program that runs its own session (``neurolace demo``, a
        notebook) shows it on the dashboard: pass the bus its graph publishes on.
        """
        self.stop()
        with self._lock:
            self._reset_feed_state()
            self._bus, self._owns_bus = bus, False
            self.state = "watching"
            self.error = None
            self._start_feed(_FeedSubscriptions(bus, self.streams))

    def _on_event(self, record: dict) -> None:
        if record["event"] == "decoder_fitted":
            with self._lock:
                if self.progress is not None:
                    self.progress.on_fitted()
                if self.state == "calibrating":
                    self.state = "decoding"
        elif record["event"] in ("decoder_fit_failed", "node_gave_up"):
            with self._lock:
                self.error = str(record.get("error", record["event"]))
                if record["event"] == "node_gave_up":
                    self.state = "failed"

    def stop(self) -> None:
        """Stop the graph (blocks already scored are kept)."""
        with self._lock:
            graph, bus, subscription, feed = self._graph, self._bus, self._subscription, self._feed_thread
            owns_bus = self._owns_bus
            self._generation += 1
            self._graph = self._bus = self._subscription = self._feed_thread = None
            if self._block is not None:
                self._finish_block(now_ns(), aborted=True)
            if self.state != "failed":
                self.state = "stopped"
        self._feed_stop.set()
        if feed is not None:
            feed.join(timeout=5.0)
        if graph is not None:
            self._recorder = self._recorder_state(graph, now_ns())  # its last counts, before it closes
            if self._recorder is not None:
                self._recorder["recording"] = False
            graph.stop()
        if subscription is not None:
            subscription.close()
        if bus is not None and owns_bus:
            bus.close()

    @property
    def running(self) -> bool:
        """Whether the feed reads a graph (run here, or watched)."""
        return self._subscription is not None

    def reset_measurements(self) -> None:
        """Forget the runtime's latency measurements so far (e.g. after calibration); no-op when not running."""
        graph = self._graph
        if graph is not None:
            graph.reset_measurements()

    def loop_latency_us(self) -> dict | None:
        """The cursor node's own end-to-end latency so far (``n``, ``p50_us``, ``p99_us``, ``max_us``), or None.

        Read from the running node (the runtime's report fills node summaries
        only when a node stops), so it is the runtime's measure, not the feed's.
        """
        return cursor_latency_us(self._graph)

    def graph_report(self) -> dict | None:
        """The runtime's per-node report of the running graph (latencies, CPU), or None."""
        graph = self._graph
        return graph.report() if graph is not None else None

    # timed blocks -----------------------------------------------------------------------------
    def start_block(self, duration_s: float, *, name: str | None = None) -> dict:
        """Score the next ``duration_s`` seconds of Webgrid as a block (1-3600 s)."""
        duration_s = check_positive(duration_s, "duration_s")
        if duration_s > 3600:
            raise InvalidInputError(f"duration_s must be at most 3600 seconds, got {duration_s:g}")
        with self._lock:
            if not self.running:
                raise InvalidInputError("the session is not running: start it before a timed block")
            if self.streams.score is None:
                raise InvalidInputError("this session has no Webgrid task to score a block on")
            if self._block is not None:
                raise InvalidInputError(f"block {self._block['name']!r} is still running")
            self._block = {"name": name or f"block-{len(self.blocks) + 1}", "duration_s": duration_s,
                           "start_ns": now_ns(), "start_score": list(self._score), "decoder": self.decoder,
                           "state": self.state}
            return self._public_block()

    def _public_block(self) -> dict | None:
        block = self._block
        if block is None:
            return None
        elapsed_s = (now_ns() - block["start_ns"]) / 1e9
        return {"name": block["name"], "duration_s": block["duration_s"],
                "remaining_s": round(max(0.0, block["duration_s"] - elapsed_s), 2)}

    def _finish_block(self, time_ns: int, *, aborted: bool = False) -> None:
        block = self._block
        self._block = None
        elapsed_s = (time_ns - block["start_ns"]) / 1e9
        correct = int(self._score[0] - block["start_score"][0])
        incorrect = int(self._score[1] - block["start_score"][1])
        duration_s = block["duration_s"] if not aborted else max(elapsed_s, 1e-3)
        ntpm = net_targets_per_minute(correct, incorrect, duration_s)
        self.blocks.append({
            "name": block["name"], "kind": "live-webgrid", "decoder": block["decoder"],
            "duration_s": round(duration_s, 3), "grid_side": self.streams.grid_side,
            "correct": correct, "incorrect": incorrect, "ntpm": ntpm,
            "bps": webgrid_bps(ntpm, self.streams.grid_side), "aborted": aborted,
        })

    # the feed ---------------------------------------------------------------------------------
    def _feed(self) -> None:
        subscriptions = self._subscription
        streams = self.streams
        features_latest = subscriptions.latest.get(streams.features)
        target_latest = subscriptions.latest.get(streams.target) if streams.target else None
        score_latest = subscriptions.latest.get(streams.score) if streams.score else None
        link_latest = subscriptions.latest.get(streams.link) if streams.link else None
        block_latest = subscriptions.latest.get(streams.block) if streams.block else None
        from neurolace.runtime.secure_link import LINK_STATUS_FIELDS
        while not self._feed_stop.is_set():
            message = subscriptions.trigger.get(timeout_s=0.1)
            if message is None:
                continue
            if message.stream == streams.cursor:
                payload = message.payload
                self._cursor = [float(payload[0]), float(payload[1]), float(payload[2])]
                self._bins_seen += 1
                latency_ns = message.timestamp_ns - message.origin_ns
                self._latency_ns.append(latency_ns)
                self._latency_log_ns.append(latency_ns)
                if self.progress is not None:
                    self.progress.on_bin(self._current_block(block_latest), message.received_ns or now_ns())
                if subscriptions.trigger.pending():
                    continue  # behind: skip to the newest cursor before drawing
                features = features_latest.latest()
                if features is not None:
                    self._features_seen = features_latest.received + features_latest.superseded
            else:
                features = message
                self._features_seen += 1
                self._bins_seen += 1
            if features is not None:
                self._last_features = np.asarray(features.payload)
            if target_latest is not None and (target := target_latest.latest()) is not None:
                self._target = [float(v) for v in target.payload[:3]]
            if score_latest is not None and (score := score_latest.latest()) is not None:
                self._score = [int(score.payload[0]), int(score.payload[1]), float(score.payload[2])]
            if link_latest is not None and (link := link_latest.latest()) is not None:
                self._link = {name: float(value) for name, value in zip(LINK_STATUS_FIELDS, link.payload)}
            if self._last_features is not None:
                self._make_frame(message.received_ns or now_ns())

    def _current_block(self, block_latest) -> int | None:
        """The block index the closed_loop node published last (None: the session publishes no blocks)."""
        if block_latest is None:
            return None
        message = block_latest.latest()
        if message is not None and message is not self._block_message:
            from neurolace.runtime.closed_loop import block_from_payload

            self._block_message = message
            self._block_index = block_from_payload(np.asarray(message.payload))[0]
        return self._block_index

    def _recorder_state(self, graph: Any, time_ns: int) -> dict | None:
        """The session's recorder node: file name, messages and bytes written, seconds since it opened."""
        if graph is None:
            return self._recorder
        for runner in graph.runners.values():
            node = getattr(runner, "node", None)
            writer = getattr(node, "writer", None)
            if runner.spec.type_name != "recorder" or writer is None:
                continue
            if self._recorder_started_ns is None:
                self._recorder_started_ns = time_ns
            path = node.path
            return {"node": runner.spec.name, "file": str(getattr(path, "name", path)), "recording": True,
                    "messages": int(writer.messages), "bytes": int(writer.bytes_written),
                    "elapsed_s": round((time_ns - self._recorder_started_ns) / 1e9, 1)}
        return None

    def _make_frame(self, time_ns: int) -> None:
        n = self.streams.n_channels
        payload = self._last_features
        self._feature_nbytes = payload.nbytes
        self._feature_counts.append((time_ns, self._features_seen))
        while time_ns - self._feature_counts[0][0] > 1_000_000_000:
            self._feature_counts.popleft()
        counts = np.clip(np.rint(payload[:n]), 0, 255).astype(np.uint8)
        channels = counts.tobytes()
        sbp_scale = None
        if payload.shape[0] >= 2 * n:
            sbp = np.asarray(payload[n:2 * n], dtype=np.float64)
            sbp_scale = float(sbp.max()) or 1.0
            channels += np.clip(np.rint(sbp / sbp_scale * 255), 0, 255).astype(np.uint8).tobytes()
        if time_ns - self._latency_summary_ns > 250_000_000:  # quantiles 4 times a second, not per frame
            self._latency_summary = _quantiles_ms(self._latency_ns)
            self._latency_summary_ns = time_ns
        time_s = (time_ns - self.started_ns) / 1e9
        if time_ns - self._recorder_checked_ns > 1_000_000_000:  # the recorder's counts once a second
            self._recorder = self._recorder_state(self._graph, time_ns)
            self._recorder_checked_ns = time_ns
        with self._lock:
            if self._block is not None and (time_ns - self._block["start_ns"]) / 1e9 >= self._block["duration_s"]:
                self._finish_block(time_ns)
            self._update_series(time_s)
            header = self._header(time_s, sbp_scale)
            self._typing_keys_sent = True
            self.latest_frame = encode_frame(header, channels)
            self.frame_sequence += 1
            listeners = self._listeners
        for callback in listeners:
            callback()

    def _update_series(self, time_s: float) -> None:
        if time_s - self._last_series_s < 1.0:
            return
        self._last_series_s = time_s
        history = self._score_history
        history.append((time_s, self._score[0], self._score[1]))
        while history and time_s - history[0][0] > BPS_WINDOW_S:
            history.popleft()
        first_s, first_correct, first_incorrect = history[0]
        if time_s - first_s < 1.0:
            return
        ntpm = net_targets_per_minute(self._score[0] - first_correct, self._score[1] - first_incorrect,
                                      time_s - first_s)
        self.series.append((round(time_s, 2), round(ntpm, 3), round(webgrid_bps(ntpm, self.streams.grid_side), 4)))

    def _header(self, time_s: float, sbp_scale: float | None) -> dict:
        first_ns, first_count = self._feature_counts[0]
        last_ns, last_count = self._feature_counts[-1]
        span_s = (last_ns - first_ns) / 1e9
        link_bytes = round((last_count - first_count) / span_s * self._feature_nbytes) if span_s > 0.2 else 0
        return {
            "type": "frame",
            "session_id": self.session_id,
            "seq": self.frame_sequence + 1,
            "run": self._generation,
            "bin_index": self._bins_seen,
            "bin_ms": self.bin_ms,
            "t_s": round(time_s, 3),
            "state": self.state,
            "decoder": self.decoder,
            "n_channels": self.streams.n_channels,
            "grid_side": self.streams.grid_side,
            "cursor": self._cursor,
            "target": self._target,
            "score": self._score,
            "latency_ms": self._latency_summary,
            "link_bytes_per_s": link_bytes,
            "link": self._link,
            "sbp_scale": sbp_scale,
            "series": list(self.series)[-3:],
            "block": self._public_block(),
            "n_blocks": len(self.blocks),
            "calibration": self.progress.public(now_ns()) if self.progress is not None else None,
            "recorder": self._recorder,
            "task": "webgrid" if self._typing is None else "typing",
            "typing": self._typing if self._typing_keys_sent else {**self._typing, "keys": self._typing_keys},
        }

    # snapshots for the REST API ---------------------------------------------------------------
    def snapshot(self) -> dict:
        """Everything but the channel bytes: state, controls, the series, blocks, summary."""
        with self._lock:
            return {
                "session_id": self.session_id,
                "participant_id": self.participant_id,
                "name": self.spec.name,
                "state": self.state,
                "error": self.error,
                "decoder": self.decoder,
                "decoders": list(LIVE_DECODERS),
                "calibration_s": self.calibration_s,
                "n_channels": self.streams.n_channels,
                "grid_side": self.streams.grid_side,
                "streams": self.streams.names(),
                "score": self._score,
                "latency_ms": _quantiles_ms(self._latency_ns),
                "series": [list(point) for point in self.series],
                "blocks": list(self.blocks),
                "block": self._public_block(),
                "summary": self.summary,
                "frames": self.frame_sequence,
                "run": self._generation,
                "calibration": self.progress.public(now_ns()) if self.progress is not None else None,
                "recorder": self._recorder,
                "typing_keys": self._typing_keys,
            }

    def export(self) -> dict:
        """A session summary for ``neurolace report --session-json``: blocks, BPS series, latency samples."""
        with self._lock:
            latency_ms = (np.fromiter(self._latency_log_ns, dtype=np.float64) / 1e6).round(4).tolist()
            return {
                "session_id": self.session_id,
                "participant_id": self.participant_id,
                "decoder": self.decoder,
                "channels": self.streams.n_channels,
                "grid_side": self.streams.grid_side,
                "blocks": list(self.blocks),
                "series": [list(point) for point in self.series],
                "latency_ms": latency_ms,
                "latency_definition": "cursor publish time minus origin_ns of the feature bin it came from",
            }

    def set_typing(self, state: dict | None, keys: list | None = None) -> None:
        """Carry a typing block's state (:func:`neurolace.web.typing_view.typing_state`) in the frames; None: Webgrid.

        ``keys`` (:func:`~neurolace.web.typing_view.keyboard_keys`): give them when they change.
        """
        with self._lock:
            self._typing = state
            if keys is not None or state is None:
                self._typing_keys, self._typing_keys_sent = keys, state is None

    def set_summary(self, summary: dict) -> None:
        """Attach a finished session's summary (``neurolace demo --json``) for the BPS-per-block chart."""
        if not isinstance(summary, dict):
            raise InvalidInputError(f"summary must be a dict, got {type(summary).__name__}")
        with self._lock:
            self.summary = summary

    def wait_for_frames(self, n_frames: int, timeout_s: float = 30.0) -> bool:
        """Block until at least ``n_frames`` frames were made (for scripts and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.frame_sequence >= n_frames:
                return True
            if self.state == "failed":
                return False
            time.sleep(0.02)
        return False
