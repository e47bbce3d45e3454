"""Every built-in node type passes check_node; the suite catches broken node types."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from neurolace.core.recording import Recording
from neurolace.runtime.conformance import check_node
from neurolace.runtime.node import _REGISTRY, Node, Port, node_types, register_node


@pytest.mark.parametrize("type_name", sorted(node_types()))
def test_declarations_of_every_built_in_node(type_name):
    check_node(node_types()[type_name], life_cycle=False)


def test_life_cycles_of_the_built_in_nodes(tmp_path):
    from neurolace.io.wav import write_wav

    types = node_types()
    emitted = check_node(types["sim_participant"], params={"n_channels": 8, "realtime": False}, n_produce=3)
    assert [m.stream for m in emitted] == ["checked.features", "checked.intention"] * 3
    assert [m.sample_index for m in emitted[::2]] == [0, 391, 781]

    write_wav(
        tmp_path / "c.wav", Recording(np.arange(90, dtype=np.int16).reshape(45, 2), fs_hz=20000, gain_uv=1)
    )
    emitted = check_node(
        types["replay"], params={"path": str(tmp_path / "c.wav"), "speed": "fast"}, n_produce=5
    )
    np.testing.assert_array_equal(np.concatenate([m.payload for m in emitted]), np.arange(90).reshape(45, 2))

    emitted = check_node(
        types["cursor"],
        params={"cursor_gain_per_s": 1.0},
        messages={"velocity": [np.array([1.0, 0.0, 0.0, 0.0]), np.array([0.0, -1.0, 1.0, 0.0])]},
    )
    np.testing.assert_allclose(emitted[-1].payload, [0.52, 0.48, 1.0, 0.0])

    emitted = check_node(
        types["webgrid"], params={"grid_side": 3}, messages={"cursor": [np.array([0.5, 0.5, 0.0, 0.0])] * 2}
    )
    assert {m.stream for m in emitted} == {"checked.target"}

    rng = np.random.default_rng(0)
    raw = [rng.integers(-50, 50, (97, 4)).astype(np.int16) for _ in range(12)]
    emitted = check_node(
        types["dsp"], params={"n_channels": 4, "noise_window_s": 0.01}, messages={"raw": raw}
    )
    assert emitted and all(m.payload.shape == (4,) for m in emitted)

    check_node(
        types["recorder"],
        params={"path": str(tmp_path / "r.nlrec"), "nwb_path": "none"},
        messages={"streams": [np.zeros(3)]},
    )
    check_node(
        types["hid_mouse"],
        params={"device": str(tmp_path / "hid.bin")},
        messages={"cursor": [np.array([0.1, 0.1, 0.0]), np.array([0.2, 0.1, 0.0])]},
    )
    # round(0.1 * 1919) = 192 counts to the right, in reports of at most 127
    assert (tmp_path / "hid.bin").read_bytes() == bytes([0, 127, 0, 0, 65, 0])


def test_broken_node_types_are_named():
    class _NoHook(Node):
        type_name = "test_no_hook"
        description = "consumes but never implemented on_message"
        inputs: ClassVar = {"x": Port("features")}

    with pytest.raises(AssertionError, match="is not registered under its type_name"):
        check_node(_NoHook)
    register_node(_NoHook)
    try:
        with pytest.raises(
            AssertionError,
            match=r"'test_no_hook': is a node with inputs but does not implement "
            r"on_message\(\)",
        ):
            check_node(_NoHook)
    finally:
        _REGISTRY.pop("test_no_hook")

    class _LosesOrigin(Node):
        type_name = "test_loses_origin"
        description = "re-stamps its output"
        inputs: ClassVar = {"x": Port("velocity")}
        outputs: ClassVar = {"y": Port("velocity")}

        def on_message(self, port, message):
            self.emit("y", message.payload)  # forgot parent=message

    register_node(_LosesOrigin)
    try:
        with pytest.raises(AssertionError, match="must keep its origin_ns"):
            check_node(_LosesOrigin, messages={"x": [np.zeros(4)]})
    finally:
        _REGISTRY.pop("test_loses_origin")
