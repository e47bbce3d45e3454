"""The implant-side bandwidth governor and the uplink wiring: what is sent, what is dropped, lossless raw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.link.governor import DROP_REASONS, FRAME_OVERHEAD_BYTES, BandwidthGovernor

BYTES_PER_CHANNEL = 100  # the fake raw encoder's exact cost, so the estimate is right from the start


def fixed_encoder(calls=None):
    def encode(channels):
        if calls is not None:
            calls.append(channels.copy())
        return bytes(BYTES_PER_CHANNEL * channels.size)

    return encode


def governor(**overrides):
    settings = dict(
        n_channels=128, budget_kbps=2000.0, group_size=16, raw_bytes_per_channel_tick=BYTES_PER_CHANNEL
    )
    settings.update(overrides)
    return BandwidthGovernor(**settings)


def kbps_for(bytes_per_tick, tick_s=0.02):
    return bytes_per_tick * 8 / 1000 / tick_s


# -- features and events always go --------------------------------------------------------------


@pytest.mark.parametrize("budget_kbps", [0.0, 10.0, 2000.0])
def test_features_and_events_are_always_sent(budget_kbps):
    gov = governor(budget_kbps=budget_kbps)
    features, events = bytes(4096), [bytes(400), bytes(12)]
    for _ in range(5):
        plan = gov.tick(features=features, events=events, encode_raw=fixed_encoder())
        assert plan.mandatory_bytes == 4096 + 412 + 3 * FRAME_OVERHEAD_BYTES
    report = gov.report()
    assert report["sent"]["features_frames"] == 5 and report["sent"]["events_frames"] == 10
    assert report["sent"]["features_bytes"] == 5 * 4096 and report["sent"]["events_bytes"] == 5 * 412
    budget_bytes = budget_kbps * 1000 / 8 * 0.02
    if budget_bytes < plan.mandatory_bytes:  # they overrun: reported, never dropped
        assert report["overrun"]["ticks"] == 5
        assert plan.overrun_bytes == math.ceil(plan.mandatory_bytes - budget_bytes)
        assert report["sent"]["raw_channel_ticks"] == 0
    else:
        assert report["overrun"] == {"ticks": 0, "bytes": 0}


def test_sizes_may_be_given_instead_of_bytes():
    by_bytes, by_size = governor(), governor()
    a = by_bytes.tick(features=bytes(700), events=[bytes(40)], encode_raw=fixed_encoder())
    b = by_size.tick(features=700, events=[40], encode_raw=fixed_encoder())
    assert a.mandatory_bytes == b.mandatory_bytes and a.raw_channels == b.raw_channels
    assert governor().tick(features=[], events=[], encode_raw=fixed_encoder()).mandatory_bytes == 0


# -- raw follows the budget ---------------------------------------------------------------------


def mean_raw_channels(gov, ticks, features=1000):
    plans = [gov.tick(features=features, events=0, encode_raw=fixed_encoder()) for _ in range(ticks)]
    return np.mean([plan.raw_channels for plan in plans])


def test_raw_channels_shrink_with_the_budget_and_grow_back():
    group_link_bytes = 16 * BYTES_PER_CHANNEL + FRAME_OVERHEAD_BYTES
    mandatory = 1000 + 2 * FRAME_OVERHEAD_BYTES
    gov = governor(budget_kbps=kbps_for(mandatory + 5 * group_link_bytes))
    high = mean_raw_channels(gov, 20)
    assert high == 5 * 16  # exactly five groups fit
    gov.set_budget(kbps_for(mandatory + 2 * group_link_bytes))
    mean_raw_channels(gov, 2)  # the carried credit is spent
    low = mean_raw_channels(gov, 20)
    assert low == 2 * 16
    gov.set_budget(kbps_for(mandatory + 5 * group_link_bytes))
    assert mean_raw_channels(gov, 20) == high
    gov.set_budget(kbps_for(mandatory + 0.5 * group_link_bytes))  # a group every other tick, via the carry
    assert mean_raw_channels(gov, 40) == pytest.approx(8, abs=0.5)


def test_loss_lowers_the_budget_at_once_and_it_recovers_slowly():
    group_link_bytes = 16 * BYTES_PER_CHANNEL + FRAME_OVERHEAD_BYTES
    gov = governor(budget_kbps=kbps_for(1000 + 2 * FRAME_OVERHEAD_BYTES + 6 * group_link_bytes))
    clean = mean_raw_channels(gov, 10)
    assert gov.observe(0.5) == pytest.approx(0.9)  # loss_alpha = 0.2: the estimate, at once
    assert gov.observe(0.5) == pytest.approx(0.82)
    lossy = mean_raw_channels(gov, 10)
    assert lossy < clean
    assert gov.report()["dropped"]["backoff"] > 0
    fractions = [gov.observe(1.0) for _ in range(30)]
    # the budget climbs at most 0.02 a report (the estimate itself is back faster)
    assert np.allclose(np.diff(fractions[:6]), 0.02) and np.all(np.diff(fractions) <= 0.02 + 1e-12)
    assert fractions[-1] == pytest.approx(gov.goodput_fraction_) and fractions[-1] > 0.99
    assert mean_raw_channels(gov, 10) == pytest.approx(clean, abs=16 * 1 / 10)  # within a group in 10 ticks


def test_backoff_never_goes_below_its_floor_and_features_still_go():
    gov = governor(min_budget_fraction=0.25)
    for _ in range(20):
        gov.observe(0.0)
    assert gov.effective_budget_fraction == 0.25
    assert gov.report()["effective_budget_kbps"] == pytest.approx(0.25 * 2000.0)
    plan = gov.tick(features=bytes(20000), events=b"", encode_raw=fixed_encoder())
    assert plan.mandatory_bytes == 20000 + 2 * FRAME_OVERHEAD_BYTES and plan.raw == ()


def test_ack_reports_count_frames():
    a, b = governor(), governor()
    assert a.observe({"sent": 20, "delivered": 15}) == b.observe(0.75)
    assert a.observe({"sent": 0, "delivered": 0}) == a.effective_budget_fraction  # nothing to learn

    class Ack:
        sent, delivered = 4, 2

    assert a.observe(Ack()) < 1.0
    assert a.report()["observations"] == 2


def test_the_estimate_follows_the_real_sizes_and_the_long_run_rate_keeps_to_the_budget():
    budget_kbps = 3000.0
    gov = governor(budget_kbps=budget_kbps, raw_bytes_per_channel_tick=20.0)  # starts far too low
    rng = np.random.default_rng(3)

    def noisy(channels):
        return bytes(int(rng.integers(150, 250)) * channels.size)

    for _ in range(300):
        gov.tick(features=1200, events=int(rng.integers(0, 300)), encode_raw=noisy)
    report = gov.report()
    assert 150 <= report["raw_bytes_per_channel_tick_estimate"] <= 250
    budget_bytes = budget_kbps * 1000 / 8 * 0.02
    # the carry is bounded by one tick's budget (or one group), so 300 ticks spend at most ~301 ticks' worth
    assert report["sent"]["link_bytes"] <= budget_bytes * 301 + 16 * 250 + FRAME_OVERHEAD_BYTES
    assert report["sent"]["link_kbps"] <= budget_kbps * 1.02


# -- rotation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_channels, group_size, groups_per_tick", [(100, 8, 3), (1024, 16, 5), (7, 16, 1), (48, 16, 2)]
)
def test_rotation_covers_every_channel_within_ceil_groups_over_groups_per_tick(
    n_channels, group_size, groups_per_tick
):
    calls = []
    largest = min(group_size, n_channels)
    room = groups_per_tick * (largest * BYTES_PER_CHANNEL + FRAME_OVERHEAD_BYTES)
    gov = governor(
        n_channels=n_channels, group_size=group_size, budget_kbps=kbps_for(room + 2 * FRAME_OVERHEAD_BYTES)
    )
    n_groups = math.ceil(n_channels / group_size)
    window = math.ceil(n_groups / min(groups_per_tick, n_groups))
    per_tick = []
    for _ in range(3 * window + 7):
        calls.clear()
        plan = gov.tick(features=0, events=0, encode_raw=fixed_encoder(calls))
        assert [g.channel_index.tolist() for g in plan.raw] == [c.tolist() for c in calls]
        per_tick.append(np.concatenate(calls) if calls else np.zeros(0, np.int64))
        assert len(plan.raw) >= min(groups_per_tick, n_groups)
    for start in range(len(per_tick) - window + 1):
        covered = np.unique(np.concatenate(per_tick[start : start + window]))
        assert covered.tolist() == list(range(n_channels)), f"window starting at tick {start}"
    counts = np.bincount(np.concatenate(per_tick), minlength=n_channels)
    assert counts.max() - counts.min() <= 1 + groups_per_tick  # fair over time


# -- drops add up -------------------------------------------------------------------------------


def test_reported_drops_add_up():
    gov = governor(n_channels=200, group_size=16, budget_kbps=1500.0)
    rng = np.random.default_rng(0)
    for tick in range(120):
        if tick % 10 == 0:
            gov.observe(float(rng.uniform(0.5, 1.0)))
        if tick == 60:
            gov.set_budget(700.0)
        plan = gov.tick(
            features=int(rng.integers(500, 2000)),
            events=[int(rng.integers(0, 400))],
            encode_raw=fixed_encoder(),
        )
        assert plan.raw_channels + sum(plan.dropped.values()) == 200
        assert set(plan.dropped) == set(DROP_REASONS)
    report = gov.report()
    assert report["sent"]["raw_channel_ticks"] + sum(report["dropped"].values()) == 120 * 200
    assert report["dropped"]["backoff"] > 0 and report["dropped"]["budget"] > 0
    assert report["raw_fraction"] == pytest.approx(report["sent"]["raw_channel_ticks"] / (120 * 200))
    assert report["raw_channels_mean"] == pytest.approx(report["sent"]["raw_channel_ticks"] / 120)
    frames = sum(report["sent"][f"{stream}_frames"] for stream in ("features", "events", "raw"))
    payload = sum(report["sent"][f"{s}_bytes"] for s in ("features", "events", "raw"))
    assert report["sent"]["link_bytes"] == payload + frames * FRAME_OVERHEAD_BYTES


# -- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"budget_kbps": -1.0}, "budget_kbps must be a finite number >= 0"),
        ({"budget_kbps": float("nan")}, "budget_kbps must be a finite number >= 0"),
        ({"budget_kbps": float("inf")}, "budget_kbps"),
        ({"budget_kbps": "fast"}, "budget_kbps must be a number"),
        ({"tick_s": float("nan")}, "tick_s must be a positive"),
        ({"tick_s": 0}, "tick_s must be a positive"),
        ({"n_channels": 0}, "n_channels must be >= 1"),
        ({"group_size": 0}, "group_size must be >= 1"),
        ({"raw_bytes_per_channel_tick": float("nan")}, "raw_bytes_per_channel_tick"),
        ({"estimate_alpha": 0.0}, r"estimate_alpha must be a number in \(0, 1\]"),
        ({"loss_alpha": float("nan")}, "loss_alpha"),
        ({"recovery_step": 2.0}, r"recovery_step must be a number in \(0, 1\]"),
        ({"min_budget_fraction": -0.1}, "min_budget_fraction"),
        ({"frame_overhead_bytes": -1}, "frame_overhead_bytes must be >= 0"),
    ],
)
def test_bad_settings_name_the_parameter(overrides, match):
    with pytest.raises(InvalidInputError, match=match):
        governor(**overrides)


def test_bad_calls_name_the_parameter():
    gov = governor()
    with pytest.raises(InvalidInputError, match="budget_kbps must be a finite number >= 0"):
        gov.set_budget(-5)
    with pytest.raises(InvalidInputError, match="budget_kbps"):
        gov.set_budget(float("nan"))
    with pytest.raises(InvalidInputError, match=r"delivered_fraction must be a number in \[0, 1\]"):
        gov.observe(float("nan"))
    with pytest.raises(InvalidInputError, match="delivered_fraction"):
        gov.observe(1.5)
    with pytest.raises(InvalidInputError, match="report delivered must be <= 3"):
        gov.observe({"sent": 3, "delivered": 4})
    with pytest.raises(InvalidInputError, match="report sent must be an integer"):
        gov.observe({"sent": None, "delivered": 0})
    with pytest.raises(InvalidInputError, match="features size must be >= 0"):
        gov.tick(features=-1, events=0, encode_raw=fixed_encoder())
    with pytest.raises(InvalidInputError, match="events must be bytes, a byte count"):
        gov.tick(features=0, events=1.5, encode_raw=fixed_encoder())
    with pytest.raises(InvalidInputError, match="encode_raw must be callable"):
        gov.tick(features=0, events=0, encode_raw=None)
    with pytest.raises(InvalidInputError, match="encode_raw must return bytes"):
        gov.tick(features=0, events=0, encode_raw=lambda channels: "text")
    assert gov.report()["ticks"] == 0 and gov.goodput_fraction_ == 1.0  # refused calls changed nothing



# -- the uplink: payloads, and raw back at the host sample for sample ----------------------------

FS_HZ = 19531.25


def random_walk_codes(n_samples, n_channels, seed=0):
    """10-bit ADC codes that wander like a band-limited signal (seeded)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 6, size=(n_samples, n_channels)).cumsum(axis=0) * 0.2
    return np.clip(np.round(512 + steps + rng.normal(0, 4, size=steps.shape)), 0, 1023).astype(np.int16)


