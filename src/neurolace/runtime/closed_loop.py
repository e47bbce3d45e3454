"""Blocks and the calibration session of the closed loop: participant -> features -> loop -> task.

One control step (``loop_s``, 20 ms by default) of :func:`run_block`:

1. the participant looks at the (true) cursor and the lit target and forms an
   :class:`~neurolace.sim.participant.Intention` (it sees them late; see
   :mod:`neurolace.sim.participant`);
2. the feature source emits one bin for that intention (default
   :class:`~neurolace.runtime.loop.CountsSource`, the participant's counts);
3. :class:`~neurolace.runtime.loop.ClosedLoop` decodes it, applies the click
   policy (lockout, speed limit, brake) and the signal guard's hold, moves
   the cursor and updates the task (see :mod:`neurolace.runtime.loop`).

In an open-loop (observation) block there is no decoder: the cursor moves
exactly as intended and clicks happen when intended, and the block records
the labels the first decoder is fitted on.

Missing bins (a frame the link lost: ``None`` or an all-NaN bin,
:func:`neurolace.core.features.is_missing_bin`) are recorded as NaN rows and
counted (:attr:`BlockRecord.missing`, :attr:`BlockResult.missing_bins`); the
loop decodes them with the decoders' ``step_missing`` (:mod:`neurolace.runtime.loop`),
and the fits after a block (first decoder, click decoder, ReFIT) use only the
bins that arrived, each gap starting a new segment.
:class:`~neurolace.runtime.loss.LossySource` drops bins from any feature
source with a seeded loss model, to measure what a lossy link costs.

:class:`SessionPlan` writes the schedule of an automated session once:
open-loop observation (labels shifted by the neural lag
:func:`~neurolace.decode.estimate_label_lag` finds), first decoder,
closed-loop block, ReFIT recalibration (Gilja et al. 2012, Nat Neurosci
15:1752) checked in a second closed-loop block, then timed Webgrid blocks
scored in bits per second. :class:`SessionRunner` runs it one control step at
a time; :func:`run_calibration_session` drives it in a Python loop and the
node graph's ``closed_loop`` node drives the same runner from its messages, so
``neurolace run`` on the stepped clock gives the same selections.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurolace.core.checks import check_in, check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.features import is_missing_bin, missing_bin
from neurolace.core.random import SeedLike
from neurolace.decode.calibration import estimate_label_lag
from neurolace.decode.click import fit_click_decoder
from neurolace.decode.registry import DECODERS, make_decoder
from neurolace.runtime.loop import (
    DEFAULT_CLICK_BRAKE,
    DEFAULT_CLICK_LOCKOUT_S,
    DEFAULT_CLICK_SPEED_LIMIT,
    DEFAULT_CLICK_SPEED_SCALE,
    DEFAULT_CURSOR_GAIN_PER_S,
    DEFAULT_SPEED_GAIN_EXPONENT,
    ClosedLoop,
    CountsSource,
    DecoderError,
    LoopSettings,
    LoopStep,
    check_feature_source,
)
from neurolace.runtime.loss import LossySource
from neurolace.sim.participant import SimulatedParticipant
from neurolace.tasks import BlockSummary, PointAndClickTask, WebgridTask, net_targets_per_minute, webgrid_bps

__all__ = [
    "DECODERS",
    "BlockPlan",
    "BlockRecord",
    "BlockResult",
    "BlockRun",
    "SessionPlan",
    "SessionResult",
    "SessionRunner",
    "Calibration",
    "block_seeds",
    "calibrate_session",
    "ideal_webgrid_bps",
    "estimate_label_lag",
    "fit_click_decoder",
    "make_decoder",
    "refit_decoder",
    "run_block",
    "run_calibration_session",
    "run_refit_comparison",
    "run_webgrid",
]


@dataclass
class BlockRecord:
    """Everything that happened in one block, one row per control step.

    Attributes
    ----------
    name, kind : str
        Block name and kind (``"open-loop"``, ``"closed-loop"``, ``"refit"``, ``"webgrid"``).
    counts : ndarray, shape (n_steps, n_channels)
        Counts the decoder saw (after any injected fault).
    intended_velocity : ndarray, shape (n_steps, 2)
    intended_click : ndarray, shape (n_steps,)
    decoded_velocity : ndarray, shape (n_steps, 2)
        Decoder output (the intention itself in open loop).
    click : ndarray of bool, shape (n_steps,)
        Click state sent to the task.
    held : ndarray of bool, shape (n_steps,)
        Bins the decoder's signal guard held (cursor kept still).
    cursor_xy, target_xy : ndarray, shape (n_steps, 2)
        Cursor before the step's movement, and the lit target's centre.
    target_width : ndarray, shape (n_steps,)
    summary : BlockSummary
    missing : ndarray of bool, shape (n_steps,)
        Missing bins (never received; their ``counts`` rows are NaN).
    """

    name: str
    kind: str
    counts: np.ndarray
    intended_velocity: np.ndarray
    intended_click: np.ndarray
    decoded_velocity: np.ndarray
    click: np.ndarray
    held: np.ndarray
    cursor_xy: np.ndarray
    target_xy: np.ndarray
    target_width: np.ndarray
    summary: BlockSummary
    missing: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def missing_bins(self) -> int:
        """Number of missing bins in the block."""
        return int(np.count_nonzero(self.missing))


class BlockRun:
    """One block, one control step at a time: the loop, the task and the record of every step.

    The caller (:func:`run_block`, :class:`SessionRunner`, the graph's
    ``closed_loop`` node) shows the participant :attr:`cursor_xy` and
    :attr:`target`, gets its features, and calls :meth:`step` until
    :attr:`finished`; :meth:`record` gives the :class:`BlockRecord`.

    Parameters
    ----------
    task : PointAndClickTask
        A fresh task; it is started here.
    loop : ClosedLoop
        Reset here (cursor at the centre).
    duration_s : float
        Rounded to whole control steps (at least one).
    n_features : int or None
        Width of one feature bin (None: the first bin's).
    name, kind : str
    feature_fault : callable ``(step_index, features) -> features``, optional
        Corrupts the bins the decoder sees (for testing the signal guard).
    """

    def __init__(self, task: PointAndClickTask, loop: ClosedLoop, *, duration_s: float, n_features: int | None,
                 name: str = "block", kind: str | None = None,
                 feature_fault: Callable[[int, np.ndarray], np.ndarray] | None = None) -> None:
        duration_s = check_positive(duration_s, "duration_s")
        self.task, self.loop = task, loop
        self.name = name
        self.kind = kind or ("open-loop" if loop.open_loop else "closed-loop")
        self.feature_fault = feature_fault
        self.loop_s = loop.settings.loop_s
        self.n_steps = max(1, round(duration_s / self.loop_s))
        self.n_features = None if n_features is None else check_int(n_features, "n_features", minimum=1)
        n = self.n_steps
        self.features = None if n_features is None else np.empty((n, self.n_features))
        self.intended_velocity = np.empty((n, 2))
        self.intended_click = np.empty(n)
        self.decoded_velocity = np.empty((n, 2))
        self.clicks = np.zeros(n, dtype=bool)
        self.held = np.zeros(n, dtype=bool)
        self.missing = np.zeros(n, dtype=bool)
        self.cursor_trace = np.empty((n, 2))
        self.target_trace = np.empty((n, 2))
        self.width_trace = np.empty(n)
        self.index = 0
        loop.reset((0.5, 0.5))
        task.start(0.0, loop.cursor_xy)

    @property
    def cursor_xy(self) -> np.ndarray:
        return self.loop.cursor_xy

    @property
    def target(self) -> Any:
        return self.task.target

    @property
    def finished(self) -> bool:
        return self.index >= self.n_steps

    def step(self, features: np.ndarray | None, intention: Any) -> LoopStep:
        """One control step with the participant's ``features`` (n_features,) for ``intention``.

        ``features`` None or all NaN is a missing bin (recorded as NaN, never faulted).
        """
        if self.finished:
            raise InvalidInputError(f"block {self.name!r} has ended ({self.n_steps} steps)")
        index = self.index
        if features is None:
            if self.n_features is None:
                raise InvalidInputError(f"block {self.name!r}: a missing bin (None) before the first bin gives no "
                                        "width; send an all-NaN bin of the features' shape instead")
            features = missing_bin(self.n_features)
        features = np.asarray(features, dtype=np.float64)
        missing = is_missing_bin(features)
        if self.feature_fault is not None and not missing:
            features = np.asarray(self.feature_fault(index, features), dtype=np.float64)
        if self.features is None and features.ndim == 1 and features.size:  # width taken from the first bin
            self.n_features = features.shape[0]
            self.features = np.empty((self.n_steps, self.n_features))
        if features.shape != (self.n_features,):
            raise InvalidInputError(
                f"block {self.name!r}: a feature bin must have shape ({self.n_features},), got {features.shape}"
            )
        target = self.task.target
        self.cursor_trace[index] = self.loop.cursor_xy
        self.target_trace[index] = target.center_xy
        self.width_trace[index] = target.width
        self.features[index] = features
        self.intended_velocity[index] = intention.velocity
        self.intended_click[index] = intention.click
        result = self.loop.step(features, self.task, (index + 1) * self.loop_s, intention=intention)
        self.decoded_velocity[index] = result.velocity
        self.clicks[index] = result.click
        self.held[index] = result.held
        self.missing[index] = missing
        self.index += 1
        return result

    def record(self) -> BlockRecord:
        summary = self.task.summary(end_s=self.index * self.loop_s)
        n = self.index
        features = self.features if self.features is not None else np.empty((0, 0))
        return BlockRecord(
            self.name, self.kind, features[:n], self.intended_velocity[:n], self.intended_click[:n],
            self.decoded_velocity[:n], self.clicks[:n], self.held[:n], self.cursor_trace[:n],
            self.target_trace[:n], self.width_trace[:n], summary, missing=self.missing[:n].copy(),
        )


def _drive_block(participant: SimulatedParticipant, source: Any, block: BlockRun, seed: SeedLike,
                 on_step: Callable[[BlockRun], None] | None = None) -> BlockRecord:
    """Run ``block`` to its end with the participant in the loop (reseeded with ``seed``).

    ``on_step(block)``, when given, is called after every control step (a live view of the block).
    """
    participant_seed, source_seed = block_seeds(seed)
    participant.start(block.cursor_xy, cursor_gain_per_s=block.loop.settings.cursor_gain_per_s,
                      seed=participant_seed)
    source.start(source_seed)
    while not block.finished:
        intention = participant.step(block.cursor_xy, block.target, touch=block.loop.touch)
        block.step(source.emit(intention), intention)
        if on_step is not None:
            on_step(block)
    return block.record()


def block_seeds(seed: SeedLike) -> tuple[Any, Any]:
    """The participant's and the feature source's seeds for one block, from the block's seed.

    The participant gets ``seed`` itself (so the counts path draws exactly as it
    always did); the source gets an independent child of it, so an implant
    source never repeats the participant's noise. ``None`` continues both streams.
    """
    if seed is None:
        return None, None
    if isinstance(seed, np.random.SeedSequence):
        child = np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, 2**31))
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key), child
    if isinstance(seed, np.random.Generator):
        return seed, seed.spawn(1)[0]  # spawning does not advance the participant's stream
    return seed, np.random.SeedSequence([int(seed), 2**31])


def run_block(
    participant: SimulatedParticipant,
    task: PointAndClickTask,
    *,
    duration_s: float,
    decoder: Any = None,
    click_decoder: Any = None,
    cursor_gain_per_s: float = DEFAULT_CURSOR_GAIN_PER_S,
    name: str = "block",
    kind: str | None = None,
    feature_fault: Callable[[int, np.ndarray], np.ndarray] | None = None,
    click_lockout_s: float = DEFAULT_CLICK_LOCKOUT_S,
    velocity_smoothing_s: float = 0.0,
    observation: str = "autopilot",
    click_speed_limit: float | None = DEFAULT_CLICK_SPEED_LIMIT,
    click_brake: bool = DEFAULT_CLICK_BRAKE,
    seed: SeedLike = None,
    source: Any = None,
    speed_gain_exponent: float = DEFAULT_SPEED_GAIN_EXPONENT,
    click_speed_scale: float | None = DEFAULT_CLICK_SPEED_SCALE,
    adapter: Any = None,
    feedback: Any = None,
) -> BlockRecord:
    """Run one block of ``duration_s`` with the participant in the loop.

    Each control step: the participant looks at the cursor and the lit target
    and forms an intention; the feature source emits one bin for it; the
    :class:`~neurolace.runtime.loop.ClosedLoop` decodes it, applies the click
    policy and moves the cursor; the task registers selections.

    Parameters
    ----------
    participant : SimulatedParticipant
    task : PointAndClickTask
        A fresh task (e.g. :class:`~neurolace.tasks.WebgridTask`); it is started here.
    duration_s : float
        Block length in seconds (rounded to whole control steps).
    decoder : fitted velocity decoder with ``step``/``reset`` and ``last_status``, optional
        ``None`` runs the block open loop, as set by ``observation``.
    click_decoder : fitted click decoder with ``step``/``reset``, optional
        Required in closed loop.
    cursor_gain_per_s, click_lockout_s, click_speed_limit, click_brake, velocity_smoothing_s
        The :class:`~neurolace.runtime.loop.LoopSettings` of the block.
    name, kind : str
    feature_fault : callable ``(step_index, features) -> features``, optional
        Corrupts the bins the decoder sees (for testing the signal guard).
    observation : {"autopilot", "intention"}, default "autopilot"
        Open loop only. ``"autopilot"`` is an observation block: the computer
        moves the cursor to each target (straight, slowing near it, like the
        participant's own policy but with no delay or noise) and selects it
        after it has sat on the target for 0.3 s, while the participant
        attempts to make the same movements; ``decoded_velocity`` holds the
        computer's velocity, the label a real observation block provides.
        ``"intention"`` moves the cursor exactly as intended and clicks when
        intended: an ideal decoder, the participant model's own ceiling.
    seed : optional
        Reseeds the participant's noise (and the source's) for this block.
    source : feature source, optional
        ``n_features``, ``start(seed)``, ``emit(intention)`` (see
        :class:`~neurolace.runtime.loop.CountsSource`, the default: the
        participant's counts).
    speed_gain_exponent, click_speed_scale
        The nonlinear speed gain and the speed-dependent click threshold of
        :class:`~neurolace.runtime.loop.LoopSettings` (closed loop only).
    adapter : ContinuousRecalibration, optional
        Bias correction and recalibration during the block (:mod:`neurolace.decode.adapt`).
    feedback : SensoryFeedback, optional
        Closed-loop sensory feedback (:mod:`neurolace.runtime.feedback`); the participant feels its touch.

    Returns
    -------
    BlockRecord
    """
    settings = LoopSettings(
        loop_s=participant.control.loop_s, cursor_gain_per_s=cursor_gain_per_s, click_lockout_s=click_lockout_s,
        click_speed_limit=click_speed_limit, click_brake=click_brake, velocity_smoothing_s=velocity_smoothing_s,
        speed_gain_exponent=speed_gain_exponent, click_speed_scale=click_speed_scale,
    )
    loop = ClosedLoop(settings, decoder=decoder, click_decoder=click_decoder, observation=observation,
                      autopilot_control=participant.control, adapter=adapter, feedback=feedback)
    source = CountsSource(participant) if source is None else check_feature_source(source)
    block = BlockRun(task, loop, duration_s=duration_s, n_features=source.n_features, name=name, kind=kind,
                     feature_fault=feature_fault)
    return _drive_block(participant, source, block, seed)


def refit_decoder(decoder_name: str, decoder: Any, block: BlockRecord) -> Any:
    """ReFIT recalibration on a closed-loop block (Gilja et al. 2012).

    The decoded velocities are rotated to point at the target and zeroed
    while the cursor is inside it (:func:`neurolace.decode.intended_velocity`);
    a :class:`~neurolace.decode.ReFITKalmanFilter` is refitted with its own
    ``refit``; any other decoder is fitted afresh on the block's counts with
    those intentions as labels (the same intention-estimation idea). Bins the
    signal guard held and missing bins are left out.

    Returns
    -------
    The recalibrated decoder (a new object unless it has ``refit``).
    """
    from neurolace import decode

    keep = ~block.held & ~block.missing if block.missing.shape == block.held.shape else ~block.held
    if keep.sum() < 10:
        raise InvalidInputError(f"block {block.name!r} has too few usable bins ({int(keep.sum())}) to refit")
    radius = 0.5 * float(np.median(block.target_width))
    arguments = (block.cursor_xy[keep], block.target_xy[keep], block.decoded_velocity[keep])
    if hasattr(decoder, "refit"):
        return decoder.refit(block.counts[keep], *arguments, target_radius=radius)
    intention = decode.intended_velocity(*arguments, target_radius=radius)
    return _fit_named(decoder_name, block.counts[keep], intention)


@dataclass
class BlockResult:
    """Scores of one block of the session (JSON-able through :meth:`to_dict`)."""

    name: str
    kind: str
    duration_s: float
    grid_side: int | None
    ntpm: float
    bps: float
    correct: int
    incorrect: int
    success_rate: float
    mean_time_to_target_s: float
    mean_dial_in_time_s: float
    mean_path_efficiency: float
    throughput_bps: float
    held_fraction: float
    missing_bins: int = 0

    @classmethod
    def from_record(cls, record: BlockRecord) -> BlockResult:
        s = record.summary
        return cls(
            record.name, record.kind, s.duration_s, s.grid_side, s.ntpm, s.bps, s.correct, s.incorrect,
            s.success_rate, s.mean_time_to_target_s, s.mean_dial_in_time_s, s.mean_path_efficiency,
            s.throughput.throughput_bps, float(record.held.mean()), record.missing_bins,
        )

    def to_dict(self) -> dict:
        return {key: _json_number(value) for key, value in self.__dict__.items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class SessionResult:
    """An automated calibration session and its Webgrid score.

    ``bps``/``ntpm`` pool all Webgrid blocks (net correct selections over
    their total time); ``success_rate`` is the fraction of correct clicks in
    them.
    """

    decoder: str
    channels: int
    grid_side: int
    seed: int
    refit: bool
    cursor_gain_per_s: float
    blocks: list[BlockResult] = field(default_factory=list)

    @property
    def webgrid_blocks(self) -> list[BlockResult]:
        return [b for b in self.blocks if b.kind == "webgrid"]

    @property
    def webgrid_seconds(self) -> float:
        return float(sum(b.duration_s for b in self.webgrid_blocks))

    @property
    def ntpm(self) -> float:
        blocks = self.webgrid_blocks
        if not blocks:
            return 0.0
        return net_targets_per_minute(sum(b.correct for b in blocks), sum(b.incorrect for b in blocks),
                                      self.webgrid_seconds)

    @property
    def bps(self) -> float:
        return webgrid_bps(self.ntpm, self.grid_side)

    @property
    def success_rate(self) -> float:
        correct = sum(b.correct for b in self.webgrid_blocks)
        clicks = correct + sum(b.incorrect for b in self.webgrid_blocks)
        return correct / clicks if clicks else float("nan")

    def to_dict(self) -> dict:
        """A JSON-able summary with ``bps``, ``ntpm``, ``grid_side``, ``decoder``, ``channels``, ``success_rate``."""
        return {
            "bps": self.bps,
            "ntpm": self.ntpm,
            "grid_side": self.grid_side,
            "decoder": self.decoder,
            "channels": self.channels,
            "success_rate": _json_number(self.success_rate),
            "webgrid_seconds": self.webgrid_seconds,
            "refit": self.refit,
            "seed": self.seed,
            "cursor_gain_per_s": self.cursor_gain_per_s,
            "blocks": [b.to_dict() for b in self.blocks],
        }


def run_calibration_session(
    *,
    seed: int = 0,
    n_channels: int = 1024,
    decoder: str = "kalman",
    grid_side: int = 30,
    webgrid_seconds: float = 60.0,
    n_webgrid_blocks: int = 2,
    refit: bool = True,
    open_loop_seconds: float = 120.0,
    closed_loop_seconds: float = 120.0,
    calibration_grid_side: int = 6,
    cursor_gain_per_s: float = DEFAULT_CURSOR_GAIN_PER_S,
    participant: SimulatedParticipant | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    source: Any = None,
    speed_gain_exponent: float = DEFAULT_SPEED_GAIN_EXPONENT,
    click_speed_scale: float | None = DEFAULT_CLICK_SPEED_SCALE,
    recalibration: Any = None,
    webgrid_participant: SimulatedParticipant | None = None,
) -> SessionResult:
    """Run an automated calibration session on a simulated participant and score it on Webgrid.

    Blocks, in order:

    1. ``open-loop``: observation; the computer moves the cursor to targets
       on a ``calibration_grid_side`` grid while the participant attempts the
       movements; the velocity decoder is fitted on the cursor's velocity,
       shifted by the neural lag :func:`estimate_label_lag` finds (the
       participant follows the computer's cursor a reaction time late),
       the click decoder on the participant's attempted clicks.
    2. ``closed-loop``: the first decoder drives the cursor (same grid).
    3. ``refit`` (if ``refit``): ReFIT recalibration on block 2
       (:func:`refit_decoder`), then a closed-loop block with the new decoder.
    4. ``webgrid-1`` .. ``webgrid-n``: timed Webgrid blocks on ``grid_side``.

    Parameters
    ----------
    seed : int
        Seeds the participant, the tasks and all noise; same seed, same result.
    n_channels : int, default 1024
    decoder : {"wiener", "kalman", "refit-kalman", "gru"}
    grid_side : int, default 30
        Webgrid side of the scored blocks.
    webgrid_seconds : float, default 60
        Length of each scored Webgrid block.
    n_webgrid_blocks : int, default 2
    refit : bool, default True
        Run the ReFIT step.
    open_loop_seconds, closed_loop_seconds : float
        Lengths of the calibration blocks.
    calibration_grid_side : int, default 6
        Grid of the calibration blocks (bigger cells, so the first decoder can hit them).
    cursor_gain_per_s : float
        Workspace units per second per unit of decoded velocity.
    participant : SimulatedParticipant, optional
        Default: ``SimulatedParticipant(n_channels=n_channels, seed=seed)``.
    progress : callable ``(block_name, block_index, n_blocks)``, optional
        Called before each block (for a progress bar).
    source : feature source, optional
        Where the features come from (default: the participant's counts,
        :class:`~neurolace.runtime.loop.CountsSource`).
    speed_gain_exponent : float, default 1.0
        Closed-loop speed gain ``cursor_gain_per_s * s ** exponent`` (Willett et al. 2019; 1 = linear).
    click_speed_scale : float or None
        Speed-dependent click threshold (:class:`~neurolace.runtime.loop.LoopSettings`); None: off.
    recalibration : RecalibrationSettings, optional
        Bias correction and continuous recalibration from retrospectively inferred targets
        (Jarosiewicz et al. 2015) during the Webgrid blocks, seeded with the observation block's
        data; the adapted decoders carry from one Webgrid block to the next. None: off.
    webgrid_participant : SimulatedParticipant, optional
        Runs the Webgrid blocks instead of ``participant`` (with its counts), e.g.
        ``participant.drifted(days=7)``: decoders calibrated on one day, used on another.
        Counts path only (refused with ``source``).

    Returns
    -------
    SessionResult
    """
    seed = check_int(seed, "seed", minimum=0)
    n_channels = check_int(n_channels, "n_channels", minimum=1)
    check_in(decoder, "decoder", DECODERS)
    grid_side = check_int(grid_side, "grid_side", minimum=2)
    webgrid_seconds = check_positive(webgrid_seconds, "webgrid_seconds")
    n_webgrid_blocks = check_int(n_webgrid_blocks, "n_webgrid_blocks", minimum=1)
    open_loop_seconds = check_positive(open_loop_seconds, "open_loop_seconds")
    closed_loop_seconds = check_positive(closed_loop_seconds, "closed_loop_seconds")
    calibration_grid_side = check_int(calibration_grid_side, "calibration_grid_side", minimum=2)
    cursor_gain_per_s = check_positive(cursor_gain_per_s, "cursor_gain_per_s")
    if not isinstance(refit, (bool, np.bool_)):
        raise InvalidInputError(f"refit must be True or False, got {refit!r}")
    results = _run_sessions(
        variants=(bool(refit),), seed=seed, n_channels=n_channels, decoder=decoder, grid_side=grid_side,
        webgrid_seconds=webgrid_seconds, n_webgrid_blocks=n_webgrid_blocks, open_loop_seconds=open_loop_seconds,
        closed_loop_seconds=closed_loop_seconds, calibration_grid_side=calibration_grid_side,
        cursor_gain_per_s=cursor_gain_per_s, participant=participant, progress=progress, source=source,
        speed_gain_exponent=speed_gain_exponent, click_speed_scale=click_speed_scale, recalibration=recalibration,
        webgrid_participant=webgrid_participant,
    )
    return results[0]


def ideal_webgrid_bps(
    *,
    seed: int = 0,
    n_channels: int = 1024,
    grid_side: int = 30,
    webgrid_seconds: float = 60.0,
    n_webgrid_blocks: int = 2,
    cursor_gain_per_s: float = DEFAULT_CURSOR_GAIN_PER_S,
    participant: SimulatedParticipant | None = None,
    source: Any = None,
) -> float:
    """Webgrid BPS of the perfect decoder (``observation="intention"``) on a session's scored blocks.

    The same Webgrid target sequences, noise seeds and block lengths as the
    Webgrid blocks of :func:`run_calibration_session` with these arguments,
    but the cursor follows the participant's intention exactly: the ceiling
    the participant model sets for any decoder. Pooled like
    :attr:`SessionResult.bps`.
    """
    checked = _check_session_arguments(seed=seed, n_channels=n_channels, grid_side=grid_side,
                                       webgrid_seconds=webgrid_seconds, n_webgrid_blocks=n_webgrid_blocks,
                                       cursor_gain_per_s=cursor_gain_per_s, participant=participant)
    if participant is None:
        participant = SimulatedParticipant(n_channels=checked["n_channels"], seed=checked["seed"])
    source = CountsSource(participant) if source is None else check_feature_source(source)
    plan = SessionPlan.build(seed=checked["seed"], decoder="kalman", grid_side=checked["grid_side"],
                             webgrid_seconds=checked["webgrid_seconds"],
                             n_webgrid_blocks=checked["n_webgrid_blocks"], open_loop_seconds=1.0,
                             closed_loop_seconds=1.0, calibration_grid_side=2, variants=(False,))
    settings = LoopSettings(loop_s=participant.control.loop_s, cursor_gain_per_s=checked["cursor_gain_per_s"])
    result = SessionResult("ideal", checked["n_channels"], checked["grid_side"], checked["seed"], False,
                           settings.cursor_gain_per_s)
    for index, block_plan in enumerate(plan.blocks):
        if block_plan.kind != "webgrid":
            continue
        loop = ClosedLoop(settings, observation="intention")
        block = BlockRun(WebgridTask(grid_side=block_plan.grid_side, seed=plan.task_seed(index)), loop,
                         duration_s=block_plan.duration_s, n_features=source.n_features, name=block_plan.name,
                         kind="webgrid")
        result.blocks.append(BlockResult.from_record(_drive_block(participant, source, block,
                                                                  plan.noise_seed(index))))
    return result.bps


def run_refit_comparison(**kwargs: Any) -> tuple[SessionResult, SessionResult]:
    """The same session without and with ReFIT, sharing the calibration blocks (a paired comparison).

    Takes the keyword arguments of :func:`run_calibration_session` except
    ``refit``. Both sessions see the same open-loop and closed-loop blocks and
    the same Webgrid target sequences; only the decoder used for Webgrid
    differs. Returns ``(without_refit, with_refit)``.
    """
    if "refit" in kwargs:
        raise InvalidInputError("run_refit_comparison runs both variants; do not pass refit")
    checked = _check_session_arguments(**kwargs)
    without, with_refit = _run_sessions(variants=(False, True), **checked)
    return without, with_refit


def _check_session_arguments(
    *,
    seed: int = 0,
    n_channels: int = 1024,
    decoder: str = "kalman",
    grid_side: int = 30,
    webgrid_seconds: float = 60.0,
    n_webgrid_blocks: int = 2,
    open_loop_seconds: float = 120.0,
    closed_loop_seconds: float = 120.0,
    calibration_grid_side: int = 6,
    cursor_gain_per_s: float = DEFAULT_CURSOR_GAIN_PER_S,
    participant: SimulatedParticipant | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    source: Any = None,
    speed_gain_exponent: float = DEFAULT_SPEED_GAIN_EXPONENT,
    click_speed_scale: float | None = DEFAULT_CLICK_SPEED_SCALE,
    recalibration: Any = None,
    webgrid_participant: SimulatedParticipant | None = None,
) -> dict:
    check_in(decoder, "decoder", DECODERS)
    return {
        "seed": check_int(seed, "seed", minimum=0),
        "n_channels": check_int(n_channels, "n_channels", minimum=1),
        "decoder": decoder,
        "grid_side": check_int(grid_side, "grid_side", minimum=2),
        "webgrid_seconds": check_positive(webgrid_seconds, "webgrid_seconds"),
        "n_webgrid_blocks": check_int(n_webgrid_blocks, "n_webgrid_blocks", minimum=1),
        "open_loop_seconds": check_positive(open_loop_seconds, "open_loop_seconds"),
        "closed_loop_seconds": check_positive(closed_loop_seconds, "closed_loop_seconds"),
        "calibration_grid_side": check_int(calibration_grid_side, "calibration_grid_side", minimum=2),
        "cursor_gain_per_s": check_positive(cursor_gain_per_s, "cursor_gain_per_s"),
        "participant": participant,
        "progress": progress,
        "source": source,
        "speed_gain_exponent": speed_gain_exponent,
        "click_speed_scale": click_speed_scale,
        "recalibration": recalibration,
        "webgrid_participant": webgrid_participant,
    }


@dataclass(frozen=True)
class BlockPlan:
    """One block of a :class:`SessionPlan`.

    Attributes
    ----------
    name, kind : str
        ``kind`` is ``"open-loop"``, ``"closed-loop"``, ``"refit"`` or ``"webgrid"``.
    grid_side : int
    duration_s : float
    task_key, noise_key : tuple
        Keys of the block's task seed and noise seed (:meth:`SessionPlan.task_seed`,
        :meth:`SessionPlan.noise_seed` give fresh SeedSequences from them).
    driver : {"observation", "first", "refit"}
        What moves the cursor: the observation autopilot, the first decoder or the recalibrated one.
    variants : tuple of int
        The session variants (without / with ReFIT) whose results include this block.
    """

    name: str
    kind: str
    grid_side: int
    duration_s: float
    task_key: tuple
    noise_key: tuple
    driver: str
    variants: tuple


def _seed_sequence(key: tuple) -> np.random.SeedSequence:
    """A fresh SeedSequence from ``("spawn", entropy, index)`` or ``("list", a, b, c)``."""
    if key[0] == "spawn":
        return np.random.SeedSequence(key[1], spawn_key=(key[2],))
    return np.random.SeedSequence(list(key[1:]))


def block_payload(index: int, key: tuple) -> np.ndarray:
    """A block's index and noise-seed key as a message payload, shape (5,) (integers, exact in float64)."""
    kind = 0.0 if key[0] == "spawn" else 1.0
    values = [float(v) for v in key[1:]] + [0.0] * (4 - len(key))
    return np.array([float(index), kind, *values])


def block_from_payload(payload: np.ndarray) -> tuple[int, np.random.SeedSequence]:
    """Inverse of :func:`block_payload`: ``(block_index, fresh noise SeedSequence)``."""
    values = [int(round(float(v))) for v in payload[:5]]
    key = ("spawn", values[2], values[3]) if values[1] == 0 else ("list", values[2], values[3], values[4])
    return values[0], _seed_sequence(key)


@dataclass(frozen=True)
class SessionPlan:
    """The schedule of an automated calibration session, written once for every runner.

    Build it with :meth:`build`; each block's task and noise seeds depend only
    on the session seed and the block's place, so a runner in another thread
    (the graph's participant node) derives the same seeds from the block index.
    """

    seed: int
    decoder: str
    grid_side: int
    variants: tuple
    blocks: tuple

    @classmethod
    def build(cls, *, seed: int, decoder: str, grid_side: int, webgrid_seconds: float, n_webgrid_blocks: int,
              open_loop_seconds: float, closed_loop_seconds: float, calibration_grid_side: int,
              variants: tuple = (True,)) -> SessionPlan:
        """The plan of :func:`run_calibration_session` (``variants=(refit,)``) or of the paired comparison."""
        seed = check_int(seed, "seed", minimum=0)
        check_in(decoder, "decoder", DECODERS)
        blocks = [
            BlockPlan("open-loop", "open-loop", calibration_grid_side, open_loop_seconds,
                      ("spawn", seed + 7919, 0), ("spawn", seed + 104729, 0), "observation",
                      tuple(range(len(variants)))),
            BlockPlan("closed-loop", "closed-loop", calibration_grid_side, closed_loop_seconds,
                      ("spawn", seed + 7919, 1), ("spawn", seed + 104729, 1), "first",
                      tuple(range(len(variants)))),
        ]
        for number, refit in enumerate(variants):
            if refit:
                blocks.append(BlockPlan("refit", "refit", calibration_grid_side, closed_loop_seconds,
                                        ("spawn", seed + 7919, 2), ("spawn", seed + 104729, 2), "refit", (number,)))
            for block in range(n_webgrid_blocks):
                blocks.append(BlockPlan(f"webgrid-{block + 1}", "webgrid", grid_side, webgrid_seconds,
                                        ("list", seed, 31337, block), ("list", seed, 4099, block),
                                        "refit" if refit else "first", (number,)))
        return cls(seed, decoder, grid_side, tuple(bool(v) for v in variants), tuple(blocks))

    def noise_seed(self, index: int) -> np.random.SeedSequence:
        """A fresh copy of block ``index``'s noise seed."""
        return _seed_sequence(self.blocks[index].noise_key)

    def task_seed(self, index: int) -> np.random.SeedSequence:
        return _seed_sequence(self.blocks[index].task_key)


class SessionRunner:
    """A :class:`SessionPlan` one control step at a time: blocks, fits, ReFIT, results.

    Drive it as::

        while runner.begin_block() is not None:     # a new block: reseed the participant
            while not runner.block.finished:
                intention = participant.step(runner.block.cursor_xy, runner.block.target)
                runner.block.step(source.emit(intention), intention)
            runner.end_block()                       # fits the decoders the next block needs

    Parameters
    ----------
    plan : SessionPlan
    settings : LoopSettings
    autopilot_control : ControlParameters
        The participant's, for the observation autopilot.
    n_features : int or None
        Width of a feature bin (None: the first bin's).
    n_channels : int
        Reported in the results.
    recalibration : RecalibrationSettings, optional
        Continuous recalibration (:class:`~neurolace.decode.adapt.ContinuousRecalibration`) during the
        Webgrid blocks, one adapter per decoder, kept from one Webgrid block to the next.
    """

    def __init__(self, plan: SessionPlan, settings: LoopSettings, *, autopilot_control: Any,
                 n_features: int | None, n_channels: int, recalibration: Any = None) -> None:
        self.plan, self.settings = plan, settings
        self.autopilot_control = autopilot_control
        self.n_features = None if n_features is None else check_int(n_features, "n_features", minimum=1)
        self.results = [SessionResult(plan.decoder, n_channels, plan.grid_side, plan.seed, refit,
                                      settings.cursor_gain_per_s) for refit in plan.variants]
        self.index = -1
        self.block: BlockRun | None = None
        self.decoders: dict[str, Any] = {}
        self.click_decoder: Any = None
        self.closed_record: BlockRecord | None = None
        if recalibration is not None:
            from neurolace.decode.adapt import RecalibrationSettings

            if not isinstance(recalibration, RecalibrationSettings):
                raise InvalidInputError(
                    f"recalibration must be a RecalibrationSettings or None, got {type(recalibration).__name__}")
        self.recalibration = recalibration
        self.adapters: dict[str, Any] = {}
        self._calibration_data: tuple | None = None

    @property
    def block_plan(self) -> BlockPlan:
        return self.plan.blocks[self.index]

    @property
    def done(self) -> bool:
        return self.index >= len(self.plan.blocks)

    def begin_block(self) -> BlockPlan | None:
        """Start the next block (None when the session is over)."""
        self.index += 1
        if self.done:
            self.block = None
            return None
        plan = self.block_plan
        if plan.driver == "refit" and "refit" not in self.decoders:
            self.decoders["refit"] = refit_decoder(self.plan.decoder, copy.deepcopy(self.decoders["first"]),
                                                   self.closed_record)
        if plan.driver == "observation":
            loop = ClosedLoop(self.settings, observation="autopilot", autopilot_control=self.autopilot_control)
        elif plan.kind == "webgrid" and self.recalibration is not None:
            adapter = self._adapter(plan)
            loop = ClosedLoop(self.settings, decoder=adapter.decoder, click_decoder=adapter.click_decoder,
                              adapter=adapter)
        else:
            loop = ClosedLoop(self.settings, decoder=self.decoders[plan.driver], click_decoder=self.click_decoder)
        task = WebgridTask(grid_side=plan.grid_side, seed=self.plan.task_seed(self.index))
        self.block = BlockRun(task, loop, duration_s=plan.duration_s, n_features=self.n_features,
                              name=plan.name, kind=plan.kind)
        return plan

    def _adapter(self, plan: BlockPlan) -> Any:
        """The driver's continuous-recalibration adapter, built at its first Webgrid block."""
        if plan.driver not in self.adapters:
            from neurolace.decode.adapt import ContinuousRecalibration

            features, velocity, click = self._calibration_data
            self.adapters[plan.driver] = ContinuousRecalibration(
                copy.deepcopy(self.decoders[plan.driver]), copy.deepcopy(self.click_decoder),
                settings=self.recalibration, calibration_features=features, calibration_velocity=velocity,
                calibration_click=click, target_radius=0.5 / plan.grid_side, loop_s=self.settings.loop_s)
        return self.adapters[plan.driver]

    def end_block(self) -> BlockRecord:
        """Score the finished block and fit what the next blocks need."""
        record = self.block.record()
        plan = self.block_plan
        if plan.kind == "open-loop":
            loop_s = self.settings.loop_s
            counts, present = record.counts, ~record.missing
            filled = counts if present.all() else np.where(present[:, np.newaxis], counts,
                                                          np.nanmean(counts[present], axis=0))
            lag = estimate_label_lag(filled, record.decoded_velocity, loop_s=loop_s)
            n_observed = counts.shape[0]
            keep, segment_starts = _present_runs(present[lag:])
            features, velocity = counts[lag:][keep], record.decoded_velocity[: n_observed - lag][keep]
            self.decoders["first"] = _fit_named(self.plan.decoder, features, velocity, segment_starts)
            self.click_decoder = fit_click_decoder(counts[present], record.intended_click[present], loop_s=loop_s)
            self._calibration_data = (features, velocity, record.intended_click[lag:][keep])
        elif plan.kind == "closed-loop":
            self.closed_record = record
        result = BlockResult.from_record(record)
        for variant in plan.variants:
            self.results[variant].blocks.append(result)
        return record


def _present_runs(present: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Indices of the bins that arrived, and where a run of them starts after a gap (in the kept bins; None: no gap)."""
    index = np.flatnonzero(present)
    starts = np.flatnonzero(np.diff(index) > 1) + 1
    return index, (starts if starts.size else None)


def _fit_named(name: str, X: np.ndarray, y: np.ndarray, segment_starts: Any = None) -> Any:
    """``make_decoder(name).fit(X, y)``; a failing fit is a :class:`DecoderError` naming the decoder."""
    decoder = make_decoder(name)
    try:
        return decoder.fit(X, y) if segment_starts is None else decoder.fit(X, y, segment_starts=segment_starts)
    except Exception as exc:
        raise DecoderError(f"fitting decoder {name!r} ({type(decoder).__name__}) failed: "
                           f"{type(exc).__name__}: {exc}") from exc


def _run_sessions(
    *,
    variants: tuple[bool, ...],
    seed: int,
    n_channels: int,
    decoder: str,
    grid_side: int,
    webgrid_seconds: float,
    n_webgrid_blocks: int,
    open_loop_seconds: float,
    closed_loop_seconds: float,
    calibration_grid_side: int,
    cursor_gain_per_s: float,
    participant: SimulatedParticipant | None,
    progress: Callable[[str, int, int], None] | None,
    source: Any = None,
    speed_gain_exponent: float = DEFAULT_SPEED_GAIN_EXPONENT,
    click_speed_scale: float | None = DEFAULT_CLICK_SPEED_SCALE,
    recalibration: Any = None,
    webgrid_participant: SimulatedParticipant | None = None,
) -> list[SessionResult]:
    if participant is None:
        participant = SimulatedParticipant(n_channels=n_channels, seed=seed)
    elif participant.n_channels != n_channels:
        raise InvalidInputError(
            f"participant has {participant.n_channels} channels but n_channels={n_channels}"
        )
    source = CountsSource(participant) if source is None else check_feature_source(source)
    plan = SessionPlan.build(
        seed=seed, decoder=decoder, grid_side=grid_side, webgrid_seconds=webgrid_seconds,
        n_webgrid_blocks=n_webgrid_blocks, open_loop_seconds=open_loop_seconds,
        closed_loop_seconds=closed_loop_seconds, calibration_grid_side=calibration_grid_side, variants=variants,
    )
    settings = LoopSettings(loop_s=participant.control.loop_s, cursor_gain_per_s=cursor_gain_per_s,
                            speed_gain_exponent=speed_gain_exponent, click_speed_scale=click_speed_scale)
    webgrid_source = source
    if webgrid_participant is not None:
        if not isinstance(source, CountsSource):
            raise InvalidInputError("webgrid_participant runs on the counts path; do not pass a source with it")
        if webgrid_participant.n_channels != participant.n_channels:
            raise InvalidInputError(f"webgrid_participant has {webgrid_participant.n_channels} channels, the "
                                    f"calibrated participant {participant.n_channels}; they must match")
        webgrid_source = CountsSource(webgrid_participant)
    runner = SessionRunner(plan, settings, autopilot_control=participant.control, n_features=source.n_features,
                           n_channels=n_channels, recalibration=recalibration)
    while (block_plan := runner.begin_block()) is not None:
        if progress is not None:
            progress(block_plan.name, runner.index, len(plan.blocks))
        if block_plan.kind == "webgrid" and webgrid_participant is not None:
            _drive_block(webgrid_participant, webgrid_source, runner.block, plan.noise_seed(runner.index))
        else:
            _drive_block(participant, source, runner.block, plan.noise_seed(runner.index))
        runner.end_block()
    return runner.results


@dataclass
class Calibration:
    """The decoders a session's calibration blocks fitted, ready for its Webgrid blocks.

    Made by :func:`calibrate_session`; :func:`run_webgrid` runs the session's
    Webgrid blocks with them (same task and noise seeds as
    :func:`run_calibration_session`), so many loop settings, adapters or a
    drifted participant can be compared on one calibration.

    Attributes
    ----------
    plan : SessionPlan
    settings : LoopSettings
        The loop settings of the calibration blocks.
    decoders : dict
        ``"first"`` (fitted on the observation block) and, with ReFIT, ``"refit"``.
    click_decoder : SmoothedClickDecoder
    calibration_data : tuple
        ``(features, velocity labels, click labels)`` of the observation block, lag-aligned.
    blocks : list of BlockResult
        Scores of the calibration blocks.
    n_channels : int
    participant, source : SimulatedParticipant, feature source
        Copies of the participant and the source as the calibration left them (the slow
        nuisance state carries from block to block); :func:`run_webgrid` starts from copies of them.
    """

    plan: SessionPlan
    settings: LoopSettings
    decoders: dict
    click_decoder: Any
    calibration_data: tuple
    blocks: list
    n_channels: int
    participant: Any = None
    source: Any = None

    @property
    def driver(self) -> str:
        """The decoder the session's Webgrid blocks use (``"refit"`` after ReFIT, else ``"first"``)."""
        return "refit" if self.plan.variants[0] else "first"


def calibrate_session(*, participant: SimulatedParticipant | None = None, source: Any = None,
                      refit: bool = True, speed_gain_exponent: float = DEFAULT_SPEED_GAIN_EXPONENT,
                      click_speed_scale: float | None = DEFAULT_CLICK_SPEED_SCALE, **kwargs: Any) -> Calibration:
    """Run the calibration blocks of :func:`run_calibration_session` (observation, closed loop, ReFIT) only.

    Takes the keyword arguments of :func:`run_calibration_session` (``seed``,
    ``decoder``, ``grid_side``, block lengths, ``cursor_gain_per_s``, ...)
    except ``progress``, ``recalibration`` and ``webgrid_participant``.

    Returns
    -------
    Calibration
    """
    if not isinstance(refit, (bool, np.bool_)):
        raise InvalidInputError(f"refit must be True or False, got {refit!r}")
    checked = _check_session_arguments(participant=participant, source=source, **kwargs)
    if participant is None:
        participant = SimulatedParticipant(n_channels=checked["n_channels"], seed=checked["seed"])
    source = CountsSource(participant) if source is None else check_feature_source(source)
    plan = SessionPlan.build(
        seed=checked["seed"], decoder=checked["decoder"], grid_side=checked["grid_side"],
        webgrid_seconds=checked["webgrid_seconds"], n_webgrid_blocks=checked["n_webgrid_blocks"],
        open_loop_seconds=checked["open_loop_seconds"], closed_loop_seconds=checked["closed_loop_seconds"],
        calibration_grid_side=checked["calibration_grid_side"], variants=(bool(refit),))
    settings = LoopSettings(loop_s=participant.control.loop_s, cursor_gain_per_s=checked["cursor_gain_per_s"],
                            speed_gain_exponent=speed_gain_exponent, click_speed_scale=click_speed_scale)
    runner = SessionRunner(plan, settings, autopilot_control=participant.control, n_features=source.n_features,
                           n_channels=participant.n_channels)
    while (block_plan := runner.begin_block()) is not None and block_plan.kind != "webgrid":
        _drive_block(participant, source, runner.block, plan.noise_seed(runner.index))
        runner.end_block()
    snapshot = copy.deepcopy((participant, source))
    return Calibration(plan, settings, runner.decoders, runner.click_decoder, runner._calibration_data,
                       list(runner.results[0].blocks), participant.n_channels, *snapshot)


def run_webgrid(calibration: Calibration, participant: SimulatedParticipant | None = None, *, source: Any = None,
                settings: LoopSettings | None = None, recalibration: Any = None,
                driver: str | None = None, feedback: Any = None) -> SessionResult:
    """The session's Webgrid blocks with a :class:`Calibration`'s decoders (copies; the calibration is kept).

    By default (the calibration's participant and source, its settings, no
    recalibration) this gives the Webgrid blocks of
    :func:`run_calibration_session` with the same arguments, every time: the
    participant and source are copied, never advanced.

    Parameters
    ----------
    calibration : Calibration
    participant : SimulatedParticipant, optional
        Who uses the decoders: default the calibrated participant as the calibration left it;
        or another, e.g. its ``drifted(days=...)`` (copied, so repeated runs are the same).
    source : feature source, optional
        Default: the calibration's source with its participant, else ``participant``'s counts
        (copied too).
    settings : LoopSettings, optional
        Loop settings of the Webgrid blocks (default: the calibration's). ``loop_s`` must match.
    recalibration : RecalibrationSettings, optional
        Bias correction and continuous recalibration (:mod:`neurolace.decode.adapt`), carried across blocks.
    driver : {"first", "refit"}, optional
        Which decoder (default :attr:`Calibration.driver`).
    feedback : SensoryFeedback, optional
        Closed-loop sensory feedback in every Webgrid block (:mod:`neurolace.runtime.feedback`),
        one path across the blocks (its clock and the envelope's state carry over).

    Returns
    -------
    SessionResult
        Webgrid blocks only.
    """
    if not isinstance(calibration, Calibration):
        raise InvalidInputError(f"calibration must be a Calibration, got {type(calibration).__name__}")
    settings = calibration.settings if settings is None else settings
    if not isinstance(settings, LoopSettings) or abs(settings.loop_s - calibration.settings.loop_s) > 1e-12:
        raise InvalidInputError("settings must be a LoopSettings with the calibration's loop_s "
                                f"({calibration.settings.loop_s} s)")
    driver = calibration.driver if driver is None else check_in(driver, "driver", tuple(calibration.decoders))
    if participant is None:
        if calibration.participant is None:
            raise InvalidInputError("this Calibration holds no participant; pass participant=")
        participant, default_source = copy.deepcopy((calibration.participant, calibration.source))
        if source is None:
            source = default_source
    else:
        participant = copy.deepcopy(participant)
    if participant.n_channels != calibration.n_channels:
        raise InvalidInputError(f"participant has {participant.n_channels} channels, the calibration "
                                f"{calibration.n_channels}")
    if source is None:
        source = CountsSource(participant)
    else:
        source = copy.deepcopy(check_feature_source(source))
        counts = source.source if isinstance(source, LossySource) else source
        if isinstance(counts, CountsSource):
            counts.participant = participant
    plan = calibration.plan
    result = SessionResult(plan.decoder, calibration.n_channels, plan.grid_side, plan.seed, driver == "refit",
                           settings.cursor_gain_per_s)
    decoder = copy.deepcopy(calibration.decoders[driver])
    click_decoder = copy.deepcopy(calibration.click_decoder)
    adapter = None
    for index, block_plan in enumerate(plan.blocks):
        if block_plan.kind != "webgrid":
            continue
        if recalibration is not None and adapter is None:
            from neurolace.decode.adapt import ContinuousRecalibration

            features, velocity, click = calibration.calibration_data
            adapter = ContinuousRecalibration(decoder, click_decoder, settings=recalibration,
                                              calibration_features=features, calibration_velocity=velocity,
                                              calibration_click=click, target_radius=0.5 / block_plan.grid_side,
                                              loop_s=settings.loop_s)
        if adapter is not None:
            loop = ClosedLoop(settings, decoder=adapter.decoder, click_decoder=adapter.click_decoder, adapter=adapter,
                              feedback=feedback)
        else:
            loop = ClosedLoop(settings, decoder=decoder, click_decoder=click_decoder, feedback=feedback)
        task = WebgridTask(grid_side=block_plan.grid_side, seed=plan.task_seed(index))
        block = BlockRun(task, loop, duration_s=block_plan.duration_s, n_features=source.n_features,
                         name=block_plan.name, kind="webgrid")
        result.blocks.append(BlockResult.from_record(_drive_block(participant, source, block,
                                                                  plan.noise_seed(index))))
    return result
