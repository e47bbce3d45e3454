"""The secure link in the node graph: the implant's side and the host's side, with the radio between them.

``link_implant`` takes each feature bin of the implant (the ``sim_participant``
node's ``features``), seals it in a FEATURES frame of :mod:`neurolace.link`
and puts the frame on its simulated radio (:class:`~neurolace.link.channel.LinkChannel`:
throughput, latency, bursty loss, reordering, duplication, bit errors, seeded);
what the radio delivers by the next bin goes out on ``uplink`` as raw bytes
(uint8), one message per bin (empty when nothing arrived). ``link_host``
reads those bytes, opens the frames and publishes the bins on ``features``
in order: a bin the radio lost, or one that arrives after a later bin was
already passed on, becomes a **missing bin** (all-NaN payload, see
:mod:`neurolace.runtime.loop`), never zeros. Its ``downlink`` (the handshake,
and a link report the implant's governor reads) goes back through a radio of
its own to the implant node's feedback input. ``link`` is the health the
dashboard shows: delivered, missing, late, rejected frames by reason, rekeys.

The host starts a Noise_IK handshake (:mod:`neurolace.link.session`) and
repeats it every ``handshake_retry_s`` until it completes; until then the
implant keeps its bins (up to ``queue_bins``) and sends them once the session
is up. Keys: ``pairing = ""`` pairs a fresh implant and host in this process
(the demo); ``pairing = "DIR"`` loads ``DIR/implant.json`` and ``DIR/host.json``
made by ``neurolace link pair DIR``, which is what two processes on the Redis
bus use.

Both nodes step on the implant's sample clock (``sample_index`` / 19,531.25
Hz), so the stepped clock and real time give the same link.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.core.features import missing_bin
from neurolace.runtime.messages import Message
from neurolace.runtime.node import Node, Parameter, Port, register_node
from neurolace.runtime.nodes.sources import IMPLANT_FS_HZ, _node_seed

__all__ = ["LINK_STATUS_FIELDS", "LinkHostNode", "LinkImplantNode", "link_keystores"]

#: the ``link`` status vector the host publishes once a bin, in this order (the dashboard reads it)
LINK_STATUS_FIELDS = ("delivered_bins", "missing_bins", "late_bins", "rejected_frames", "rekeys",
                      "uplink_bytes_per_s", "handshakes", "established")

#: in-process pairings of ``pairing = ""`` sessions, by session seed: both nodes of one graph share it
_EPHEMERAL: dict[int, tuple] = {}
_EPHEMERAL_LOCK = threading.Lock()  # the graph sets its nodes up in parallel threads


def link_keystores(pairing: str, seed: int):
    """(implant keystore, host keystore) for a node's ``pairing`` parameter.

    ``""``: a fresh pairing made in this process and shared by the graph's two link nodes
    (the demo); a directory: ``implant.json`` and ``host.json`` there (``neurolace link pair DIR``).
    """
    from neurolace.link.keys import Keystore, ephemeral_pairing

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


def _channel_parameters() -> dict[str, Parameter]:
    """The radio's parameters, shared by both nodes (each direction has its own seeded radio)."""
    return {
        "loss": Parameter(float, 0.0, "mean frame loss of the radio (Gilbert-Elliott bursts), 0-1",
                          minimum=0.0, maximum=0.99),
        "burst_frames": Parameter(float, 4.0, "mean length of a loss burst, frames", minimum=1.0, maximum=1000.0),
        "throughput_kbps": Parameter(float, 1400.0, "radio throughput, kbit/s (BLE 2M PHY application rate)",
                                     minimum=1.0, maximum=1e6),
        "latency_ms": Parameter(float, 7.5, "radio latency, ms (one BLE connection interval)",
                                minimum=0.0, maximum=1000.0),
        "reorder": Parameter(float, 0.0, "probability a frame is overtaken", minimum=0.0, maximum=1.0),
        "duplicate": Parameter(float, 0.0, "probability a frame arrives twice", minimum=0.0, maximum=1.0),
        "bit_error_rate": Parameter(float, 0.0, "bit error rate of the radio", minimum=0.0, maximum=0.01),
        "pairing": Parameter(str, "", "'' (pair in this process) or a directory of `neurolace link pair`"),
    }


