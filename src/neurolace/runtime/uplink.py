"""The implant's uplink: each tick's features, events and raw samples as link payloads, and back on the host.

:class:`UplinkSender` (implant side) takes what the on-implant chain produced
in one tick (one feature bin, 20 ms by default) and returns the payloads to
seal and send, as ``(StreamType, payload, sample_clock)``; a
:class:`~neurolace.link.governor.BandwidthGovernor` decides which raw channel
groups fit beside the features and events, which always go.
:class:`UplinkReceiver` (host side) turns delivered payloads back into feature
bins, spike events and the exact int16 samples of the raw groups that arrived.

Raw samples are coded by the codec's streaming mode
(:class:`neurolace.codec.stream.StreamEncoder`), one encoder per channel group:
a group is encoded only in the ticks it is sent, so each group's encoder and
the host's decoder for it see the same frames in the same order, whatever the
rotation does. One tick of a group is one codec frame.

Payload layouts (all little-endian)
-----------------------------------
FEATURES
    One bin a frame (:func:`encode_features`): ``u16 k``, then the first ``k`` values as
    uint8 (the longest prefix of whole numbers 0-255: threshold crossings), then the rest
    as float16 (spike-band power; relative error below 5e-4). ``sample_clock``: the bin's
    first sample. 1024 channels of crossings and power are 3 kB a bin, 1.2 Mbit/s at
    50 bins/s, inside a BLE 2M PHY link; float32 would need 3.3 Mbit/s.
EVENTS
    ``n_events`` pairs ``(channel u16, sample offset u16)``, offset = event sample -
    ``sample_clock``, where ``sample_clock`` is the frame's earliest event. Events that
    span more than 65,535 samples, or more than fit one body, are split over frames. A tick
    without events still sends one empty EVENTS frame whose ``sample_clock`` is the tick's,
    so the host can tell "no spikes" from "frame lost".
RAW
    ``group u16 | header_length u16 | stream header (header_length bytes) | codec frame``.
    ``sample_clock``: the first sample of the tick's raw block. The codec's stream header
    (:meth:`StreamEncoder.header`) rides along at a group's first frame and at every resync
    frame (``header_length`` is 0 otherwise), so a host that lost a group's frames, or
    started late, starts decoding it again at the next resync.

Resync and loss: a codec frame decodes only if every frame of its group since the last resync
arrived. ``resync_frames`` (frames of one group between resyncs) trades the bytes of the
model each resync frame carries against how much one lost frame costs;
``python -m benchmarks link_governor`` measures both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.codec.errors import CodecError
from neurolace.codec.stream import StreamDecoder, StreamEncoder
from neurolace.core.checks import check_array, check_int, check_positive
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.link.endpoint import MAX_PAYLOAD_BYTES
from neurolace.link.frames import StreamType
from neurolace.link.governor import BandwidthGovernor

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ReceivedEvents",
    "ReceivedFeatures",
    "ReceivedRaw",
    "UplinkReceiver",
    "UplinkSender",
    "adc_value_table",
    "decode_features",
    "encode_features",
]

_EVENT = np.dtype([("channel", "<u2"), ("offset", "<u2")])
_RAW_PREFIX = struct.Struct("<HH")
_MAX_OFFSET = 0xFFFF

#: one payload to seal and send: stream type, payload bytes, sample clock of its first sample
Outgoing = tuple[StreamType, bytes, int]


def adc_value_table(adc_bits: int = 10) -> np.ndarray:
    """Every code an ``adc_bits`` ADC produces, ``0 .. 2**adc_bits - 1`` as int16: the raw encoder's table."""
    adc_bits = check_int(adc_bits, "adc_bits", minimum=1, maximum=15)
    return np.arange(1 << adc_bits, dtype=np.int16)


def encode_features(features: Any) -> bytes:
    """One feature bin as the implant sends it: a u16 count ``k``, then ``k`` uint8, then float16.

    The first ``k`` features are the longest prefix of whole numbers 0-255 (threshold
    crossings per bin), sent exactly as uint8; the rest (spike-band power) as float16.
    """
    values = np.asarray(features, dtype=np.float64).ravel()
    whole = (values >= 0) & (values <= 255) & (values == np.round(values))
    k = min(int(values.size if whole.all() else np.argmin(whole)), 0xFFFF)
    return k.to_bytes(2, "little") + values[:k].astype(np.uint8).tobytes() + values[k:].astype("<f2").tobytes()


