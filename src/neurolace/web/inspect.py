"""The channel inspector's server side: one channel's snippets, rate, filtered trace and noise; masks.

What this module owns:

- :func:`with_channel_mask`: a live session's graph with a ``channel_mask`` node
  (:mod:`neurolace.runtime.nodes.mask`) between the feature source and the
  decoder, so a channel the researcher masks reads 0, as a dead electrode, in
  every bin the decoder sees (the dashboard's own feed still reads the
  unmasked features, so the heat map keeps showing what the channel does);
- :class:`ChannelTap`: while someone inspects, the ADC codes of the running
  simulated implant (:meth:`ImplantFeatureSource.take_products
  <neurolace.sim.neural_source.ImplantFeatureSource.take_products>`), folded
  per inspected channel into a filtered trace (the chain's band-pass on the
  channel minus the common average, as the implant's chain references it),
  its noise (MAD, µV), detections at the inspector's threshold multiple with
  their waveform snippets, and rates; and, over all channels, the fraction of
  samples at the ADC rails;
- :func:`channel_flags`: dead, noisy and saturated channels (:data:`FLAG_RULES`);
- :class:`ChannelInspector`: per session, the mask, the per-channel threshold
  multiples and the tap; :func:`register_inspector` adds its endpoints.

Endpoints (a token as for every dashboard endpoint; a session the caller may
not see answers 404; masks and thresholds are a researcher's, 403 otherwise;
each change is written to the site's audit log when one is configured, and a
change that cannot be recorded is refused, 503):

==============================================================  ==========================================
``GET  /api/sessions/{id}/inspector``                            mask, thresholds, flags of every channel
``GET  /api/sessions/{id}/channels/{channel}``                   one channel: trace, snippets, rate, noise
``PUT  /api/sessions/{id}/inspector/mask``                       ``{channels: [..], masked: bool}``
``PUT  /api/sessions/{id}/inspector/threshold``                  ``{channel, multiple}`` (-12 .. -2 x RMS)
==============================================================  ==========================================

The tap runs only while a dashboard asked for a channel or the flags in the last
:data:`TAP_IDLE_S` seconds, on its own thread, never in the loop's: it takes
what the implant node kept since the last look (the node only appends
references to arrays it made anyway). A session without raw samples (the
``counts`` path, a watched bus) answers with ``raw: false`` and the reason.
"""


import collections
import contextlib
import copy
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.dsp.defaults import DEFAULT_DEAD_TIME_MS, DEFAULT_THRESHOLD
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.nodes.mask import format_channel_list, mask_features, parse_channel_list

__all__ = ["AUDIT_VIEW_INTERVAL_S", "CHANGE_AUDIT_ACTION", "ELECTRODES_PER_THREAD", "FLAG_RULES", "MASK_NODE", "MASK_STREAM", "THRESHOLD_RANGE", "ChannelInspector",
           "ChannelTap", "FlagRules", "channel_flags", "inspector_of", "register_inspector", "with_channel_mask"]

#: name of the mask node :func:`with_channel_mask` inserts, and the stream the inspector publishes the mask on
MASK_NODE = "inspector_mask"
MASK_STREAM = "inspector.mask"
#: audit action of a mask or threshold change; its details' "resource" ("channel_mask" or
#: "channel_threshold") and "change" say what was changed
CHANGE_AUDIT_ACTION = "channel_setting"
#: the inspector's views (polled twice a second) are written to the audit log once per this many seconds
#: per user, session and resource; every change is written
AUDIT_VIEW_INTERVAL_S = 60.0
#: electrodes along one thread (the heat map's rows; channel = thread * 16 + electrode)
ELECTRODES_PER_THREAD = 16
#: allowed threshold multiples of the noise RMS (negative: downward crossings, as the chain detects)
THRESHOLD_RANGE = (-12.0, -2.0)
#: the tap stops this long after the last request (the implant node stops keeping its samples)
TAP_IDLE_S = 10.0
#: how often the tap takes the implant's samples
TAP_PERIOD_S = 0.05
#: filtered trace kept per inspected channel, and how much of it a request returns
TRACE_KEEP_S = 2.0
TRACE_SHOWN_S = 0.1
#: snippet window around a crossing, ms before and after, and how many snippets are kept
SNIPPET_BEFORE_MS = 0.6
SNIPPET_AFTER_MS = 1.2
SNIPPETS_KEPT = 40
#: rate bins and the history a request returns
RATE_BIN_S = 0.1
RATE_HISTORY_S = 20.0
#: window of the noise estimate of an inspected channel and of the rail fraction of every channel
NOISE_WINDOW_S = 1.0


