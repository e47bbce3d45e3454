"""The secure link between the implant and the host, one bin at a time: both sides and the radio, written once.

:class:`ImplantLinkSide` seals each feature bin (:func:`encode_features`) into
a FEATURES frame and puts it on its radio; :class:`HostLinkSide` opens what
arrives and gives the bins back in order, a bin the radio lost (or one that
arrives after a later bin was passed on) as the **missing bin**
(:func:`neurolace.core.features.missing_bin`), never as zeros. The host
starts a Noise_IK handshake and repeats it every ``handshake_retry_s`` until it
completes; the implant keeps its bins (up to ``queue_bins``) until then. Each
direction has its own seeded radio (:class:`neurolace.link.channel.LinkChannel`)
and everything steps on the implant's bin clock: what a radio delivers before
the next bin ends is handed over at this bin.

Two users, one implementation: the graph's ``link_implant`` and ``link_host``
nodes (:mod:`neurolace.runtime.nodes.link`, one side each, the bytes on the
bus between them) and :class:`SecureLinkSource`, which puts both sides around
any feature source of the offline session runner (``neurolace demo``).
"""

from __future__ import annotations

import collections
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.core.checks import check_positive
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.features import missing_bin
from neurolace.core.random import SeedLike, check_rng
from neurolace.link.frames import StreamType
from neurolace.runtime.uplink import decode_features, encode_features

__all__ = [
    "LINK_PAIRING_ENV",
    "LINK_STATUS_FIELDS",
    "HostLinkSide",
    "ImplantLinkSide",
    "LinkSettings",
    "SecureLinkSource",
    "decode_features",
    "encode_features",
    "link_keystores",
    "write_run_pairing",
]

#: the host's link status vector, in this order (the ``link`` stream the dashboard reads)
LINK_STATUS_FIELDS = ("delivered_bins", "missing_bins", "late_bins", "rejected_frames", "rekeys",
                      "uplink_bytes_per_s", "handshakes", "established")

#: the host's acknowledgement: sealed frames it delivered this session, highest sequence it opened
_ACK = struct.Struct("<QQ")

#: where ``pairing = ""`` finds its keystores when the session's nodes run in several processes
#: (``neurolace run --processes`` pairs a fresh implant and host there for the run and sets it)
LINK_PAIRING_ENV = "NEUROLACE_LINK_PAIRING"

#: in-process pairings (``pairing = ""``), by session seed: both sides of one session share one
_EPHEMERAL: dict[int, tuple] = {}
_EPHEMERAL_LOCK = threading.Lock()  # the graph sets its nodes up in parallel threads


def link_keystores(pairing: str, seed: int):
    """(implant keystore, host keystore) for a ``pairing`` setting.

    ``""``: a fresh pairing made in this process, shared by the session's two sides (the demo), or,
    when :data:`LINK_PAIRING_ENV` is set, the run's pairing directory it names; a directory:
    ``implant.json`` and ``host.json`` there, made by ``neurolace link pair DIR``.
    """
    import os

    from neurolace.link.keys import Keystore, ephemeral_pairing

    if not pairing and os.environ.get(LINK_PAIRING_ENV):
        pairing = os.environ[LINK_PAIRING_ENV]
    if not pairing:
        with _EPHEMERAL_LOCK:
            if seed not in _EPHEMERAL:
                _EPHEMERAL[seed] = ephemeral_pairing()
            return _EPHEMERAL[seed]
    directory = Path(pairing).expanduser()
    files = [directory / "implant.json", directory / "host.json"]
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise InvalidInputError(f"pairing directory {directory} lacks {', '.join(missing)}; "
                                f"make them with `neurolace link pair {directory}`")
    return Keystore.load(files[0]), Keystore.load(files[1])


def write_run_pairing(directory: str | Path) -> Path:
    """Pair a fresh implant and host for one run and save them in ``directory`` (0600 keystores)."""
    from neurolace.link.keys import ephemeral_pairing

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    implant, host = ephemeral_pairing()
    implant.save(directory / "implant.json")
    host.save(directory / "host.json")
    return directory