def _radio(params: dict, seed: int, name: str):
    """The seeded radio of one direction, from the node's parameters."""
    from neurolace.link.channel import ChannelSettings, LinkChannel

    settings = ChannelSettings(
        throughput_kbps=params["throughput_kbps"], latency_ms=params["latency_ms"],
        jitter_ms=min(2.5, params["latency_ms"] / 3), reorder_probability=params["reorder"],
        duplicate_probability=params["duplicate"], bit_error_rate=params["bit_error_rate"],
    )
    if params["loss"] > 0:
        settings = settings.with_loss(params["loss"], params["burst_frames"])
    return LinkChannel(settings, seed=_node_seed(seed, name), name=name)


def encode_features(features: np.ndarray) -> bytes:
    """One feature bin as the implant sends it: a u16 count ``k``, then ``k`` uint8, then float16.

    The first ``k`` features are the longest prefix of whole numbers 0-255 (threshold
    crossings per bin), sent exactly as uint8; the rest (spike-band power) as float16
    (relative error below 5e-4). 1024 channels of crossings and power: 3 kB a bin,
    1.2 Mbit/s at 50 bins/s, inside a BLE 2M PHY link (float32 would need 3.3 Mbit/s).
    """
    values = np.asarray(features, dtype=np.float64).ravel()
    whole = (values >= 0) & (values <= 255) & (values == np.round(values))
    k = int(values.size if whole.all() else np.argmin(whole))
    k = min(k, 0xFFFF)
    return (k.to_bytes(2, "little") + values[:k].astype(np.uint8).tobytes()
            + values[k:].astype("<f2").tobytes())


def decode_features(payload: bytes) -> np.ndarray:
    """The bin :func:`encode_features` sent, float32; a malformed payload is a FormatError."""
    from neurolace.core.errors import FormatError

    if len(payload) < 2:
        raise FormatError(f"a features payload has a 2-byte count first, got {len(payload)} bytes")
    k = int.from_bytes(payload[:2], "little")
    rest = len(payload) - 2 - k
    if rest < 0 or rest % 2:
        raise FormatError(f"features payload of {len(payload)} bytes does not hold {k} uint8 then float16 values")
    counts = np.frombuffer(payload, dtype=np.uint8, count=k, offset=2).astype(np.float32)
    power = np.frombuffer(payload, dtype="<f2", offset=2 + k).astype(np.float32)
    return np.concatenate([counts, power])


class _LinkSide(Node):
    """What both sides share: the keys, the endpoint, the radio of the direction this side sends."""

    role = ""

    def setup(self) -> None:
        from neurolace.link.endpoint import LinkEndpoint

        implant_keys, host_keys = link_keystores(self.params["pairing"], self.context.seed)
        self.keys = implant_keys if self.role == "implant" else host_keys
        self.peer_public = host_keys.public_key if self.role == "implant" else implant_keys.public_key
        self.endpoint = LinkEndpoint(None, name=f"{self.name} ({self.role})")
        self.radio = _radio(self.params, self.context.seed, f"{self.name}.radio")
        self.loop_s = self.params["loop_ms"] / 1e3
        self.samples_per_bin = self.loop_s * IMPLANT_FS_HZ
        self.session = None
        self.handshake_refusals: collections.Counter = collections.Counter()
        self.handshakes = 0

    def _now_s(self, message: Message) -> float:
        """The implant clock at the end of the message's bin, on the bin grid (so it never steps back).

        Also sets when the next bin ends: the radio delivers what arrives by then at this bin.
        """
        end_bin = round(message.sample_index / self.samples_per_bin) + 1
        self.next_tick_s = (end_bin + 1) * self.loop_s
        return end_bin * self.loop_s

    def _send(self, stream, payload: bytes, sample_clock: int, now_s: float) -> None:
        self.radio.send(self.endpoint.send(stream, payload, sample_clock), now_s)

    def _emit_air(self, port: str, now_s: float, parent: Message) -> None:
        """Everything the radio delivers before the next bin, as one uint8 message (empty: nothing)."""
        arrived = self.radio.receive(max(now_s, self.next_tick_s))
        self.emit(port, np.frombuffer(b"".join(arrived), dtype=np.uint8).copy(), parent=parent)

    def _link_report(self) -> dict:
        report = {"endpoint": self.endpoint.stats(), "radio": self.radio.stats(),
                  "handshakes": self.handshakes, "handshake_refused": dict(self.handshake_refusals)}
        if self.session is not None:
            report["session"] = self.session.report()
        return report


