"""Session files: valid ones load in dependency order; malformed ones are refused with file, line and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from neurolace.runtime.presets import PRESETS, preset_session
from neurolace.runtime.session_file import SessionError, load_session, parse_session

SESSIONS = sorted((Path(__file__).resolve().parents[1] / "sessions").glob("*.toml"))

GOOD = """\
[session]
name = "t"
duration_s = 1.5
seed = 3

[nodes.participant]
type = "sim_participant"
n_channels = 16
feedback = { cursor = "cursor.cursor", target = "task.target" }

[nodes.decoder]
type = "decoder"
inputs = { features = "participant.features", intention = "participant.intention" }

[nodes.cursor]
type = "cursor"
inputs = { velocity = "decoder.velocity" }

[nodes.task]
type = "webgrid"
inputs = { cursor = "cursor.cursor" }
"""


def test_example_sessions_and_presets_are_valid():
    assert SESSIONS, "the repository ships example sessions in sessions/"
    for path in SESSIONS:
        assert load_session(path).nodes
    for name in PRESETS:
        assert preset_session(name).nodes


def test_good_session_is_ordered_and_filled_with_defaults():
    session = parse_session(GOOD, source="good.toml")
    assert [n.name for n in session.nodes] == ["participant", "decoder", "cursor", "task"]
    assert session.duration_s == 1.5 and session.seed == 3 and session.name == "t"
    participant = session.node("participant")
    assert participant.params["n_channels"] == 16 and participant.params["loop_ms"] == 20.0
    assert participant.feedback == {"cursor": "cursor.cursor", "target": "task.target"}
    assert session.node("decoder").inputs["features"] == ["participant.features"]
    assert "cursor.cursor" in session.streams()


@pytest.mark.parametrize(
    "edit,expected",
    [
        (
            ('type = "cursor"', 'type = "curser"'),
            r"bad\.toml:16: node 'cursor': unknown node type 'curser'; expected one of \[.*'cursor'",
        ),
        (('decoder"\ninputs', 'kalmann"\ninputs'), None),
        (
            ("n_channels = 16", 'n_channels = "16"'),
            r"bad\.toml:8: node 'participant' \(sim_participant\): parameter 'n_channels' expected int >= 1 and <= 4096, got '16'",
        ),
        (
            ("n_channels = 16", "n_channels = 0"),
            r"bad\.toml:8: .*parameter 'n_channels' expected int >= 1 and <= 4096, got 0",
        ),
        (
            ("n_channels = 16", "n_channel = 16"),
            r"bad\.toml:8: node 'participant' \(sim_participant\): unknown parameter 'n_channel'; expected one of",
        ),
        (
            ('velocity = "decoder.velocity"', 'velocity = "participant.features"'),
            (
                r"bad\.toml:17: node 'cursor': type mismatch on inputs\.velocity: expected a 'velocity' stream "
                r".*but 'participant\.features' carries 'features'"
            ),
        ),
        (
            ('velocity = "decoder.velocity"', 'velocity = "decoder.speed"'),
            (
                r"bad\.toml:17: node 'cursor': inputs\.velocity reads 'decoder\.speed', but node 'decoder' \(decoder\) "
                r"has outputs \['velocity'\]"
            ),
        ),
        (
            ('velocity = "decoder.velocity"', 'velocity = "decodr.velocity"'),
            r"bad\.toml:17: .*there is no node 'decodr'",
        ),
        (
            ('inputs = { cursor = "cursor.cursor" }', ""),
            r"bad\.toml:19: node 'task' \(webgrid\): input 'cursor' is not connected; expected inputs\.cursor",
        ),
        (("duration_s = 1.5", "duration_s = -1"), r"bad\.toml:3: \[session\] duration_s must be a number"),
        (("seed = 3", "seeds = 3"), r"bad\.toml:4: unknown key 'seeds' in \[session\]"),
        (
            ("feedback = { cursor", "inputs = { cursor"),
            r"bad\.toml:9: node 'participant': port 'cursor' must be wired under feedback, not inputs",
        ),
        (("[nodes.task]", "[nodes.task"), r"bad\.toml:19: not valid TOML"),
    ],
    ids=[
        "unknown-type",
        "bad-choice",
        "wrong-type",
        "below-minimum",
        "unknown-parameter",
        "type-mismatch",
        "unknown-port",
        "unknown-node",
        "unconnected",
        "session-value",
        "session-key",
        "feedback-wiring",
        "toml-syntax",
    ],
)
def test_malformed_sessions_are_refused_with_file_and_line(edit, expected):
    old, new = edit
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if expected is None:  # the decoder keeps its default 'kalman'; set an invalid choice explicitly
        text = GOOD.replace('type = "decoder"', 'type = "decoder"\ndecoder = "kalmann"')
        expected = (
            r"bad\.toml:13: node 'decoder' \(decoder\): parameter 'decoder' expected one of 'wiener', "
            r"'kalman', 'refit-kalman', 'gru', got 'kalmann'"
        )
    with pytest.raises(SessionError, match=expected):
        parse_session(text, source="bad.toml")


def test_missing_required_parameter_names_it():
    text = '[nodes.source]\ntype = "replay"\nspeed = "fast"\n'
    with pytest.raises(
        SessionError,
        match=r"s\.toml:1: node 'source' \(replay\): missing parameter 'path' "
        r"\(recording file.*\); expected str",
    ):
        parse_session(text, source="s.toml")


def test_cycle_of_ordinary_inputs_is_refused_and_named():
    from neurolace.runtime.node import _REGISTRY, Node, Port, register_node

    @register_node
    class _Echo(Node):
        type_name = "test_echo"
        inputs: ClassVar[dict[str, Port]] = {"velocity": Port("velocity")}
        outputs: ClassVar[dict[str, Port]] = {"velocity": Port("velocity")}

    chain = (
        '[nodes.x]\ntype = "test_echo"\ninputs = { velocity = "y.velocity" }\n'
        '[nodes.y]\ntype = "decoder"\ninputs = { features = "z.features" }\n'
        '[nodes.z]\ntype = "sim_participant"\n'
    )
    assert [n.name for n in parse_session(chain, source="ok.toml").nodes] == ["z", "y", "x"]
    cyclic = (
        '[nodes.x]\ntype = "test_echo"\ninputs = { velocity = "y.velocity" }\n'
        '[nodes.y]\ntype = "test_echo"\ninputs = { velocity = "x.velocity" }\n'
    )
    try:
        with pytest.raises(
            SessionError,
            match=r"cyc\.toml:[36]: cycle in the node graph: (x -> y -> x|y -> x -> y); "
            r"a loop-back input must be declared under feedback",
        ):
            parse_session(cyclic, source="cyc.toml")
    finally:
        _REGISTRY.pop("test_echo")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(SessionError, match=r"e\.toml:0: the session declares no nodes"):
        parse_session("[session]\nname = 'x'\n", source="e.toml")
    with pytest.raises(SessionError, match="session file not found"):
        load_session(tmp_path / "nope.toml")
