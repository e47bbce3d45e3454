"""Effectors end to end: the desktop pointer under Xvfb (read back with xdotool), HID boot-mouse reports."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from runtime_fixtures import pointer_position, xvfb_display  # noqa: F401  (fixture)

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.bus import InProcessBus
from neurolace.runtime.graph import Graph
from neurolace.runtime.messages import Message
from neurolace.runtime.nodes.effectors import hid_boot_report, parse_hid_boot_reports
from neurolace.runtime.session_file import parse_session


def test_boot_report_layout_is_the_usb_hid_appendix_b():
    assert hid_boot_report(1, 5, -3) == bytes([0x01, 0x05, 0xFD])
    assert hid_boot_report(0, -127, 127) == bytes([0x00, 0x81, 0x7F])
    assert hid_boot_report(0b1111, 0, 0) == bytes([0x07, 0, 0])  # only 3 buttons exist
    with pytest.raises(InvalidInputError, match=r"dx and dy must lie in \[-127, 127\], got \(128, 0\)"):
        hid_boot_report(0, 128, 0)
    np.testing.assert_array_equal(
        parse_hid_boot_reports(bytes([1, 5, 0xFD, 0, 0x81, 0x7F])), [[1, 5, -3], [0, -127, 127]]
    )
    with pytest.raises(InvalidInputError, match="3 bytes each; got 4 bytes"):
        parse_hid_boot_reports(b"\x00" * 4)


# The effectors read "cursor.cursor"; a stand-in cursor node gives the session a producer of that stream.
_CURSOR_SOURCE = (
    '[nodes.cursor]\ntype = "cursor"\ninputs = { velocity = "decoder.velocity" }\n'
    '[nodes.decoder]\ntype = "decoder"\ninputs = { features = "participant.features" }\n'
    '[nodes.participant]\ntype = "sim_participant"\nn_channels = 4\nmax_bins = 1\nrealtime = false\n'
)


def _only_effector(text: str) -> str:
    return text + _CURSOR_SOURCE


def test_hid_mouse_writes_relative_reports_that_add_up_to_the_cursor_path(tmp_path):
    device = tmp_path / "hidg0"
    text = _only_effector(
        f'[nodes.hid]\ntype = "hid_mouse"\ndevice = "{device.as_posix()}"\nwidth = 1001\n'
        f'height = 501\ninputs = {{ cursor = "cursor.cursor" }}\n'
    )
    path = [(0.5, 0.5, 0.0), (0.6, 0.5, 0.0), (0.6, 0.8, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    session = parse_session(text, source="hid.toml")
    bus = InProcessBus()
    graph = Graph(session, bus, only=["hid"])
    graph.start()
    for cursor in path:
        bus.publish(Message("cursor.cursor", np.array(cursor)))
    deadline = time.monotonic() + 2.0
    while graph.runners["hid"].messages_in < len(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    graph.stop()
    reports = parse_hid_boot_reports(device.read_bytes())
    # pixels: x = round(cx * 1000), y = round((1 - cy) * 500) ; moves from (500, 250)
    # -> (600, 250): +100 ; -> (600, 100): dy -150 split 127 + 23, button down ; -> (0, 500): dx -600, dy +400
    assert reports[:, 1].sum() == -500 and reports[:, 2].sum() == 250
    assert np.abs(reports[:, 1:]).max() <= 127
    assert [tuple(r) for r in reports[:3]] == [(0, 100, 0), (1, 0, -127), (1, 0, -23)]
    assert reports[3:, 0].tolist() == [0] * (len(reports) - 3)  # button released after the click
    assert graph.report()["nodes"]["hid"]["reports"] == len(reports)


def test_hid_mouse_writes_into_a_fifo(tmp_path):
    fifo = tmp_path / "hidg.fifo"
    os.mkfifo(fifo)
    chunks = []

    def read_fifo():
        with open(fifo, "rb") as stream:
            while data := stream.read(3):
                chunks.append(data)

    reader = threading.Thread(target=read_fifo)
    reader.start()
    text = _only_effector(
        f'[nodes.hid]\ntype = "hid_mouse"\ndevice = "{fifo.as_posix()}"\nwidth = 255\n'
        f'height = 255\ninputs = {{ cursor = "cursor.cursor" }}\n'
    )
    bus = InProcessBus()
    graph = Graph(parse_session(text, source="hid.toml"), bus, only=["hid"])
    graph.start()
    for cursor in [(0.0, 1.0, 0.0), (0.2, 1.0, 0.0), (0.2, 0.6, 0.0)]:
        bus.publish(Message("cursor.cursor", np.array(cursor)))
    deadline = time.monotonic() + 2.0
    while graph.runners["hid"].messages_in < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    graph.stop()  # closes the FIFO, so the reader sees end of file
    reader.join(timeout=5)
    reports = parse_hid_boot_reports(b"".join(chunks))
    assert [tuple(r) for r in reports] == [(0, 51, 0), (0, 0, 102)]


def test_desktop_pointer_follows_the_cursor_under_xvfb(xvfb_display):  # noqa: F811  (pytest fixture)
    text = _only_effector(
        f'[nodes.pointer]\ntype = "pointer"\ndisplay = "{xvfb_display}"\n'
        f'inputs = {{ cursor = "cursor.cursor" }}\n'
    )
    bus = InProcessBus()
    graph = Graph(parse_session(text, source="pointer.toml"), bus, only=["pointer"])
    graph.start()
    seen = []
    try:
        for cursor in [(0.0, 1.0, 0.0), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0), (0.25, 0.75, 0.0)]:
            bus.publish(Message("cursor.cursor", np.array(cursor)))
            deadline = time.monotonic() + 2.0
            expected_count = len(seen) + 1
            while graph.runners["pointer"].messages_in < expected_count and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.05)
            seen.append(pointer_position(xvfb_display))
    finally:
        graph.stop()
    # 1024 x 768 screen, unit square y up: x = round(cx * 1023), y = round((1 - cy) * 767)
    assert seen == [(0, 0), (512, 384), (1023, 767), (256, 192)]
    report = graph.report()["nodes"]["pointer"]
    assert report["moves"] == 4 and report["end_to_end_us"]["n"] == 4
