"""The simulated radio: its statistics converge to the settings, its timing is exact, its seed decides all."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.link import BLE_2M_THROUGHPUT_KBPS, ChannelSettings, LinkChannel, gilbert_elliott

FAST = dict(throughput_kbps=math.inf, latency_ms=0.0, jitter_ms=0.0)


def packets(n, size=8):
    """``n`` distinct packets: the index, little-endian, padded to ``size`` bytes."""
    return [index.to_bytes(size, "little") for index in range(n)]


def run(channel, to_send, step_s=1e-3):
    """Send each packet one step apart, receiving as the clock goes; then drain."""
    received = []
    for index, packet in enumerate(to_send):
        channel.send(packet, index * step_s)
        received += channel.receive(index * step_s)
    return received + channel.drain()


def markov_sd(rate, p_good_to_bad, p_bad_to_good, n):
    """Standard deviation of the loss fraction of ``n`` packets of Gilbert's chain (lag correlation rho)."""
    rho = 1 - p_good_to_bad - p_bad_to_good
    return math.sqrt(rate * (1 - rate) * (1 + rho) / (1 - rho) / n)


# -- the loss model -------------------------------------------------------------------------------


def test_gilbert_elliott_known_answer():
    p_good_to_bad, p_bad_to_good = gilbert_elliott(0.1, 4.0)
    assert p_bad_to_good == pytest.approx(0.25)
    assert p_good_to_bad == pytest.approx(0.25 * 0.1 / 0.9)
    settings = ChannelSettings().with_loss(0.1, 4.0)
    assert settings.mean_loss_rate == pytest.approx(0.1)
    assert settings.bad_state_fraction == pytest.approx(0.1)
    assert ChannelSettings().mean_loss_rate == 0.0


@pytest.mark.parametrize(
    ("loss_rate", "burst", "message"),
    [
        (1.0, 5.0, "loss_rate must be below 1"),
        (-0.1, 2.0, "loss_rate must be a finite number >= 0"),
        (0.1, 0.5, r"mean_burst_packets must be >= 1 for loss_rate 0.1"),
        (0.8, 2.0, r"mean_burst_packets must be >= 4 for loss_rate 0.8"),
    ],
)
def test_gilbert_elliott_refuses_impossible_targets(loss_rate, burst, message):
    with pytest.raises(InvalidInputError, match=message):
        gilbert_elliott(loss_rate, burst)


@pytest.mark.parametrize(("loss_rate", "burst"), [(0.05, 1.0), (0.1, 4.0), (0.2, 8.0)])
def test_loss_rate_and_burst_length_converge(loss_rate, burst):
    n = 60_000
    settings = ChannelSettings(**FAST).with_loss(loss_rate, burst)
    channel = LinkChannel(settings, seed=11)
    received = run(channel, packets(n))
    stats = channel.stats()
    assert stats["lost"] + len(received) == n
    sd = markov_sd(loss_rate, settings.p_good_to_bad, settings.p_bad_to_good, n)
    assert abs(stats["loss_rate"] - loss_rate) < 5 * sd, (stats["loss_rate"], sd)
    # bursts are geometric with mean L: sd sqrt(L (L - 1)); about n * rate / L of them
    n_bursts = n * loss_rate / burst
    burst_sd = math.sqrt(burst * (burst - 1)) / math.sqrt(n_bursts)
    observed_burst = stats["mean_burst_packets"]
    assert abs(observed_burst - burst) < 5 * burst_sd + 1e-9, (observed_burst, burst_sd)


def test_losses_are_bursty_and_the_runs_are_counted():
    channel = LinkChannel(ChannelSettings(**FAST).with_loss(0.2, 8.0), seed=5)
    received = {int.from_bytes(packet, "little") for packet in run(channel, packets(20_000))}
    lost = np.array([index not in received for index in range(20_000)])
    runs = int(np.sum(lost[1:] & ~lost[:-1]) + lost[0])
    assert runs == channel.loss_bursts
    assert lost.sum() == channel.lost


