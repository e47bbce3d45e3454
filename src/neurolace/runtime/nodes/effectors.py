"""Effector nodes: the task's cursor, the desktop pointer, and a USB HID boot mouse.

The :class:`CursorNode` integrates decoded velocity into the task cursor. It
moves only when a fresh velocity arrives: when the decoder is down or late
(no message for ``stale_ms``) the cursor holds still, it never extrapolates
(no runaway), and the hold is logged. Every effector records the end-to-end
latency of each move: apply time minus the ``origin_ns`` of the source sample
the move came from.

The pointer and HID effectors follow the task cursor (``cursor`` stream,
unit square, y up) and map it onto a screen or into relative mouse reports.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.latency import LatencyLog
from neurolace.runtime.loop import DEFAULT_CURSOR_GAIN_PER_S
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.node import Node, Parameter, Port, register_node

__all__ = ["CursorNode", "HidMouseNode", "PointerNode", "hid_boot_report", "parse_hid_boot_reports"]


class _Effector(Node):
    def __init__(self, params, context) -> None:
        super().__init__(params, context)
        self.end_to_end = LatencyLog()
        self.moves = 0

    def _applied(self, message: Message) -> None:
        self.end_to_end.add(now_ns() - message.origin_ns)
        self.moves += 1

    def summary(self) -> dict:
        return {"moves": self.moves, "end_to_end_us": self.end_to_end.summary_us()}


@register_node
class CursorNode(_Effector):
    """The on-screen cursor of the task: position += gain * velocity * bin, clipped to the unit square."""

    type_name = "cursor"
    description = "task cursor: integrates decoded velocity; holds still when the decoder is silent"
    inputs: ClassVar[dict[str, Port]] = {"velocity": Port("velocity", help="decoded (vx, vy, click)")}
    outputs: ClassVar[dict[str, Port]] = {"cursor": Port("cursor")}
    parameters: ClassVar[dict[str, Parameter]] = {
        "cursor_gain_per_s": Parameter(
            float, DEFAULT_CURSOR_GAIN_PER_S, "workspace units per second per unit velocity (set once per session)",
            minimum=1e-6
        ),
        "bin_ms": Parameter(float, 20.0, "time one velocity message stands for", minimum=0.1),
        "stale_ms": Parameter(
            float, 100.0, "silence after which the cursor is reported as holding", minimum=1.0
        ),
        "click_threshold": Parameter(float, 0.5, "decoded click above this is a click"),
    }

    def setup(self) -> None:
        from neurolace.runtime.loop import ClosedLoop, LoopSettings

        settings = LoopSettings(loop_s=self.params["bin_ms"] / 1e3, cursor_gain_per_s=self.params["cursor_gain_per_s"])
        # the integration step of the one closed loop (the decoder node applies its click policy)
        self.loop = ClosedLoop(settings, observation="intention")
        self.loop.reset(self.context.extra.get("position", (0.5, 0.5)))
        self.last_move_ns: int | None = None  # the silence clock starts with the run, not at setup
        self.holding = False
        self.holds = 0

    def on_message(self, port: str, message: Message) -> None:
        velocity = message.payload
        position = self.loop.move(velocity[:2])
        self.context.extra["position"] = tuple(position)
        click = 1.0 if velocity.shape[0] > 2 and velocity[2] > self.params["click_threshold"] else 0.0
        assisted = float(velocity[3]) if velocity.shape[0] > 3 else 0.0
        self._applied(message)
        self.emit("cursor", np.array([position[0], position[1], click, assisted]), parent=message)
        if self.holding:
            self.context.log("cursor_resumed", held_s=round((now_ns() - self.last_move_ns) / 1e9, 4))
            self.holding = False
        self.last_move_ns = now_ns()

    def on_idle(self) -> None:
        if self.context.stepped:  # silence on the wall clock means nothing when the session steps
            return
        if self.last_move_ns is None:
            self.last_move_ns = now_ns()
        elif not self.holding and now_ns() - self.last_move_ns > self.params["stale_ms"] * 1e6:
            self.holding = True
            self.holds += 1
            self.context.log("cursor_holding", position=[round(float(v), 4) for v in self.loop.cursor_xy])

    def summary(self) -> dict:
        return {**super().summary(), "holds": self.holds, "position": [float(v) for v in self.loop.cursor_xy]}


@register_node
class PointerNode(_Effector):
    """Moves the real desktop pointer to follow the task cursor (X11 through pynput, or uinput).

    The unit square maps onto the screen (or the ``width`` x ``height``
    rectangle at ``left``, ``top``), y up. ``backend = "xorg"`` needs an X
    display (``display`` or $DISPLAY); ``"uinput"`` writes relative moves to a
    virtual mouse through python-evdev (needs write access to /dev/uinput).
    """

    type_name = "pointer"
    description = "desktop pointer (X11 via pynput, or uinput via python-evdev)"
    inputs: ClassVar[dict[str, Port]] = {"cursor": Port("cursor")}
    outputs: ClassVar[dict[str, Port]] = {}
    parameters: ClassVar[dict[str, Parameter]] = {
        "backend": Parameter(str, "xorg", "pointer backend", choices=("xorg", "uinput")),
        "display": Parameter(str, "", "X display such as ':1' (empty: $DISPLAY)"),
        "width": Parameter(int, 0, "pixels mapped to the unit square (0: the screen's width)", minimum=0),
        "height": Parameter(int, 0, "pixels (0: the screen's height)", minimum=0),
        "left": Parameter(int, 0, "left edge in pixels", minimum=0),
        "top": Parameter(int, 0, "top edge in pixels", minimum=0),
        "click": Parameter(bool, False, "press the left button on decoded clicks"),
    }

    def setup(self) -> None:
        if self.params["backend"] == "xorg":
            if self.params["display"]:
                os.environ["DISPLAY"] = self.params["display"]
            if not os.environ.get("DISPLAY"):
                raise InvalidInputError(
                    "pointer backend 'xorg' needs an X display: set display = ':N' or $DISPLAY"
                )
            os.environ["PYNPUT_BACKEND"] = "xorg"
            from pynput.mouse import Button, Controller

            self.controller = Controller()
            self.button = Button.left
            width, height = self.params["width"], self.params["height"]
            if not width or not height:
                from Xlib import display as xdisplay

                connection = xdisplay.Display(os.environ["DISPLAY"])
                try:
                    screen = connection.screen()
                    width = width or screen.width_in_pixels
                    height = height or screen.height_in_pixels
                finally:
                    connection.close()
            self.size = (width, height)
        else:
            try:
                from evdev import UInput, ecodes
            except ImportError as exc:
                raise InvalidInputError(
                    "pointer backend 'uinput' needs python-evdev: pip install evdev"
                ) from exc
            capabilities = {ecodes.EV_REL: [ecodes.REL_X, ecodes.REL_Y], ecodes.EV_KEY: [ecodes.BTN_LEFT]}
            try:
                self.uinput = UInput(capabilities, name="neurolace-pointer")
            except OSError as exc:
                raise InvalidInputError(f"cannot open /dev/uinput for the pointer: {exc}") from exc
            self.ecodes = ecodes
            self.size = (self.params["width"] or 1920, self.params["height"] or 1080)
            self.last_pixel = None
        self.pressed = False

    def pixel(self, cursor: np.ndarray) -> tuple[int, int]:
        """Screen pixel of a unit-square cursor (y up)."""
        width, height = self.size
        x = self.params["left"] + round(float(np.clip(cursor[0], 0, 1)) * (width - 1))
        y = self.params["top"] + round((1.0 - float(np.clip(cursor[1], 0, 1))) * (height - 1))
        return x, y

    def on_message(self, port: str, message: Message) -> None:
        x, y = self.pixel(message.payload)
        want_press = self.params["click"] and message.payload[2] > 0.5
        if self.params["backend"] == "xorg":
            self.controller.position = (x, y)
            if want_press != self.pressed:
                (self.controller.press if want_press else self.controller.release)(self.button)
        else:
            ecodes = self.ecodes
            if self.last_pixel is not None:
                self.uinput.write(ecodes.EV_REL, ecodes.REL_X, x - self.last_pixel[0])
                self.uinput.write(ecodes.EV_REL, ecodes.REL_Y, y - self.last_pixel[1])
            if want_press != self.pressed:
                self.uinput.write(ecodes.EV_KEY, ecodes.BTN_LEFT, int(want_press))
            self.uinput.syn()
            self.last_pixel = (x, y)
        self.pressed = want_press
        self._applied(message)

    def teardown(self) -> None:
        if getattr(self, "pressed", False) and self.params["backend"] == "xorg":
            self.controller.release(self.button)
        self.controller = None  # closes the X connection now, while the display is still there
        uinput = getattr(self, "uinput", None)
        if uinput is not None:
            uinput.close()


def hid_boot_report(buttons: int, dx: int, dy: int) -> bytes:
    """A 3-byte USB HID boot-protocol mouse report: buttons bitmap, dx, dy (int8, y down).

    USB Device Class Definition for HID 1.11, appendix B.2 (boot interface
    descriptors, mouse): byte 0 bits 0-2 are buttons 1-3, bytes 1 and 2 are
    signed relative X and Y, -127..127.
    """
    if not -127 <= dx <= 127 or not -127 <= dy <= 127:
        raise InvalidInputError(f"dx and dy must lie in [-127, 127], got ({dx}, {dy})")
    return struct.pack("<Bbb", buttons & 0x07, dx, dy)


def parse_hid_boot_reports(data: bytes) -> np.ndarray:
    """Inverse of :func:`hid_boot_report` over a byte string: rows (buttons, dx, dy), shape (n_reports, 3)."""
    if len(data) % 3:
        raise InvalidInputError(f"boot mouse reports are 3 bytes each; got {len(data)} bytes")
    records = np.frombuffer(data, dtype=np.dtype([("buttons", "u1"), ("dx", "i1"), ("dy", "i1")]))
    return np.column_stack([records["buttons"], records["dx"], records["dy"]]).astype(np.int64)


@register_node
class HidMouseNode(_Effector):
    """Writes USB HID boot-mouse reports to a Linux USB gadget (/dev/hidgN), so a phone follows the cursor.

    A small board running the Linux HID gadget function (configfs
    ``functions/hid.usb0`` with the boot mouse report descriptor) appears to
    the phone or tablet as a mouse; each cursor move becomes relative reports
    (large moves are split into several reports of at most 127 counts).
    The cursor's unit square maps onto ``width`` x ``height`` counts, y down.
    ``device`` may be any writable file or FIFO (tests parse the reports back).
    """

    type_name = "hid_mouse"
    description = "USB HID boot-mouse reports to /dev/hidgN (or a file/FIFO)"
    inputs: ClassVar[dict[str, Port]] = {"cursor": Port("cursor")}
    outputs: ClassVar[dict[str, Port]] = {}
    parameters: ClassVar[dict[str, Parameter]] = {
        "device": Parameter(str, "/dev/hidg0", "gadget device, file or FIFO"),
        "width": Parameter(int, 1920, "counts across the unit square", minimum=1),
        "height": Parameter(int, 1080, "counts down the unit square", minimum=1),
        "click": Parameter(bool, True, "report the left button on decoded clicks"),
    }

    def setup(self) -> None:
        path = Path(self.params["device"])
        if not path.is_absolute() and self.context.session_directory is not None:
            path = Path(self.context.session_directory) / path
        flags = os.O_WRONLY | (os.O_APPEND | os.O_CREAT if not path.exists() or path.is_file() else 0)
        try:
            self.fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise InvalidInputError(f"cannot open HID device {path}: {exc}") from exc
        self.last = self.context.extra.get("hid_last")
        self.reports = 0

    def on_message(self, port: str, message: Message) -> None:
        cursor = message.payload
        x = round(float(np.clip(cursor[0], 0, 1)) * (self.params["width"] - 1))
        y = round((1.0 - float(np.clip(cursor[1], 0, 1))) * (self.params["height"] - 1))
        buttons = 1 if self.params["click"] and cursor[2] > 0.5 else 0
        if self.last is None:
            self.last = (x, y, buttons)
            self.context.extra["hid_last"] = self.last
            return
        dx, dy = x - self.last[0], y - self.last[1]
        chunks = []
        while dx or dy or not chunks:
            step_x, step_y = int(np.clip(dx, -127, 127)), int(np.clip(dy, -127, 127))
            chunks.append(hid_boot_report(buttons, step_x, step_y))
            dx, dy = dx - step_x, dy - step_y
        if len(chunks) == 1 and chunks[0] == hid_boot_report(self.last[2], 0, 0):
            chunks = []  # nothing moved and no button change: send nothing
        for report in chunks:
            os.write(self.fd, report)  # the gadget driver takes one report per write()
            self.reports += 1
        self.last = (x, y, buttons)
        self.context.extra["hid_last"] = self.last
        self._applied(message)

    def teardown(self) -> None:
        fd = getattr(self, "fd", None)
        if fd is not None:
            os.close(fd)

    def summary(self) -> dict:
        return {**super().summary(), "reports": getattr(self, "reports", 0)}
