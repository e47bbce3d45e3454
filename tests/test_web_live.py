"""The live session feed: frames from bus messages (known answers), blocks, SBP, decoder switching."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.bus import InProcessBus
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.presets import preset_session, preset_text
from neurolace.runtime.session_file import load_session, parse_session
from neurolace.web.live import LiveSession, LiveStreams, decode_frame, encode_frame

SBP_SESSION = """\
[session]
name = "implant-sbp"
duration_s = 0.0
seed = 3

[nodes.implant]
type = "sim_implant"
n_channels = 16
duration_s = 0.5
loop = true

[nodes.chain]
type = "dsp"
n_channels = 16
feature = "both"
noise_window_s = 0.1
inputs = { raw = "implant.raw" }
"""


def _decoder_session():
    """A shipped session with decoder, cursor and webgrid nodes (1024 channels, 8 x 8 grid)."""
    return load_session(Path(__file__).resolve().parents[1] / "sessions" / "closed_loop_recorded.toml")


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_frame_round_trip_keeps_header_and_bytes():
    header = {"type": "frame", "cursor": [0.25, 0.75, 1.0], "note": "µV²"}
    assert decode_frame(encode_frame(header, bytes([0, 7, 255]))) == (header, bytes([0, 7, 255]))
    assert decode_frame(encode_frame({})) == ({}, b"")
    with pytest.raises(InvalidInputError, match="shorter than its length prefix"):
        decode_frame(b"\x01")


def test_streams_are_found_from_node_types():
    streams = LiveStreams.from_session(preset_session("demo"))  # one closed_loop node: decoder, cursor, task
    assert streams.names() == ["participant.features", "task.cursor", "task.target", "task.score", "host_link.link",
                              "task.block"]
    assert (streams.n_channels, streams.grid_side, streams.decoder_node) == (1024, 30, "task")
    assert streams.calibration_parameter == "open_loop_s"
    old_style = LiveStreams.from_session(_decoder_session())
    assert old_style.names() == ["participant.features", "cursor.cursor", "task.target", "task.score"]
    assert (old_style.grid_side, old_style.decoder_node, old_style.calibration_parameter) == (8, "decoder",
                                                                                              "calibration_s")
    sbp = LiveStreams.from_session(parse_session(SBP_SESSION))
    assert (sbp.features, sbp.cursor, sbp.score, sbp.n_channels) == ("chain.features", None, None, 16)


def test_session_without_a_feature_source_is_refused():
    spec = parse_session(SBP_SESSION.split("[nodes.chain]")[0].replace("implant-sbp", "raw-only"))
    with pytest.raises(InvalidInputError, match="session 'raw-only' has no 'sim_participant' or 'dsp' node"):
        LiveSession(spec=spec)


def test_watched_bus_becomes_frames_with_known_counts_latency_and_blocks():
    bus = InProcessBus()
    live = LiveSession("watched", "sim-001", spec=_decoder_session())  # 1024 channels, 8 x 8 grid
    live.watch(bus)
    try:
        assert live.state == "watching" and live.running
        with pytest.raises(InvalidInputError, match="watched, not run, by the dashboard"):
            live.start()
        counts = np.zeros(1024, dtype=np.float32)
        counts[[0, 1, 1023]] = [1.0, 2.4, 300.0]
        origin = now_ns() - 5_000_000  # the bin was available 5 ms before the cursor moved
        # the loop's order: features, then the cursor the decoder moved (the frame's trigger), then the task
        bus.publish(Message("participant.features", counts))
        bus.publish(Message("task.target", np.array([0.5625, 0.4375, 0.125])))
        bus.publish(Message("task.score", np.array([4.0, 1.0, 0.0])))
        bus.publish(Message("cursor.cursor", np.array([0.25, 0.75, 1.0]), origin_ns=origin))
        assert _wait(lambda: live.frame_sequence == 1)
        header, channels = decode_frame(live.latest_frame)
        assert np.frombuffer(channels, dtype=np.uint8)[[0, 1, 2, 1023]].tolist() == [1, 2, 0, 255]
        assert len(channels) == 1024 and header["sbp_scale"] is None
        assert header["cursor"] == [0.25, 0.75, 1.0] and header["target"] == [0.5625, 0.4375, 0.125]
        assert header["score"] == [4, 1, 0.0]
        assert 5.0 <= header["latency_ms"]["p50"] < 500.0
        assert header["link_bytes_per_s"] == 0  # a rate needs more than one bin

        live.start_block(0.3, name="fast")
        with pytest.raises(InvalidInputError, match="block 'fast' is still running"):
            live.start_block(1.0)
        bus.publish(Message("task.score", np.array([10.0, 2.0, 0.0])))
        for _ in range(8):  # 0.4 s of bins; a frame after 0.3 s closes the block
            time.sleep(0.05)
            bus.publish(Message("participant.features", counts))
            bus.publish(Message("cursor.cursor", np.array([0.25, 0.75, 0.0]), origin_ns=now_ns()))
        assert _wait(lambda: live.blocks)
        block = live.blocks[0]
        assert (block["name"], block["correct"], block["incorrect"], block["aborted"]) == ("fast", 6, 1, False)
        # 5 net correct selections in 0.3 s on 8 x 8: 1000 NTPM, 1000/60 * log2(63) bits per second
        assert block["ntpm"] == pytest.approx(1000.0)
        assert block["bps"] == pytest.approx(1000.0 / 60.0 * math.log2(63))
        header, _ = decode_frame(live.latest_frame)
        assert header["link_bytes_per_s"] > 0 and header["cursor"] == [0.25, 0.75, 0.0]
    finally:
        live.stop()
    assert live.state == "stopped" and not live.running
    bus.publish(Message("participant.features", counts))  # the bus belongs to someone else: still open


def test_sbp_columns_are_scaled_to_the_frame_maximum():
    bus = InProcessBus()
    live = LiveSession(spec=parse_session(SBP_SESSION))
    live.watch(bus)
    try:
        payload = np.concatenate([np.arange(16, dtype=np.float32), np.linspace(0.0, 8.0, 16, dtype=np.float32)])
        bus.publish(Message("chain.features", payload))
        assert _wait(lambda: live.frame_sequence == 1)
        header, channels = decode_frame(live.latest_frame)
        assert header["sbp_scale"] == pytest.approx(8.0)
        sbp = np.frombuffer(channels[16:], dtype=np.uint8)
        assert sbp.tolist() == np.rint(np.linspace(0.0, 8.0, 16) / 8.0 * 255).astype(int).tolist()
    finally:
        live.stop()


def test_real_implant_graph_streams_spike_band_power():
    live = LiveSession(spec=parse_session(SBP_SESSION))
    live.start(wait=True)
    try:
        assert live.wait_for_frames(20, timeout_s=20.0), f"no frames: {live.state} {live.error}"
        header, channels = decode_frame(live.latest_frame)
        assert header["n_channels"] == 16 and len(channels) == 32
        assert header["sbp_scale"] > 0 and header["cursor"] == [0.5, 0.5, 0.0]  # no cursor in this session
        # a rate needs bins spread over 0.2 s; on a loaded machine the chain may deliver the first ones in a burst
        assert _wait(lambda: decode_frame(live.latest_frame)[0]["link_bytes_per_s"] > 0)
    finally:
        live.stop()


def _small_demo(n_channels: int):
    """The demo preset (implant path, closed_loop node) with fewer channels: fits take seconds on 1024."""
    return parse_session(preset_text("demo").replace("n_channels = 1024", f"n_channels = {n_channels}"))


def test_switching_decoder_recalibrates_and_decodes():
    # the controls do not depend on the channel count
    live = LiveSession(spec=_small_demo(32))
    with pytest.raises(InvalidInputError, match=r"calibration_s for node 'task' \(closed_loop, open_loop_s\): "
                                                r"expected float >= 0.2, got 0.0"):
        live.start(calibration_s=0.0)
    live.start(decoder="wiener", calibration_s=2.0, wait=True)
    try:
        assert live.decoder == "wiener"
        assert live.state in ("calibrating", "decoding")
        # the observation block (lag-aligned labels), then the first fit: the node logs decoder_fitted
        assert _wait(lambda: live.state == "decoding", timeout_s=60.0), f"{live.state} {live.error}"
        report = live.graph_report()
        assert live.error is None and report["nodes"]["task"]["state"] == "running"
        with pytest.raises(InvalidInputError, match="decoder must be one of"):
            live.start(decoder="oracle")
    finally:
        live.stop()


def test_live_demo_on_the_implant_path_shows_spike_band_power_and_latency():
    """The demo preset's participant goes through the implant: each frame carries crossings and SBP."""
    live = LiveSession(spec=_small_demo(16))
    assert live.spec.node("participant").params["path"] == "implant"
    live.start(wait=True)
    try:
        assert live.wait_for_frames(30, timeout_s=60.0), f"no frames: {live.state} {live.error}"
        header, channels = decode_frame(live.latest_frame)
        assert header["n_channels"] == 16 and len(channels) == 32  # crossings, then spike-band power
        assert header["sbp_scale"] > 0
        sbp = np.frombuffer(channels[16:], dtype=np.uint8)
        assert sbp.max() == 255 and np.count_nonzero(sbp) >= 12  # scaled to the frame's maximum, every live channel
        assert header["state"] == "calibrating" and header["grid_side"] == 30
        latency = live.loop_latency_us()  # the closed_loop node measures it like the cursor node
        assert latency is not None and latency["n"] > 0
    finally:
        live.stop()


def test_stop_while_starting_leaves_no_graph_running():
    live = LiveSession(spec=parse_session(SBP_SESSION))
    live.start()  # builds the graph in the background
    live.stop()  # before it is up: the late graph must be dropped, not adopted
    assert _wait(lambda: not any(t.name == "live:live" for t in threading.enumerate()))
    assert live.state == "stopped" and not live.running and live.graph_report() is None
