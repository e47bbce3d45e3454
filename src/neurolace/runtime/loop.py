"""One control step of the closed loop, written once: decoder outputs -> click policy -> cursor -> task.

:class:`ClosedLoop` owns everything between a feature bin and the task:

1. the velocity decoder and the click decoder step on the bin (a decoder that
   raises, or returns a non-finite velocity, stops the loop with a
   :class:`DecoderError` naming it: never a silently different loop);
2. the click policy: a click is refused while the velocity decoder's signal
   guard holds the bin, while the click is disarmed (for ``click_lockout_s``
   after a selection and until the click output has gone low, so a flickering
   attempted click selects once) and while the decoded speed exceeds
   ``click_speed_limit``; the click brake scales the velocity by
   ``1 - P(click)``, the click decoder's current evidence of an attempted click;
3. a one-pole low-pass of the velocity (``velocity_smoothing_s``);
4. a held bin (zero bin, baseline jump, dead channels) zeroes the velocity, so
   the cursor stays put;
5. the cursor moves by ``cursor_gain_per_s * loop_s * velocity`` in the unit
   square and the task registers a selection on a click's rising edge.

A *missing bin* (``features`` None or all NaN,
:func:`neurolace.core.features.is_missing_bin`: a frame the link lost) never
reaches a decoder as data: the velocity decoder's ``step_missing()`` predicts
through it (the Kalman filters' prediction step; others hold a decaying last
output), the click decoder's ``step_missing()`` adds no click evidence, no
click is sent and the click's re-arming waits for a real bin, the adapter
neither learns from it (its bias is subtracted, not updated; the recalibration
records it as unusable) nor sees its features, and the cursor moves by the
prediction. :attr:`ClosedLoop.missing_bins` counts them per block.

Sensory feedback (optional, ``feedback=``
:class:`~neurolace.runtime.feedback.SensoryFeedback`): after each task update
the step's events (cursor on the lit target, a selection) go through the
feedback encoder to the stimulator; :attr:`ClosedLoop.touch` says whether a
delivered train told the participant "on the target", for the participant's
next step. Without it the loop is exactly the vision-only one.

Without a decoder it is the open-loop driver of an observation block
(``observation="autopilot"``: the computer moves the cursor; ``"intention"``:
the cursor follows the participant's intention exactly, a perfect decoder).

:func:`~neurolace.runtime.closed_loop.run_block` runs it block by block; the
node graph's ``closed_loop`` node and the ``decoder``/``cursor`` nodes are thin
wrappers over the same class and :class:`LoopSettings`.

Feature sources (:class:`CountsSource`) give the loop one bin per step for a
participant's :class:`~neurolace.sim.participant.Intention`; the implant path
plugs in another source with the same three members.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from neurolace.core.checks import check_in, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.core.features import is_missing_bin

__all__ = [
    "AUTOPILOT_SETTLE_S",
    "DEFAULT_CLICK_BRAKE",
    "DEFAULT_CLICK_LOCKOUT_S",
    "DEFAULT_CLICK_SPEED_LIMIT",
    "DEFAULT_CLICK_SPEED_SCALE",
    "DEFAULT_CURSOR_GAIN_PER_S",
    "DEFAULT_SPEED_GAIN_EXPONENT",
    "OBSERVATIONS",
    "ClosedLoop",
    "CountsSource",
    "DecoderError",
    "LoopSettings",
    "LoopStep",
    "check_feature_source",
]

#: Workspace widths per second per unit of decoded velocity (the participant's peak intended speed is ~1).
#: Chosen on seeds 10 and 11 (not the benchmark's) with the HMM click decoder, the click brake and the
#: lag-aligned observation labels: mean 30 x 30 BPS of the ReFIT-KF 4.34 at 0.5, 4.01 at 0.6, 3.27 at 0.7
#: (Kalman filter 3.43, 3.19, 2.13); extra velocity smoothing (0.1-0.2 s, tried with a 0.9 click threshold)
#: only lowered it.
DEFAULT_CURSOR_GAIN_PER_S = 0.5

#: Clicks are ignored this long after a selection (one attempted click selects once).
DEFAULT_CLICK_LOCKOUT_S = 0.3

#: Clicks are refused while the decoded speed exceeds this (normalised units; peak intended speed is 1).
#: The participant clicks while nearly still (intended speed at attempted-click onsets: median 0.07),
#: and false clicks came mid-movement (decoded speed median 0.31). 0.2 beat 0.3 and no limit on
#: seeds 10 and 11 (not the benchmark's seeds) with the Kalman filter and the ReFIT-KF, and again
#: (against 0.12 and 0.3) after the HMM click decoder came in.
DEFAULT_CLICK_SPEED_LIMIT: float | None = 0.2

#: Exponent of the closed-loop speed gain (``cursor_gain_per_s * speed ** exponent``; 1 = linear).
DEFAULT_SPEED_GAIN_EXPONENT = 1.0

#: Speed scale of the speed-dependent click threshold (None: off).
DEFAULT_CLICK_SPEED_SCALE: float | None = None

#: Slow the cursor by the click decoder's probability of an attempted click.
DEFAULT_CLICK_BRAKE = True

#: The observation autopilot selects a target after the cursor has sat on its central half this long.
AUTOPILOT_SETTLE_S = 0.3

#: Open-loop drivers: the computer's cursor (an observation block) or the intention itself (perfect decoder).
OBSERVATIONS = ("autopilot", "intention")


class DecoderError(NeurolaceError, RuntimeError):
    """A decoder failed inside the loop (its ``fit`` or ``step`` raised, or it returned NaN/inf)."""


@dataclass(frozen=True)
class LoopSettings:
    """Settings of the control step (validated on construction).

    Parameters
    ----------
    loop_s : float
        Control period and feature bin width, seconds.
    cursor_gain_per_s : float
        Workspace units per second per unit of decoded velocity.
    click_lockout_s : float
        After a selection the click stays disarmed this long and until the
        click decoder's output has gone low.
    click_speed_limit : float or None
        No click while the decoded speed (normalised units) is above this;
        ``None`` disables the rule.
    click_brake : bool
        Scale the decoded velocity by ``1 - P(click)``.
    velocity_smoothing_s : float
        Time constant of a one-pole low-pass between decoder and cursor (the
        smoothing of Willett et al. 2019, to be chosen with the gain); 0 passes
        the decoded velocity through.
    speed_gain_exponent : float
        Closed loop only: the cursor speed is ``cursor_gain_per_s * s ** exponent`` for a decoded
        speed ``s`` (normalised units, direction kept), the nonlinear speed scaling of Willett et
        al. 2019 (:class:`~neurolace.decode.speed_gain.SpeedGain`); 1 is the linear gain.
    click_speed_scale : float or None
        Closed loop only: a speed-dependent click threshold. A click also needs the click
        decoder's probability to reach ``1 - (1 - click_base_probability) * exp(-s / click_speed_scale)``
        at decoded speed ``s`` (:func:`~neurolace.decode.click.speed_click_threshold`); None: no such rule.
    click_base_probability : float
        The speed-dependent threshold at rest, in [0, 1).
    click_brake_power : float
        The click brake scales the velocity by ``(1 - P(click)) ** click_brake_power`` (1: the
        plain brake; larger values stop the cursor earlier while click evidence builds up).
    """

    loop_s: float = 0.02
    cursor_gain_per_s: float = DEFAULT_CURSOR_GAIN_PER_S
    click_lockout_s: float = DEFAULT_CLICK_LOCKOUT_S
    click_speed_limit: float | None = DEFAULT_CLICK_SPEED_LIMIT
    click_brake: bool = DEFAULT_CLICK_BRAKE
    velocity_smoothing_s: float = 0.0
    speed_gain_exponent: float = DEFAULT_SPEED_GAIN_EXPONENT
    click_speed_scale: float | None = DEFAULT_CLICK_SPEED_SCALE
    click_base_probability: float = 0.97
    click_brake_power: float = 1.0

    def __post_init__(self) -> None:
        set_value = object.__setattr__
        set_value(self, "loop_s", check_positive(self.loop_s, "loop_s"))
        set_value(self, "cursor_gain_per_s", check_positive(self.cursor_gain_per_s, "cursor_gain_per_s"))
        set_value(self, "click_lockout_s", check_nonnegative(self.click_lockout_s, "click_lockout_s"))
        if self.click_speed_limit is not None:
            set_value(self, "click_speed_limit", check_nonnegative(self.click_speed_limit, "click_speed_limit"))
        if not isinstance(self.click_brake, (bool, np.bool_)):
            raise InvalidInputError(f"click_brake must be True or False, got {self.click_brake!r}")
        set_value(self, "velocity_smoothing_s",
                  check_nonnegative(self.velocity_smoothing_s, "velocity_smoothing_s"))
        set_value(self, "speed_gain_exponent", check_positive(self.speed_gain_exponent, "speed_gain_exponent"))
        if self.click_speed_scale is not None:
            set_value(self, "click_speed_scale", check_positive(self.click_speed_scale, "click_speed_scale"))
        base = check_nonnegative(self.click_base_probability, "click_base_probability")
        if base >= 1.0:
            raise InvalidInputError(f"click_base_probability must lie in [0, 1), got {base}")
        set_value(self, "click_base_probability", base)
        set_value(self, "click_brake_power", check_positive(self.click_brake_power, "click_brake_power"))

    def speed_gain(self) -> Any:
        """The :class:`~neurolace.decode.speed_gain.SpeedGain` of these settings (gain and exponent)."""
        from neurolace.decode.speed_gain import SpeedGain

        return SpeedGain(gain_per_s=self.cursor_gain_per_s, exponent=self.speed_gain_exponent)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


class LoopStep(NamedTuple):
    """What one control step did: the velocity that moved the cursor, the click sent, the guard's hold.

    ``missing`` is True for a missing bin (decoded by the decoders' ``step_missing``).
    """

    velocity: np.ndarray
    click: bool
    held: bool
    selection: Any
    missing: bool = False


def _decoder_name(decoder: Any) -> str:
    return type(decoder).__name__


class ClosedLoop:
    """The control step of the closed loop (see the module docstring).

    Parameters
    ----------
    settings : LoopSettings
    decoder : fitted velocity decoder (``step``, ``reset``, ``last_status``), optional
        ``None``: open loop, driven as ``observation`` says.
    click_decoder : fitted click decoder (``step``, ``reset``, optional ``click_probability``), optional
        Required with a velocity decoder unless ``allow_no_click`` (then no click is ever sent).
    observation : {"autopilot", "intention"}
        Open loop only.
    autopilot_control : ControlParameters, optional
        The participant's control parameters (``max_speed``, ``slowdown_distance``) the autopilot imitates.
    allow_no_click : bool
        Let a velocity decoder run without a click decoder (a session whose labels had no clicks).
    adapter : ContinuousRecalibration, optional
        Closed loop only: bias correction and continuous recalibration from retrospectively
        inferred targets (:class:`~neurolace.decode.adapt.ContinuousRecalibration`). It corrects
        each decoded velocity, sees every step and selection, and may swap in recalibrated
        velocity and click decoders between steps.
    feedback : SensoryFeedback, optional
        Task events -> feedback encoder -> stimulator each step (:mod:`neurolace.runtime.feedback`);
        :attr:`touch` is the step's delivered touch. None: vision only.
    """

    def __init__(self, settings: LoopSettings, *, decoder: Any = None, click_decoder: Any = None,
                 observation: str = "autopilot", autopilot_control: Any = None,
                 allow_no_click: bool = False, adapter: Any = None, feedback: Any = None) -> None:
        if not isinstance(settings, LoopSettings):
            raise InvalidInputError(f"settings must be a LoopSettings, got {type(settings).__name__}")
        self.settings = settings
        self.decoder = decoder
        self.click_decoder = click_decoder
        self.observation = check_in(observation, "observation", OBSERVATIONS)
        if decoder is not None and click_decoder is None and not allow_no_click:
            raise InvalidInputError("click_decoder is required when a velocity decoder drives the cursor")
        if decoder is None and self.observation == "autopilot" and autopilot_control is None:
            raise InvalidInputError("an autopilot observation block needs autopilot_control (the participant's)")
        self.autopilot_control = autopilot_control
        if adapter is not None and decoder is None:
            raise InvalidInputError("an adapter (continuous recalibration) needs a velocity decoder to adapt")
        self.adapter = adapter
        if feedback is not None and not callable(getattr(feedback, "step", None)):
            raise InvalidInputError(f"feedback must be a SensoryFeedback, got {type(feedback).__name__}")
        self.feedback = feedback
        self._speed_gain = None if settings.speed_gain_exponent == 1.0 else settings.speed_gain()
        self._lockout_steps = round(settings.click_lockout_s / settings.loop_s)
        smoothing_s = settings.velocity_smoothing_s
        self._smoothing = 0.0 if smoothing_s == 0 else float(np.exp(-settings.loop_s / smoothing_s))
        self.reset()

    @property
    def open_loop(self) -> bool:
        return self.decoder is None

    def reset(self, cursor_xy: Any = (0.5, 0.5)) -> ClosedLoop:
        """Start of a block: clear the decoders' state, re-arm the click, put the cursor at ``cursor_xy``."""
        self.cursor_xy = np.array(cursor_xy, dtype=np.float64)
        if self.cursor_xy.shape != (2,):
            raise InvalidInputError(f"cursor_xy must be two numbers, got {cursor_xy!r}")
        self.index = 0
        self._armed = True
        self._locked_until = -1
        self._cursor_velocity = np.zeros(2)
        self._settle_steps = 0
        self.missing_bins = 0
        for role, decoder in (("velocity", self.decoder), ("click", self.click_decoder)):
            if decoder is not None:
                self._call(role, decoder, decoder.reset)
        if self.adapter is not None:
            self.adapter.start_block(self.settings.loop_s)
        self._last_features: np.ndarray | None = None
        self._last_raw_velocity = np.zeros(2)
        self.touch = False
        if self.feedback is not None:
            self.feedback.start_block()
        return self

    def _call(self, role: str, decoder: Any, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except NeurolaceError:
            raise
        except Exception as exc:
            raise DecoderError(
                f"{role} decoder {_decoder_name(decoder)} failed at step {self.index} of the block: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    # -- the control step, in pieces the graph's nodes reuse -----------------------------------
    def decode(self, features: np.ndarray, *, intention: Any = None, target: Any = None) -> LoopStep:
        """Decoder outputs -> click policy -> smoothing -> hold: the velocity and click of one bin.

        Parameters
        ----------
        features : ndarray, shape (n_features,), or None
            One bin; None or all NaN is a missing bin (module docstring).
        intention : Intention, optional
            Open loop with ``observation="intention"``: the participant's intention.
        target : Target, optional
            Open loop with the autopilot: the lit target (``center_xy``, ``width``).

        Returns
        -------
        LoopStep
            ``selection`` is None (the task has not been updated).
        """
        held = False
        missing = is_missing_bin(features)
        if missing:
            self.missing_bins += 1
        if self.decoder is None:
            if self.observation == "intention":
                if intention is None:
                    raise InvalidInputError("an open-loop 'intention' block needs the participant's intention")
                velocity = np.asarray(intention.velocity, dtype=np.float64)
                click = bool(intention.click > 0.5)
            else:
                if target is None:
                    raise InvalidInputError("the observation autopilot needs the lit target")
                velocity, click = self._autopilot(target)
        else:
            velocity = np.asarray(self._step_decoder("velocity", self.decoder, features, missing),
                                  dtype=np.float64)[:2]
            if not np.all(np.isfinite(velocity)):
                raise DecoderError(
                    f"velocity decoder {_decoder_name(self.decoder)} returned {velocity} at step {self.index} "
                    "of the block; expected finite numbers (the signal guard holds bad bins at zero)"
                )
            status = self.decoder.last_status
            held = bool(status is not None and status.held) and not missing
            self._last_features = None if missing else features
            self._last_raw_velocity = velocity
            if self.adapter is not None and missing:
                velocity = self._unbias(velocity)
            elif self.adapter is not None and not held:
                velocity = self.adapter.correct(velocity)
            click = False
            if self.click_decoder is not None:
                output = self._step_decoder("click", self.click_decoder, features, missing)
                click = bool(np.asarray(output, dtype=np.float64).ravel()[0] > 0.5) and not held
            if missing:
                click = False  # no click from a bin that never arrived; re-arming waits for a real bin
            elif not self._armed and not click and self.index >= self._locked_until:
                self._armed = True
            click = click and self._armed
            settings = self.settings
            speed = float(np.hypot(*velocity))
            if settings.click_speed_limit is not None and speed > settings.click_speed_limit:
                click = False  # a click while the decoded cursor moves fast is not a click
            if click and settings.click_speed_scale is not None and self.click_decoder is not None:
                from neurolace.decode.click import speed_click_threshold

                threshold = float(speed_click_threshold(speed, base_probability=settings.click_base_probability,
                                                        speed_scale=settings.click_speed_scale))
                click = getattr(self.click_decoder, "click_probability", 1.0) >= threshold
            if settings.click_brake and self.click_decoder is not None:
                release = 1.0 - getattr(self.click_decoder, "click_probability", 0.0)
                velocity = velocity * (release if settings.click_brake_power == 1.0
                                       else max(release, 0.0) ** settings.click_brake_power)
            self._cursor_velocity = self._smoothing * self._cursor_velocity + (1.0 - self._smoothing) * velocity
            if held:  # bad signal: the cursor stays put
                self._cursor_velocity = np.zeros(2)
            velocity = self._cursor_velocity
        self.index += 1
        return LoopStep(velocity, click, held, None, missing)

    def _step_decoder(self, role: str, decoder: Any, features: Any, missing: bool) -> Any:
        """``decoder.step(features)``, or ``decoder.step_missing()`` on a missing bin (never the NaN row)."""
        if not missing:
            return self._call(role, decoder, decoder.step, features)
        step_missing = getattr(decoder, "step_missing", None)
        if step_missing is None:
            raise DecoderError(
                f"{role} decoder {_decoder_name(decoder)} has no step_missing(), so it cannot decode the missing "
                f"bin at step {self.index} of the block (a lost frame); give it one (neurolace.decode.BaseDecoder "
                "has a default)"
            )
        return self._call(role, decoder, step_missing)

    def _unbias(self, velocity: np.ndarray) -> np.ndarray:
        """The adapter's current bias subtracted from a missing bin's prediction, without updating it."""
        if not self.adapter.settings.bias_correction:
            return velocity
        return velocity - self.adapter.bias_

    def move(self, velocity: np.ndarray) -> np.ndarray:
        """Cursor integration: ``cursor += cursor_gain_per_s * loop_s * velocity``, kept in the unit square.

        In closed loop with ``speed_gain_exponent != 1`` the speed is reshaped by the
        :class:`~neurolace.decode.speed_gain.SpeedGain` instead (direction kept).
        """
        velocity = np.asarray(velocity, dtype=np.float64)[:2]
        if self._speed_gain is not None and not self.open_loop:
            displacement = self.settings.loop_s * self._speed_gain.velocity_per_s(velocity)
        else:
            displacement = self.settings.cursor_gain_per_s * self.settings.loop_s * velocity
        self.cursor_xy = np.clip(self.cursor_xy + displacement, 0.0, 1.0)
        return self.cursor_xy

    def selected(self) -> None:
        """The task registered a selection at the last step: disarm the click for the lockout."""
        if not self.open_loop:
            self._armed = False
            self._locked_until = self.index - 1 + self._lockout_steps

    def step(self, features: np.ndarray, task: Any, time_s: float, *, intention: Any = None) -> LoopStep:
        """One whole control step on ``task`` (a started :class:`~neurolace.tasks.PointAndClickTask`).

        ``time_s`` is the task time at the end of the step.
        """
        target = task.target
        decoded = self.decode(features, intention=intention, target=target)
        cursor_before = self.cursor_xy.copy()
        self.move(decoded.velocity)
        selection = task.update(time_s, self.cursor_xy, decoded.click)
        if selection is not None:
            self.selected()
        if self.feedback is not None:
            self.touch = self.feedback.step(over_target=target is not None and target.contains(self.cursor_xy),
                                            selected=selection is not None)
        if self.adapter is not None:
            self._adapt(cursor_before, decoded, selection is not None)
        return decoded._replace(selection=selection)

    def _adapt(self, cursor_before: np.ndarray, decoded: LoopStep, selected: bool) -> None:
        """Show the adapter this step; swap in the decoders it recalibrated, if any."""
        click_probability = float(getattr(self.click_decoder, "click_probability", 0.0))
        self.adapter.record(self._last_features, cursor_before, self._last_raw_velocity, click_probability,
                            decoded.click, decoded.held)
        if selected:
            replaced = self.adapter.selected(self.cursor_xy)
            if replaced is not None:
                decoder, click_decoder = replaced
                if decoder is not None:
                    self.decoder = decoder.reset()
                if click_decoder is not None:
                    self.click_decoder = click_decoder.reset()

    def _autopilot(self, target: Any) -> tuple[np.ndarray, bool]:
        """The observation block's computer-driven cursor: straight to the centre, slowing near it."""
        control = self.autopilot_control
        loop_s, gain = self.settings.loop_s, self.settings.cursor_gain_per_s
        error = np.asarray(target.center_xy) - self.cursor_xy
        distance = float(np.hypot(*error))
        velocity = np.zeros(2)
        if distance > 1e-9:
            speed = control.max_speed * min(1.0, distance / control.slowdown_distance)
            velocity = speed * error / distance
            # do not overshoot the centre within one step
            velocity *= min(1.0, distance / max(gain * loop_s * speed, 1e-12))
        settled = distance <= 0.25 * target.width
        self._settle_steps = self._settle_steps + 1 if settled else 0
        click = self._settle_steps * loop_s >= AUTOPILOT_SETTLE_S - 1e-9
        if click:
            self._settle_steps = 0
        return velocity, click


class CountsSource:
    """The fast "counts" feature path: one bin of the participant's Poisson counts per intention.

    The feature-source protocol the loop reads (:func:`check_feature_source`):
    ``n_features``; ``start(seed)`` at each block start, after
    ``participant.start(...)``; ``emit(intention)`` -> ndarray, shape
    (n_features,), float64, one ``loop_s`` bin.

    Parameters
    ----------
    participant : SimulatedParticipant
    """

    path = "counts"

    def __init__(self, participant: Any) -> None:
        self.participant = participant

    @property
    def n_features(self) -> int:
        return int(self.participant.n_channels)

    def start(self, seed: Any = None) -> None:
        """Nothing to do: ``participant.start(..., seed=...)`` already reseeded the counts' noise."""

    def emit(self, intention: Any) -> np.ndarray:
        return np.asarray(self.participant.emit_counts(intention), dtype=np.float64)


def check_feature_source(source: Any) -> Any:
    """Refuse an object without the feature-source members (``n_features``, ``start``, ``emit``)."""
    missing = [name for name in ("n_features", "start", "emit") if not hasattr(source, name)]
    if missing:
        raise InvalidInputError(
            f"feature source {type(source).__name__} lacks {missing}; expected n_features, start(seed) "
            "and emit(intention)"
        )
    n_features = source.n_features
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise InvalidInputError(f"feature source n_features must be an integer >= 1, got {n_features!r}")
    return source
