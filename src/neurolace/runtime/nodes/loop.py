"""The ``closed_loop`` node: the calibration session of :mod:`neurolace.runtime.closed_loop` in a graph.

A thin wrapper over :class:`~neurolace.runtime.closed_loop.SessionRunner`
(and so over :class:`~neurolace.runtime.loop.ClosedLoop`): each pair of
``features`` and ``intention`` messages of one bin (matched on the sample
clock) is one control step of the runner; the node publishes the cursor the
participant sees, the lit target, the block (its index and noise seed, so
the participant node reseeds exactly as :func:`run_calibration_session`
does) and, in scored Webgrid blocks, the score (correct, incorrect, BPS of
the current block). Like an effector it logs the end-to-end latency of each
cursor it publishes (publish time minus the feature bin's ``origin_ns``). The block schedule, the fits
and ReFIT are the runner's; the node adds none. A ``features`` message whose payload is all NaN is a
missing bin (a frame the link lost, :func:`neurolace.core.features.is_missing_bin`): the runner's loop
decodes it without data, and the summary counts it in ``missing_bins``. Fits run in the node's thread
(on the real-time clock the loop pauses at a block boundary for the fit).
"""

from __future__ import annotations

from collections import namedtuple
from typing import ClassVar

import numpy as np

from neurolace.core.features import is_missing_bin
from neurolace.decode.registry import DECODERS
from neurolace.runtime.latency import LatencyLog
from neurolace.runtime.loop import DEFAULT_CURSOR_GAIN_PER_S
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.node import Node, Parameter, Port, register_node

__all__ = ["ClosedLoopNode"]

_Intention = namedtuple("_Intention", "velocity click")


@register_node
class ClosedLoopNode(Node):
    """Observation, first decoder, closed loop, ReFIT and Webgrid blocks: the automated session, live."""

    type_name = "closed_loop"
    description = "calibration session + closed loop: decoder, click policy, cursor and Webgrid in one"
    inputs: ClassVar[dict[str, Port]] = {
        "features": Port("features", help="one feature bin of the participant (all NaN: a missing bin)"),
        "intention": Port("intention", help="the participant's intention (observation labels, ideal decoder)"),
    }
    outputs: ClassVar[dict[str, Port]] = {
        "cursor": Port("cursor"), "target": Port("target"), "block": Port("block"), "score": Port("score"),
    }
    parameters: ClassVar[dict[str, Parameter]] = {
        "decoder": Parameter(str, "kalman", "velocity decoder", choices=DECODERS),
        "cursor_gain_per_s": Parameter(float, DEFAULT_CURSOR_GAIN_PER_S, "workspace units per second per unit velocity",
                                       minimum=1e-6),
        "loop_ms": Parameter(float, 20.0, "bin and control period in ms", minimum=1.0),
        "grid_side": Parameter(int, 30, "Webgrid side of the scored blocks", minimum=2),
        "webgrid_s": Parameter(float, 60.0, "length of each scored Webgrid block", minimum=0.02),
        "n_webgrid_blocks": Parameter(int, 2, "scored Webgrid blocks", minimum=1),
        "refit": Parameter(bool, True, "ReFIT recalibration and its check block"),
        "open_loop_s": Parameter(float, 120.0, "observation block", minimum=0.2),
        "closed_loop_s": Parameter(float, 120.0, "first closed-loop (and ReFIT check) block", minimum=0.2),
        "calibration_grid_side": Parameter(int, 6, "grid of the calibration blocks", minimum=2),
    }

    def setup(self) -> None:
        from neurolace.runtime.closed_loop import SessionPlan, SessionRunner
        from neurolace.runtime.loop import LoopSettings
        from neurolace.sim.participant import ControlParameters

        params = self.params
        self.plan = SessionPlan.build(
            seed=self.context.seed, decoder=params["decoder"], grid_side=params["grid_side"],
            webgrid_seconds=params["webgrid_s"], n_webgrid_blocks=params["n_webgrid_blocks"],
            open_loop_seconds=params["open_loop_s"], closed_loop_seconds=params["closed_loop_s"],
            calibration_grid_side=params["calibration_grid_side"], variants=(params["refit"],),
        )
        loop_s = params["loop_ms"] / 1e3
        self.settings = LoopSettings(loop_s=loop_s, cursor_gain_per_s=params["cursor_gain_per_s"])
        # the autopilot imitates the participant model's policy (its max_speed and slowdown_distance)
        self.control = ControlParameters(loop_s=loop_s)
        self.pending: dict[int, dict] = {}
        self.extra_bins = 0
        self.missing_bins = 0
        # cursor publish time minus the feature bin's origin_ns, as the cursor node measures it
        self.end_to_end = LatencyLog()
        self.runner = SessionRunner(self.plan, self.settings, autopilot_control=self.control,
                                    n_features=None, n_channels=0)
        self.runner.begin_block()
        # the participant's first bin must already see the first block's cursor, target and seed
        self._publish(None)

    def _publish(self, parent: Message | None) -> None:
        from neurolace.runtime.closed_loop import block_payload

        block = self.runner.block
        if block is None:
            return
        cursor = block.cursor_xy
        last = block.index - 1
        click = float(block.clicks[last]) if last >= 0 else 0.0
        assisted = 1.0 if block.loop.open_loop else 0.0
        target = block.target
        self.emit("block", block_payload(self.runner.index, self.runner.block_plan.noise_key), parent=parent)
        self.emit("cursor", np.array([cursor[0], cursor[1], click, assisted]), parent=parent)
        self.emit("target", np.array([*target.center_xy, target.width]), parent=parent)

    def on_message(self, port: str, message: Message) -> None:
        entry = self.pending.setdefault(message.sample_index, {})
        entry[port] = message
        if len(entry) < 2:
            while len(self.pending) > 1000:
                self.pending.pop(next(iter(self.pending)))
            return
        del self.pending[message.sample_index]
        features = np.asarray(entry["features"].payload, dtype=np.float64)
        if is_missing_bin(features):
            self.missing_bins += 1
        if self.runner.done:
            self.extra_bins += 1
            return
        payload = entry["intention"].payload
        block = self.runner.block
        result = block.step(features, _Intention(np.asarray(payload[:2], dtype=np.float64), float(payload[2])))
        if result.selection is not None and block.kind == "webgrid":
            summary = block.task.summary(block.index * block.loop_s)
            bps = summary.bps if np.isfinite(summary.bps) else 0.0
            self.emit("score", np.array([summary.correct, summary.incorrect, bps]), parent=message)
        if block.finished:
            self.context.log("block_finished", block=block.name, correct=int(block.task.correct))
            self.runner.end_block()
            if block.kind == "open-loop":
                self.context.log("decoder_fitted", bins=int(block.index), decoder=self.params["decoder"])
            self.runner.begin_block()
        self._publish(message)
        self.end_to_end.add(now_ns() - entry["features"].origin_ns)

    def summary(self) -> dict:
        result = self.runner.results[0]
        return {
            "correct": sum(b.correct for b in result.webgrid_blocks),  # scored (Webgrid) blocks only
            "incorrect": sum(b.incorrect for b in result.webgrid_blocks),
            "bps": float(result.bps) if np.isfinite(result.bps) else 0.0,
            "blocks": [b.to_dict() for b in result.blocks],
            "selections": [(b.name, b.correct, b.incorrect) for b in result.blocks],
            "complete": self.runner.done,
            "ignored_bins": self.extra_bins,
            "missing_bins": self.missing_bins,
            "end_to_end_us": self.end_to_end.summary_us(),
        }
