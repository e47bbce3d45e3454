"""Stimulation commands cross the secure link as STIM frames; the implant's interlock, after the link, decides.

A host with the session (compromised or not) can only send; what reaches the
stimulator is what the interlock on the implant side accepts: signed by a
clinician it knows, fresh, never seen, inside the safety envelope. A device
without the session key cannot even get a STIM frame opened.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from neurolace.link.frames import StreamType, build_header
from neurolace.runtime.loop import CountsSource
from neurolace.runtime.secure_link import LinkSettings, SecureLinkSource
from neurolace.sim.participant import Intention, SimulatedParticipant
from neurolace.stim import PulseTrain, SafetyEnvelope, SimulatedStimDriver, StimInterlock, sign_command

INTENTION = Intention(np.array([0.2, 0.0]), 0.0, np.array([0.5, 0.5]))
SAFE = PulseTrain(channels=(3,), amplitude_ua=80.0, cathodic_width_us=200.0, interphase_us=100.0,
                  anodic_width_us=400.0, anodic_amplitude_ua=40.0, frequency_hz=100.0, train_s=0.2)


def _link_with_interlock():
    clinician = Ed25519PrivateKey.generate()
    audit = []
    driver = SimulatedStimDriver()
    interlock = StimInterlock(SafetyEnvelope(), driver, clinician_keys={"dr-a": clinician.public_key()},
                              audit=lambda action, **details: audit.append((action, details)))
    source = SecureLinkSource(CountsSource(SimulatedParticipant(n_channels=16, seed=1)), LinkSettings(),
                              seed=2, interlock=interlock)
    source.start(0)
    for _ in range(5):  # the handshake
        source.emit(INTENTION)
    assert source.host.session is not None
    return source, clinician, driver, audit


def _run(source, n_bins=4):
    for _ in range(n_bins):
        source.emit(INTENTION)


def test_a_signed_safe_command_crosses_the_link_and_is_delivered_once():
    source, clinician, driver, audit = _link_with_interlock()
    command = sign_command(SAFE, clinician, clinician_id="dr-a", issued_ns=source.now_ns)
    source.stimulate(command)
    _run(source)
    assert [d.train for d in driver.delivered] == [SAFE]
    assert [action for action, _ in audit] == ["stim_delivered"]
    source.stimulate(command)  # the same bytes again, from the host or a recording
    _run(source)
    assert len(driver.delivered) == 1 and source.implant.stim_outcomes[-1].reason == "replayed"
    assert source.report()["implant"]["stim_delivered"] == 1


def test_a_host_with_the_session_cannot_push_a_train_outside_the_envelope_or_unsigned_bytes():
    source, clinician, driver, audit = _link_with_interlock()
    too_much = replace(SAFE, amplitude_ua=150.0, anodic_amplitude_ua=75.0)
    source.stimulate(sign_command(too_much, clinician, clinician_id="dr-a", issued_ns=source.now_ns))
    source.stimulate(b"NLSC not a signed command")
    impostor = Ed25519PrivateKey.generate()
    source.stimulate(sign_command(SAFE, impostor, clinician_id="dr-a", issued_ns=source.now_ns))
    _run(source)
    assert driver.delivered == []
    reasons = [outcome.reason for outcome in source.implant.stim_outcomes]
    assert reasons[0] == "outside_envelope" and len(reasons) == 3 and "outside_envelope" not in reasons[1:]
    assert [action for action, _ in audit] == ["stim_refused"] * 3


def test_a_stim_frame_from_a_device_without_the_session_key_never_reaches_the_interlock():
    source, clinician, driver, audit = _link_with_interlock()
    command = sign_command(SAFE, clinician, clinician_id="dr-a", issued_ns=source.now_ns)
    body = command + bytes(16)  # a guessed tag
    forged = build_header(StreamType.STIM, 10**6, 0, len(body)) + body
    rejected_before = source.implant.endpoint.stats()["rejected"]["tag_mismatch"]
    source._downlink += forged
    _run(source, 1)
    assert source.implant.endpoint.stats()["rejected"]["tag_mismatch"] == rejected_before + 1
    assert driver.delivered == [] and audit == [] and len(source.implant.stim_outcomes) == 0


def test_an_implant_without_a_stimulator_delivers_nothing_and_counts_the_frame():
    source = SecureLinkSource(CountsSource(SimulatedParticipant(n_channels=16, seed=1)), LinkSettings(), seed=2)
    source.start(0)
    _run(source, 5)
    source.stimulate(b"anything")
    _run(source)
    assert source.report()["implant"]["stim_unhandled"] == 1