@dataclass(frozen=True)
class FlagRules:
    """When a channel is flagged, from its noise RMS (µV, the chain's MAD estimate) and ADC rails.

    Attributes
    ----------
    dead_below_uv : float
        Dead: noise RMS below this (a flat or disconnected electrode; a channel the
        implant reads as constant has 0).
    noisy_above_uv : float
        Noisy: noise RMS above this (about 3 x the simulated implant's ~10 µV; hash or
        a loose contact).
    saturated_above : float
        Saturated: more than this fraction of the last second's samples at an ADC rail
        (code 0 or the top code) -- a clipped amplifier. A dead channel (flat at a rail) is
        dead, not saturated.
    """

    dead_below_uv: float = 2.0
    noisy_above_uv: float = 30.0
    saturated_above: float = 0.01

    def to_dict(self) -> dict:
        return {"dead": f"noise RMS < {self.dead_below_uv:g} µV", "noisy": f"noise RMS > {self.noisy_above_uv:g} µV",
                "saturated": f"> {100 * self.saturated_above:g} % of samples at an ADC rail in the last second",
                "dead_below_uv": self.dead_below_uv, "noisy_above_uv": self.noisy_above_uv,
                "saturated_above": self.saturated_above}


FLAG_RULES = FlagRules()


def channel_flags(noise_uv: Any, rail_fraction: Any = None, rules: FlagRules = FLAG_RULES) -> dict[str, list[int]]:
    """Dead, noisy and saturated channels.

    Parameters
    ----------
    noise_uv : array-like, shape (n_channels,) or None
        Noise RMS of each channel in µV (None: no estimate yet, nothing flagged on it).
    rail_fraction : array-like, shape (n_channels,), optional
        Fraction of recent samples at an ADC rail.
    rules : FlagRules

    Returns
    -------
    dict
        ``{"dead": [...], "noisy": [...], "saturated": [...]}``: channel indices, each channel in at most one.
    """
    dead = np.zeros(0, dtype=bool)
    noisy = np.zeros(0, dtype=bool)
    if noise_uv is not None:
        noise = np.asarray(noise_uv, dtype=np.float64).reshape(-1)
        dead = noise < rules.dead_below_uv
        noisy = ~dead & (noise > rules.noisy_above_uv)
    saturated = np.zeros(0, dtype=bool)
    if rail_fraction is not None:
        rails = np.asarray(rail_fraction, dtype=np.float64).reshape(-1)
        saturated = rails > rules.saturated_above
        if dead.size == saturated.size:
            saturated &= ~dead
            noisy &= ~saturated
    return {"dead": np.flatnonzero(dead).tolist(), "noisy": np.flatnonzero(noisy).tolist(),
            "saturated": np.flatnonzero(saturated).tolist()}


def with_channel_mask(spec: Any, masked: str = "") -> Any:
    """A copy of session ``spec`` whose decoder reads its features through a ``channel_mask`` node.

    The node (:data:`MASK_NODE`) takes the stream the decoder node (``closed_loop`` or
    ``decoder``) read, and follows the mask published on :data:`MASK_STREAM`.
    A session without a decoder node, or one that has the node already, is returned as it is.
    """
    from neurolace.runtime.session_file import NodeSpec

    by_type = {node.type_name: node for node in reversed(spec.nodes)}
    decoder = by_type.get("closed_loop") or by_type.get("decoder")
    if decoder is None or any(node.name == MASK_NODE for node in spec.nodes):
        return spec
    source = by_type.get("dsp") or by_type.get("sim_participant")
    if source is None:
        return spec
    result = copy.deepcopy(spec)
    decoder = result.node(decoder.name)
    n_channels = int(source.params["n_channels"])
    parse_channel_list(masked, n_channels)
    node = NodeSpec(name=MASK_NODE, type_name="channel_mask", params={"n_channels": n_channels, "masked": masked},
                    inputs={"features": list(decoder.inputs["features"])}, feedback={"mask": MASK_STREAM},
                    line=decoder.line)
    decoder.inputs["features"] = [f"{MASK_NODE}.features"]
    result.nodes.insert(result.nodes.index(decoder), node)
    return result