def tick_edges(n_ticks):
    return np.floor(np.arange(n_ticks + 1) * 0.02 * FS_HZ).astype(np.int64)  # 390 and 391 alternate


def run_uplink(sender, codes, n_ticks, n_features, events_for=None):
    edges = tick_edges(n_ticks)
    sent = []
    for k in range(n_ticks):
        block = codes[edges[k] : edges[k + 1]]
        features = np.full((1, n_features), k, dtype=np.float32)
        events = None if events_for is None else events_for(k, edges[k])
        sent.append(sender.tick(block, sample_clock=int(edges[k]), features=features, events=events))
    return edges, sent


def make_sender(n_channels=40, budget_kbps=1500.0, resync_frames=4, group_size=8):
    from neurolace.runtime.uplink import UplinkSender

    governor = BandwidthGovernor(n_channels=n_channels, budget_kbps=budget_kbps, group_size=group_size)
    return UplinkSender(governor, fs_hz=FS_HZ, resync_frames=resync_frames)


def test_uplink_round_trip_is_lossless_for_every_channel_delivered():
    from neurolace.link.frames import StreamType
    from neurolace.runtime.uplink import ReceivedFeatures, ReceivedRaw, UplinkReceiver

    n_channels, n_ticks = 40, 30
    codes = random_walk_codes(int(tick_edges(n_ticks)[-1]), n_channels)
    sender = make_sender(n_channels)
    receiver = UplinkReceiver(n_channels=n_channels, n_features=2 * n_channels, group_size=8)
    edges, sent = run_uplink(sender, codes, n_ticks, 2 * n_channels)
    decoded_channel_ticks = 0
    for k, payloads in enumerate(sent):
        assert [stream for stream, _, _ in payloads[:2]] == [StreamType.FEATURES, StreamType.EVENTS]
        for stream, payload, clock in payloads:
            got = receiver.receive(stream, payload, clock)
            if isinstance(got, ReceivedFeatures):
                assert got.sample_clock == edges[k]
                assert np.array_equal(got.data, np.full((1, 80), k, np.float32))
            if isinstance(got, ReceivedRaw):
                assert clock == edges[k]
                assert np.array_equal(got.samples, codes[edges[k] : edges[k + 1], got.channel_index])
                decoded_channel_ticks += got.channel_index.size
    report = sender.governor.report()
    assert decoded_channel_ticks == report["sent"]["raw_channel_ticks"]
    assert decoded_channel_ticks == receiver.counts["raw_channel_ticks"]
    assert 0 < report["raw_fraction"] < 1 and receiver.counts["raw_undecodable"] == 0


