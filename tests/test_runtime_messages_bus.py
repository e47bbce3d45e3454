"""Messages survive the wire format exactly; the in-process bus delivers in order and drops the oldest."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.runtime.bus import InProcessBus, open_bus
from neurolace.runtime.messages import Message, decode, encode


@pytest.mark.parametrize(
    "payload",
    [
        np.arange(20 * 1024, dtype=np.int16).reshape(20, 1024),  # 1 ms raw block
        np.zeros((0, 1024), dtype=np.int16),  # empty block
        np.array([[7]], dtype=np.int16),  # one channel, one sample
        np.linspace(-1, 1, 13, dtype=np.float32),  # odd length
        np.array([1.5, -2.5, 1.0]),  # a velocity
        np.arange(6, dtype=">i4").reshape(2, 3),  # big-endian
        np.float64(3.25).reshape(()),  # 0-d
    ],
    ids=["raw", "empty", "one", "odd", "velocity", "bigendian", "scalar"],
)
def test_round_trip_is_exact(payload):
    message = Message(
        "dsp.features", payload, sequence=41, sample_index=390_625, origin_ns=123, timestamp_ns=456
    )
    back = decode(encode(message))
    assert back.stream == "dsp.features"
    assert (back.sequence, back.sample_index, back.origin_ns, back.timestamp_ns) == (41, 390_625, 123, 456)
    assert back.payload.dtype == payload.dtype and back.payload.shape == payload.shape
    np.testing.assert_array_equal(back.payload, payload)


def test_wire_size_is_header_plus_raw_bytes():
    payload = np.zeros((20, 1024), dtype=np.int16)
    data = encode(Message("implant.raw", payload))
    overhead = len(data) - payload.nbytes
    assert overhead == 44 + len("implant.raw") + len("<i2") + 2 * 8


def test_decode_refuses_damage():
    data = encode(Message("a.b", np.arange(4.0)))
    with pytest.raises(FormatError, match="does not start with"):
        decode(b"XXXX" + data[4:])
    with pytest.raises(FormatError, match="should carry 32 payload bytes"):
        decode(data[:-3])
    with pytest.raises(FormatError, match="shorter than its 44-byte header"):
        decode(data[:10])
    with pytest.raises(InvalidInputError, match="numeric array"):
        encode(Message("a.b", np.array([object()])))


def test_bus_delivers_in_order_with_sequence_and_stamps():
    bus = InProcessBus()
    subscription = bus.subscribe(["a.x", "b.y"])
    for index in range(5):
        bus.publish(Message("a.x", np.array([index])))
        bus.publish(Message("b.y", np.array([10 + index])))
    received = [subscription.get(timeout_s=0) for _ in range(10)]
    assert [int(m.payload[0]) for m in received] == [0, 10, 1, 11, 2, 12, 3, 13, 4, 14]
    assert [m.sequence for m in received if m.stream == "a.x"] == [0, 1, 2, 3, 4]
    assert all(m.received_ns >= m.timestamp_ns > 0 for m in received)
    assert subscription.get(timeout_s=0) is None
    assert subscription.dropped == 0 and subscription.received == 10


def test_full_queue_drops_the_oldest_and_counts_without_blocking():
    bus = InProcessBus()
    slow = bus.subscribe("s.raw", maxlen=3)
    for index in range(10):
        bus.publish(Message("s.raw", np.array([index])))  # never blocks
    got = [int(slow.get(timeout_s=0).payload[0]) for _ in range(3)]
    assert got == [7, 8, 9]
    assert slow.dropped == 7


def test_payload_is_read_only_for_readers():
    bus = InProcessBus()
    subscription = bus.subscribe("a.x")
    bus.publish(Message("a.x", np.zeros(3)))
    with pytest.raises(ValueError, match="read-only"):
        subscription.get(timeout_s=0).payload[0] = 1.0


def test_latest_mode_keeps_only_the_newest_and_is_not_a_loss():
    bus = InProcessBus()
    watcher = bus.subscribe("cursor.cursor", maxlen=1, mode="latest")
    assert watcher.latest() is None
    for index in range(4):
        bus.publish(Message("cursor.cursor", np.array([index, 0.0, 0.0])))
    assert watcher.latest().payload[0] == 3
    assert watcher.latest() is None
    assert watcher.dropped == 0 and watcher.superseded == 3


def test_subscriber_in_another_thread_sees_everything():
    bus = InProcessBus()
    subscription = bus.subscribe("a.x")
    seen = []

    def read():
        for _ in range(200):
            seen.append(int(subscription.get(timeout_s=2.0).payload[0]))

    reader = threading.Thread(target=read)
    reader.start()
    for index in range(200):
        bus.publish(Message("a.x", np.array([index])))
    reader.join(timeout=5)
    assert seen == list(range(200))


def test_open_bus_names_the_allowed_urls():
    assert isinstance(open_bus(None), InProcessBus)
    with pytest.raises(
        InvalidInputError, match="bus must be 'inprocess://' or a redis:// URL, got 'zmq://x'"
    ):
        open_bus("zmq://x")
