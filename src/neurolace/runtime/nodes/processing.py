"""Processing nodes: the dsp chain, the decoder and the Webgrid task.

Each wraps a capability package (``neurolace.dsp``, ``neurolace.decode``,
``neurolace.tasks``) without adding science: the node feeds it one message at
a time and publishes what it returns, carrying the source clocks along.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.core.features import is_missing_bin
from neurolace.core.geometry import MAX_ELECTRODES
from neurolace.decode.registry import DECODERS
from neurolace.dsp.defaults import DEFAULT_BIN_MS, DEFAULT_NOISE_WINDOW_S
from neurolace.runtime.messages import Message
from neurolace.runtime.node import Node, Parameter, Port, register_node
from neurolace.runtime.nodes.sources import IMPLANT_FS_HZ

__all__ = ["DECODERS", "DecoderNode", "DspNode", "WebgridNode", "fit_velocity_and_click"]


def _build_decoder(name: str):
    from neurolace.decode.registry import make_decoder

    return make_decoder(name)


class _VelocityAndClick:
    """A fitted velocity decoder and its click decoder (None when the labels had no clicks).

    Only a container: the decoder node steps it through
    :class:`~neurolace.runtime.loop.ClosedLoop`, whose click policy (guard hold,
    speed limit, brake) is the one the offline session applies.
    """

    def __init__(self, velocity_decoder, click_decoder) -> None:
        self.velocity_decoder = velocity_decoder
        self.click_decoder = click_decoder

    def reset(self) -> _VelocityAndClick:
        self.velocity_decoder.reset()
        if self.click_decoder is not None:
            self.click_decoder.reset()
        return self

    @property
    def last_status(self):
        return self.velocity_decoder.last_status


def fit_velocity_and_click(name: str, X: np.ndarray, y: np.ndarray, loop_s: float) -> _VelocityAndClick:
    """Fit the velocity decoder ``name`` on (vx, vy) and a click decoder on the click column of ``y``.

    Parameters
    ----------
    X : ndarray, shape (n_bins, n_features)
    y : ndarray, shape (n_bins, 3)
        Intended (vx, vy, click) of each bin.
    loop_s : float
        Bin width.
    """
    from neurolace.decode.click import fit_click_decoder

    velocity_decoder = _build_decoder(name).fit(X, y[:, :2])
    clicks = y[:, 2] > 0.5
    click_decoder = fit_click_decoder(X, clicks, loop_s=loop_s) if 0 < clicks.sum() < clicks.size else None
    return _VelocityAndClick(velocity_decoder, click_decoder)


def fit_in_subprocess(name: str, X: np.ndarray, y: np.ndarray, loop_s: float, *, timeout_s: float = 600.0):
    """:func:`fit_velocity_and_click` in a child Python process; returns the fitted decoder.

    A fit of a few seconds in a thread would hold the GIL long enough to stall
    every node of the loop (measured: the cursor stopped for 3.6 s during a
    Wiener fit on 1024 channels); a child process keeps the loop on time.
    """
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="neurolace-fit-") as directory:
        data_path, model_path = Path(directory) / "data.npz", Path(directory) / "model.npz"
        np.savez(data_path, X=X, y=y)
        code = (
            "import sys; from neurolace.runtime.nodes.processing import _fit_main; "
            "_fit_main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])"
        )
        completed = subprocess.run(
            [sys.executable, "-c", code, str(data_path), name, repr(loop_s), str(model_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if completed.returncode != 0:
            last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise InvalidInputError(f"fitting decoder {name!r} failed: {last_line}")
        from neurolace.decode.persist import load_decoder

        return load_decoder(model_path)


def _fit_main(data_path: str, name: str, loop_s: float, model_path: str) -> None:
    """Entry point of the child process of :func:`fit_in_subprocess`."""
    with np.load(data_path) as data:
        decoder = fit_velocity_and_click(name, data["X"], data["y"], loop_s)
    from neurolace.decode.persist import save_decoder

    save_decoder(decoder, model_path)


@register_node
class DecoderNode(Node):
    """Features in, (vx, vy, click) out, one bin at a time through ``decoder.step``.

    Calibration, as in an open-loop "observation" block: for the first
    ``calibration_s`` the node pairs each feature bin with the participant's
    intention (matched on the source sample clock) and, with ``assist`` on,
    drives the cursor with the intention itself. Then it fits the decoder in a
    background thread (the loop keeps running) and switches to decoding:
    the velocity decoder of :func:`neurolace.decode.make_decoder` plus its
    click decoder (:func:`neurolace.decode.fit_click_decoder`), stepped
    through :meth:`neurolace.runtime.loop.ClosedLoop.decode` (the click
    policy of every loop: no click while the guard holds or the decoded speed
    is high, the click brake; a held bin gives zero velocity). ``model_path`` loads a
    decoder fitted earlier instead, written by
    :func:`neurolace.decode.persist.save_decoder` (arrays and JSON: pickles are
    refused, since loading one can run code).

    The fitted decoder survives a restart of the node (it is kept in the
    supervisor's per-node store), as a real system would reload it from disk.
    ``fail_after_bins`` makes the first instance raise after that many bins, to
    exercise the supervisor (fault injection; 0 = never). On the stepped clock
    the node waits for the fit, so decoding starts at the same bin on every run.
    """

    type_name = "decoder"
    description = "real-time velocity + click decoder with in-session calibration"
    inputs: ClassVar[dict[str, Port]] = {
        "features": Port("features", help="one bin of neural features"),
        "intention": Port("intention", optional=True, help="calibration labels (vx, vy, click)"),
    }
    outputs: ClassVar[dict[str, Port]] = {"velocity": Port("velocity")}
    parameters: ClassVar[dict[str, Parameter]] = {
        "decoder": Parameter(str, "kalman", "decoder", choices=DECODERS),
        "calibration_s": Parameter(float, 20.0, "length of the calibration block", minimum=0.0),
        "bin_ms": Parameter(float, DEFAULT_BIN_MS, "bin width of the features", minimum=0.1),
        "model_path": Parameter(str, "", "fitted decoder to load, a neurolace.decode.save_decoder file (skips calibration)"),
        "assist": Parameter(bool, True, "during calibration, move the cursor with the intention"),
        "fail_after_bins": Parameter(
            int, 0, "fault injection: first instance raises after N bins", minimum=0
        ),
    }

    def setup(self) -> None:
        store = self.context.extra
        self.bins = 0
        self.awaiting_intention: dict[int, np.ndarray | None] = {}
        self.pairs_x: list[np.ndarray] = []
        self.pairs_y: list[np.ndarray] = []
        self.fit_thread: threading.Thread | None = None
        self.fit_error: str | None = None
        self.held_bins = 0
        if "decoder" in store:
            self.decoder = store["decoder"]
            self.decoder.reset()
        elif self.params["model_path"]:
            path = Path(self.params["model_path"])
            if not path.is_absolute() and self.context.session_directory is not None:
                path = Path(self.context.session_directory) / path
            from neurolace.decode.persist import load_decoder

            self.decoder = load_decoder(path)  # arrays and JSON only: a pickle is refused, never run
            store["decoder"] = self.decoder
        else:
            self.decoder = None
            _build_decoder(self.params["decoder"])  # fail now on a missing dependency (gru needs torch)
        self.n_calibration_bins = round(self.params["calibration_s"] * 1e3 / self.params["bin_ms"])

    def _loop(self):
        """The :class:`~neurolace.runtime.loop.ClosedLoop` around the current decoder (None before a fit)."""
        decoder = self.decoder
        if decoder is None:
            return None
        if getattr(self, "_loop_for", None) is not decoder:
            from neurolace.runtime.loop import ClosedLoop, LoopSettings

            velocity, click = getattr(decoder, "velocity_decoder", decoder), getattr(decoder, "click_decoder", None)
            settings = LoopSettings(loop_s=self.params["bin_ms"] / 1e3)
            self._loop_instance = ClosedLoop(settings, decoder=velocity, click_decoder=click, allow_no_click=True)
            self._loop_for = decoder
        return self._loop_instance

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        try:
            decoder = fit_in_subprocess(self.params["decoder"], X, y, self.params["bin_ms"] / 1e3)
            decoder.reset()
            self.context.extra["decoder"] = decoder
            self.decoder = decoder
            self.context.log("decoder_fitted", bins=int(X.shape[0]), decoder=self.params["decoder"])
        except Exception as exc:  # noqa: BLE001  (reported in the summary and log; calibration continues assisted)
            self.fit_error = f"{type(exc).__name__}: {exc}"
            self.context.log("decoder_fit_failed", error=self.fit_error)

    def on_message(self, port: str, message: Message) -> None:
        if port == "features":
            self.bins += 1
            if (
                self.params["fail_after_bins"]
                and self.bins >= self.params["fail_after_bins"]
                and not self.context.extra.get("fault_injected")
            ):
                self.context.extra["fault_injected"] = True
                raise RuntimeError(f"injected decoder fault after {self.bins} bins")
            loop = self._loop()
            if loop is not None:
                step = loop.decode(np.asarray(message.payload, dtype=np.float64))
                self.held_bins += int(step.held)
                output = np.array([step.velocity[0], step.velocity[1], float(step.click), 0.0])
                self.emit("velocity", output, parent=message)
                return
            # not decoding yet: this bin's velocity comes from its intention (assist), if any; a missing
            # bin (the link lost it) is no training data
            features = np.asarray(message.payload, dtype=np.float64)
            self.awaiting_intention[message.sample_index] = (
                features if self.fit_thread is None and not is_missing_bin(features) else None
            )
            while len(self.awaiting_intention) > 1000:
                self.awaiting_intention.pop(next(iter(self.awaiting_intention)))
        elif port == "intention":
            if message.sample_index not in self.awaiting_intention:
                return
            features = self.awaiting_intention.pop(message.sample_index)
            if features is not None and self.fit_thread is None:
                self.pairs_x.append(features)
                self.pairs_y.append(np.asarray(message.payload, dtype=np.float64))
            if self.params["assist"]:
                self.emit(
                    "velocity",
                    np.append(np.asarray(message.payload[:3], dtype=np.float64), 1.0),
                    parent=message,
                )
            if self.fit_thread is None and len(self.pairs_x) >= max(self.n_calibration_bins, 2):
                X, y = np.vstack(self.pairs_x), np.vstack(self.pairs_y)
                self.fit_thread = threading.Thread(
                    target=self._fit, args=(X, y), daemon=True, name=f"fit:{self.name}"
                )
                self.fit_thread.start()
                if self.context.stepped:  # the bin that decoding starts at must not depend on the fit's speed
                    self.fit_thread.join()

    def teardown(self) -> None:
        if self.fit_thread is not None:
            self.fit_thread.join(timeout=30.0)

    def summary(self) -> dict:
        return {
            "decoding": self.decoder is not None,
            "calibration_bins": len(self.pairs_x),
            "held_bins": self.held_bins,
            "fit_error": self.fit_error,
        }


@register_node
class WebgridNode(Node):
    """The Webgrid task: scores the cursor, lights targets, reports bits per second.

    Task time is the source sample clock of the cursor message
    (``sample_index / fs_hz``), so a replayed or as-fast-as-possible session
    scores the same as one in real time. Targets are lit from the first cursor
    on; with ``score = "decoded"`` the scored block starts, on a fresh grid, at
    the first cursor move the decoder made on its own (not assisted by the
    calibration), so assisted moves never count in the bits per second.
    """

    type_name = "webgrid"
    description = "Webgrid point-and-click task with BPS scoring"
    inputs: ClassVar[dict[str, Port]] = {"cursor": Port("cursor")}
    outputs: ClassVar[dict[str, Port]] = {"target": Port("target"), "score": Port("score")}
    parameters: ClassVar[dict[str, Parameter]] = {
        "grid_side": Parameter(int, 30, "cells per side", minimum=2),
        "fs_hz": Parameter(float, IMPLANT_FS_HZ, "sample clock of the source", minimum=1e-6),
        "score": Parameter(str, "decoded", "which moves are scored", choices=("decoded", "all")),
    }

    def setup(self) -> None:
        from neurolace.tasks import WebgridTask

        self._task_class = WebgridTask
        self.task = None
        self.scoring = False
        self.block_start_s = 0.0
        self.time_s = 0.0

    def _begin(self, cursor: np.ndarray, *, scoring: bool) -> None:
        seed = self.context.seed + (1 if scoring else 0)
        self.task = self._task_class(grid_side=self.params["grid_side"], seed=seed)
        self.task.start(self.time_s, cursor[:2])
        self.scoring = scoring
        self.block_start_s = self.time_s

    def on_message(self, port: str, message: Message) -> None:
        cursor = message.payload
        self.time_s = message.sample_index / self.params["fs_hz"]
        decoded = self.params["score"] == "all" or cursor.shape[0] < 4 or cursor[3] < 0.5
        if self.task is None or (not self.scoring and decoded):
            self._begin(cursor, scoring=decoded)
        else:
            selection = self.task.update(self.time_s, cursor[:2], bool(cursor[2] > 0.5))
            if selection is not None and self.scoring:
                summary = self.task.summary(self.time_s)
                bps = summary.bps if np.isfinite(summary.bps) else 0.0
                self.emit("score", np.array([self.task.correct, self.task.incorrect, bps]), parent=message)
        target = self.task.target
        self.emit("target", np.array([*target.center_xy, target.width]), parent=message)

    def summary(self) -> dict:
        if not self.scoring:
            return {"correct": 0, "incorrect": 0, "bps": 0.0, "scored_s": 0.0}
        block = self.task.summary(self.time_s)
        return {
            "correct": block.correct,
            "incorrect": block.incorrect,
            "bps": float(block.bps) if np.isfinite(block.bps) else 0.0,
            "scored_s": round(self.time_s - self.block_start_s, 3),
        }


@register_node
class DspNode(Node):
    """The streaming signal chain (``neurolace.dsp.SignalChain``): raw ADC blocks in, feature bins out.

    Every raw block goes through ``process(chunk)``; each completed bin is
    published with the sample clock of its first sample and the ``origin_ns``
    of the raw block that held the bin's last sample, so the end-to-end latency
    is measured from the bin's last sample (the bin width excluded, the wait
    for events at the bin's edge to be final included).

    The chain's output does not depend on the chunking, and one call on 10
    blocks costs less than ten calls on one (measured at 1024 channels under
    AVX2 emulation: 0.12 CPU s per s of signal in 1 ms calls, 0.06 in 10 ms
    calls), so
    the node runs it on several blocks at once where that delays no bin:

    - when raw blocks queue up (the node fell behind), the runner hands over
      the waiting ones together, up to ``max_batch_ms`` of signal, so a backlog
      drains instead of growing;
    - with ``defer`` (default), a block that ends before the last sample of the
      next bin to publish is held, since no bin can come out of it, and the
      chain runs once the held blocks reach that sample or ``max_batch_ms``;
      from there on, until the bin is out, every block runs at once.
    """

    type_name = "dsp"
    description = "streaming filter, spike detection and binned features"
    inputs: ClassVar[dict[str, Port]] = {"raw": Port("raw")}
    outputs: ClassVar[dict[str, Port]] = {"features": Port("features")}
    parameters: ClassVar[dict[str, Parameter]] = {
        "fs_hz": Parameter(float, IMPLANT_FS_HZ, "sampling rate of the raw stream", minimum=1.0),
        "n_channels": Parameter(int, 1024, "channels of the raw stream", minimum=1, maximum=MAX_ELECTRODES),
        "gain_uv": Parameter(float, 0.195, "µV per ADC code", minimum=1e-9),
        "bin_ms": Parameter(float, DEFAULT_BIN_MS, "feature bin width", minimum=0.1),
        "feature": Parameter(
            str,
            "threshold_crossings",
            "columns to publish",
            choices=("threshold_crossings", "spike_band_power", "both"),
        ),
        "noise_window_s": Parameter(
            float, DEFAULT_NOISE_WINDOW_S, "first noise window (detection starts after it)", minimum=0.001
        ),
        "sbp_filter": Parameter(bool, False, "separate 300-1000 Hz filter for SBP (else the spike band)"),
        "max_batch_ms": Parameter(
            float,
            10.0,
            "most waiting raw signal taken into one chain call (0: one block a call)",
            minimum=0.0,
        ),
        "defer": Parameter(
            bool, True, "hold blocks that cannot close a bin yet and run the chain on them together"
        ),
    }

    def setup(self) -> None:
        from neurolace.dsp.chain import SignalChain
        from neurolace.dsp.features import SBP_BAND_HZ

        params = self.params
        self.chain = SignalChain(
            params["fs_hz"],
            params["n_channels"],
            gain_uv=params["gain_uv"],
            bin_ms=params["bin_ms"],
            noise_window_s=params["noise_window_s"],
            sbp_band_hz=SBP_BAND_HZ if params["sbp_filter"] else None,
        )
        self.bin_samples = self.chain.sbp.bin_samples
        n = params["n_channels"]
        self.columns = {
            "threshold_crossings": slice(0, n),
            "spike_band_power": slice(n, 2 * n),
            "both": slice(0, 2 * n),
        }[params["feature"]]
        self.block_origins: collections.deque = collections.deque(maxlen=4096)
        self.bins = 0
        self.batches = 0
        self.batched_blocks = 0
        self.chain_calls = 0
        self.held: list[Message] = []
        self.held_samples = 0
        #: one past the last sample of the next bin to publish: no bin comes out before it is seen
        self.next_bin_end = self.bin_samples

    def _origin_of_sample(self, sample: int, default: int) -> int:
        for end_sample, origin in self.block_origins:
            if end_sample > sample:
                return origin
        return default

    def on_message(self, port: str, message: Message) -> None:
        self.on_batch(port, [message])

    def on_batch(self, port: str, messages: list[Message]) -> None:
        for message in messages:
            end_sample = message.sample_index + message.payload.shape[0]
            self.block_origins.append((end_sample, message.origin_ns))
            self.held_samples += message.payload.shape[0]
        message = messages[-1]
        block_samples = message.payload.shape[0]
        max_samples = self.params["max_batch_ms"] / 1e3 * self.params["fs_hz"]
        if block_samples:
            self.max_batch = max(1, int(max_samples // block_samples))
        messages = self.held + messages
        seen = message.sample_index + block_samples
        if self.params["defer"] and seen < self.next_bin_end and self.held_samples < max_samples:
            self.held = messages  # no bin can close before next_bin_end is seen
            return
        self.held, self.held_samples = [], 0
        if len(messages) == 1:
            block = message.payload
        else:
            self.batches += 1
            self.batched_blocks += len(messages)
            block = np.concatenate([m.payload for m in messages], axis=0)
        self.chain_calls += 1
        output = self.chain.process(block)
        features = output.features
        for row in range(features.n_bins):
            start = features.start_sample + row * self.bin_samples
            origin = self._origin_of_sample(start + self.bin_samples - 1, message.origin_ns)
            self.bins += 1
            self.emit(
                "features",
                np.ascontiguousarray(features.data[row, self.columns], dtype=np.float32),
                parent=message,
                sample_index=start,
                origin_ns=origin,
            )
        next_bin_start = features.start_sample + features.n_bins * self.bin_samples
        self.next_bin_end = next_bin_start + self.bin_samples
        while self.block_origins and self.block_origins[0][0] <= next_bin_start:
            self.block_origins.popleft()

    def summary(self) -> dict:
        return {
            "bins": self.bins,
            "batches": self.batches,
            "batched_blocks": self.batched_blocks,
            "chain_calls": self.chain_calls,
            # a bin closes only once the filter has seen this far past its end
            "filter_delay_us": 1e6 * self.chain.delay_samples / self.params["fs_hz"],
        }