@register_node
class LinkImplantNode(_LinkSide):
    """The implant's end of the link: seals each feature bin and puts it on the radio."""

    type_name = "link_implant"
    role = "implant"
    description = "implant side of the secure link: Noise_IK responder, sealed feature frames, simulated radio"
    inputs: ClassVar[dict[str, Port]] = {
        "features": Port("features", help="one feature bin of the implant"),
        "downlink": Port("any", optional=True, feedback=True, help="bytes the host's radio delivered"),
    }
    outputs: ClassVar[dict[str, Port]] = {"uplink": Port("any")}
    parameters: ClassVar[dict[str, Parameter]] = {
        **_channel_parameters(),
        "loop_ms": Parameter(float, 20.0, "bin period in ms (the implant clock steps by it)", minimum=1.0),
        "queue_bins": Parameter(int, 100, "bins kept while no session is up (oldest dropped)", minimum=1,
                                maximum=100_000),
    }

    def setup(self) -> None:
        super().setup()
        self.queue: collections.deque = collections.deque(maxlen=self.params["queue_bins"])
        self.queued_dropped = 0
        self.downlink_seen = -1
        self.ready = False  # the session's first bin waits one bin after message 2 (the host opens it first)

    def _read_downlink(self, now_s: float) -> None:
        from neurolace.link.errors import HandshakeError
        from neurolace.link.frames import StreamType
        from neurolace.link.session import respond

        message = self.context.feedback("downlink")
        if message is None or message.sequence == self.downlink_seen:
            return
        self.downlink_seen = message.sequence
        for delivered in self.endpoint.receive(bytes(np.asarray(message.payload, dtype=np.uint8))):
            if delivered.stream != StreamType.HANDSHAKE:
                continue
            try:
                message2, session = respond(self.keys, delivered.payload)
            except HandshakeError as exc:
                self.handshake_refusals[exc.reason] += 1
                self.context.log("link_handshake_refused", reason=exc.reason, detail=str(exc)[:200])
                continue
            self.session, self.ready = session, False
            self.endpoint.sealer = session
            self.handshakes += 1
            self._send(StreamType.HANDSHAKE, message2, delivered.sample_clock, now_s)

    def on_message(self, port: str, message: Message) -> None:
        from neurolace.link.frames import StreamType

        now_s = self._now_s(message)
        self._read_downlink(now_s)
        if len(self.queue) == self.queue.maxlen:
            self.queued_dropped += 1
        self.queue.append((message.sample_index, encode_features(message.payload)))
        if self.session is not None and self.ready:
            while self.queue:
                sample_index, payload = self.queue.popleft()
                self._send(StreamType.FEATURES, payload, sample_index, now_s)
        self.ready = self.session is not None
        self._emit_air("uplink", now_s, message)

    def summary(self) -> dict:
        return {**self._link_report(), "queued_dropped": self.queued_dropped}