def test_state_specific_loss_gives_the_stationary_mean():
    settings = ChannelSettings(**FAST, p_good_to_bad=0.05, p_bad_to_good=0.2, loss_good=0.01, loss_bad=0.5)
    assert settings.mean_loss_rate == pytest.approx(0.8 * 0.01 + 0.2 * 0.5)
    channel = LinkChannel(settings, seed=2)
    run(channel, packets(40_000))
    assert channel.stats()["loss_rate"] == pytest.approx(settings.mean_loss_rate, abs=0.01)


# -- damage, duplication, reordering ----------------------------------------------------------------


def test_bit_error_rate_converges_and_only_the_flipped_bits_differ():
    n, size, ber = 4000, 64, 1e-3
    sent = [bytes(size)] * n
    channel = LinkChannel(ChannelSettings(**FAST, bit_error_rate=ber), seed=4)
    received = run(channel, sent)
    flipped = sum(int.from_bytes(packet, "little").bit_count() for packet in received)
    bits = n * size * 8
    assert flipped == channel.bits_flipped
    assert abs(flipped - ber * bits) < 5 * math.sqrt(bits * ber * (1 - ber))
    assert channel.corrupted == sum(any(packet) for packet in received)


def test_duplicates_arrive_right_after_their_original():
    channel = LinkChannel(ChannelSettings(**FAST, duplicate_probability=0.1), seed=8)
    received = run(channel, packets(10_000))
    assert len(received) == 10_000 + channel.duplicated
    assert abs(channel.duplicated - 1000) < 5 * math.sqrt(10_000 * 0.1 * 0.9)
    indices = [int.from_bytes(packet, "little") for packet in received]
    assert indices == sorted(indices)  # in order, each duplicate beside its original


@pytest.mark.parametrize("displacement", [1, 3, 10])
def test_reordered_packets_arrive_at_most_max_displacement_late(displacement):
    settings = ChannelSettings(**FAST, reorder_probability=0.1, reorder_max_displacement=displacement)
    channel = LinkChannel(settings, seed=9)
    n = 5000
    received = np.array([int.from_bytes(packet, "little") for packet in run(channel, packets(n))])
    assert np.array_equal(np.sort(received), np.arange(n))
    # a held-back packet is one a later packet arrived before; the others keep their order
    running_max = np.maximum.accumulate(np.concatenate([[-1], received[:-1]]))
    held = received < running_max
    in_order = received[~held]
    assert np.all(np.diff(in_order) > 0)
    # each held packet arrives after 1 .. displacement of the in-order packets sent after it
    for position in np.flatnonzero(held):
        overtaken_by = np.sum(received[:position][~held[:position]] > received[position])
        assert 1 <= overtaken_by <= displacement
    assert held.sum() <= channel.reordered <= held.sum() + displacement
    assert abs(channel.reordered - 0.1 * n) < 5 * math.sqrt(n * 0.1 * 0.9)


def test_a_held_packet_arrives_after_its_displacement():
    settings = ChannelSettings(**FAST, reorder_probability=1.0, reorder_max_displacement=1)
    channel = LinkChannel(settings, seed=1)
    channel.send(b"first", 0.0)
    assert channel.receive(1.0) == [] and channel.in_flight == 1
    channel.settings = ChannelSettings(**FAST)
    channel.send(b"second", 1.0)
    assert channel.receive(1.0) == [b"second", b"first"]


# -- timing ---------------------------------------------------------------------------------------


def test_latency_known_answer():
    channel = LinkChannel(ChannelSettings(throughput_kbps=1000.0, latency_ms=4.0, jitter_ms=0.0), seed=0)
    channel.send(bytes(125), 0.0)  # 1000 bits at 1000 kbit/s: 1 ms
    assert channel.next_arrival_s == pytest.approx(0.005)
    assert channel.receive(0.00499) == []
    assert channel.receive(0.00501) == [bytes(125)]


def test_jitter_stays_in_its_window_and_keeps_order():
    settings = ChannelSettings(throughput_kbps=math.inf, latency_ms=5.0, jitter_ms=3.0)
    channel = LinkChannel(settings, seed=3)
    arrivals = []
    for index in range(2000):
        channel.send(index.to_bytes(4, "little"), index * 0.01)  # 10 ms apart: jitter never reorders
        arrivals.append(channel.next_arrival_s - index * 0.01)
        assert channel.receive(index * 0.01 + 0.009)
    delays_ms = np.array(arrivals) * 1000
    assert delays_ms.min() >= 5.0 and delays_ms.max() < 8.0
    assert delays_ms.mean() == pytest.approx(6.5, abs=5 * 3.0 / math.sqrt(12 * 2000))