@dataclass(frozen=True)
class LinkSettings:
    """The radio and session settings of one link (both directions share them).

    Attributes
    ----------
    loss : float
        Mean frame loss of the radio, 0-0.99 (Gilbert-Elliott bursts of mean ``burst_frames``).
    burst_frames : float
    throughput_kbps : float
        Radio throughput, kbit/s (1400: BLE 2M PHY application rate).
    latency_ms : float
        Radio latency (7.5 ms: one BLE connection interval); jitter is a third of it, at most 2.5 ms.
    reorder, duplicate : float
        Probability a frame is overtaken / arrives twice.
    bit_error_rate : float
    pairing : str
        ``""`` (pair in this process) or a directory of ``neurolace link pair``.
    loop_s : float
        The bin period the link steps on.
    queue_bins : int
        Bins the implant keeps while no session is up (oldest dropped).
    handshake_retry_s : float
        Seconds between the host's handshake attempts until one completes.
    raw : bool
        Send compressed raw samples (the codec's streaming mode) for as many channel groups as the
        budget leaves beside the features and spike events, when the source gives the implant's
        samples (:class:`~neurolace.sim.neural_source.ImplantFeatureSource`).
    budget_fraction : float
        Share of ``throughput_kbps`` the implant's bandwidth governor spends (the rest is headroom
        for the handshake, acknowledgements and the radio's jitter).
    raw_group_channels : int
        Channels per raw codec stream. 4 by default, not the governor's 16 (one thread): a group's
        frame (~1.2 kB, 7 ms on a 1.4 Mbit/s radio) then fits inside one bin beside the features,
        so the next bin's features never wait behind it. With 16 (~4.6 kB, 26 ms of air time) 41 %
        of the bins of a 256-channel implant path reached the host a bin late; with 4, 0.4 %, as
        without raw (measured with ``SecureLinkSource``, 500 bins).
    ack_bins : int
        Bins between the host's acknowledgements (frames delivered, highest sequence), which the
        governor's loss backoff reads.
    """

    loss: float = 0.0
    burst_frames: float = 4.0
    throughput_kbps: float = 1400.0
    latency_ms: float = 7.5
    reorder: float = 0.0
    duplicate: float = 0.0
    bit_error_rate: float = 0.0
    pairing: str = ""
    loop_s: float = 0.02
    queue_bins: int = 100
    handshake_retry_s: float = 0.2
    raw: bool = True
    budget_fraction: float = 0.85
    raw_group_channels: int = 4
    ack_bins: int = 5

    def radio(self, seed: SeedLike, name: str):
        """The seeded radio of one direction."""
        from neurolace.link.channel import ChannelSettings, LinkChannel

        settings = ChannelSettings(
            throughput_kbps=self.throughput_kbps, latency_ms=self.latency_ms,
            jitter_ms=min(2.5, self.latency_ms / 3), reorder_probability=self.reorder,
            duplicate_probability=self.duplicate, bit_error_rate=self.bit_error_rate,
        )
        if self.loss > 0:
            settings = settings.with_loss(self.loss, self.burst_frames)
        return LinkChannel(settings, seed=seed, name=name)


class _Side:
    """What both sides share: keys, endpoint, the radio of the direction this side sends on."""

    def __init__(self, keys, radio, settings: LinkSettings, name: str) -> None:
        from neurolace.link.endpoint import LinkEndpoint

        self.keys, self.radio, self.settings = keys, radio, settings
        self.endpoint = LinkEndpoint(None, name=name)
        self.session = None
        self.handshakes = 0
        self.handshake_refusals: collections.Counter = collections.Counter()

    def _send(self, stream, payload: bytes, sample_clock: int, now_s: float) -> None:
        self.radio.send(self.endpoint.send(stream, payload, sample_clock), now_s)

    def _air(self, bin_index: int) -> bytes:
        """What this side's radio delivers by the end of the next bin."""
        return b"".join(self.radio.receive((bin_index + 2) * self.settings.loop_s))

    def report(self) -> dict:
        report = {"endpoint": self.endpoint.stats(), "radio": self.radio.stats(),
                  "handshakes": self.handshakes, "handshake_refused": dict(self.handshake_refusals)}
        if self.session is not None:
            report["session"] = self.session.report()
        return report


