"""Sensory feedback: task events to ICMS pulse trains, inside the default safety envelope.

:class:`FeedbackEncoder` turns what happens to the cursor into trains on a few
somatosensory electrodes, once per control step:

- **enter**: the step the cursor enters the target, a stronger train: touch
  afferents fire hardest at contact onset (Johansson & Flanagan 2009, Nat Rev
  Neurosci 10:345), which biomimetic ICMS imitates with onset transients;
- **contact**: every further step it stays on the target, a train of one step's
  length at a lower amplitude (the sustained part of the contact);
- **click**: the step a selection registers, a short high-rate train, felt as
  a distinct "tap" (rate changes the quality of ICMS percepts; Flesher et al.
  2016, Sci Transl Med 8:361ra141).

Every train is charge-balanced and cathodic first: 200 µs cathodic, 100 µs
interphase (above a CereStim's 53 µs minimum), 400 µs anodic at half the
current, the asymmetric pulse of issue 12, at 20-300 Hz and at most 80 µA, so
each one passes :class:`~neurolace.stim.envelope.SafetyEnvelope`'s defaults
(tested). The encoder only *proposes*; the implant-side interlock decides, and
a refused train is not felt.

The encoder knows nothing of tasks: it takes booleans (``over_target``,
``selected``); the closed loop (:mod:`neurolace.runtime.feedback`) feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurolace.core.checks import check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.stim.pulses import PulseTrain

__all__ = ["FEEDBACK_EVENTS", "TOUCH_EVENTS", "FeedbackEncoder", "FeedbackEvent"]

#: The events the encoder stimulates for, in the order a step reports them.
FEEDBACK_EVENTS = ("enter", "contact", "click")
#: Events whose train says "the cursor is on the target" (what the participant feels as contact).
TOUCH_EVENTS = ("enter", "contact")


@dataclass(frozen=True)
class FeedbackEvent:
    """One train the encoder proposes: which event, the train, and when in the step it starts (s)."""

    event: str
    train: PulseTrain


@dataclass(frozen=True)
class FeedbackEncoder:
    """Task events to pulse trains (module docstring).

    Parameters
    ----------
    channels : tuple of int, default (0, 1, 2, 3)
        Electrodes in the hand area of somatosensory cortex; every train uses all of them.
    step_s : float, default 0.02
        The control step; a contact train lasts one step, so stimulation stops within a step of
        the cursor leaving the target.
    enter_amplitude_ua, contact_amplitude_ua, click_amplitude_ua : float
        Cathodic currents, default 80, 50 and 60 µA (human ICMS detection thresholds are mostly
        below 50 µA, and 100 µA is the cap; Flesher et al. 2016).
    enter_frequency_hz, contact_frequency_hz, click_frequency_hz : float
        Pulse rates, default 200, 100 and 300 Hz.
    enter_train_s, click_train_s : float
        Default one step (0.02 s) each.
    cathodic_width_us, interphase_us : float
        Default 200 and 100 µs; the anodic phase is twice as long at half the current.
    """

    channels: tuple[int, ...] = (0, 1, 2, 3)
    step_s: float = 0.02
    enter_amplitude_ua: float = 80.0
    contact_amplitude_ua: float = 50.0
    click_amplitude_ua: float = 60.0
    enter_frequency_hz: float = 200.0
    contact_frequency_hz: float = 100.0
    click_frequency_hz: float = 300.0
    enter_train_s: float = 0.02
    click_train_s: float = 0.02
    cathodic_width_us: float = 200.0
    interphase_us: float = 100.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(channel) for channel in self.channels))
        for name in ("step_s", "enter_train_s", "click_train_s"):
            check_positive(getattr(self, name), name)
        for event in FEEDBACK_EVENTS:  # build every train once: a bad field is refused here, named
            self.train(event)

    def train(self, event: str) -> PulseTrain:
        """The pulse train of ``event`` (one of :data:`FEEDBACK_EVENTS`)."""
        if event not in FEEDBACK_EVENTS:
            raise InvalidInputError(f"event must be one of {FEEDBACK_EVENTS}, got {event!r}")
        amplitude = getattr(self, f"{event}_amplitude_ua")
        frequency = getattr(self, f"{event}_frequency_hz")
        train_s = self.step_s if event == "contact" else getattr(self, f"{event}_train_s")
        return PulseTrain(
            channels=self.channels, amplitude_ua=amplitude, cathodic_width_us=self.cathodic_width_us,
            interphase_us=self.interphase_us, anodic_width_us=2.0 * self.cathodic_width_us,
            anodic_amplitude_ua=amplitude / 2.0, frequency_hz=frequency, train_s=train_s,
        )

    def events(self, *, over_target: bool, was_over_target: bool, selected: bool) -> list[FeedbackEvent]:
        """The trains of one control step.

        Parameters
        ----------
        over_target : bool
            The cursor is on the lit target at the end of the step.
        was_over_target : bool
            It was at the end of the previous step.
        selected : bool
            A selection registered this step (then the click train, and no contact train: the
            target has just changed).

        Returns
        -------
        list of FeedbackEvent
            At most one touch train (enter or contact) or one click train.
        """
        if selected:
            return [FeedbackEvent("click", self.train("click"))]
        if not over_target:
            return []
        event = "contact" if was_over_target else "enter"
        return [FeedbackEvent(event, self.train(event))]
