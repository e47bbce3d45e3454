"""Source nodes: the simulated participant, replay of recordings, and a LabStreamingLayer inlet.

Sources have no inputs; :meth:`produce` paces itself on the monotonic clock
(:class:`~neurolace.runtime.clock.Pacer`) and stamps each message with the
source's sample clock (``sample_index``) and the time its newest sample was
available (``origin_ns``).
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path
from typing import ClassVar

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.core.geometry import MAX_ELECTRODES
from neurolace.core.random import spawn_rngs
from neurolace.runtime.clock import Pacer
from neurolace.runtime.loop import DEFAULT_CURSOR_GAIN_PER_S
from neurolace.runtime.messages import now_ns
from neurolace.runtime.node import Node, Parameter, Port, register_node

__all__ = [
    "LSLInletNode",
    "ReplayNode",
    "SimImplantNode",
    "PATHS",
    "PATH_FEATURES",
    "SimParticipantNode",
    "build_feature_source",
    "build_participant",
    "load_recording",
]

_TargetView = namedtuple("_TargetView", "center_xy width shape")

#: sample rate of the N1 implant (the participant's bins count this clock)
IMPLANT_FS_HZ = 19531.25


def _node_seed(seed: int, name: str) -> np.random.Generator:
    """A generator for node ``name`` derived from the session seed (stable across runs and restarts)."""
    digest = sum((index + 1) * ord(character) for index, character in enumerate(name))
    return spawn_rngs(np.random.SeedSequence([int(seed), digest]), 1)[0]


#: the feature paths of a simulated participant and what the decoder sees on each
PATH_FEATURES = {"implant": ("threshold_crossings", "spike_band_power_uv"), "counts": ("poisson_counts",)}
#: the feature paths, the default first
PATHS = tuple(PATH_FEATURES)


def build_feature_source(participant, path: str):
    """The feature source of ``path`` for ``participant`` (one bin per intention).

    Parameters
    ----------
    participant : SimulatedParticipant
    path : {"implant", "counts"}
        ``"implant"``: the participant's intention drives the implant simulator's units
        (spike waveforms at 19,531.25 Hz, the on-implant chain), and each bin holds the
        threshold crossings then the spike-band power (µV) of every channel,
        ``2 * n_channels`` columns (:class:`~neurolace.sim.neural_source.ImplantFeatureSource`,
        ``features="both"``); ``n_channels`` must be 1-16 or a multiple of 16.
        ``"counts"``: the participant's Poisson counts, ``n_channels`` columns
        (:class:`~neurolace.runtime.loop.CountsSource`), the fast mode.
    """
    if path == "counts":
        from neurolace.runtime.loop import CountsSource

        return CountsSource(participant)
    if path == "implant":
        from neurolace.sim.neural_source import ImplantFeatureSource

        return ImplantFeatureSource(participant, features="both")
    raise InvalidInputError(f"path must be one of {list(PATHS)}, got {path!r}")


def build_participant(*, n_channels: int, loop_ms: float, visual_delay_s: float, session_seed: int,
                      name: str):
    """The simulated participant a ``sim_participant`` node called ``name`` builds for ``session_seed``.

    ``visual_delay_s = 0`` keeps the participant model's own (cited) visual delay.
    Tests and :func:`~neurolace.runtime.closed_loop.run_calibration_session` use it to
    run the same participant outside the graph.
    """
    from dataclasses import replace

    from neurolace.sim.participant import ControlParameters, SimulatedParticipant

    control = ControlParameters(loop_s=loop_ms / 1e3)
    if visual_delay_s > 0:
        control = replace(control, visual_delay_s=visual_delay_s)
    return SimulatedParticipant(n_channels=n_channels, seed=_node_seed(session_seed, name), control=control)


@register_node
class SimParticipantNode(Node):
    """The simulated participant: every ``loop_ms`` it looks at the cursor and target, then fires.

    Outputs one bin of features (``features``: the ``path`` parameter's, see
    :func:`build_feature_source`: crossings and spike-band power through the
    simulated implant and its chain, or Poisson counts) and the intention that
    produced it (``intention``: vx, vy, click), both stamped with the bin's
    first sample on the implant's clock. With the ``block`` feedback of a
    ``closed_loop`` node it restarts (and reseeds) at each block start exactly
    as :func:`~neurolace.runtime.closed_loop.run_calibration_session` does.
    """

    type_name = "sim_participant"
    description = "simulated BCI user (feedback controller + motor-cortex channels), one bin per loop"
    inputs: ClassVar[dict[str, Port]] = {
        "cursor": Port("cursor", optional=True, feedback=True, help="cursor the participant sees"),
        "target": Port("target", optional=True, feedback=True, help="target the participant aims at"),
        "block": Port("block", optional=True, feedback=True, help="block starts of a closed_loop session"),
    }
    outputs: ClassVar[dict[str, Port]] = {"features": Port("features"), "intention": Port("intention")}
    parameters: ClassVar[dict[str, Parameter]] = {
        "n_channels": Parameter(int, 1024, "implant channels", minimum=1, maximum=MAX_ELECTRODES),
        "loop_ms": Parameter(float, 20.0, "bin and control period in ms", minimum=1.0),
        "path": Parameter(
            str, "counts", "features: 'implant' (waveforms at 19.5 kHz -> on-implant chain -> crossings then "
            "spike-band power, 2 x n_channels; n_channels 1-16 or a multiple of 16) or 'counts' (Poisson counts, "
            "the fast mode)", choices=PATHS,
        ),
        "cursor_gain_per_s": Parameter(
            float, DEFAULT_CURSOR_GAIN_PER_S,
            "cursor speed per unit velocity the participant expects (set once per session)",
            minimum=1e-6,
        ),
        "visual_delay_s": Parameter(float, 0.0, "visual feedback delay (0: the participant model's)", minimum=0.0),
        "realtime": Parameter(bool, True, "pace on the clock (false: as fast as possible)"),
        "max_bins": Parameter(int, 0, "stop after this many bins (0: never)", minimum=0),
    }

    def setup(self) -> None:
        params = self.params
        loop_s = params["loop_ms"] / 1e3
        self.participant = build_participant(
            n_channels=params["n_channels"], loop_ms=params["loop_ms"], visual_delay_s=params["visual_delay_s"],
            session_seed=self.context.seed, name=self.name,
        )
        self.source = build_feature_source(self.participant, params["path"])
        self.participant.start((0.5, 0.5), cursor_gain_per_s=params["cursor_gain_per_s"])
        self.source_started = False
        self.block_index: int | None = None
        self.pacer = Pacer(round(loop_s * 1e9), realtime=params["realtime"] and not self.context.stepped)
        self.samples_per_bin = loop_s * IMPLANT_FS_HZ
        # the stepped clock ends the session on the participant's own clock
        duration_s = self.context.duration_s if self.context.stepped else 0.0
        self.last_bin = round(duration_s / loop_s) if duration_s else 0
        # after a restart the sample clock goes on where the failed instance stopped
        self.first_bin = self.context.extra.get("next_bin", 0)

    def _follow_block(self, cursor) -> None:
        """A new block of a closed_loop session: restart and reseed as the session runner does."""
        message = self.context.feedback("block")
        if message is None:
            return
        from neurolace.runtime.closed_loop import block_from_payload, block_seeds

        index, noise_seed = block_from_payload(message.payload)
        if index == self.block_index:
            return
        self.block_index = index
        participant_seed, source_seed = block_seeds(noise_seed)
        self.participant.start(cursor, cursor_gain_per_s=self.params["cursor_gain_per_s"], seed=participant_seed)
        self.source.start(source_seed)
        self.source_started = True

    def produce(self) -> bool:
        bins = self.first_bin + self.pacer.tick
        if (self.params["max_bins"] and bins >= self.params["max_bins"]) or (
            self.last_bin and bins >= self.last_bin
        ):
            return False
        bin_index = self.first_bin + self.pacer.wait()
        cursor_message = self.context.feedback("cursor")
        target_message = self.context.feedback("target")
        cursor = np.array([0.5, 0.5]) if cursor_message is None else np.asarray(cursor_message.payload[:2],
                                                                                 dtype=np.float64)
        self._follow_block(cursor)
        if not self.source_started:  # no closed_loop blocks: one block from the first bin, seeded by the session
            self.source.start(_node_seed(self.context.seed, f"{self.name}.source"))
            self.source_started = True
        target = None
        if target_message is not None and target_message.payload[2] > 0:
            x, y, width = (float(v) for v in target_message.payload[:3])
            target = _TargetView((x, y), width, "square")
        intention = self.participant.step(cursor, target)
        features = self.source.emit(intention).astype(np.float32)
        sample_index = round(bin_index * self.samples_per_bin)
        self.context.extra["next_bin"] = bin_index + 1
        origin = now_ns()
        self.emit("features", features, sample_index=sample_index, origin_ns=origin)
        self.emit(
            "intention",
            np.array([*intention.velocity, intention.click]),
            sample_index=sample_index,
            origin_ns=origin,
        )
        return True

    def summary(self) -> dict:
        return {"bins": self.first_bin + self.pacer.tick, "loop_jitter_us": self.pacer.jitter_summary()}


def load_recording(path: str | Path, *, fs_hz: float = 0.0, n_channels: int = 0, gain_uv: float = 0.0):
    """Read a WAV, NWB or raw-binary recording, chosen by suffix (raw needs ``fs_hz`` and ``n_channels``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recording not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".wav":
        from neurolace.io.wav import read_wav

        return read_wav(path, gain_uv=gain_uv or None)
    if suffix == ".nwb":
        from neurolace.io.nwb import read_nwb

        return read_nwb(path).recording
    if suffix in (".raw", ".bin", ".dat", ".i16"):
        if not fs_hz or not n_channels:
            raise InvalidInputError(f"replay of raw binary {path.name} needs fs_hz and n_channels parameters")
        from neurolace.io.raw import read_raw

        return read_raw(path, fs_hz=fs_hz, n_channels=n_channels, gain_uv=gain_uv or None)
    raise InvalidInputError(
        f"recording {path.name}: expected a .wav, .nwb or raw (.raw/.bin/.dat) file, got {suffix!r}"
    )


class _RecordingSource(Node):
    """Streams a :class:`~neurolace.core.Recording` in blocks of ``block_ms``, paced or as fast as possible."""

    outputs: ClassVar[dict[str, Port]] = {"raw": Port("raw")}

    def _load(self):
        raise NotImplementedError

    def setup(self) -> None:
        self.recording = self._load()
        self.block_samples = max(1, round(self.params["block_ms"] / 1e3 * self.recording.fs_hz))
        period_ns = round(self.block_samples / self.recording.fs_hz * 1e9)
        realtime = self.params["speed"] == "realtime" and not self.context.stepped
        self.pacer = Pacer(period_ns, realtime=realtime)
        # after a restart, go on from where the failed instance stopped
        self.position, self.offset = self.context.extra.get("position", (0, 0))
        self.blocks = 0
        # the stepped clock ends the session on the recording's own clock
        duration_s = self.context.duration_s if self.context.stepped else 0.0
        self.last_sample = round(duration_s * self.recording.fs_hz)

    def produce(self) -> bool:
        samples = self.recording.samples
        if self.last_sample and self.offset + self.position >= self.last_sample:
            return False
        if self.position >= samples.shape[0]:
            if not self.params["loop"] or samples.shape[0] == 0:
                return False
            self.offset += self.position
            self.position = 0
        self.pacer.wait()
        block = samples[self.position : self.position + self.block_samples]
        self.emit("raw", np.ascontiguousarray(block), sample_index=self.offset + self.position)
        self.position += block.shape[0]
        self.context.extra["position"] = (self.position, self.offset)
        self.blocks += 1
        return True

    def summary(self) -> dict:
        return {
            "blocks": self.blocks,
            "samples": self.offset + self.position,
            "fs_hz": self.recording.fs_hz,
            "n_channels": self.recording.n_channels,
            "pacing_jitter_us": self.pacer.jitter_summary(),
        }


_PACING = {
    "block_ms": Parameter(float, 1.0, "block length in ms", minimum=0.01),
    "speed": Parameter(str, "realtime", "pace", choices=("realtime", "fast")),
    "loop": Parameter(bool, False, "start again at the end"),
}


@register_node
class ReplayNode(_RecordingSource):
    """Replay a recorded session (WAV, NWB or raw binary) in blocks, in real time or as fast as possible.

    Each message is ``block_ms`` of int16 ADC codes, shape (n_samples,
    n_channels); ``sample_index`` is the block's first sample in the file
    (plus the file length per completed loop). In real time a block is
    released when its last sample would have been acquired.
    """

    type_name = "replay"
    description = "replay a WAV, NWB or raw-binary recording"
    parameters: ClassVar[dict[str, Parameter]] = {
        "path": Parameter(
            str, help="recording file (.wav, .nwb, .raw/.bin/.dat), relative to the session file"
        ),
        **_PACING,
        "fs_hz": Parameter(float, 0.0, "raw files: sampling rate", minimum=0.0),
        "n_channels": Parameter(int, 0, "raw files: channels", minimum=0, maximum=MAX_ELECTRODES),
        "gain_uv": Parameter(float, 0.0, "µV per code (0: the file's or 1.0)", minimum=0.0),
    }

    def _load(self):
        path = Path(self.params["path"])
        if not path.is_absolute() and self.context.session_directory is not None:
            path = Path(self.context.session_directory) / path
        return load_recording(
            path,
            fs_hz=self.params["fs_hz"],
            n_channels=self.params["n_channels"],
            gain_uv=self.params["gain_uv"],
        )


@register_node
class SimImplantNode(_RecordingSource):
    """The simulated N1-like implant (``neurolace.sim.implant.simulate_implant``), streamed in blocks.

    ``duration_s`` of signal (spikes of tuned units, noise, 10-bit ADC) are
    simulated at setup, then streamed at 19,531.25 Hz; with ``loop`` the
    segment repeats (the sample clock keeps counting).
    """

    type_name = "sim_implant"
    description = "simulated implant: 1024 channels at 19.5 kHz"
    parameters: ClassVar[dict[str, Parameter]] = {
        "n_channels": Parameter(int, 1024, "electrodes (1-16 or a multiple of 16)", minimum=1,
                                maximum=MAX_ELECTRODES),
        "duration_s": Parameter(float, 2.0, "seconds simulated at setup", minimum=0.01),
        **_PACING,
    }

    def _load(self):
        from neurolace.sim.implant import simulate_implant

        cached = self.context.extra.get("recording")
        if cached is None:
            cached = simulate_implant(
                duration_s=self.params["duration_s"],
                n_electrodes=self.params["n_channels"],
                seed=_node_seed(self.context.seed, self.name),
            ).recording
            self.context.extra["recording"] = cached
        return cached


@register_node
class LSLInletNode(Node):
    """A LabStreamingLayer inlet: samples from a real amplifier (or any LSL outlet) in chunks.

    The LSL sample clock is the count of samples received; ``origin_ns`` is the
    time the chunk was pulled. Float samples are converted to int16 codes with
    ``gain_uv`` (µV per code) so downstream nodes see the same ``raw`` kind as
    from a file.
    """

    type_name = "lsl_inlet"
    description = "LabStreamingLayer inlet (pylsl)"
    outputs: ClassVar[dict[str, Port]] = {"raw": Port("raw")}
    parameters: ClassVar[dict[str, Parameter]] = {
        "stream_name": Parameter(str, "", "LSL stream name to resolve (empty: by type)"),
        "stream_type": Parameter(str, "EEG", "LSL stream type when no name is given"),
        "resolve_timeout_s": Parameter(float, 5.0, "time to find the stream", minimum=0.0),
        "gain_uv": Parameter(float, 0.195, "µV per int16 code for float streams", minimum=1e-9),
        "max_chunk": Parameter(int, 1024, "largest chunk pulled at once", minimum=1),
    }

    def setup(self) -> None:
        try:
            import pylsl
        except ImportError as exc:  # optional dependency
            raise InvalidInputError("the lsl_inlet node needs pylsl: pip install pylsl") from exc
        name, stream_type = self.params["stream_name"], self.params["stream_type"]
        prop, value = ("name", name) if name else ("type", stream_type)
        found = pylsl.resolve_byprop(prop, value, minimum=1, timeout=self.params["resolve_timeout_s"])
        if not found:
            raise InvalidInputError(
                f"no LSL stream with {prop} {value!r} found within {self.params['resolve_timeout_s']:g} s"
            )
        self.info = found[0]
        self.inlet = pylsl.StreamInlet(self.info, max_chunklen=self.params["max_chunk"])
        self.inlet.open_stream(timeout=self.params["resolve_timeout_s"])
        self.n_channels = self.info.channel_count()
        self.fs_hz = self.info.nominal_srate()
        self.samples_received = 0
        formats = {
            pylsl.cf_float32: np.float32,
            pylsl.cf_double64: np.float64,
            pylsl.cf_int16: np.int16,
            pylsl.cf_int32: np.int32,
        }
        self.channel_format = self.info.channel_format()
        if self.channel_format not in formats:
            raise InvalidInputError(
                f"LSL stream {self.info.name()!r} has channel format {self.channel_format}; "
                "expected float32, double64, int16 or int32 samples"
            )
        self.float_samples = self.channel_format in (pylsl.cf_float32, pylsl.cf_double64)
        self.buffer = np.empty(
            (self.params["max_chunk"], self.n_channels), dtype=formats[self.channel_format]
        )

    def produce(self) -> bool:
        _, timestamps = self.inlet.pull_chunk(
            timeout=0.05, max_samples=self.params["max_chunk"], dest_obj=self.buffer
        )
        n = len(timestamps)
        if n == 0:
            return not self.context.stop_requested()
        origin = now_ns()
        chunk = self.buffer[:n]
        if self.float_samples:  # values in µV
            codes = np.clip(np.rint(chunk / self.params["gain_uv"]), -32768, 32767).astype(np.int16)
        else:
            codes = np.clip(chunk, -32768, 32767).astype(np.int16)
        self.emit("raw", codes, sample_index=self.samples_received, origin_ns=origin)
        self.samples_received += n
        return True

    def teardown(self) -> None:
        inlet = getattr(self, "inlet", None)
        if inlet is not None:
            inlet.close_stream()

    def summary(self) -> dict:
        return {"samples": getattr(self, "samples_received", 0), "fs_hz": getattr(self, "fs_hz", 0.0)}