class ImplantLinkSide(_Side):
    """The implant's end: answers the host's handshake, and each bin sends what the governor lets through.

    Each bin goes out as a FEATURES frame; with the implant's samples and spike events
    (``tick(..., products=...)``) an :class:`~neurolace.runtime.uplink.UplinkSender` and its
    :class:`~neurolace.link.governor.BandwidthGovernor` (budget ``throughput_kbps x
    budget_fraction``) add the EVENTS frame and the compressed raw channel groups that fit,
    round-robin over the array; the host's acknowledgements drive the governor's loss
    backoff. Until a session is up the feature bins wait (up to ``queue_bins``); samples and
    events of those bins are not kept (counted as ``raw_ticks_unsent``).

    Parameters
    ----------
    keys : Keystore
        The implant's keys and paired hosts.
    radio : LinkChannel
        The uplink radio.
    settings : LinkSettings
    fs_hz : float
        The implant's sampling rate (the raw codec's clock).
    """

    def __init__(self, keys, radio, settings: LinkSettings, *, name: str = "implant",
                 fs_hz: float = 19531.25, interlock: Any = None) -> None:
        super().__init__(keys, radio, settings, name)
        self.interlock = interlock  # a stim.StimInterlock: every STIM frame the link opens goes to it
        self.stim_outcomes: collections.deque = collections.deque(maxlen=256)
        self.queue: collections.deque = collections.deque(maxlen=settings.queue_bins)
        self.queued_dropped = 0
        self._ready = False  # the first bins wait one bin after message 2: the host opens with it
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.uplink = None  # the UplinkSender, made at the first bin with samples
        self.counts: collections.Counter = collections.Counter()
        self._unacked: collections.deque = collections.deque()  # sequences sealed since the last ack
        self._acked_delivered = 0

    def _send(self, stream, payload: bytes, sample_clock: int, now_s: float) -> None:
        super()._send(stream, payload, sample_clock, now_s)
        if stream != StreamType.HANDSHAKE:
            self._unacked.append(self.endpoint.last_sequence)

    def _read(self, downlink: bytes, now_s: float) -> None:
        from neurolace.link.errors import HandshakeError
        from neurolace.link.session import respond

        for delivered in self.endpoint.receive(downlink):
            if delivered.stream == StreamType.ACK:
                self._acknowledged(delivered.payload)
                continue
            if delivered.stream == StreamType.STIM:
                self._stimulate(delivered.payload, now_s)
                continue
            if delivered.stream != StreamType.HANDSHAKE:
                continue
            try:
                message2, session = respond(self.keys, delivered.payload)
            except HandshakeError as exc:
                self.handshake_refusals[exc.reason] += 1
                continue
            self.session, self._ready = session, False
            self.endpoint.sealer = session
            self._unacked.clear()
            self._acked_delivered = 0
            self.handshakes += 1
            self._send(StreamType.HANDSHAKE, message2, delivered.sample_clock, now_s)

    def _stimulate(self, payload: bytes, now_s: float) -> None:
        """A STIM frame opened: the interlock (signature, freshness, envelope) decides, never the host."""
        if self.interlock is None:
            self.counts["stim_unhandled"] += 1  # this implant has no stimulator: nothing is delivered
            return
        outcome = self.interlock.submit(payload, now_ns=round(now_s * 1e9))
        self.stim_outcomes.append(outcome)
        self.counts["stim_delivered" if outcome.delivered else f"stim_refused_{outcome.reason}"] += 1

    def _acknowledged(self, payload: bytes) -> None:
        """An ack (frames delivered this session, highest sequence): the governor's delivered fraction."""
        if len(payload) != _ACK.size:
            self.counts["malformed_acks"] += 1
            return
        delivered, highest = _ACK.unpack(payload)
        sent = 0
        while self._unacked and self._unacked[0] <= highest:
            self._unacked.popleft()
            sent += 1
        got = max(0, min(sent, delivered - self._acked_delivered))
        self._acked_delivered = max(self._acked_delivered, delivered)
        self.counts["acks"] += 1
        if self.uplink is not None and sent:
            self.uplink.governor.observe({"sent": sent, "delivered": got})

    def _sender(self, n_channels: int):
        if self.uplink is None or self.uplink.governor.n_channels != n_channels:
            from neurolace.link.governor import BandwidthGovernor
            from neurolace.runtime.uplink import UplinkSender

            governor = BandwidthGovernor(n_channels=n_channels, tick_s=self.settings.loop_s,
                                         group_size=self.settings.raw_group_channels,
                                         budget_kbps=self.settings.throughput_kbps * self.settings.budget_fraction)
            self.uplink = UplinkSender(governor, fs_hz=self.fs_hz)
        return self.uplink

    def tick(self, bin_index: int, sample_index: int, features: Any, downlink: bytes = b"", *,
             products: Any = None) -> bytes:
        """One bin: read the downlink, send the bin (or keep it until a session is up); the uplink bytes.

        Parameters
        ----------
        bin_index, sample_index : int
            The bin and its first sample on the implant's clock.
        features : array-like, shape (n_features,)
        downlink : bytes
            What the host's radio delivered.
        products : ImplantProducts, optional
            The implant's samples and spike events of this bin (raw and events go only with it).
        """
        now_s = (bin_index + 1) * self.settings.loop_s
        if downlink:
            self._read(downlink, now_s)
        if len(self.queue) == self.queue.maxlen:
            self.queued_dropped += 1
        self.queue.append((sample_index, features))
        if self.session is None or not self._ready:
            if products is not None:
                self.counts["raw_ticks_unsent"] += 1
        else:
            while len(self.queue) > 1:
                sample, queued = self.queue.popleft()
                self._send(StreamType.FEATURES, encode_features(queued), sample, now_s)
            sample, current = self.queue.popleft()
            for stream, payload, clock in self._outgoing(sample, current, products):
                self._send(stream, payload, clock, now_s)
        self._ready = self.session is not None
        return self._air(bin_index)

    def _outgoing(self, sample: int, features: Any, products: Any) -> list:
        """This bin's payloads: the features alone, or features, events and raw through the governor."""
        if products is None or not self.settings.raw:
            return [(StreamType.FEATURES, encode_features(features), sample)]
        raw = products.raw_codes
        sender = self._sender(raw.shape[1])
        if raw.shape[0] > sender.max_block_samples:  # more than one bin of samples: the newest bin's go
            self.counts["raw_samples_trimmed"] += raw.shape[0] - sender.max_block_samples
            clock = products.raw_clock + raw.shape[0] - sender.max_block_samples
            raw = raw[-sender.max_block_samples:]
        else:
            clock = products.raw_clock
        if raw.shape[0] == 0:
            return [(StreamType.FEATURES, encode_features(features), sample)]
        bins = np.asarray(features, dtype=np.float32).reshape(1, -1)
        return sender.tick(raw, sample_clock=clock, features=bins, features_clock=sample, events=products.events)

    def report(self) -> dict:
        report = {**super().report(), "queued_dropped": self.queued_dropped, **dict(self.counts)}
        if self.uplink is not None:
            report["governor"] = self.uplink.governor.report()
        return report