def test_lost_raw_frames_cost_their_group_until_the_next_resync_and_what_decodes_is_exact():
    from neurolace.link.frames import StreamType
    from neurolace.runtime.uplink import ReceivedRaw, UplinkReceiver

    n_channels, n_ticks = 32, 80
    codes = random_walk_codes(int(tick_edges(n_ticks)[-1]), n_channels, seed=5)
    sender = make_sender(n_channels, budget_kbps=2500.0, resync_frames=3)
    receiver = UplinkReceiver(n_channels=n_channels, n_features=64, group_size=8)
    edges, sent = run_uplink(sender, codes, n_ticks, 64)
    rng = np.random.default_rng(1)
    raw_sent = lost = 0
    resumed_after_loss = False
    broken = set()
    for k, payloads in enumerate(sent):
        for stream, payload, clock in payloads:
            if stream != StreamType.RAW:
                continue
            raw_sent += 1
            group = int.from_bytes(payload[:2], "little")
            if rng.random() < 0.2:
                lost += 1
                broken.add(group)
                continue
            got = receiver.receive(stream, payload, clock)
            if got is not None:
                assert isinstance(got, ReceivedRaw) and got.group_index == group
                assert np.array_equal(got.samples, codes[edges[k] : edges[k + 1], got.channel_index])
                resumed_after_loss |= group in broken
    counts = receiver.counts
    assert lost > 0 and counts["raw_undecodable"] > 0 and resumed_after_loss
    assert counts["raw_frames"] + counts["raw_undecodable"] + lost == raw_sent