@register_node
class LinkHostNode(_LinkSide):
    """The host's end of the link: opens the implant's frames and passes the bins on, in order, gaps as missing."""

    type_name = "link_host"
    role = "host"
    description = "host side of the secure link: Noise_IK initiator, opens frames, missing bins for gaps"
    inputs: ClassVar[dict[str, Port]] = {"uplink": Port("any", help="bytes the implant's radio delivered")}
    outputs: ClassVar[dict[str, Port]] = {
        "features": Port("features"), "downlink": Port("any"), "link": Port("any"),
    }
    parameters: ClassVar[dict[str, Parameter]] = {
        **_channel_parameters(),
        "loop_ms": Parameter(float, 20.0, "bin period in ms", minimum=1.0),
        "handshake_retry_s": Parameter(float, 0.2, "seconds between handshake attempts until one completes",
                                       minimum=0.001, maximum=60.0),
    }

    def setup(self) -> None:
        super().setup()
        self.pending = None
        self.last_attempt_s: float | None = None
        self.last_bin: int | None = None
        self.n_features: int | None = None
        self.counts = collections.Counter()
        self.uplink_bytes: collections.deque = collections.deque(maxlen=50)

    def _handshake(self, now_s: float, sample_index: int) -> None:
        from neurolace.link.frames import StreamType
        from neurolace.link.session import initiate

        if self.last_attempt_s is not None and now_s - self.last_attempt_s < self.params["handshake_retry_s"]:
            return
        self.last_attempt_s = now_s
        message1, self.pending = initiate(self.keys, self.peer_public)
        self._send(StreamType.HANDSHAKE, message1, sample_index, now_s)

    def _deliver(self, payload: bytes, sample_clock: int, parent: Message) -> None:
        from neurolace.core.errors import FormatError

        try:
            features = decode_features(payload)
        except FormatError:
            self.counts["malformed_bins"] += 1
            return
        index = round(sample_clock / self.samples_per_bin)
        if self.n_features is None:
            self.n_features = features.size
        if self.last_bin is not None and index <= self.last_bin:
            self.counts["late_bins"] += 1  # its place in the loop was taken: a bin arrives once, in order
            return
        if self.last_bin is not None:
            for gap in range(self.last_bin + 1, index):
                self.counts["missing_bins"] += 1
                self.emit("features", missing_bin(self.n_features).astype(np.float32), parent=parent,
                          sample_index=round(gap * self.samples_per_bin))
        self.last_bin = index
        self.counts["delivered_bins"] += 1
        self.emit("features", features, parent=parent, sample_index=sample_clock)

    def on_message(self, port: str, message: Message) -> None:
        from neurolace.link.errors import HandshakeError
        from neurolace.link.frames import StreamType

        now_s = self._now_s(message)
        data = bytes(np.asarray(message.payload, dtype=np.uint8))
        self.uplink_bytes.append(len(data))
        for delivered in self.endpoint.receive(data):
            if delivered.stream == StreamType.HANDSHAKE:
                if self.pending is None:
                    self.handshake_refusals["bad_handshake"] += 1
                    continue
                try:
                    self.session = self.pending.finish(delivered.payload)
                except HandshakeError as exc:
                    self.handshake_refusals[exc.reason] += 1
                    continue
                self.pending = None
                self.endpoint.sealer = self.session
                self.handshakes += 1
                self.context.log("link_established", handshakes=self.handshakes)
            elif delivered.stream == StreamType.FEATURES:
                self._deliver(delivered.payload, delivered.sample_clock, message)
        if self.session is None:
            self._handshake(now_s, message.sample_index)
        self._emit_air("downlink", now_s, message)
        self.emit("link", self.status(), parent=message)

    def status(self) -> np.ndarray:
        """The link's health now, in :data:`LINK_STATUS_FIELDS` order."""
        stats = self.endpoint.stats()
        rejected = sum(stats.get("rejected", {}).values()) + sum(self.handshake_refusals.values())
        rekeys = 0 if self.session is None else self.session.report().get("rekeys_received", 0)
        rate = sum(self.uplink_bytes) / (len(self.uplink_bytes) * self.loop_s) if self.uplink_bytes else 0.0
        return np.array([self.counts["delivered_bins"], self.counts["missing_bins"], self.counts["late_bins"],
                         rejected, rekeys, rate, self.handshakes, float(self.session is not None)])

    def summary(self) -> dict:
        return {**self._link_report(), **{k: int(self.counts[k]) for k in
                                          ("delivered_bins", "missing_bins", "late_bins", "malformed_bins")}}