class HostLinkSide(_Side):
    """The host's end: starts the handshake, opens frames, gives bins back in order with gaps as missing.

    Parameters
    ----------
    keys : Keystore
        The host's keys and paired implants.
    implant_public : bytes
        The implant's static public key (from pairing).
    radio : LinkChannel
        The downlink radio.
    settings : LinkSettings
    samples_per_bin : float
        Implant samples per bin (sample clock -> bin index).
    """

    def __init__(self, keys, implant_public: bytes, radio, settings: LinkSettings, *, samples_per_bin: float,
                 name: str = "host", n_channels: int | None = None, n_features: int | None = None) -> None:
        super().__init__(keys, radio, settings, name)
        self.implant_public = implant_public
        self.samples_per_bin = check_positive(samples_per_bin, "samples_per_bin")
        self.pending = None
        self.last_attempt_s: float | None = None
        self.last_bin: int | None = None
        self.n_channels = n_channels
        self.n_features: int | None = n_features
        self.receiver = None  # the UplinkReceiver of events and raw, made at the first such frame
        self.stim_queue: collections.deque = collections.deque()
        self.last_raw = None  # the newest raw channel group decoded (ReceivedRaw)
        self._opened, self._highest = 0, -1
        self.counts: collections.Counter = collections.Counter()
        self.uplink_bytes: collections.deque = collections.deque(maxlen=50)

    def _handshake(self, now_s: float, sample_index: int) -> None:
        from neurolace.link.session import initiate

        if self.last_attempt_s is not None and now_s - self.last_attempt_s < self.settings.handshake_retry_s:
            return
        self.last_attempt_s = now_s
        message1, self.pending = initiate(self.keys, self.implant_public)
        self._send(StreamType.HANDSHAKE, message1, sample_index, now_s)

    def _finish(self, message2: bytes) -> None:
        from neurolace.link.errors import HandshakeError

        if self.pending is None:
            self.handshake_refusals["bad_handshake"] += 1
            return
        try:
            self.session = self.pending.finish(message2)
        except HandshakeError as exc:
            self.handshake_refusals[exc.reason] += 1
            return
        self.pending = None
        self.endpoint.sealer = self.session
        self.handshakes += 1
        self._opened, self._highest = 0, -1  # the implant's sequences start again with the session

    def _bins(self, payload: bytes, sample_clock: int) -> list[tuple[int, np.ndarray]]:
        try:
            features = decode_features(payload)
        except FormatError:
            self.counts["malformed_bins"] += 1
            return []
        index = round(sample_clock / self.samples_per_bin)
        if self.n_features is None:
            self.n_features = features.size
        if self.last_bin is not None and index <= self.last_bin:
            self.counts["late_bins"] += 1  # its place in the loop was taken: a bin goes on once, in order
            return []
        out = []
        if self.last_bin is not None:
            for gap in range(self.last_bin + 1, index):
                self.counts["missing_bins"] += 1
                out.append((round(gap * self.samples_per_bin), missing_bin(self.n_features).astype(np.float32)))
        self.last_bin = index
        self.counts["delivered_bins"] += 1
        out.append((sample_clock, features))
        return out

    def send_stim(self, command: bytes) -> None:
        """Queue a signed stimulation command (:func:`neurolace.stim.commands.sign_command`) for the next bin.

        It goes as a sealed STIM frame once a session is up; the implant's interlock, not
        this side, decides whether it is delivered.
        """
        if not isinstance(command, (bytes, bytearray)):
            raise InvalidInputError(f"a stimulation command is bytes, got {type(command).__name__}")
        self.stim_queue.append(bytes(command))

    def _products(self, delivered) -> None:
        """A spike-events or raw frame: decoded (and counted) when the array's size is known."""
        if self.receiver is None:
            if self.n_channels is None or self.n_features is None:
                self.counts["undecoded_frames"] += 1
                return
            from neurolace.runtime.uplink import UplinkReceiver

            self.receiver = UplinkReceiver(n_channels=self.n_channels, n_features=self.n_features,
                                           group_size=self.settings.raw_group_channels)
        try:
            received = self.receiver.receive(delivered.stream, delivered.payload, delivered.sample_clock)
        except FormatError:
            self.counts["malformed_frames"] += 1
            return
        if delivered.stream == StreamType.EVENTS:
            self.counts["events"] += int(received.sample_index.size)
        elif received is not None:
            self.counts["raw_channel_ticks"] += int(received.channel_index.size)
            self.last_raw = received

    def tick(self, bin_index: int, sample_index: int, uplink: bytes) -> tuple[list[tuple[int, np.ndarray]], bytes]:
        """One bin: open what arrived; (bins in order as (sample_index, features), downlink bytes)."""
        now_s = (bin_index + 1) * self.settings.loop_s
        self.uplink_bytes.append(len(uplink))
        bins: list[tuple[int, np.ndarray]] = []
        for delivered in self.endpoint.receive(uplink):
            if delivered.stream == StreamType.HANDSHAKE:
                self._finish(delivered.payload)
                continue
            self._opened += 1
            self._highest = max(self._highest, delivered.sequence)
            if delivered.stream == StreamType.FEATURES:
                bins.extend(self._bins(delivered.payload, delivered.sample_clock))
            elif delivered.stream in (StreamType.EVENTS, StreamType.RAW):
                self._products(delivered)
        if self.session is None:
            self._handshake(now_s, sample_index)
        else:
            while self.stim_queue:
                self._send(StreamType.STIM, self.stim_queue.popleft(), sample_index, now_s)
                self.counts["stim_sent"] += 1
            if self._opened and bin_index % self.settings.ack_bins == 0:
                self._send(StreamType.ACK, _ACK.pack(self._opened, self._highest), sample_index, now_s)
        return bins, self._air(bin_index)

    def status(self) -> np.ndarray:
        """The link's health now, in :data:`LINK_STATUS_FIELDS` order."""
        rejected = sum(self.endpoint.rejected.values()) + sum(self.handshake_refusals.values())
        rekeys = 0 if self.session is None else self.session.rekeys_received
        n = len(self.uplink_bytes)
        rate = sum(self.uplink_bytes) / (n * self.settings.loop_s) if n else 0.0
        return np.array([self.counts["delivered_bins"], self.counts["missing_bins"], self.counts["late_bins"],
                         rejected, rekeys, rate, self.handshakes, float(self.session is not None)])

    def report(self) -> dict:
        counts = {key: int(self.counts[key]) for key in ("delivered_bins", "missing_bins", "late_bins",
                                                         "malformed_bins", "events", "raw_channel_ticks",
                                                         "malformed_frames", "undecoded_frames", "stim_sent")}
        if self.receiver is not None:
            counts["raw_undecodable"] = int(self.receiver.counts["raw_undecodable"])
        return {**super().report(), **counts}