def test_the_stream_header_rides_on_each_groups_first_frame_and_every_resync():
    from neurolace.link.frames import StreamType

    n_channels, n_ticks = 16, 24
    codes = random_walk_codes(int(tick_edges(n_ticks)[-1]), n_channels, seed=2)
    sender = make_sender(n_channels, budget_kbps=20000.0, resync_frames=5)  # every group every tick
    _, sent = run_uplink(sender, codes, n_ticks, 4)
    for k, payloads in enumerate(sent):
        raw = [payload for stream, payload, _ in payloads if stream == StreamType.RAW]
        assert len(raw) == 2
        for payload in raw:
            header_length = int.from_bytes(payload[2:4], "little")
            assert (header_length > 0) == (k % 5 == 0)
            if header_length:
                assert payload[4:8] == b"NLXS"


def test_events_round_trip_split_where_offsets_would_overflow():
    from neurolace.link.frames import StreamType
    from neurolace.runtime.uplink import UplinkReceiver

    sender = make_sender(8, budget_kbps=100.0)
    receiver = UplinkReceiver(n_channels=8, n_features=3, group_size=8)
    samples = np.array([70_000, 70_010, 100_000, 135_535, 135_536, 300_000])  # 65,535 is the last offset
    channels = np.array([1, 7, 0, 3, 3, 2])
    events = SpikeEvents(samples, channels, fs_hz=FS_HZ, n_channels=8)
    block = np.full((390, 8), 512, dtype=np.int16)
    payloads = sender.tick(block, sample_clock=300_000, features=np.zeros(3), events=events)
    event_frames = [(payload, clock) for stream, payload, clock in payloads if stream == StreamType.EVENTS]
    assert [clock for _, clock in event_frames] == [70_000, 135_536, 300_000]
    got = [receiver.receive(StreamType.EVENTS, payload, clock) for payload, clock in event_frames]
    assert np.concatenate([g.sample_index for g in got]).tolist() == samples.tolist()
    assert np.concatenate([g.channel_index for g in got]).tolist() == channels.tolist()
    quiet = sender.tick(block, sample_clock=300_390, features=np.zeros(3))
    assert [(s, p, c) for s, p, c in quiet if s == StreamType.EVENTS] == [(StreamType.EVENTS, b"", 300_390)]
    empty = receiver.receive(StreamType.EVENTS, b"", 300_390)
    assert empty.sample_index.size == 0 and empty.sample_clock == 300_390


