"""Closed-loop sensory feedback in the one loop: task events -> encoder -> stimulator -> the participant's touch.

:class:`SensoryFeedback` is what :class:`~neurolace.runtime.loop.ClosedLoop`
calls after each step's task update (``ClosedLoop(..., feedback=...)``):

1. the step's events (the cursor on the lit target, a selection) go to the
   :class:`~neurolace.stim.feedback.FeedbackEncoder`, which proposes trains;
2. each train is submitted to the stimulator at the step's time on a clock
   that runs across blocks (the envelope's duty cycle and busy electrodes
   need one): ``stimulator.submit(train, start_s=...)``, the implant-side
   interlock's interface. Without a stimulator each train is judged by a
   :class:`~neurolace.stim.envelope.SafetyEnvelope` (defaults) and kept in its
   :class:`~neurolace.stim.envelope.ElectrodeState`, as a simulated stimulator
   that delivers exactly what the envelope accepts;
3. a delivered touch train (enter or contact) is the step's ``touch``: the
   simulated participant feels it ``icms_delay_s`` later
   (:meth:`neurolace.sim.participant.SimulatedParticipant.step`).

Refused trains are counted and never felt. :class:`SignedStimulator` puts the
implant-side :class:`~neurolace.stim.interlock.StimInterlock` behind that
``submit``: each train is signed as a clinician's command and judged by every
gate of the interlock (signature, freshness, replay, rate, envelope). One train
per 20 ms step is 50 commands a second while the cursor is on a target: the
interlock's default rate cap (20 a second) refuses most of them, so a feedback
session needs ``max_commands_per_s`` of at least ``1 / loop_s``.
"""

from __future__ import annotations

from typing import Any

from neurolace.core.checks import check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.stim.envelope import ElectrodeState, SafetyEnvelope
from neurolace.stim.feedback import TOUCH_EVENTS, FeedbackEncoder

__all__ = ["SensoryFeedback", "SignedStimulator"]


class SignedStimulator:
    """``submit(train, start_s=...)`` through the implant-side interlock, each train a signed command.

    Parameters
    ----------
    interlock : StimInterlock
    clinician_key : Ed25519PrivateKey
        The key of the clinician session that enabled feedback.
    clinician_id : str
        The id the interlock knows that key by.
    """

    def __init__(self, interlock: Any, clinician_key: Any, *, clinician_id: str) -> None:
        if not callable(getattr(interlock, "submit", None)):
            raise InvalidInputError(f"interlock must be a StimInterlock, got {type(interlock).__name__}")
        self.interlock, self.clinician_key, self.clinician_id = interlock, clinician_key, clinician_id
        self.n_submitted = 0
        self.outcomes: list[Any] = []

    def submit(self, train: Any, *, start_s: float) -> Any:
        from neurolace.stim.commands import sign_command

        now_ns = round(start_s * 1e9)
        command = sign_command(train, self.clinician_key, clinician_id=self.clinician_id, issued_ns=now_ns,
                               command_id=f"feedback-{self.n_submitted:09d}")
        self.n_submitted += 1
        outcome = self.interlock.submit(command, now_ns=now_ns)
        self.outcomes.append(outcome)
        return outcome


class SensoryFeedback:
    """The feedback path of the loop (module docstring).

    Parameters
    ----------
    encoder : FeedbackEncoder, optional
        Default ``FeedbackEncoder(step_s=loop_s)``.
    stimulator : object with ``submit(train, *, start_s)``, optional
        The implant-side interlock; its answer is delivered when truthy (or its ``delivered``
        attribute is). Default: the default :class:`SafetyEnvelope` judging each train.
    loop_s : float, default 0.02
        The control step; the feedback clock advances by it every step.

    Attributes
    ----------
    delivered, refused : dict of str to int
        Trains per event.
    log : list of (time_s, event, delivered)
    """

    def __init__(self, encoder: FeedbackEncoder | None = None, *, stimulator: Any = None,
                 loop_s: float = 0.02) -> None:
        self.loop_s = check_positive(loop_s, "loop_s")
        self.encoder = FeedbackEncoder(step_s=self.loop_s) if encoder is None else encoder
        if not isinstance(self.encoder, FeedbackEncoder):
            raise InvalidInputError(f"encoder must be a FeedbackEncoder, got {type(self.encoder).__name__}")
        if stimulator is not None and not callable(getattr(stimulator, "submit", None)):
            raise InvalidInputError(f"stimulator must have submit(train, start_s=...), got {type(stimulator).__name__}")
        self.stimulator = stimulator
        self._envelope = SafetyEnvelope() if stimulator is None else None
        self._state = ElectrodeState() if stimulator is None else None
        self.clock_s = 0.0
        self.delivered = {event: 0 for event in ("enter", "contact", "click")}
        self.refused = dict(self.delivered)
        self.log: list[tuple[float, str, bool]] = []
        self._was_over = False

    def start_block(self) -> None:
        """A block starts: the cursor is not on a target yet (the clock keeps running)."""
        self._was_over = False

    def _submit(self, train: Any, start_s: float) -> bool:
        if self.stimulator is None:
            if not self._envelope.check(train, state=self._state, start_s=start_s).safe:
                return False
            self._envelope.commit(train, self._state, start_s=start_s)
            return True
        answer = self.stimulator.submit(train, start_s=start_s)
        return bool(getattr(answer, "delivered", answer))

    def step(self, *, over_target: bool, selected: bool) -> bool:
        """One control step's feedback; returns the touch (a delivered enter or contact train)."""
        touch = False
        for proposed in self.encoder.events(over_target=over_target, was_over_target=self._was_over,
                                            selected=selected):
            delivered = self._submit(proposed.train, self.clock_s)
            (self.delivered if delivered else self.refused)[proposed.event] += 1
            self.log.append((self.clock_s, proposed.event, delivered))
            touch = touch or (delivered and proposed.event in TOUCH_EVENTS)
        self._was_over = over_target and not selected
        self.clock_s += self.loop_s
        return touch

    def __repr__(self) -> str:
        return (f"SensoryFeedback(channels={self.encoder.channels}, delivered={sum(self.delivered.values())}, "
                f"refused={sum(self.refused.values())})")
