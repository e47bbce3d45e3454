"""The implant-side bandwidth governor and the uplink wiring: what is sent, what is dropped, lossless raw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
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

