"""The stepped clock: a seeded closed loop repeats message for message; what it cannot step is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.bus import Bus, InProcessBus
from neurolace.runtime.graph import Graph
from neurolace.runtime.session_file import SessionError, parse_session

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shrink(text: str, old: str, new: str) -> str:
    assert old in text, f"sessions/closed_loop_sim.toml no longer holds {old!r}"
    return text.replace(old, new)


# the session of the papercut, made small: 32 channels, 1 s of observation, 3 s in all
LOOP = (REPO_ROOT / "sessions" / "closed_loop_sim.toml").read_text()
for _old, _new in (
    ("duration_s = 180.0", 'duration_s = 3.0\nclock = "stepped"'),
    ("n_channels = 1024", "n_channels = 32"),
    ("open_loop_s = 60.0", "open_loop_s = 1.0"),
    ("closed_loop_s = 40.0", "closed_loop_s = 0.5"),
    ("webgrid_s = 40.0", "webgrid_s = 1.0"),
):
    LOOP = _shrink(LOOP, _old, _new)


def _run_once() -> tuple[dict, np.ndarray, list[int]]:
    bus = InProcessBus()
    tap = bus.subscribe("task.cursor", maxlen=100_000)
    report = Graph(parse_session(LOOP, source="loop.toml"), bus).run()
    moves = []
    while (message := tap.get(timeout_s=0)) is not None:
        moves.append(message)
    return report, np.vstack([m.payload for m in moves]), [m.sample_index for m in moves]


def test_a_seeded_stepped_closed_loop_gives_the_same_run_every_time():
    first, first_cursor, first_clock = _run_once()
    second, second_cursor, second_clock = _run_once()
    assert first["clock"] == "stepped" and first["failed_nodes"] == []
    # the session ends on the participant's own clock: 3 s of 20 ms bins, every one through the loop
    assert first["nodes"]["participant"]["bins"] == 150
    loop = first["nodes"]["task"]
    assert loop["complete"] and loop["ignored_bins"] == 0  # the fits happened inside the run, at fixed bins
    assert [name for name, _, _ in loop["selections"]] == ["open-loop", "closed-loop", "refit", "webgrid-1"]
    assert first_cursor.shape[0] == 150  # the first block's cursor, then one per bin but the session's last
    assert first_clock == second_clock
    np.testing.assert_array_equal(first_cursor, second_cursor)
    assert first_cursor[:, 3].min() == 0.0 < first_cursor[:, 3].max()  # assisted, then decoded moves
    for key in ("selections", "bps", "blocks"):
        assert loop[key] == second["nodes"]["task"][key]


def test_the_stepped_clock_refuses_what_scheduling_would_still_decide():
    session = parse_session(LOOP, source="loop.toml")
    with pytest.raises(InvalidInputError, match=r"stepped clock needs the in-process bus .*not bus://"):
        Graph(session, Bus())
    with pytest.raises(InvalidInputError, match="runs the whole session in one process"):
        Graph(session, InProcessBus(), only=["participant"])
    two_sources = LOOP + '\n[nodes.other]\ntype = "sim_participant"\nn_channels = 4\n'
    with pytest.raises(InvalidInputError, match=r"exactly one source node .*\['other', 'participant'\]"):
        Graph(parse_session(two_sources, source="two.toml"), InProcessBus())
    wrong_clock = r"loop.toml:\d+: \[session\] clock must be 'realtime' .* got 'wall'"
    with pytest.raises(SessionError, match=wrong_clock):
        parse_session(LOOP.replace('clock = "stepped"', 'clock = "wall"'), source="loop.toml")
