"""Backlog of a hop (queue depth over time, its slope, drops) and the dsp node's catch-up batches."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import pytest

from neurolace.runtime import latency
from neurolace.runtime.bus import InProcessBus
from neurolace.runtime.graph import Graph
from neurolace.runtime.latency import BACKLOG_GROWTH_MESSAGES, BacklogMeter
from neurolace.runtime.messages import Message
from neurolace.runtime.node import _REGISTRY, Node, NodeContext, Port, register_node
from neurolace.runtime.session_file import parse_session


@pytest.fixture
def every_read_sampled(monkeypatch):
    """Sample the depth at every read, so a test does not depend on how fast it runs."""
    monkeypatch.setattr(latency, "BACKLOG_SAMPLE_INTERVAL_NS", 0)


def _message(value: int) -> Message:
    return Message(stream="source.raw", payload=np.full(3, value, dtype=np.int16))


def test_a_reader_that_keeps_up_reports_no_backlog(every_read_sampled):
    bus = InProcessBus()
    reader = bus.subscribe("source.raw")
    for value in range(300):
        bus.publish(_message(value))
        assert reader.get(timeout_s=0) is not None
    summary = reader.backlog()["source.raw"]
    assert summary["samples"] == 300
    assert summary["depth_max"] == 0 and summary["depth_last"] == 0 and summary["slope_per_s"] == 0.0
    assert summary["dropped"] == 0 and summary["verdict"] == "steady"


def test_a_reader_slower_than_the_writer_reports_a_growing_backlog(every_read_sampled):
    bus = InProcessBus()
    reader = bus.subscribe("source.raw", maxlen=10_000)
    for value in range(300):  # two published per one read: the queue grows by one each round
        bus.publish(_message(2 * value))
        bus.publish(_message(2 * value + 1))
        reader.get(timeout_s=0)
    summary = reader.backlog()["source.raw"]
    assert summary["depth_last"] == 300 and summary["depth_max"] == 300
    assert summary["slope_per_s"] > 0
    assert summary["slope_per_s"] * summary["window_s"] > BACKLOG_GROWTH_MESSAGES
    assert summary["verdict"] == "growing" and summary["dropped"] == 0


def test_a_full_queue_reports_overflowing_and_a_reset_forgets_the_warm_up(every_read_sampled):
    bus = InProcessBus()
    reader = bus.subscribe("source.raw", maxlen=10)
    for value in range(50):
        bus.publish(_message(value))
    while reader.get(timeout_s=0) is not None:
        pass
    summary = reader.backlog()["source.raw"]
    assert summary["dropped"] == 40 and summary["verdict"] == "overflowing"
    assert summary["depth_max"] == 9  # the newest 10 were kept; the first read had 9 behind it
    reader.reset_backlog()
    for value in range(50, 60):
        bus.publish(_message(value))
        reader.get(timeout_s=0)
    summary = reader.backlog()["source.raw"]
    assert summary["dropped"] == 0 and summary["verdict"] == "steady" and summary["samples"] == 10


def test_backlog_meter_fits_the_slope_of_depth_over_time():
    meter = BacklogMeter(interval_ns=0)
    for second in range(11):  # 3 messages more waiting every second
        meter.note(second * 1_000_000_000, 5 + 3 * second)
    summary = meter.summary()
    assert summary["slope_per_s"] == pytest.approx(3.0)
    assert summary["window_s"] == pytest.approx(10.0)
    assert summary["depth_p50"] == 20.0 and summary["depth_last"] == 35
    assert summary["verdict"] == "growing"
    empty = BacklogMeter().summary()
    assert empty["samples"] == 0 and empty["verdict"] == "steady" and np.isnan(empty["depth_p99"])


@pytest.fixture
def slow_sink():
    @register_node
    class _SlowSink(Node):
        type_name = "test_slow_sink"
        inputs: ClassVar[dict[str, Port]] = {"raw": Port("raw")}
        outputs: ClassVar[dict[str, Port]] = {}

        def on_message(self, port, message):
            time.sleep(0.003)  # slower than the 1 ms blocks of the replay below

    yield
    _REGISTRY.pop("test_slow_sink")


def test_the_graph_report_names_the_hop_whose_reader_falls_behind(tmp_path, slow_sink):
    from neurolace.io.raw import write_raw
    from neurolace.sim.implant import simulate_implant

    recording = simulate_implant(duration_s=0.5, n_electrodes=4, seed=2).recording
    write_raw(tmp_path / "clip.raw", recording)
    text = (
        f'[nodes.source]\ntype = "replay"\npath = "{(tmp_path / "clip.raw").as_posix()}"\n'
        f'speed = "realtime"\nloop = true\nfs_hz = {recording.fs_hz}\nn_channels = 4\n'
        '[nodes.slow]\ntype = "test_slow_sink"\nqueue_length = 100000\ninputs = { raw = "source.raw" }\n'
    )
    graph = Graph(parse_session(text, source="slow.toml"), InProcessBus())
    graph.start()
    time.sleep(0.6)
    graph.sources_stop_event.set()  # stop now, without waiting for the slow reader to drain
    graph.stop(drain_timeout_s=0.0)
    report = graph.report()
    slow = report["backlog"]["source.raw -> slow"]
    assert slow["verdict"] == "growing" and slow["slope_per_s"] > 0
    assert "source.raw -> slow" in report["backlogged_hops"]
    assert set(report["nodes"]["slow"]["backlog"]) == {"source.raw"}


class _Collect:
    """Emitted messages, each with how many raw blocks had been fed when it came out."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.fed_when_emitted: list[int] = []
        self.fed = 0

    def __call__(self, message: Message) -> Message:
        self.messages.append(message)
        self.fed_when_emitted.append(self.fed)
        return message


