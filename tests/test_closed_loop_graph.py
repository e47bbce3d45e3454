"""One loop: the graph's closed_loop session equals run_calibration_session; the gain is set once; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.runtime import DecoderError, SessionError, parse_session, run_block, run_calibration_session, run_session
from neurolace.runtime.loop import ClosedLoop, LoopSettings
from neurolace.runtime.nodes.sources import build_participant
from neurolace.sim.participant import SimulatedParticipant
from neurolace.tasks import WebgridTask

SESSION = """
[session]
name = "one-loop"
duration_s = 75.0
seed = 5
clock = "stepped"
cursor_gain_per_s = 0.5

[nodes.participant]
type = "sim_participant"
n_channels = 192
feedback = { cursor = "loop.cursor", target = "loop.target", block = "loop.block" }

[nodes.loop]
type = "closed_loop"
decoder = "kalman"
open_loop_s = 30.0
closed_loop_s = 15.0
webgrid_s = 15.0
n_webgrid_blocks = 1
grid_side = 8
inputs = { features = "participant.features", intention = "participant.intention" }
"""


def test_graph_session_runs_the_same_schedule_as_run_calibration_session():
    report = run_session(parse_session(SESSION))
    assert not report["failed_nodes"]
    graph = report["nodes"]["loop"]
    assert graph["complete"] and graph["ignored_bins"] == 0
    participant = build_participant(n_channels=192, loop_ms=20.0, visual_delay_s=0.0, session_seed=5,
                                    name="participant")
    direct = run_calibration_session(seed=5, n_channels=192, decoder="kalman", grid_side=8, webgrid_seconds=15.0,
                                     n_webgrid_blocks=1, open_loop_seconds=30.0, closed_loop_seconds=15.0,
                                     participant=participant, cursor_gain_per_s=0.5)
    selections = [(b.name, b.correct, b.incorrect) for b in direct.blocks]
    assert [tuple(s) for s in graph["selections"]] == selections
    assert sum(c for _, c, _ in selections[1:]) > 0  # the decoder really selected targets
    assert graph["bps"] == pytest.approx(direct.bps, rel=1e-12)
    assert graph["blocks"] == [b.to_dict() for b in direct.blocks]


def test_the_gain_is_set_once():
    twice = SESSION.replace('type = "closed_loop"\n', 'type = "closed_loop"\ncursor_gain_per_s = 0.5\n')
    with pytest.raises(SessionError, match=r"set twice, in \[session\] cursor_gain_per_s and in "
                                           r"\[nodes.loop\] cursor_gain_per_s"):
        parse_session(twice)
    nodes_only = SESSION.replace("cursor_gain_per_s = 0.5\n", "").replace(
        'type = "closed_loop"\n', 'type = "closed_loop"\ncursor_gain_per_s = 0.7\n').replace(
        'type = "sim_participant"\n', 'type = "sim_participant"\ncursor_gain_per_s = 0.7\n')
    with pytest.raises(SessionError, match=r"\[nodes.participant\] cursor_gain_per_s and in "
                                           r"\[nodes.loop\] cursor_gain_per_s"):
        parse_session(nodes_only)
    once = parse_session(SESSION.replace("cursor_gain_per_s = 0.5\n", "").replace(
        'type = "closed_loop"\n', 'type = "closed_loop"\ncursor_gain_per_s = 0.7\n'))
    assert once.node("participant").params["cursor_gain_per_s"] == 0.7  # the participant reads the loop's


@pytest.fixture(scope="module")
def fitted():
    participant = SimulatedParticipant(n_channels=96, seed=3)
    observation = run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=20.0,
                            observation="intention", seed=2)
    from neurolace.decode import fit_click_decoder, make_decoder

    decoder = make_decoder("kalman").fit(observation.counts, observation.intended_velocity)
    click = fit_click_decoder(observation.counts, observation.intended_click)
    return participant, decoder, click


class _Broken:
    last_status = None

    def reset(self):
        return self

    def step(self, x):
        raise np.linalg.LinAlgError("singular matrix")


def test_a_failing_decoder_stops_the_loop_naming_it(fitted):
    participant, decoder, click = fitted
    with pytest.raises(DecoderError, match=r"velocity decoder _Broken failed at step 0 of the block: "
                                           r"LinAlgError: singular matrix"):
        run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=1.0, decoder=_Broken(),
                  click_decoder=click, seed=4)

    class _NaN(_Broken):
        def step(self, x):
            return np.array([np.nan, 0.0])

    with pytest.raises(DecoderError, match="velocity decoder _NaN returned"):
        run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=1.0, decoder=_NaN(),
                  click_decoder=click, seed=4)


def test_dead_channels_are_held_by_the_guard(fitted):
    participant, decoder, click = fitted
    dead = np.arange(96) % 4 != 0  # three channels in four go silent after 1 s (more than the guard's half)

    def kill(index, counts):
        counts = counts.copy()
        if index >= 50:
            counts[dead] = 0.0
        return counts

    record = run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=8.0, decoder=decoder,
                       click_decoder=click, feature_fault=kill, seed=4)
    assert not record.held[:50].any()
    first = int(np.argmax(record.held))
    assert first >= 50 and record.held[first:].all()  # once the channels are found dead, every bin is held
    assert record.held.sum() > 100
    np.testing.assert_array_equal(record.decoded_velocity[first:], 0.0)
    assert not record.click[first:].any()
    assert np.ptp(record.cursor_xy[first + 1:], axis=0).max() == 0.0  # the cursor stays put


def test_feature_source_seam_and_bad_widths(fitted):
    participant, decoder, click = fitted

    class Wide:
        """A source twice as wide as the participant's channels (e.g. crossings and SBP)."""

        n_features = 2 * participant.n_channels

        def __init__(self):
            self.starts = []

        def start(self, seed):
            self.starts.append(seed)

        def emit(self, intention):
            counts = participant.emit_counts(intention).astype(np.float64)
            return np.concatenate([counts, np.sqrt(counts)])

    source = Wide()
    observation = run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=10.0,
                            observation="intention", seed=2, source=source)
    assert observation.counts.shape == (500, 192) and len(source.starts) == 1
    from neurolace.decode import make_decoder

    wide = make_decoder("kalman").fit(observation.counts, observation.intended_velocity)
    record = run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=1.0, decoder=wide,
                       click_decoder=_NoClick(), seed=3, source=source)
    assert record.counts.shape[1] == 192
    with pytest.raises(InvalidInputError, match="lacks"):
        run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=1.0, source=object())

    class Lying(Wide):
        n_features = 10

    with pytest.raises(InvalidInputError, match=r"a feature bin must have shape \(10,\), got \(192,\)"):
        run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=1.0, observation="intention",
                  source=Lying())


class _NoClick:
    click_probability = 0.0

    def reset(self):
        return self

    def step(self, x):
        return 0


def test_loop_settings_reject_bad_values():
    with pytest.raises(InvalidInputError, match="cursor_gain_per_s"):
        LoopSettings(cursor_gain_per_s=0.0)
    with pytest.raises(InvalidInputError, match="click_brake must be True or False"):
        LoopSettings(click_brake="yes")
    with pytest.raises(InvalidInputError, match="click_decoder is required"):
        ClosedLoop(LoopSettings(), decoder=_Broken())