def test_throughput_limit_queues_then_drops():
    settings = ChannelSettings(throughput_kbps=BLE_2M_THROUGHPUT_KBPS, latency_ms=0.0, jitter_ms=0.0,
                               max_queue_ms=50.0)
    assert BLE_2M_THROUGHPUT_KBPS == 1400.0
    channel = LinkChannel(settings, seed=0)
    size = 1750  # 14 000 bits: 10 ms on the air
    for index in range(100):  # offered: one every 5 ms, twice the rate
        channel.send(bytes(size), index * 0.005)
    received = channel.receive(10.0)
    # the queue settles at 50 ms of backlog: after that every other packet is dropped
    assert channel.queued == len(received) - 1
    assert channel.dropped + len(received) == 100
    assert channel.dropped == pytest.approx(100 - (0.5 + 0.05) / 0.01, abs=2)
    assert channel.next_arrival_s is None


def test_now_never_decreases_and_inputs_are_checked():
    channel = LinkChannel(seed=0)
    channel.send(b"a", 1.0)
    with pytest.raises(InvalidInputError, match="now_s must never decrease: 0.5 after 1.0"):
        channel.receive(0.5)
    with pytest.raises(InvalidInputError, match="data must be bytes"):
        channel.send("text", 2.0)
    with pytest.raises(InvalidInputError, match="now_s must be finite"):
        channel.send(b"a", math.nan)
    with pytest.raises(InvalidInputError, match="settings must be a ChannelSettings"):
        LinkChannel({"latency_ms": 1.0})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("throughput_kbps", 0.0, "throughput_kbps must be a positive finite number"),
        ("latency_ms", -1.0, "latency_ms must be a finite number >= 0"),
        ("loss_bad", 1.5, r"loss_bad must be a probability in \[0, 1\], got 1.5"),
        ("bit_error_rate", "high", "bit_error_rate must be a number >= 0"),
        ("reorder_max_displacement", 0, "reorder_max_displacement must be >= 1"),
    ],
)
def test_settings_are_checked(field, value, message):
    with pytest.raises(InvalidInputError, match=message):
        ChannelSettings(**{field: value})


def test_infinite_queue_and_throughput_are_allowed():
    settings = ChannelSettings(throughput_kbps=math.inf, max_queue_ms=math.inf)
    assert settings.max_queue_ms == math.inf


# -- seeding ---------------------------------------------------------------------------------------

DAMAGING = ChannelSettings(
    throughput_kbps=800.0, jitter_ms=4.0, reorder_probability=0.05, duplicate_probability=0.05,
    bit_error_rate=1e-4,
).with_loss(0.1, 3.0)


def test_same_seed_same_output_and_another_seed_differs():
    to_send = [bytes([index % 256]) * 200 for index in range(3000)]
    first = run(LinkChannel(DAMAGING, seed=42), to_send)
    again = run(LinkChannel(DAMAGING, seed=42), to_send)
    other = run(LinkChannel(DAMAGING, seed=43), to_send)
    assert first == again
    assert first != other
    generator = run(LinkChannel(DAMAGING, seed=np.random.default_rng(42)), to_send)
    assert generator == first


def test_stats_and_repr():
    channel = LinkChannel(DAMAGING, seed=1, name="uplink")
    run(channel, [bytes(100)] * 500, step_s=0.002)
    stats = channel.stats()
    assert stats["name"] == "uplink" and stats["sent"] == 500 and stats["in_flight"] == 0
    assert stats["delivered"] == 500 - stats["lost"] - stats["dropped"] + stats["duplicated"]
    assert stats["bytes_delivered"] == 100 * stats["delivered"]
    assert repr(channel).startswith("LinkChannel('uplink', 800 kbit/s, loss=0.1, sent=500")


def test_for_loss_builds_the_settings_with_the_loss_chain():
    settings = ChannelSettings.for_loss(0.1, 4.0, latency_ms=5.0)
    assert settings == ChannelSettings(latency_ms=5.0).with_loss(0.1, 4.0)
    assert settings.latency_ms == 5.0 and settings.mean_loss_rate == pytest.approx(0.1)