def decode_features(payload: bytes) -> np.ndarray:
    """The bin :func:`encode_features` sent, float32; a malformed payload is a :class:`FormatError`."""
    if len(payload) < 2:
        raise FormatError(f"a features payload has a 2-byte count first, got {len(payload)} bytes")
    k = int.from_bytes(payload[:2], "little")
    rest = len(payload) - 2 - k
    if rest < 0 or rest % 2:
        raise FormatError(f"features payload of {len(payload)} bytes does not hold {k} uint8 then float16 values")
    counts = np.frombuffer(payload, dtype=np.uint8, count=k, offset=2).astype(np.float32)
    power = np.frombuffer(payload, dtype="<f2", offset=2 + k).astype(np.float32)
    return np.concatenate([counts, power])


def _features_payloads(features: np.ndarray, features_clock: int, bin_samples: float) -> list[Outgoing]:
    n_features = features.shape[1]
    if 2 + 2 * n_features > MAX_PAYLOAD_BYTES:
        raise InvalidInputError(
            f"features has {n_features} values per bin (up to {2 + 2 * n_features} bytes), more than one "
            f"frame carries ({MAX_PAYLOAD_BYTES} bytes)"
        )
    return [(StreamType.FEATURES, encode_features(row), features_clock + int(np.floor(index * bin_samples)))
            for index, row in enumerate(features)]


def _events_payloads(events: SpikeEvents | None, tick_clock: int) -> list[Outgoing]:
    if events is None or events.n_spikes == 0:
        return [(StreamType.EVENTS, b"", tick_clock)]
    samples, channels = events.sample_index, events.channel_index  # sorted by sample
    per_frame = MAX_PAYLOAD_BYTES // _EVENT.itemsize
    out = []
    start = 0
    while start < samples.size:
        base = int(samples[start])
        in_reach = int(np.searchsorted(samples, base + _MAX_OFFSET, "right"))  # offsets fit in u16
        stop = min(samples.size, start + per_frame, in_reach)
        pairs = np.empty(stop - start, dtype=_EVENT)
        pairs["channel"] = channels[start:stop]
        pairs["offset"] = samples[start:stop] - base
        out.append((StreamType.EVENTS, pairs.tobytes(), base))
        start = stop
    return out