def test_uplink_refuses_bad_arguments_by_name():
    from neurolace.runtime.uplink import UplinkSender

    sender = make_sender(8)
    block = np.full((390, 8), 512, dtype=np.int16)
    with pytest.raises(InvalidInputError, match="raw must be int16 of shape"):
        sender.tick(block.astype(np.int32), sample_clock=0, features=np.zeros(2))
    with pytest.raises(InvalidInputError, match="raw must be int16 of shape"):
        sender.tick(np.zeros((500, 8), np.int16), sample_clock=0, features=np.zeros(2))
    with pytest.raises(InvalidInputError, match="raw must have shape"):
        sender.tick(np.zeros((390, 9), np.int16), sample_clock=0, features=np.zeros(2))
    with pytest.raises(InvalidInputError, match="sample_clock must be >= 0"):
        sender.tick(block, sample_clock=-1, features=np.zeros(2))
    with pytest.raises(InvalidInputError, match="features must be finite"):
        sender.tick(block, sample_clock=0, features=np.array([1.0, np.nan]))
    with pytest.raises(InvalidInputError, match="events must be SpikeEvents"):
        sender.tick(block, sample_clock=0, features=np.zeros(2), events=[1, 2])
    with pytest.raises(InvalidInputError, match="governor must be a BandwidthGovernor"):
        UplinkSender(None, fs_hz=FS_HZ)
    with pytest.raises(InvalidInputError, match="resync_frames must be >= 1"):
        UplinkSender(governor(), fs_hz=FS_HZ, resync_frames=0)
    with pytest.raises(InvalidInputError, match="fs_hz must be a positive"):
        UplinkSender(governor(), fs_hz=float("nan"))
    with pytest.raises(InvalidInputError, match="value_table"):
        UplinkSender(governor(), fs_hz=FS_HZ, value_table=np.array([3, 1], np.int16))


