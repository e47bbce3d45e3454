"""The link's attack bench: a seeded session on the lossy radio while an attacker tries every bad frame.

:func:`run_attack_bench` pairs an implant and a host in memory
(:func:`~neurolace.link.keys.ephemeral_pairing`), runs the Noise_IK session
handshake, then streams 1024-channel feature bins (20 ms bins, 50 frames/s,
each ``2 x 1024`` float32 = 8192 bytes) from the implant to the host through
the seeded radio simulator (:class:`~neurolace.link.channel.LinkChannel`:
Gilbert-Elliott bursty loss, reordering, duplication). An attacker who sits at
the host's receiver, sees every frame on the air and can inject bytes between
the packets the radio delivers, tries each kind of :data:`ATTACK_KINDS` in
turn, one a bin:

========================  ==========================================================  ==================
kind                      what the attacker sends                                     refused as
========================  ==========================================================  ==================
``tampered_body``         the frame just sent, one body bit flipped, before the       ``tag_mismatch``
                          original arrives
``tampered_header``       the same with a sequence or sample-clock bit flipped and    ``tag_mismatch``
                          the header CRC recomputed (the header is the AEAD's
                          associated data)
``replayed_in_window``    a frame the host already accepted, inside the window        ``replayed``
``replayed_old``          a frame the host accepted, now behind the window            ``too_old``
``reordered``             the last few accepted frames again, in reverse order        ``replayed``
``forged``                attacker payload sealed under a random key at the next      ``tag_mismatch``
                          sequence numbers
``forged_far_sequence``   the same at a sequence 2**40 (trying to slide the window)   ``tag_mismatch``
``truncated``             the frame just sent, cut short, then a forged frame         ``truncated``
``downgraded``            the frame just sent with the old version byte 0             ``unknown_version``
``unknown_stream``        the frame just sent with stream type 0x42                   ``unknown_stream``
========================  ==========================================================  ==================

and, at the implant, :data:`HANDSHAKE_ATTACKS`: a session handshake from a
device that never paired (``unpaired``), from a host paired and then revoked
(``revoked``) and random bytes as a handshake (``bad_handshake``).

Every attacker payload starts with :data:`ATTACKER_MARK`, and the bench keeps
each genuine payload by sequence number, so whatever the host accepts is
checked: a delivered payload that is not the genuine one of its sequence
counts in ``forged_accepted``, a genuine payload delivered a second time in
``replayed_accepted``. Both must be 0.

The attacker replays only frames the host has accepted (so each attack's
refusal reason is exact: a replay of a frame the radio lost is its first
arrival, and opens, which is the point of explicit nonces). The replay window
is :data:`ATTACK_WINDOW_FRAMES` frames (640 ms of bins), smaller than the
session default, so frames fall behind it within a one-second run.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter

import numpy as np

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import spawn_rngs
from neurolace.link.errors import REJECT_REASONS, HandshakeError
from neurolace.link.channel import ChannelSettings, LinkChannel
from neurolace.link.endpoint import LinkEndpoint
from neurolace.link.frames import (
    HEADER_BYTES,
    MAX_BODY_BYTES,
    StreamType,
    build_header,
    parse_frame,
)
from neurolace.link.keys import Keystore, ephemeral_pairing, pair
from neurolace.link.noise import KEY_BYTES, CipherState
from neurolace.link.session import SEAL_OVERHEAD_BYTES, initiate, respond

__all__ = [
    "ATTACKER_MARK",
    "ATTACK_KINDS",
    "ATTACK_WINDOW_FRAMES",
    "FEATURE_BYTES",
    "HANDSHAKE_ATTACKS",
    "run_attack_bench",
]

#: every attacker payload starts with these bytes
ATTACKER_MARK = b"ATTACKER"
#: the bench's feature frame payload: 2 x 1024 float32 (crossing counts and spike-band power)
FEATURE_BYTES = 2 * 1024 * 4
#: one feature bin a frame
BIN_S = 0.02
#: the replay window of the bench's session, frames (640 ms of bins)
ATTACK_WINDOW_FRAMES = 32
#: the bench radio's throughput: the 3.3 Mbit/s of full 1024-channel bins with room for duplicates
BENCH_LINK_KBPS = 4000.0
#: mean burst length of the Gilbert-Elliott loss, frames
BURST_FRAMES = 3.0

#: attack kind -> the one reason the host must refuse it with (truncated also refuses its forged follower)
ATTACK_KINDS = {
    "tampered_body": "tag_mismatch",
    "tampered_header": "tag_mismatch",
    "replayed_in_window": "replayed",
    "replayed_old": "too_old",
    "reordered": "replayed",
    "forged": "tag_mismatch",
    "forged_far_sequence": "tag_mismatch",
    "truncated": "truncated",
    "downgraded": "unknown_version",
    "unknown_stream": "unknown_stream",
}
#: handshake attack at the implant -> the reason it must be refused with
HANDSHAKE_ATTACKS = {"unpaired": "unpaired", "revoked": "revoked", "garbage": "bad_handshake"}
#: implant samples a bin covers (20 ms at 19,531.25 Hz, rounded): the sample clock's step
SAMPLES_PER_BIN = 391
#: the longest run the bench takes, s
MAX_SECONDS = 3600.0
_REORDER_FRAMES = 3
_OLD_KEPT = 8
_OLD_VERSION = 0
_UNKNOWN_STREAM = 0x42
_FAR_SEQUENCE = 2**40


def _rewrite_header(frame: bytes, *, version: int | None = None, stream: int | None = None,
                    sequence: int | None = None, sample_clock: int | None = None) -> bytes:
    """``frame`` with header fields replaced and the CRC recomputed (what an attacker can always do)."""
    old = parse_frame(frame)
    header = build_header(
        old.stream if stream is None else stream,
        old.sequence if sequence is None else sequence,
        old.sample_clock if sample_clock is None else sample_clock,
        len(old.body),
        version=old.version if version is None else version,
    )
    return header + frame[HEADER_BYTES:]


def _flip_bit(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def _forger_cipher(rng: np.random.Generator) -> CipherState:
    """ChaCha20-Poly1305 under a random key no one paired: what a forger holds."""
    return CipherState(rng.bytes(KEY_BYTES))


def _handshake_attacks(implant_store: Keystore, rng: np.random.Generator) -> dict:
    """Each handshake attack once at the implant; the reason it was refused with (or "accepted")."""
    stranger = Keystore("intruder")
    revoked_host = Keystore("old-host")
    pair(implant_store, revoked_host, lambda implant_code, host_code: implant_code == host_code)
    implant_store.revoke("old-host")
    messages = {
        "unpaired": initiate(stranger.identity, implant_store.public_key)[0],
        "revoked": initiate(revoked_host.identity, implant_store.public_key)[0],
        "garbage": rng.bytes(96),
    }
    outcome = {}
    for kind, message in messages.items():
        try:
            respond(implant_store, message)
        except HandshakeError as error:
            outcome[kind] = error.reason
        else:
            outcome[kind] = "accepted"
    return outcome


def _establish(implant_store: Keystore, host_store: Keystore) -> tuple[LinkEndpoint, LinkEndpoint, float]:
    """The Noise_IK handshake in HANDSHAKE frames between two endpoints; (implant, host, CPU ms).

    The messages go straight from one endpoint to the other (the radio's loss would only add
    retries, which are the caller's, not the link's, to time).
    """
    implant, host = LinkEndpoint(None, name="implant"), LinkEndpoint(None, name="host")
    start_ns = time.perf_counter_ns()
    message1, pending = initiate(host_store, implant_store.public_key, window_size=ATTACK_WINDOW_FRAMES)
    (received1,) = implant.receive(host.send(StreamType.HANDSHAKE, message1, 0))
    message2, implant.sealer = respond(implant_store, received1.payload, window_size=ATTACK_WINDOW_FRAMES)
    (received2,) = host.receive(implant.send(StreamType.HANDSHAKE, message2, 0))
    host.sealer = pending.finish(received2.payload)
    return implant, host, (time.perf_counter_ns() - start_ns) / 1e6


def _make_channel(loss: float, seed: np.random.Generator) -> LinkChannel:
    """The seeded radio: Gilbert-Elliott loss of mean ``loss``, reordering, duplication, no bit errors.

    No bit errors, so every refusal the host counts is an attack's or a duplicate's and each
    attack's reason can be told exactly (corruption on the air is the frame reader's tests' matter).
    """
    settings = ChannelSettings(
        throughput_kbps=BENCH_LINK_KBPS,
        reorder_probability=0.02,
        duplicate_probability=0.01,
        bit_error_rate=0.0,
    ).with_loss(loss, max(BURST_FRAMES, loss / (1 - loss)))
    return LinkChannel(settings, seed=seed, name="uplink")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_attack_bench(
    *, loss: float = 0.0, seconds: float = 10.0, seed=0, feature_bytes: int = FEATURE_BYTES
) -> dict:
    """Run a link session on the lossy radio under attack; count what arrived and what was refused.

    Parameters
    ----------
    loss : float, default 0.0
        Mean frame loss rate of the radio, 0 <= loss < 1 (bursty, Gilbert-Elliott, mean burst
        :data:`BURST_FRAMES` frames).
    seconds : float, default 10.0
        Session length, s of feature bins (50 frames/s), at most :data:`MAX_SECONDS`.
    seed : int or numpy Generator
        Seeds the radio, the features and the attacker (not the keys: those come from the
        operating system, as on a device).
    feature_bytes : int, default :data:`FEATURE_BYTES`
        Payload of each feature frame, bytes (at least 64, at most the frame maximum less the tag).

    Returns
    -------
    dict
        ``sent``, ``delivered``, ``lost`` (genuine frames); ``rejected`` (the host's refusals by
        reason, the radio's duplicates included); ``attacks`` (per kind: ``injected``,
        ``expected`` reason, ``rejected`` by reason, ``accepted``); ``handshake_attacks``
        (kind -> reason refused); ``forged_accepted``, ``replayed_accepted`` (must be 0);
        ``unpaired_refused``; ``throughput_kbps`` (genuine payload delivered);
        ``added_latency_us_p50`` / ``_p99`` (CPU time of seal + frame + parse + open per
        delivered frame, ``perf_counter_ns``); ``seal_us_p50``, ``open_us_p50``;
        ``handshake_ms``; ``channel`` (the radio's counters); the settings.
    """
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not 0.0 <= float(loss) < 1.0:
        raise InvalidInputError(f"loss must be a number >= 0 and < 1, got {loss!r}")
    loss = float(loss)
    seconds = check_positive(seconds, "seconds")
    if seconds > MAX_SECONDS:
        raise InvalidInputError(f"seconds must be <= {MAX_SECONDS:g}, got {seconds!r}")
    feature_bytes = check_int(feature_bytes, "feature_bytes", minimum=64, maximum=MAX_BODY_BYTES - 16)
    radio_rng, feature_rng, attacker_rng = spawn_rngs(seed, 3)

    implant_store, host_store = ephemeral_pairing()
    handshake_outcome = _handshake_attacks(implant_store, attacker_rng)
    implant, host, handshake_ms = _establish(implant_store, host_store)
    channel = _make_channel(loss, radio_rng)
    bench = _Bench(host, _forger_cipher(attacker_rng), attacker_rng)

    n_frames = max(1, int(round(seconds / BIN_S)))
    for index in range(n_frames):
        now_s = index * BIN_S
        sample_clock = index * SAMPLES_PER_BIN
        payload = feature_rng.standard_normal(feature_bytes // 4, dtype=np.float32).tobytes()
        payload += bytes(feature_bytes - len(payload))
        start_ns = time.perf_counter_ns()
        frame = implant.send(StreamType.FEATURES, payload, sample_clock)
        bench.sent(frame, payload, time.perf_counter_ns() - start_ns)
        channel.send(frame, now_s)
        bench.attack(frame, sample_clock)
        for packet in channel.receive(now_s):
            bench.deliver(packet)
    for packet in channel.drain():
        bench.deliver(packet)

    rejected = bench.rejected_now()
    sent = len(bench.genuine)
    delivered = len(bench.delivered_once)
    return {
        "loss": loss,
        "seconds": seconds,
        "seed": seed if isinstance(seed, int) else None,
        "feature_bytes": feature_bytes,
        "link_kbps": BENCH_LINK_KBPS,
        "window_frames": ATTACK_WINDOW_FRAMES,
        "sent": sent,
        "delivered": delivered,
        "lost": sent - delivered,
        "rejected": {reason: int(rejected[reason]) for reason in REJECT_REASONS if rejected.get(reason)},
        "attacks": {
            kind: {**record, "rejected": dict(record["rejected"])} for kind, record in bench.attacks.items()
        },
        "handshake_attacks": handshake_outcome,
        "forged_accepted": bench.forged_accepted,
        "replayed_accepted": bench.replayed_accepted,
        "unpaired_refused": int(handshake_outcome["unpaired"] == "unpaired"),
        "throughput_kbps": bench.delivered_bytes * 8 / 1000 / seconds,
        "added_latency_us_p50": _percentile(bench.added_ns, 50) / 1e3,
        "added_latency_us_p99": _percentile(bench.added_ns, 99) / 1e3,
        "seal_us_p50": _percentile(bench.seal_ns, 50) / 1e3,
        "open_us_p50": _percentile(bench.open_ns, 50) / 1e3,
        "handshake_ms": handshake_ms,
        "channel": _channel_counters(channel),
    }


def _channel_counters(channel) -> dict:
    stats = channel.stats() if callable(getattr(channel, "stats", None)) else {}
    return {key: value for key, value in dict(stats).items() if isinstance(value, (int, float, str))}


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


class _Bench:
    """The host's side of the bench: what it was sent, what it accepted, and the attacker's moves."""

    def __init__(self, host: LinkEndpoint, forger: CipherState, rng: np.random.Generator) -> None:
        self.host = host
        self.forger = forger
        self.rng = rng
        self.genuine: dict[int, bytes] = {}  # sequence -> digest of the payload sent
        self.send_ns: dict[int, int] = {}
        self.wire: dict[int, bytes] = {}  # sequence -> frame as sent: the first few, and the recent ones
        self.delivered_once: set[int] = set()
        self.recent: list[int] = []  # the last accepted sequences, in order of acceptance
        self.old: list[int] = []  # the first accepted sequences, kept for replays behind the window
        self.highest = -1
        self.added_ns: list[int] = []
        self.seal_ns: list[int] = []
        self.open_ns: list[int] = []
        self.delivered_bytes = 0
        self.forged_accepted = 0
        self.replayed_accepted = 0
        self.attacks = {kind: {"injected": 0, "expected": reason, "rejected": Counter(), "accepted": 0}
                        for kind, reason in ATTACK_KINDS.items()}
        self._kinds = list(ATTACK_KINDS)
        self._next_kind = 0

    def rejected_now(self) -> Counter:
        return +self.host.rejected

    def sent(self, frame: bytes, payload: bytes, elapsed_ns: int) -> None:
        sequence = parse_frame(frame).sequence
        self.genuine[sequence] = _digest(payload)
        self.send_ns[sequence] = elapsed_ns
        self.seal_ns.append(elapsed_ns)
        self.wire[sequence] = frame
        stale = sequence - 4 * ATTACK_WINDOW_FRAMES  # behind the window and any reordering: never accepted now
        if stale in self.wire and stale not in self.old:
            del self.wire[stale]

    def _take(self, deliveries, *, attack: str | None, elapsed_ns: int = 0) -> None:
        for item in deliveries:
            sequence, payload = item.sequence, bytes(item.payload)
            if attack is not None:  # the host accepted an attacker's frame
                self.attacks[attack]["accepted"] += 1
            if self.genuine.get(sequence) != _digest(payload):
                self.forged_accepted += 1
            elif sequence in self.delivered_once:
                self.replayed_accepted += 1
            else:
                self.delivered_once.add(sequence)
                self.recent = [*self.recent[-(_REORDER_FRAMES - 1):], sequence]
                if len(self.old) < _OLD_KEPT:
                    self.old.append(sequence)
                self.highest = max(self.highest, sequence)
                self.delivered_bytes += len(payload)
                if attack is None:
                    self.added_ns.append(self.send_ns.pop(sequence) + elapsed_ns)
                    self.open_ns.append(elapsed_ns)

    def deliver(self, packet: bytes) -> None:
        """A packet from the radio to the host."""
        start_ns = time.perf_counter_ns()
        deliveries = self.host.receive(packet)
        self._take(deliveries, attack=None, elapsed_ns=time.perf_counter_ns() - start_ns)

    def _inject(self, kind: str, data: bytes) -> None:
        before = self.rejected_now()
        deliveries = self.host.receive(data)
        self.attacks[kind]["injected"] += 1
        self.attacks[kind]["rejected"].update(self.rejected_now() - before)
        self._take(deliveries, attack=kind)

    def _behind_window(self) -> list[int]:
        return [sequence for sequence in self.old if sequence <= self.highest - ATTACK_WINDOW_FRAMES]

    def _in_window(self) -> list[int]:
        """The last accepted sequences still inside the window (at high loss some fall behind it)."""
        return [sequence for sequence in self.recent if sequence > self.highest - ATTACK_WINDOW_FRAMES]

    def _possible(self, kind: str) -> bool:
        if kind == "replayed_in_window":
            return bool(self._in_window())
        if kind == "reordered":
            return len(self._in_window()) >= 2
        if kind == "replayed_old":
            return bool(self._behind_window())
        return True

    def _forged(self, sequence: int, sample_clock: int) -> bytes:
        """An attacker-marked FEATURES frame sealed under the forger's random key."""
        payload = ATTACKER_MARK + self.rng.bytes(64)
        header = build_header(StreamType.FEATURES, sequence, sample_clock, len(payload) + SEAL_OVERHEAD_BYTES)
        return header + self.forger.encrypt(sequence, header, payload)

    def attack(self, frame: bytes, sample_clock: int) -> None:
        """The attacker's move after the implant sent ``frame``: the next attack kind it can make."""
        for _ in range(len(self._kinds)):
            kind = self._kinds[self._next_kind % len(self._kinds)]
            self._next_kind += 1
            if self._possible(kind):
                break
        else:
            return
        rng = self.rng
        sequence = parse_frame(frame).sequence
        if kind == "tampered_body":
            bit = HEADER_BYTES * 8 + int(rng.integers((len(frame) - HEADER_BYTES) * 8))
            self._inject(kind, _flip_bit(frame, bit))
        elif kind == "tampered_header":
            if rng.random() < 0.5:  # set a clear sequence bit: a number not accepted yet, so the tag decides
                bit = next(bit for bit in range(int(rng.integers(8)), 64) if not (sequence >> bit) & 1)
                self._inject(kind, _rewrite_header(frame, sequence=sequence | (1 << bit)))
            else:
                self._inject(kind, _rewrite_header(frame, sample_clock=sample_clock ^ (1 << int(rng.integers(40)))))
        elif kind == "replayed_in_window":
            recent = self._in_window()
            self._inject(kind, self.wire[recent[int(rng.integers(len(recent)))]])
        elif kind == "replayed_old":
            old = self._behind_window()
            self._inject(kind, self.wire[old[int(rng.integers(len(old)))]])
        elif kind == "reordered":
            for replayed in reversed(self._in_window()):
                self._inject(kind, self.wire[replayed])
        elif kind == "forged":
            self._inject(kind, self._forged(sequence + 1 + int(rng.integers(4)), sample_clock))
        elif kind == "forged_far_sequence":
            self._inject(kind, self._forged(_FAR_SEQUENCE + self._next_kind, sample_clock))
        elif kind == "truncated":  # cut short, then a (forged) frame: the reader finds the cut there
            cut = int(rng.integers(HEADER_BYTES + 1, len(frame)))
            self._inject(kind, frame[:cut] + self._forged(sequence + 5, sample_clock))
        elif kind == "downgraded":
            self._inject(kind, _rewrite_header(frame, version=_OLD_VERSION))
        elif kind == "unknown_stream":
            self._inject(kind, _rewrite_header(frame, stream=_UNKNOWN_STREAM))