class UplinkSender:
    """The implant side: one tick's products in, the payloads the governor lets through out.

    Parameters
    ----------
    governor : BandwidthGovernor
        Decides the raw groups each tick; its ``n_channels``, ``group_size`` and ``tick_s``
        define the array, the groups and the tick.
    fs_hz : float
        Sampling rate of the raw samples.
    value_table : ndarray of int16, shape (n_values,), optional
        Every value the ADC produces (default: :func:`adc_value_table`, the N1's 10 bits).
    resync_frames : int, default 4
        Frames of one group from one resync to the next (1: every frame stands alone).
    max_block_samples : int, optional
        Most raw samples per channel in one tick (default: ``ceil(tick_s * fs_hz)``).

    Examples
    --------
    >>> governor = BandwidthGovernor(n_channels=32, budget_kbps=4000.0)
    >>> sender = UplinkSender(governor, fs_hz=19531.25)
    >>> raw = np.full((391, 32), 512, dtype=np.int16)
    >>> [stream.name for stream, _, _ in sender.tick(raw, sample_clock=0, features=np.zeros((1, 64)))]
    ['FEATURES', 'EVENTS', 'RAW', 'RAW']
    """

    def __init__(
        self,
        governor: BandwidthGovernor,
        *,
        fs_hz: float,
        value_table: np.ndarray | None = None,
        resync_frames: int = 4,
        max_block_samples: int | None = None,
    ) -> None:
        if not isinstance(governor, BandwidthGovernor):
            raise InvalidInputError(f"governor must be a BandwidthGovernor, got {type(governor).__name__}")
        self.governor = governor
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.value_table = adc_value_table() if value_table is None else value_table
        self.resync_frames = check_int(resync_frames, "resync_frames", minimum=1)
        self.bin_samples = governor.tick_s * self.fs_hz
        self.max_block_samples = check_int(
            int(np.ceil(self.bin_samples - 1e-9)) if max_block_samples is None else max_block_samples,
            "max_block_samples",
            minimum=1,
        )
        frame_ms = self.max_block_samples * 1000.0 / self.fs_hz
        try:
            self._encoders = [
                StreamEncoder(
                    self.value_table,
                    n_channels=group.size,
                    fs_hz=self.fs_hz,
                    frame_ms=frame_ms,
                    resync_ms=self.resync_frames * frame_ms,
                )
                for group in governor.groups
            ]
        except CodecError as exc:
            raise InvalidInputError(f"value_table: {exc}") from None
        assert all(e.frame_samples == self.max_block_samples for e in self._encoders)
        assert all(e.resync_frames == self.resync_frames for e in self._encoders)
        self._headers = [encoder.header() for encoder in self._encoders]
        self._frames_sent = [0] * len(self._encoders)

    def tick(
        self,
        raw: np.ndarray,
        *,
        sample_clock: int,
        features: np.ndarray,
        features_clock: int | None = None,
        events: SpikeEvents | None = None,
    ) -> list[Outgoing]:
        """Payloads to send for one tick: features, events, then the raw groups that fit.

        Parameters
        ----------
        raw : ndarray of int16, shape (n_samples, n_channels)
            The tick's ADC codes, 1 <= n_samples <= ``max_block_samples``.
        sample_clock : int
            Implant sample index of ``raw[0]``.
        features : ndarray, shape (n_bins, n_features) or (n_features,)
            The feature bins the chain finished this tick (one FEATURES frame each; may be 0 bins).
        features_clock : int, optional
            Sample index where the first bin starts (default: ``sample_clock``).
        events : SpikeEvents, optional
            The spike events the chain finished this tick (default: none).

        Returns
        -------
        list of (StreamType, bytes, int)
            Stream type, payload and sample clock of each frame to seal, in send order.
        """
        n_channels = self.governor.n_channels
        block = check_array(raw, "raw", ndim=2, shape=(None, n_channels), dtype="integer")
        if block.dtype != np.int16 or not 1 <= block.shape[0] <= self.max_block_samples:
            raise InvalidInputError(
                f"raw must be int16 of shape (1..{self.max_block_samples}, {n_channels}), "
                f"got {block.dtype} {block.shape}"
            )
        sample_clock = check_int(sample_clock, "sample_clock", minimum=0)
        features_clock = sample_clock if features_clock is None else check_int(
            features_clock, "features_clock", minimum=0
        )
        bins = check_array(features, "features", ndim=(1, 2), dtype=np.float32)
        bins = bins.reshape(1, -1) if bins.ndim == 1 else bins
        if events is not None and not isinstance(events, SpikeEvents):
            raise InvalidInputError(f"events must be SpikeEvents or None, got {type(events).__name__}")
        if events is not None and events.n_channels > _MAX_OFFSET + 1:
            raise InvalidInputError(f"events has {events.n_channels} channels; the layout carries <= 65536")
        feature_frames = _features_payloads(bins, features_clock, self.bin_samples) if bins.shape[0] else []
        event_frames = _events_payloads(events, sample_clock)

        def encode_raw(channels: np.ndarray) -> bytes:
            group = int(channels[0]) // self.governor.group_size
            frame = self._encoders[group].encode_frame(np.ascontiguousarray(block[:, channels]))
            resync = self._frames_sent[group] % self.resync_frames == 0
            self._frames_sent[group] += 1
            header = self._headers[group] if resync else b""
            return _RAW_PREFIX.pack(group, len(header)) + header + frame

        plan = self.governor.tick(
            features=[payload for _, payload, _ in feature_frames],
            events=[payload for _, payload, _ in event_frames],
            encode_raw=encode_raw,
        )
        raw_frames = [(StreamType.RAW, group.payload, sample_clock) for group in plan.raw]
        return feature_frames + event_frames + raw_frames


@dataclass(frozen=True)
class ReceivedFeatures:
    """Feature bins from one FEATURES frame: ``data`` shape (n_bins, n_features), float32."""

    sample_clock: int
    data: np.ndarray


@dataclass(frozen=True)
class ReceivedEvents:
    """Spike events from one EVENTS frame (possibly none): sample and channel index, shape (n_events,)."""

    sample_clock: int
    sample_index: np.ndarray
    channel_index: np.ndarray


