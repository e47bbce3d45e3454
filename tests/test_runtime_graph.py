"""The graph runs the real components: closed loop, replay, dsp; the supervisor restarts and the cursor holds."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core.errors import NeurolaceError
from neurolace.core.recording import Recording
from neurolace.runtime.bus import InProcessBus
from neurolace.runtime.graph import Graph, run_session
from neurolace.runtime.recorder import read_record
from neurolace.runtime.session_file import parse_session

CLOSED_LOOP = """\
[session]
name = "loop"
seed = 5

[nodes.participant]
type = "sim_participant"
n_channels = 32
realtime = {realtime}
max_bins = {bins}
feedback = {{ cursor = "cursor.cursor", target = "task.target" }}

[nodes.decoder]
type = "decoder"
calibration_s = 1.0
fail_after_bins = {fail}
inputs = {{ features = "participant.features", intention = "participant.intention" }}

[nodes.cursor]
type = "cursor"
cursor_gain_per_s = 0.8
stale_ms = 30.0
inputs = {{ velocity = "decoder.velocity" }}

[nodes.task]
type = "webgrid"
grid_side = 4
inputs = {{ cursor = "cursor.cursor" }}
"""


def _drain(subscription):
    messages = []
    while (message := subscription.get(timeout_s=0)) is not None:
        messages.append(message)
    return messages


def test_closed_loop_passes_every_bin_and_the_cursor_integrates_velocity():
    session = parse_session(CLOSED_LOOP.format(realtime="false", bins=150, fail=0), source="loop.toml")
    bus = InProcessBus()
    velocity_tap = bus.subscribe("decoder.velocity", maxlen=10_000)
    cursor_tap = bus.subscribe("cursor.cursor", maxlen=10_000)
    report = Graph(session, bus).run(duration_s=30.0)
    nodes = report["nodes"]
    assert {n["state"] for n in nodes.values()} == {"stopped"}
    assert report["dropped"] == 0 and report["restarts"] == 0
    assert nodes["participant"]["bins"] == 150
    assert nodes["decoder"]["messages_in"] == 300  # every features and intention message
    assert nodes["cursor"]["moves"] == nodes["decoder"]["messages_out"] == 150  # one move per bin
    assert nodes["task"]["messages_in"] == 150
    velocities = _drain(velocity_tap)
    cursors = _drain(cursor_tap)
    assert len(velocities) == len(cursors) == 150
    # known answer: position = clip(previous + gain * v * 20 ms) from the start (0.5, 0.5)
    position = np.array([0.5, 0.5])
    for velocity, cursor in zip(velocities, cursors):
        position = np.clip(position + 0.8 * 0.02 * velocity.payload[:2], 0.0, 1.0)
        np.testing.assert_allclose(cursor.payload[:2], position, atol=1e-12)
        assert cursor.sample_index == velocity.sample_index and cursor.origin_ns == velocity.origin_ns
    # the sample clock of bin k is k * 20 ms at 19,531.25 Hz
    assert [c.sample_index for c in cursors[:3]] == [0, 391, 781]
    assert all(c.received_ns >= c.timestamp_ns >= c.origin_ns for c in cursors)


def test_supervisor_restarts_a_crashed_decoder_and_the_cursor_holds_meanwhile():
    session = parse_session(CLOSED_LOOP.format(realtime="true", bins=0, fail=25), source="loop.toml")
    bus = InProcessBus()
    cursor_tap = bus.subscribe("cursor.cursor", maxlen=10_000)
    graph = Graph(session, bus, restart_backoff_s=0.1)
    report = graph.run(duration_s=1.2)
    decoder = report["nodes"]["decoder"]
    assert decoder["restarts"] == 1 and decoder["state"] == "stopped"
    assert "injected decoder fault after 25 bins" in decoder["failures"][0]
    assert len(decoder["gaps_s"]) == 1 and decoder["gaps_s"][0] >= 0.1
    failed = graph.log.of("node_failed")[0]["time_ns"]
    resumed = graph.log.of("node_resumed")[0]["time_ns"]
    assert graph.log.of("cursor_holding"), "the cursor reports that it holds still"
    moves = _drain(cursor_tap)
    during_gap = [m for m in moves if failed < m.timestamp_ns < resumed]
    assert during_gap == []  # no runaway: not a single move while the decoder was down
    assert any(m.timestamp_ns > resumed for m in moves)  # and it moves again after the restart
    assert report["nodes"]["cursor"]["moves"] == len(moves)


def test_a_node_that_cannot_start_stops_the_session_with_its_reason(tmp_path):
    text = (
        f'[nodes.source]\ntype = "replay"\npath = "{(tmp_path / "missing.wav").as_posix()}"\nrestart = false\n'
        '[nodes.dsp]\ntype = "dsp"\nn_channels = 4\ninputs = { raw = "source.raw" }\n'
    )
    with pytest.raises(
        NeurolaceError,
        match=r"node 'source' \(replay\) failed to start: FileNotFoundError: "
        r"recording not found",
    ):
        run_session(parse_session(text, source="s.toml"))


def test_replay_as_fast_as_possible_delivers_the_file_exactly(tmp_path):
    from neurolace.io.wav import write_wav

    rng = np.random.default_rng(1)
    samples = rng.integers(-512, 512, size=(1001, 3)).astype(np.int16)  # odd length, 3 channels
    write_wav(tmp_path / "clip.wav", Recording(samples, fs_hz=19531, gain_uv=0.195))
    text = (
        f'[nodes.source]\ntype = "replay"\npath = "clip.wav"\nspeed = "fast"\nblock_ms = 1.0\n'
        f'[nodes.recorder]\ntype = "recorder"\npath = "{(tmp_path / "run.nlrec").as_posix()}"\n'
        f'nwb_path = "none"\ninputs = {{ streams = "*" }}\n'
    )
    session_path = tmp_path / "replay.toml"
    session_path.write_text(text)
    report = run_session(session_path)
    assert report["nodes"]["source"]["blocks"] == 51  # ceil(1001 / 20)
    record = read_record(tmp_path / "run.nlrec")
    blocks = record.streams["source.raw"]
    np.testing.assert_array_equal(np.concatenate([b.payload for b in blocks]), samples)
    assert [b.sample_index for b in blocks[:3]] == [0, 20, 40]
    assert [b.sequence for b in blocks] == list(range(51))


def test_dsp_node_streams_the_same_features_as_the_whole_recording_chain(tmp_path):
    from neurolace.dsp.chain import run_signal_chain
    from neurolace.io.raw import write_raw
    from neurolace.sim.implant import simulate_implant

    recording = simulate_implant(duration_s=0.6, n_electrodes=16, seed=3).recording
    write_raw(tmp_path / "implant.raw", recording)
    text = (
        f'[nodes.source]\ntype = "replay"\npath = "implant.raw"\nspeed = "fast"\nblock_ms = 1.3\n'
        f"fs_hz = {recording.fs_hz}\nn_channels = 16\n"
        f'[nodes.dsp]\ntype = "dsp"\nn_channels = 16\nfs_hz = {recording.fs_hz}\ngain_uv = {recording.gain_uv}\n'
        f'noise_window_s = 0.2\nfeature = "both"\ninputs = {{ raw = "source.raw" }}\n'
    )
    (tmp_path / "dsp.toml").write_text(text)
    bus = InProcessBus()
    tap = bus.subscribe("dsp.features", maxlen=10_000)
    run_session(tmp_path / "dsp.toml", bus=bus)
    streamed = _drain(tap)
    whole = run_signal_chain(recording, noise_window_s=0.2, sbp_band_hz=None).features
    assert len(streamed) >= whole.n_bins - 1 > 20
    np.testing.assert_allclose(
        np.vstack([m.payload for m in streamed]), whole.data[: len(streamed)], rtol=1e-5, atol=1e-4
    )
    bin_samples = round(0.02 * recording.fs_hz)
    assert [m.sample_index for m in streamed[:3]] == [0, bin_samples, 2 * bin_samples]


def test_webgrid_scores_only_moves_the_decoder_made_on_its_own():
    from neurolace.runtime.messages import Message

    text = (
        '[nodes.task]\ntype = "webgrid"\ngrid_side = 2\nfs_hz = 1000.0\ninputs = { cursor = "cursor.cursor" }\n'
        + '[nodes.cursor]\ntype = "cursor"\ninputs = { velocity = "decoder.velocity" }\n'
        + '[nodes.decoder]\ntype = "decoder"\ninputs = { features = "participant.features" }\n'
        + '[nodes.participant]\ntype = "sim_participant"\nn_channels = 4\n'
    )
    bus = InProcessBus()
    targets = bus.subscribe("task.target", maxlen=100)
    graph = Graph(parse_session(text, source="t.toml"), bus, only=["task"])
    graph.start()

    def send(x, y, click, assisted, sample):
        bus.publish(Message("cursor.cursor", np.array([x, y, click, assisted]), sample_index=sample))
        return targets.get(timeout_s=2.0).payload

    target = send(0.5, 0.5, 0.0, 1.0, 0)
    for sample in range(1, 4):  # an assisted click on the lit cell is a hit of the unscored warm-up
        target = send(target[0], target[1], float(sample == 2), 1.0, sample * 20)
    target = send(0.5, 0.5, 0.0, 0.0, 100)  # first decoded move: the scored block starts here
    send(target[0], target[1], 1.0, 0.0, 120)  # decoded click on the target: correct
    send(0.5, 0.5, 0.0, 0.0, 140)
    send(0.5, 0.5, 0.0, 0.0, 160)
    graph.stop()
    task = graph.report()["nodes"]["task"]
    assert (task["correct"], task["incorrect"]) == (1, 0)
    assert task["scored_s"] == pytest.approx(0.06)


def test_a_restarted_source_goes_on_where_it_stopped(tmp_path):
    from neurolace.io.wav import write_wav
    from neurolace.runtime.node import _REGISTRY, register_node
    from neurolace.runtime.nodes.sources import ReplayNode

    @register_node
    class _FlakyReplay(ReplayNode):
        type_name = "test_flaky_replay"

        def produce(self) -> bool:
            if self.blocks == 10 and not self.context.extra.get("failed"):
                self.context.extra["failed"] = True
                raise OSError("device unplugged")
            return super().produce()

    samples = np.arange(2 * 503, dtype=np.int16).reshape(503, 2)
    write_wav(tmp_path / "clip.wav", Recording(samples, fs_hz=20000, gain_uv=1.0))
    text = f'[nodes.source]\ntype = "test_flaky_replay"\npath = "{(tmp_path / "clip.wav").as_posix()}"\nspeed = "fast"\n'
    bus = InProcessBus()
    tap = bus.subscribe("source.raw", maxlen=10_000)
    try:
        report = Graph(parse_session(text, source="flaky.toml"), bus, restart_backoff_s=0.01).run()
    finally:
        _REGISTRY.pop("test_flaky_replay")
    assert report["nodes"]["source"]["restarts"] == 1
    assert "OSError: device unplugged" in report["nodes"]["source"]["failures"][0]
    blocks = _drain(tap)
    np.testing.assert_array_equal(
        np.concatenate([b.payload for b in blocks]), samples
    )  # nothing lost or repeated
    assert [b.sample_index for b in blocks] == list(range(0, 503, 20))


def test_decoder_node_brakes_the_cursor_while_a_click_is_attempted():
    import numpy as np

    from neurolace.runtime.nodes.processing import _VelocityAndClick

    class Velocity:
        last_status = None

        def reset(self):
            return self

        def step(self, x):
            return np.array([1.0, -2.0])

    class Click:
        def __init__(self, probability):
            self.click_probability = probability

        def reset(self):
            return self

        def step(self, x):
            return np.array([self.click_probability > 0.5])

    from neurolace.runtime.loop import ClosedLoop, LoopSettings

    def decode(velocity_decoder, click_decoder, speed_limit=0.2):
        pair = _VelocityAndClick(velocity_decoder, click_decoder)
        loop = ClosedLoop(LoopSettings(click_speed_limit=speed_limit), decoder=pair.velocity_decoder,
                          click_decoder=pair.click_decoder, allow_no_click=True)
        return loop.decode(np.zeros(3))

    # the node's loop is the session's: braked by 1 - P(click), and no click while the cursor moves fast
    step = decode(Velocity(), Click(0.75))
    np.testing.assert_allclose(step.velocity, [0.25, -0.5])
    assert not step.click
    assert decode(Velocity(), Click(0.75), speed_limit=None).click
    step = decode(Velocity(), None)
    np.testing.assert_allclose(step.velocity, [1.0, -2.0])
    assert not step.click