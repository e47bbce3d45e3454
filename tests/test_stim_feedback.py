"""Sensory feedback: the encoder's trains pass the envelope, ICMS is felt sooner than vision, the loop is unchanged without it."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import replace

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.closed_loop import calibrate_session, run_block
from neurolace.runtime.feedback import SensoryFeedback
from neurolace.runtime.loop import ClosedLoop, LoopSettings
from neurolace.sim.participant import ControlParameters, SimulatedParticipant
from neurolace.stim.envelope import SafetyEnvelope
from neurolace.stim.feedback import FEEDBACK_EVENTS, FeedbackEncoder
from neurolace.stim.pulses import PulseTrain
from neurolace.tasks import Target, WebgridTask

QUIET = ControlParameters(motor_noise_cv=0.0)


def _digest(*arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


# -- the encoder ------------------------------------------------------------------------------------
@pytest.mark.parametrize("event", FEEDBACK_EVENTS)
def test_every_encoder_train_passes_the_default_envelope(event):
    train = FeedbackEncoder().train(event)
    result = SafetyEnvelope().check(train)
    assert result.safe, result.violations
    assert train.imbalance_nc == pytest.approx(0.0)
    assert train.train_s <= 0.02 + 1e-12  # one control step: stimulation stops within a step of leaving


def test_a_session_of_feedback_trains_passes_the_envelope_with_its_state():
    """Steps on and off targets for 20 s: the trains never overlap on an electrode, none is refused."""
    envelope = SafetyEnvelope()
    feedback = SensoryFeedback()
    rng = np.random.default_rng(0)
    over = False
    for step in range(1000):
        over = (rng.random() < 0.1) != over if step % 7 == 0 else over
        selected = over and rng.random() < 0.02
        for proposed in feedback.encoder.events(over_target=over, was_over_target=feedback._was_over,
                                                selected=selected):
            assert envelope.check(proposed.train, start_s=feedback.clock_s).safe  # the train by itself
        feedback.step(over_target=over, selected=selected)
    assert sum(feedback.refused.values()) == 0
    assert feedback.delivered["enter"] >= 5 and feedback.delivered["contact"] > 50


def test_encoder_events_follow_the_cursor():
    encoder = FeedbackEncoder()
    assert encoder.events(over_target=False, was_over_target=False, selected=False) == []
    assert [e.event for e in encoder.events(over_target=True, was_over_target=False, selected=False)] == ["enter"]
    assert [e.event for e in encoder.events(over_target=True, was_over_target=True, selected=False)] == ["contact"]
    assert [e.event for e in encoder.events(over_target=True, was_over_target=True, selected=True)] == ["click"]
    assert encoder.train("enter").amplitude_ua > encoder.train("contact").amplitude_ua


def test_encoder_and_feedback_refuse_bad_settings():
    with pytest.raises(InvalidInputError, match="event must be one of"):
        FeedbackEncoder().train("wiggle")
    with pytest.raises(Exception, match="amplitude_ua"):
        FeedbackEncoder(contact_amplitude_ua=-5.0)
    with pytest.raises(InvalidInputError, match="stimulator must have submit"):
        SensoryFeedback(stimulator=object())
    with pytest.raises(InvalidInputError, match="feedback must be a SensoryFeedback"):
        ClosedLoop(LoopSettings(), observation="intention", feedback=42)


def test_a_refused_train_is_not_felt():
    class Refusing:
        def __init__(self):
            self.seen = []

        def submit(self, train, *, start_s):
            self.seen.append((train, start_s))
            return False

    stimulator = Refusing()
    feedback = SensoryFeedback(stimulator=stimulator)
    assert feedback.step(over_target=True, selected=False) is False
    assert feedback.refused["enter"] == 1 and isinstance(stimulator.seen[0][0], PulseTrain)
    assert feedback.step(over_target=True, selected=False) is False
    assert stimulator.seen[1][1] == pytest.approx(0.02)  # the feedback clock advanced one step


# -- perception --------------------------------------------------------------------------------------
def _first_click_step(*, feedback: bool, icms_delay_s: float = 0.10) -> int:
    """The participant steers a perfect cursor onto a target: the step of its first attempted click.

    With ``feedback`` it is told "on the target" (touch) every step the true cursor is inside it.
    """
    participant = SimulatedParticipant(n_channels=4, seed=0, control=replace(QUIET, icms_delay_s=icms_delay_s))
    target = Target((0.7, 0.5), 0.1)
    cursor = np.array([0.3, 0.5])
    participant.start(cursor, cursor_gain_per_s=1.0, seed=1)
    for step in range(300):
        touch = feedback and target.contains(cursor)
        intention = participant.step(cursor, target, touch=touch)
        if intention.click:
            return step
        cursor = np.clip(cursor + 1.0 * QUIET.loop_s * intention.velocity, 0.0, 1.0)
    raise AssertionError("no click")


def test_icms_touch_is_perceived_sooner_than_vision():
    vision = _first_click_step(feedback=False)
    felt = _first_click_step(feedback=True)
    # visual 0.12 s vs ICMS 0.10 s at 20 ms steps: the click comes one step sooner
    assert vision - felt == round((QUIET.visual_delay_s - QUIET.icms_delay_s) / QUIET.loop_s) == 1
    # felt at once, the click waits only for the estimate to reach the click zone
    assert _first_click_step(feedback=True, icms_delay_s=0.0) < felt
    # felt as late as seen: no gain
    assert _first_click_step(feedback=True, icms_delay_s=QUIET.visual_delay_s) == vision


def test_icms_delay_is_checked():
    with pytest.raises(InvalidInputError, match="icms_delay_s"):
        ControlParameters(icms_delay_s=-0.01)


# -- the one loop -------------------------------------------------------------------------------------
#: Digests of seeded blocks computed with the code before the feedback path existed (git archive of the
#: commit before it, same script): the default loop must stay bit for bit what it was.
INTENTION_BLOCK_DIGEST = "881fb9d925f4515f"
CLOSED_BLOCK_DIGEST = "ea427ee41bcf409f"


@pytest.fixture(scope="module")
def calibration():
    return calibrate_session(participant=SimulatedParticipant(n_channels=96, seed=1), seed=1, decoder="kalman",
                             n_channels=96, grid_side=10, open_loop_seconds=30.0, closed_loop_seconds=10.0,
                             webgrid_seconds=10.0, n_webgrid_blocks=1)


def _closed_block(calibration, **options):
    return run_block(copy.deepcopy(calibration.participant), WebgridTask(grid_side=10, seed=6), duration_s=15.0,
                     decoder=copy.deepcopy(calibration.decoders["refit"]),
                     click_decoder=copy.deepcopy(calibration.click_decoder), seed=7, **options)


def test_default_loop_is_unchanged_bit_for_bit(calibration):
    participant = SimulatedParticipant(n_channels=64, seed=3)
    record = run_block(participant, WebgridTask(grid_side=10, seed=4), duration_s=10.0, observation="intention",
                       seed=5)
    assert _digest(record.cursor_xy, record.intended_velocity, record.intended_click,
                   record.counts) == INTENTION_BLOCK_DIGEST
    record = _closed_block(calibration)
    assert _digest(record.cursor_xy, record.decoded_velocity, record.click, record.counts) == CLOSED_BLOCK_DIGEST


def test_feedback_without_a_lead_changes_nothing(calibration):
    """ICMS felt exactly as late as vision adds no earlier percept: the same block, step for step."""
    plain = _closed_block(calibration)
    who = copy.deepcopy(calibration.participant)
    who.control = replace(who.control, icms_delay_s=who.control.visual_delay_s)
    feedback = SensoryFeedback()
    same = run_block(who, WebgridTask(grid_side=10, seed=6), duration_s=15.0,
                     decoder=copy.deepcopy(calibration.decoders["refit"]),
                     click_decoder=copy.deepcopy(calibration.click_decoder), seed=7, feedback=feedback)
    assert sum(feedback.delivered.values()) > 0
    assert np.array_equal(plain.cursor_xy, same.cursor_xy)
    assert np.array_equal(plain.click, same.click)


def test_feedback_loop_runs_end_to_end(calibration):
    feedback = SensoryFeedback()
    record = _closed_block(calibration, feedback=feedback)
    assert record.summary.to_dict()["correct"] >= 1
    # a click train for every selection the task registered, touch trains while on targets
    selections = record.summary.to_dict()["correct"] + record.summary.to_dict()["incorrect"]
    assert feedback.delivered["click"] == selections
    assert feedback.delivered["enter"] >= 1 and feedback.delivered["contact"] >= feedback.delivered["enter"]
    assert sum(feedback.refused.values()) == 0
    times = [time_s for time_s, _, _ in feedback.log]
    assert times == sorted(times) and times[-1] < 15.0


def test_feedback_through_the_signed_interlock():
    """Every train signed, judged by the implant-side interlock, delivered to the simulated driver."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from neurolace.runtime.feedback import SignedStimulator
    from neurolace.stim.interlock import SimulatedStimDriver, StimInterlock

    key = Ed25519PrivateKey.generate()
    driver = SimulatedStimDriver()
    audited = []
    interlock = StimInterlock(SafetyEnvelope(), driver, clinician_keys={"dr-a": key.public_key()},
                              audit=lambda action, **details: audited.append(action), max_commands_per_s=60)
    feedback = SensoryFeedback(stimulator=SignedStimulator(interlock, key, clinician_id="dr-a"))
    pattern = [False] * 5 + [True] * 30 + [False] * 10 + [True] * 5
    touches = [feedback.step(over_target=over, selected=index == 40) for index, over in enumerate(pattern)]
    assert touches == [over and index != 40 for index, over in enumerate(pattern)]
    n_trains = sum(pattern) + 1  # a touch train every step on a target, and the click at step 40
    assert len(driver.delivered) == n_trains and interlock.counts["delivered"] == n_trains
    assert audited.count("stim_delivered") == n_trains and feedback.delivered["click"] == 1
    # at the interlock's default cap of 20 commands a second, one train per 20 ms step is refused
    capped = StimInterlock(SafetyEnvelope(), SimulatedStimDriver(), clinician_keys={"dr-a": key.public_key()})
    feedback = SensoryFeedback(stimulator=SignedStimulator(capped, key, clinician_id="dr-a"))
    for _ in range(50):
        feedback.step(over_target=True, selected=False)
    assert feedback.delivered["contact"] + feedback.delivered["enter"] == 20
    assert capped.counts["rate_limited"] == 30