def _running_graph(session: Any):
    """The graph a live session runs, or None.

    :class:`~neurolace.web.live.LiveSession` keeps it private; this is the one
    place the inspector reads it (a public ``LiveSession.graph`` would replace it).
    """
    return getattr(session, "_graph", None)


def _implant_source(graph: Any):
    """The running ``sim_participant`` node's implant feature source (raw samples), or None."""
    if graph is None:
        return None
    for runner in list(graph.runners.values()):
        node = getattr(runner, "node", None)
        source = getattr(node, "source", None)
        if runner.spec.type_name == "sim_participant" and callable(getattr(source, "take_products", None)):
            return source
    return None


class _ChannelProbe:
    """One inspected channel: its filtered trace, noise, detections and snippets, fed block by block."""

    def __init__(self, channel: int, fs_hz: float, gain_uv: float, multiple: float, band_hz: tuple) -> None:
        from neurolace.dsp.filters import MovingAverageBandpass

        self.channel = channel
        self.fs_hz = fs_hz
        self.multiple = multiple
        # the tap thread feeds, the server's threads change the threshold and read the view: one at a time
        self._lock = threading.RLock()
        self.bandpass = MovingAverageBandpass(fs_hz, 1, low_hz=band_hz[0], high_hz=band_hz[1], scale=gain_uv)
        self.detector = None
        self.detector_offset = 0
        self.keep = round(TRACE_KEEP_S * fs_hz)
        self.trace = np.zeros(0, dtype=np.float32)
        self.first = 0  # filtered-clock index of trace[0]
        self.clock0 = None  # chain sample clock of the first filtered sample (before the filter's delay)
        self.noise_uv: float | None = None
        self.before = round(SNIPPET_BEFORE_MS * fs_hz / 1e3)
        self.after = round(SNIPPET_AFTER_MS * fs_hz / 1e3)
        self.pending: collections.deque = collections.deque()
        self.snippets: collections.deque = collections.deque(maxlen=SNIPPETS_KEPT)
        self.detections: collections.deque = collections.deque(maxlen=4000)  # sample indices, filtered clock
        self.chain_crossings: collections.deque = collections.deque(maxlen=4000)  # chain clock
        self.last_request = time.monotonic()

    def feed(self, referenced: np.ndarray, clock: int, chain_events: np.ndarray) -> None:
        """Fold in the next block (under the probe's lock)."""
        with self._lock:
            self._feed(referenced, clock, chain_events)

    def _feed(self, referenced: np.ndarray, clock: int, chain_events: np.ndarray) -> None:
        """Fold in the next block: ``referenced`` codes of this channel minus the common average, shape (n,)."""
        if self.clock0 is None:
            self.clock0 = clock
        filtered = self.bandpass.process(referenced[:, np.newaxis])[:, 0].astype(np.float32)
        self.trace = np.concatenate([self.trace, filtered])
        if self.trace.size > self.keep:
            drop = self.trace.size - self.keep
            self.trace = self.trace[drop:]
            self.first += drop
        stop = self.first + self.trace.size
        window = min(self.trace.size, round(NOISE_WINDOW_S * self.fs_hz))
        if window >= round(0.2 * self.fs_hz):
            from neurolace.dsp.noise import mad_noise

            self.noise_uv = float(mad_noise(self.trace[-window:]))
        if self.noise_uv and self.detector is None:  # detection starts once the noise is known
            self._start_detector(stop)
        elif self.detector is not None:
            events = self.detector.process(filtered[:, np.newaxis], np.array([self.noise_uv]))
            found = [int(index) + self.detector_offset for index in events.sample_index]
            self.pending.extend(found)
            self.detections.extend(found)
            # the chain's crossings over the same span as the inspector's own detections (from the block after
            # its detector started), so the two rates compare like with like after every restart
            self.chain_crossings.extend(int(index) for index in chain_events)
        while self.pending and self.pending[0] + self.after <= stop:
            index = self.pending.popleft()
            start = index - self.before - self.first
            if start >= 0:
                self.snippets.append(self.trace[start:start + self.before + self.after].copy())

    def _start_detector(self, offset: int) -> None:
        """A fresh detector at this threshold multiple, from filtered sample ``offset`` on."""
        from neurolace.dsp.detection import ThresholdDetector

        self.detector = ThresholdDetector(self.fs_hz, 1, threshold=self.multiple, dead_time_ms=DEFAULT_DEAD_TIME_MS)
        self.detector_offset = offset

    def set_multiple(self, multiple: float) -> None:
        """Detect at ``multiple`` x noise RMS from now on (earlier snippets and rates are forgotten)."""
        with self._lock:
            self._set_multiple(multiple)

    def _set_multiple(self, multiple: float) -> None:
        self.multiple = multiple
        self.pending.clear()
        self.snippets.clear()
        self.detections.clear()
        self.chain_crossings.clear()  # both rates start again together, over the same span
        if self.detector is not None:
            self._start_detector(self.first + self.trace.size)

    def view(self, delay_samples: int) -> dict:
        """The channel's view now (under the probe's lock)."""
        with self._lock:
            return self._view(delay_samples)

    def _view(self, delay_samples: int) -> dict:
        fs = self.fs_hz
        shown = min(self.trace.size, round(TRACE_SHOWN_S * fs))
        stop = self.first + self.trace.size
        bins = round(RATE_HISTORY_S / RATE_BIN_S)
        per_bin = RATE_BIN_S * fs

        def rates(indices, offset: int) -> list[float]:
            array = np.fromiter(indices, dtype=np.int64) + offset
            edges_from = stop - bins * per_bin
            kept = array[array >= edges_from]
            counts = np.bincount(((kept - edges_from) // per_bin).astype(np.int64), minlength=bins)[:bins]
            return (counts / RATE_BIN_S).round(2).tolist()

        clock0 = self.clock0 or 0
        return {
            "noise_uv": None if self.noise_uv is None else round(self.noise_uv, 3),
            "threshold_multiple": self.multiple,
            "threshold_uv": None if self.noise_uv is None else round(self.multiple * self.noise_uv, 3),
            "trace": {"t0_s": round((clock0 + stop - shown - delay_samples) / fs, 6), "dt_s": 1 / fs,
                      "uv": self.trace[self.trace.size - shown:].round(2).tolist()},
            "snippets": {"t_ms": ((np.arange(self.before + self.after) - self.before) / fs * 1e3).round(4).tolist(),
                         "uv": [snippet.round(2).tolist() for snippet in self.snippets]},
            "rate": {"bin_s": RATE_BIN_S, "t_end_s": round((clock0 + stop - delay_samples) / fs, 3),
                     "hz": rates(self.detections, 0),
                     "chain_hz": rates(self.chain_crossings, -clock0 + delay_samples)},
        }


class ChannelTap:
    """Raw samples of a live session's simulated implant, folded per inspected channel (see module docstring).

    Parameters
    ----------
    session : LiveSession
    rules : FlagRules
    """

    def __init__(self, session: Any, rules: FlagRules = FLAG_RULES) -> None:
        self.session = session
        self.rules = rules
        self._lock = threading.Lock()
        self._probes: dict[int, _ChannelProbe] = {}
        self._wanted: dict[int, float] = {}  # channels asked for before a source could be read: their multiples
        self._source = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_request = 0.0
        self._expected_clock: int | None = None
        self._rails = None  # (samples counted, at-rail counts per channel) of the window being filled
        self.rail_fraction: np.ndarray | None = None
        self.samples_taken = 0
        self.gaps = 0
        #: a graph run in this process that the session only watches (see ChannelInspector.attach)
        self.attached = None

    # life cycle ---------------------------------------------------------------------------------------
    def touch(self) -> None:
        """A dashboard asked for something: run (again) for the next :data:`TAP_IDLE_S` seconds."""
        with self._lock:
            self._last_request = time.monotonic()
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"inspector:{self.session.session_id}")
                self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=2.0)
        self._release()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _release(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.keep_products = False
            source.take_products()

    def _run(self) -> None:
        try:
            while not self._stop.wait(TAP_PERIOD_S):
                if time.monotonic() - self._last_request > TAP_IDLE_S:
                    break
                self.poll()
        finally:
            self._release()

    # data -----------------------------------------------------------------------------------------------
    def graph(self):
        """The graph whose implant is read: the attached one, else the one the session runs."""
        return self.attached if self.attached is not None else _running_graph(self.session)

    def source(self):
        return _implant_source(self.graph())

    def raw_reason(self) -> str | None:
        """None when raw samples can be read, else why not."""
        if self.session.state == "watching" and self.attached is None:
            return "this session is watched on a bus: its raw samples stay in the process that runs it"
        graph = self.graph()
        if graph is None:
            return "the session is not running"
        if self.source() is None:
            return "the session's participant sends counts only (path = 'counts'): no raw samples to inspect"
        return None

    def poll(self) -> None:
        """Take the implant's new samples and fold them in (the thread calls this every TAP_PERIOD_S)."""
        source = self.source()
        if source is not self._source:
            self._release()
            self._source = source
            if source is not None:
                source.keep_products = True
            self._reset()
            return
        if source is None:
            return
        with self._lock:
            wanted, self._wanted = self._wanted, {}
        for channel, multiple in wanted.items():
            self.watch_channel(channel, multiple)
        products = source.take_products()
        if products is None:
            return
        codes, clock = products.raw_codes, products.raw_clock
        if self._expected_clock is not None and clock != self._expected_clock:
            self.gaps += 1  # a new block, or a block the two threads raced over: start the channels again
            self._reset()
        self._expected_clock = clock + codes.shape[0]
        self.samples_taken += codes.shape[0]
        self._count_rails(codes, source)
        with self._lock:
            probes = list(self._probes.values())
        if not probes:
            return
        dead = np.asarray(getattr(source, "dead_channels", ()), dtype=np.int64)
        live = np.ones(codes.shape[1], dtype=bool)
        live[dead] = False
        reference = codes[:, live].mean(axis=1, dtype=np.float64) if live.any() else 0.0
        events = products.events
        for probe in probes:
            chain_events = events.sample_index[events.channel_index == probe.channel]
            probe.feed(codes[:, probe.channel] - reference, clock, chain_events)

    def _reset(self) -> None:
        """Start every watched channel again (a new source or block, or a gap in the samples)."""
        with self._lock:
            wanted = {channel: probe.multiple for channel, probe in self._probes.items()}
            wanted.update(self._wanted)
            self._wanted = {}
            self._probes.clear()
        self._expected_clock = None
        self._rails = None
        for channel, multiple in wanted.items():
            if self._probe(channel, multiple) is None:
                with self._lock:
                    self._wanted[channel] = multiple

    def _count_rails(self, codes: np.ndarray, source: Any) -> None:
        top = source.stream.parameters.adc_max_code if source.stream is not None else 1023
        at_rail = np.count_nonzero((codes <= 0) | (codes >= top), axis=0)
        counted, totals = self._rails if self._rails is not None else (0, np.zeros(codes.shape[1], np.int64))
        counted, totals = counted + codes.shape[0], totals + at_rail
        if counted >= NOISE_WINDOW_S * source.stream.fs_hz:
            self.rail_fraction = totals / counted
            self._rails = None
        else:
            self._rails = (counted, totals)

    def _probe(self, channel: int, multiple: float) -> _ChannelProbe | None:
        source = self._source
        if source is None or source.stream is None or source.chain is None:
            return None
        chain = source.chain
        band = (getattr(chain.bandpass, "low_hz", 300.0), getattr(chain.bandpass, "high_hz", 6000.0))
        probe = _ChannelProbe(channel, source.stream.fs_hz, source.stream.gain_uv, multiple, band)
        with self._lock:
            self._probes[channel] = probe
        return probe

    def watch_channel(self, channel: int, multiple: float) -> "_ChannelProbe | None":
        """The probe of ``channel`` (made once the tap reads a source), detecting at ``multiple`` x noise RMS."""
        self.touch()
        now = time.monotonic()
        with self._lock:
            probe = self._probes.get(channel)
            for other in [c for c, p in self._probes.items() if c != channel and now - p.last_request > TAP_IDLE_S]:
                del self._probes[other]
        if probe is None:
            probe = self._probe(channel, multiple)
        if probe is None:
            with self._lock:
                self._wanted[channel] = multiple
            return None
        if probe.multiple != multiple:
            probe.set_multiple(multiple)
        probe.last_request = now
        return probe

    def noise_uv(self) -> np.ndarray | None:
        """The implant chain's own noise estimate of every channel (µV), None before its first window."""
        source = self._source or self.source()
        chain = getattr(source, "chain", None)
        return None if chain is None or chain.noise_uv is None else np.asarray(chain.noise_uv)

    def delay_samples(self) -> int:
        source = self._source
        return 0 if source is None or source.chain is None else int(source.chain.delay_samples)


#: the inspector of each live session (weakly held: it goes with its session)
_INSPECTORS: "weakref.WeakKeyDictionary[Any, ChannelInspector]" = weakref.WeakKeyDictionary()


def inspector_of(session: Any) -> "ChannelInspector | None":
    """The :class:`ChannelInspector` :func:`register_inspector` gave ``session`` (None if it has none)."""
    return _INSPECTORS.get(session)


class ChannelInspector:
    """One live session's inspector: the channel mask the decoder obeys, threshold multiples, the tap.

    Parameters
    ----------
    session : LiveSession
        Its ``spec`` gets the mask node (:func:`with_channel_mask`) unless the session is only
        watched; install before the session starts (a running graph gets it at its next start).
    """

    def __init__(self, session: Any, rules: FlagRules = FLAG_RULES) -> None:
        self.session = session
        self.n_channels = int(session.streams.n_channels)
        self.rules = rules
        self.mask = np.zeros(self.n_channels, dtype=bool)
        self.multiples: dict[int, float] = {}
        self.tap = ChannelTap(session, rules)
        self._lock = threading.Lock()
        session.spec = with_channel_mask(session.spec)
        self.decoder_masked = any(node.name == MASK_NODE for node in session.spec.nodes)
        _INSPECTORS[session] = self

    def default_multiple(self) -> float:
        source = self.tap.source()
        chain = getattr(source, "chain", None)
        return float(chain.detector.threshold) if chain is not None else DEFAULT_THRESHOLD

    def check_channel(self, channel: Any) -> int:
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
            raise InvalidInputError(f"channel must be an integer, got {channel!r:.40}")
        if not 0 <= int(channel) < self.n_channels:
            raise InvalidInputError(f"channel must be in [0, {self.n_channels}), got {channel}")
        return int(channel)

    def check_mask(self, channels: Any, masked: Any) -> list[int]:
        """The channel indices of a mask change, checked (``channels`` a list, ``masked`` a bool)."""
        if not isinstance(channels, list) or len(channels) > self.n_channels:
            raise InvalidInputError(f"channels must be a list of at most {self.n_channels} channel indices")
        if not isinstance(masked, bool):
            raise InvalidInputError(f"masked must be true or false, got {masked!r:.40}")
        return [self.check_channel(channel) for channel in channels]

    def set_mask(self, channels: list, masked: bool) -> list[int]:
        """Mask (or unmask) ``channels`` for the decoder; returns every masked channel."""
        indices = self.check_mask(channels, masked)
        with self._lock:
            mask = self.mask.copy()
            mask[indices] = masked
            self.mask = mask
            if self.decoder_masked:  # the next start of the graph begins with this mask
                self.session.spec.node(MASK_NODE).params["masked"] = format_channel_list(mask)
            self._publish(mask)
        return np.flatnonzero(mask).tolist()

    def attach(self, graph: Any) -> None:
        """Inspect ``graph``, run in this process and watched by the session (``LiveSession.watch``).

        Its implant's samples are read, and the mask is published on its bus (its spec needs the mask
        node for the decoder to obey it: build it with :func:`with_channel_mask`).
        """
        self.tap.attached = graph
        self.decoder_masked = any(runner == MASK_NODE for runner in graph.runners)

    def _publish(self, mask: np.ndarray) -> None:
        graph = self.tap.graph()
        if graph is None or not self.decoder_masked:
            return
        graph.bus.publish(Message(stream=MASK_STREAM, payload=mask.astype(np.float32), origin_ns=now_ns()))

    def check_threshold(self, channel: Any, multiple: Any) -> tuple[int, float]:
        """``(channel, multiple)`` of a threshold change, checked (multiple in :data:`THRESHOLD_RANGE`)."""
        channel = self.check_channel(channel)
        if isinstance(multiple, bool) or not isinstance(multiple, (int, float)) or not np.isfinite(multiple):
            raise InvalidInputError(f"multiple must be a number, got {multiple!r:.40}")
        low, high = THRESHOLD_RANGE
        if not low <= float(multiple) <= high:
            raise InvalidInputError(f"multiple must be between {low:g} and {high:g} (x noise RMS), got {multiple:g}")
        return channel, float(multiple)

    def set_threshold(self, channel: Any, multiple: Any) -> float:
        """The inspector's threshold multiple for ``channel`` (its detections, snippets and rate)."""
        channel, multiple = self.check_threshold(channel, multiple)
        with self._lock:
            self.multiples[channel] = multiple
        return multiple

    def masked_features(self, features: np.ndarray) -> np.ndarray:
        """What the decoder sees of ``features`` under the current mask (the mask node's rule)."""
        return mask_features(np.asarray(features), self.mask)

    def state(self) -> dict:
        """Mask, thresholds and flags of every channel (the heat map's overlay)."""
        self.tap.touch()
        noise = self.tap.noise_uv()
        return {
            "session_id": self.session.session_id,
            "n_channels": self.n_channels,
            "electrodes_per_thread": ELECTRODES_PER_THREAD,
            "masked": np.flatnonzero(self.mask).tolist(),
            "decoder_masked": self.decoder_masked,
            "threshold_multiples": {str(c): m for c, m in sorted(self.multiples.items())},
            "default_multiple": self.default_multiple(),
            "threshold_range": list(THRESHOLD_RANGE),
            "flags": channel_flags(noise, self.tap.rail_fraction, self.rules),
            "flag_rules": self.rules.to_dict(),
            "noise_uv_median": None if noise is None else round(float(np.median(noise)), 3),
            "raw": self.tap.raw_reason() is None,
            "raw_reason": self.tap.raw_reason(),
        }

    def channel(self, channel: Any) -> dict:
        """One channel: where it is, its flags and mask, and (with raw samples) trace, snippets, rate, noise."""
        channel = self.check_channel(channel)
        multiple = self.multiples.get(channel, self.default_multiple())
        reason = self.tap.raw_reason()
        probe = self.tap.watch_channel(channel, multiple) if reason is None else None
        noise = self.tap.noise_uv()
        flags = channel_flags(noise, self.tap.rail_fraction, self.rules)
        view = {
            "channel": channel, "thread": channel // ELECTRODES_PER_THREAD,
            "electrode": channel % ELECTRODES_PER_THREAD, "n_channels": self.n_channels,
            "masked": bool(self.mask[channel]), "decoder_masked": self.decoder_masked,
            "flags": [name for name, channels in flags.items() if channel in channels],
            "chain_noise_uv": None if noise is None else round(float(noise[channel]), 3),
            "threshold_multiple": multiple, "raw": reason is None, "raw_reason": reason,
        }
        if probe is not None:
            view.update(probe.view(self.tap.delay_samples()))
            view["ready"] = probe.noise_uv is not None
        return view

    def close(self) -> None:
        self.tap.close()


def register_inspector(app: Any) -> dict[str, ChannelInspector]:
    """Give every live session of ``app`` (a FastAPI app of :func:`~neurolace.web.app.create_app`) an inspector.

    Adds the endpoints of the module docstring; the inspectors are ``app.state.inspectors`` (by session id).
    Call it before the sessions start, so their graphs carry the mask node.
    """
    from fastapi import Body, HTTPException, Request

    from neurolace.web.auth import AuthError, request_user

    store, access, sessions = app.state.store, app.state.access, app.state.sessions
    inspectors = {session_id: ChannelInspector(session) for session_id, session in sessions.items()}
    app.state.inspectors = inspectors

    def caller(request: Request):
        return request_user(store, request)

    recorded: dict[tuple[str, str, str], float] = {}  # (user, session, resource) -> when last written to the log

    def visible(session_id: str, user, resource: str) -> ChannelInspector:
        """The session's inspector if ``user`` may see it (404 otherwise).

        A dashboard polls these endpoints twice a second: the decision is taken every time, but
        recorded in the audit log once per :data:`AUDIT_VIEW_INTERVAL_S` per user, session and resource.
        """
        inspector = inspectors.get(session_id)
        key = (user.name, session_id, resource)
        record = time.monotonic() - recorded.get(key, -AUDIT_VIEW_INTERVAL_S) >= AUDIT_VIEW_INTERVAL_S
        try:
            if inspector is None:
                allowed = False
            elif record:
                allowed = access.check(user, inspector.session.participant_id, resource=resource,
                                       session_id=session_id)
                recorded[key] = time.monotonic()
            else:  # a refusal is always written
                allowed = access.can_view(user, inspector.session.participant_id) or access.check(
                    user, inspector.session.participant_id, resource=resource, session_id=session_id)
        except AuthError as exc:
            raise HTTPException(exc.status, detail=exc.reason) from exc
        if not allowed:
            raise HTTPException(404, detail=f"unknown session id {session_id[:64]!r}")
        return inspector

    def change(request: Request, session_id: str, body: Any, fields: tuple[str, ...], usage: str,
               setting: str) -> Any:
        """A researcher's change of ``setting`` ("mask" or "threshold"): checked, recorded, then applied.

        The entry is written before the change (a log that cannot write refuses it, 503).
        """
        user = caller(request)  # who asks comes first: no token is a 401 whatever the body
        inspector = visible(session_id, user, "inspector")
        if user.role != "researcher":
            raise HTTPException(403, detail=f"a {user.role} cannot change masks or thresholds (researchers can)")
        if not isinstance(body, dict) or set(body) != set(fields):
            raise HTTPException(400, detail=f"body must be {usage}")
        values = [body[name] for name in fields]
        try:
            getattr(inspector, f"check_{setting}")(*values)
            access.record(CHANGE_AUDIT_ACTION, actor=user.name, participant_id=inspector.session.participant_id,
                          resource=f"channel_{setting}", role=user.role, session_id=session_id, change=body)
            return getattr(inspector, f"set_{setting}")(*values)
        except InvalidInputError as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        except AuthError as exc:
            raise HTTPException(exc.status, detail=exc.reason) from exc

    @app.get("/api/sessions/{session_id}/inspector")
    def inspector_state(session_id: str, request: Request) -> dict:
        return visible(session_id, caller(request), "inspector").state()

    @app.get("/api/sessions/{session_id}/channels/{channel}")
    def channel_view(session_id: str, channel: int, request: Request) -> dict:
        inspector = visible(session_id, caller(request), "channel")
        try:
            return inspector.channel(channel)
        except InvalidInputError as exc:
            raise HTTPException(400, detail=str(exc)) from exc

    @app.put("/api/sessions/{session_id}/inspector/mask")
    def put_mask(session_id: str, request: Request, body: Any = Body(...)) -> dict:  # noqa: B008
        masked = change(request, session_id, body, ("channels", "masked"),
                        '{"channels": [indices], "masked": true|false}', "mask")
        return {"masked": masked, "decoder_masked": inspectors[session_id].decoder_masked}

    @app.put("/api/sessions/{session_id}/inspector/threshold")
    def put_threshold(session_id: str, request: Request, body: Any = Body(...)) -> dict:  # noqa: B008
        multiple = change(request, session_id, body, ("channel", "multiple"),
                          '{"channel": index, "multiple": -12..-2}', "threshold")
        return {"channel": body["channel"], "multiple": multiple}

    with contextlib.suppress(AttributeError):  # stop the taps with the app (FastAPI's shutdown hook)
        app.router.on_shutdown.append(lambda: [inspector.close() for inspector in inspectors.values()])
    return inspectors