def test_receiver_refuses_payloads_without_their_layout():
    from neurolace.core.errors import FormatError
    from neurolace.link.frames import StreamType
    from neurolace.runtime.uplink import UplinkReceiver

    receiver = UplinkReceiver(n_channels=8, n_features=3, group_size=8)
    with pytest.raises(FormatError, match="does not hold 10 uint8 then float16"):
        receiver.receive(StreamType.FEATURES, bytes([10, 0, 0, 0]), 0)
    with pytest.raises(FormatError, match="holds 4 values, not one bin of 3"):
        receiver.receive(StreamType.FEATURES, bytes([4, 0, 1, 2, 3, 4]), 0)
    with pytest.raises(FormatError, match="not whole"):
        receiver.receive(StreamType.EVENTS, bytes(3), 0)
    with pytest.raises(FormatError, match="names channel 9 of 8"):
        receiver.receive(StreamType.EVENTS, bytes([9, 0, 0, 0]), 0)
    with pytest.raises(FormatError, match="names group 4 of 1"):
        receiver.receive(StreamType.RAW, bytes([4, 0, 0, 0, 1]), 0)
    with pytest.raises(FormatError, match="shorter than its group prefix"):
        receiver.receive(StreamType.RAW, b"\x00", 0)
    assert receiver.receive(StreamType.RAW, bytes([0, 0, 0, 0]) + b"junk", 0) is None  # no header yet
    assert receiver.counts["raw_undecodable"] == 1


def test_the_frame_overhead_is_the_link_header_and_the_aead_tag():
    from neurolace.link.frames import HEADER_BYTES
    from neurolace.link.noise import TAG_BYTES

    assert FRAME_OVERHEAD_BYTES == HEADER_BYTES + TAG_BYTES