def _dsp_node(collect: _Collect, **options):
    from neurolace.runtime.nodes.processing import DspNode

    params = {name: parameter.default for name, parameter in DspNode.parameters.items()}
    params.update(n_channels=8, noise_window_s=0.05, **options)
    outputs = {"features": "dsp.features"}
    context = NodeContext(name="dsp", outputs=outputs, seed=0, emit_function=collect, log=print)
    node = DspNode(params, context)
    node.setup()
    return node


def _raw_blocks(block: int = 20) -> list[Message]:
    from neurolace.sim.implant import simulate_implant

    samples = simulate_implant(duration_s=0.3, n_electrodes=8, seed=4).recording.samples
    return [
        Message(
            stream="implant.raw",
            payload=samples[start : start + block],
            sample_index=start,
            origin_ns=1_000 + start,
        )
        for start in range(0, samples.shape[0] - block + 1, block)
    ]


def _assert_same_bins(expected: _Collect, got: _Collect) -> None:
    assert len(got.messages) == len(expected.messages) > 5
    for want, have in zip(expected.messages, got.messages, strict=True):
        assert have.sample_index == want.sample_index
        assert have.origin_ns == want.origin_ns  # the raw block that held the bin's last sample
        np.testing.assert_array_equal(have.payload, want.payload)


def test_dsp_node_publishes_the_same_bins_whether_blocks_come_one_by_one_or_in_batches():
    blocks = _raw_blocks()
    eager, deferred, batched = _Collect(), _Collect(), _Collect()
    for collect, options in ((eager, {"defer": False}), (deferred, {})):
        node = _dsp_node(collect, **options)
        for message in blocks:
            collect.fed += 1
            node.on_message("raw", message)
    # holding blocks that cannot close a bin delays no bin: each comes out on the same block
    _assert_same_bins(eager, deferred)
    assert deferred.fed_when_emitted == eager.fed_when_emitted
    assert node.chain_calls < len(blocks) / 2
    node = _dsp_node(batched)
    position, sizes = 0, [1, 7, 3, 9, 2, 9, 5]
    while position < len(blocks):
        size = sizes[position % len(sizes)]
        node.on_batch("raw", blocks[position : position + size])
        position += size
    assert node.batches > 0 and node.max_batch == 9  # 10 ms of signal in 20-sample blocks
    _assert_same_bins(eager, batched)