class SecureLinkSource:
    """A feature source whose bins cross the secure link: the offline runner's loop through implant, radio, host.

    Each ``emit`` runs one bin of both sides: the wrapped source's bin is sealed
    and put on the uplink radio, and the host gives the loop the newest bin that
    opened by the end of this bin; with none (lost, still on the air, before the
    handshake) the loop gets the missing bin. Older bins that opened at the same
    bin are late for the loop and counted (``late_bins``). The link (keys, radios,
    session) lives across blocks; ``start`` restarts only the wrapped source.

    Parameters
    ----------
    source : feature source
        Any source of :func:`~neurolace.runtime.loop.check_feature_source`.
    settings : LinkSettings, optional
    seed : optional
        Seeds the two radios.
    samples_per_bin : float
        Implant samples per bin.
    """

    def __init__(self, source: Any, settings: LinkSettings | None = None, *, seed: SeedLike = 0,
                 samples_per_bin: float = 390.625, interlock: Any = None) -> None:
        from neurolace.runtime.loop import check_feature_source

        self.source = check_feature_source(source)
        self.settings = settings or LinkSettings()
        rng = check_rng(seed)
        implant_keys, host_keys = link_keystores(self.settings.pairing, int(rng.integers(2**31)))
        self.implant = ImplantLinkSide(implant_keys, self.settings.radio(rng, "uplink"), self.settings,
                                       interlock=interlock)
        n_channels = getattr(self.source, "n_channels", None)
        self.host = HostLinkSide(host_keys, implant_keys.public_key, self.settings.radio(rng, "downlink"),
                                 self.settings, samples_per_bin=samples_per_bin, n_channels=n_channels,
                                 n_features=self.source.n_features)
        # the implant path gives its samples and spike events: they go up beside the bins
        self._products = self.settings.raw and callable(getattr(self.source, "take_products", None))
        if self._products:
            self.source.keep_products = True
        self.samples_per_bin = samples_per_bin
        self._bin = 0
        self._downlink = b""
        self.late_for_loop = 0

    @property
    def n_features(self) -> int:
        return self.source.n_features

    def start(self, seed: SeedLike = None) -> None:
        self.source.start(seed)

    def emit(self, intention: Any) -> np.ndarray:
        features = np.asarray(self.source.emit(intention))
        index = self._bin
        self._bin += 1
        sample_index = round(index * self.samples_per_bin)
        products = self.source.take_products() if self._products else None
        uplink = self.implant.tick(index, sample_index, features, self._downlink, products=products)
        bins, self._downlink = self.host.tick(index, sample_index, uplink)
        if not bins:
            return missing_bin(features.size)
        self.late_for_loop += len(bins) - 1
        return np.asarray(bins[-1][1], dtype=np.float64)

    @property
    def now_ns(self) -> int:
        """The link's clock (the implant's bin clock), ns: what a command's ``issued_ns`` is read against."""
        return round(self._bin * self.settings.loop_s * 1e9)

    def stimulate(self, command: bytes) -> None:
        """Send a signed stimulation command down the link (see :meth:`HostLinkSide.send_stim`)."""
        self.host.send_stim(command)

    def report(self) -> dict:
        """Both sides' counters and the bins the loop could not use."""
        return {"implant": self.implant.report(), "host": self.host.report(), "late_for_loop": self.late_for_loop}

    def __repr__(self) -> str:
        return f"SecureLinkSource({self.source!r}, {self.settings})"