@dataclass(frozen=True)
class ReceivedRaw:
    """One raw group's tick: ``samples`` int16, shape (n_samples, n_group_channels), of ``channel_index``."""

    sample_clock: int
    group_index: int
    channel_index: np.ndarray
    samples: np.ndarray


class UplinkReceiver:
    """The host side: delivered payloads back into features, events and exact raw samples.

    Parameters
    ----------
    n_channels : int
        Channels of the array.
    n_features : int
        Values per feature bin.
    group_size : int, default 16
        Channels per raw group, as the sender's governor has it.

    Attributes
    ----------
    counts : dict of str to int
        ``features_frames``, ``events_frames``, ``raw_frames`` decoded, ``raw_undecodable`` (a frame
        of the group was lost since its last resync, or no header came yet) and
        ``raw_channel_ticks`` decoded.
    """

    def __init__(self, *, n_channels: int, n_features: int, group_size: int = 16) -> None:
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.group_size = check_int(group_size, "group_size", minimum=1)
        self.n_groups = -(-self.n_channels // self.group_size)
        self._decoders: list[StreamDecoder | None] = [None] * self.n_groups
        self.counts = dict.fromkeys(
            ("features_frames", "events_frames", "raw_frames", "raw_undecodable", "raw_channel_ticks"), 0
        )

    def receive(
        self, stream_type: StreamType, payload: bytes, sample_clock: int
    ) -> ReceivedFeatures | ReceivedEvents | ReceivedRaw | None:
        """Decode one delivered payload.

        Returns
        -------
        ReceivedFeatures, ReceivedEvents or ReceivedRaw
            What the payload carried; ``None`` for a raw frame that cannot be decoded (counted in
            ``counts["raw_undecodable"]``) or a stream type this side does not take.

        Raises
        ------
        FormatError
            A payload that does not have its stream's layout.
        """
        payload = bytes(payload)
        if stream_type == StreamType.FEATURES:
            values = decode_features(payload)
            if values.size != self.n_features:
                raise FormatError(f"features payload holds {values.size} values, not one bin of {self.n_features}")
            self.counts["features_frames"] += 1
            return ReceivedFeatures(sample_clock, values.reshape(1, -1))
        if stream_type == StreamType.EVENTS:
            if len(payload) % _EVENT.itemsize:
                raise FormatError(f"events payload of {len(payload)} bytes is not whole (u16, u16) pairs")
            pairs = np.frombuffer(payload, dtype=_EVENT)
            if pairs.size and int(pairs["channel"].max()) >= self.n_channels:
                highest = int(pairs["channel"].max())
                raise FormatError(f"events payload names channel {highest} of {self.n_channels}")
            self.counts["events_frames"] += 1
            return ReceivedEvents(
                sample_clock,
                sample_clock + pairs["offset"].astype(np.int64),
                pairs["channel"].astype(np.int32),
            )
        if stream_type == StreamType.RAW:
            return self._receive_raw(payload, sample_clock)
        return None

    def _receive_raw(self, payload: bytes, sample_clock: int) -> ReceivedRaw | None:
        if len(payload) < _RAW_PREFIX.size:
            raise FormatError(f"raw payload of {len(payload)} bytes is shorter than its group prefix")
        group, header_length = _RAW_PREFIX.unpack_from(payload)
        if group >= self.n_groups or _RAW_PREFIX.size + header_length > len(payload):
            raise FormatError(f"raw payload names group {group} of {self.n_groups} or overruns its header")
        channels = np.arange(group * self.group_size, min((group + 1) * self.group_size, self.n_channels))
        frame_start = _RAW_PREFIX.size + header_length
        try:
            if header_length and self._decoders[group] is None:
                decoder = StreamDecoder(payload[_RAW_PREFIX.size : frame_start])
                if decoder.n_channels != channels.size:
                    raise FormatError(
                        f"raw group {group}: stream header has {decoder.n_channels} channels, "
                        f"the group {channels.size}"
                    )
                self._decoders[group] = decoder
            decoder = self._decoders[group]
            if decoder is None:
                self.counts["raw_undecodable"] += 1
                return None
            samples = decoder.decode_frame(payload[frame_start:])
        except CodecError:
            self.counts["raw_undecodable"] += 1
            return None
        self.counts["raw_frames"] += 1
        self.counts["raw_channel_ticks"] += channels.size
        return ReceivedRaw(sample_clock, group, channels, samples)
