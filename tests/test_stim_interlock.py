"""The implant-side interlock: whatever the host sends, only signed, fresh, in-envelope trains are delivered.

The property test plays a host that mixes valid commands with random (often unsafe) trains,
forged signatures, unknown clinicians, replays, tampered bytes, stale and future timestamps,
garbage and floods; it then checks, independently of the envelope's code where it can, that
every delivered train was signed by a registered clinician, fresh, never repeated, and inside
the default limits, and that every submission left exactly one audit entry.
"""

from __future__ import annotations

import math

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from neurolace.stim import PulseTrain
from neurolace.stim.commands import (
    COMMAND_MAGIC,
    public_key_from_text,
    public_key_text,
    load_clinician_key,
    save_clinician_key,
    sign_command,
    verify_command,
)
from neurolace.stim.envelope import ElectrodeState, HardwareRange, SafetyEnvelope
from neurolace.stim.errors import CommandError
from neurolace.stim.interlock import REFUSAL_REASONS, SimulatedStimDriver, StimInterlock

NS = 1_000_000_000
CLINICIAN = Ed25519PrivateKey.generate()
COLLEAGUE = Ed25519PrivateKey.generate()
ATTACKER = Ed25519PrivateKey.generate()
KEYS = {"dr-a": CLINICIAN.public_key(), "dr-b": COLLEAGUE.public_key()}


def safe_train(**changes) -> PulseTrain:
    values = dict(channels=(0,), amplitude_ua=100, cathodic_width_us=200, interphase_us=100,
                  anodic_width_us=400, anodic_amplitude_ua=50, frequency_hz=100, train_s=1.0)
    values.update(changes)
    return PulseTrain(**values)


class AuditSpy:
    def __init__(self):
        self.entries = []

    def __call__(self, action, *, actor, participant_id=None, **details):
        self.entries.append({"action": action, "actor": actor, "participant_id": participant_id, **details})


def make_interlock(**options):
    audit = AuditSpy()
    driver = SimulatedStimDriver()
    interlock = StimInterlock(SafetyEnvelope(), driver, clinician_keys=KEYS, audit=audit, participant_id="P1",
                              **options)
    return interlock, driver, audit


def test_a_signed_safe_command_is_delivered_and_audited():
    interlock, driver, audit = make_interlock()
    data = sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=5 * NS, command_id="c1")
    outcome = interlock.submit(data, now_ns=5 * NS + 1000)
    assert outcome.delivered and outcome.reason == "delivered" and outcome.command_id == "c1"
    assert outcome.result.charge_per_phase_nc == 20.0
    assert [d.train for d in driver.delivered] == [safe_train()]
    assert driver.delivered[0].onset_sample == round((5 + 1e-6) * 19531.25)
    entry = audit.entries[-1]
    assert (entry["action"], entry["actor"], entry["participant_id"]) == ("stim_delivered", "dr-a", "P1")
    assert entry["command_id"] == "c1" and entry["train"]["amplitude_ua"] == 100.0


def _tamper(data: bytes) -> bytes:
    index = data.index(b'"amplitude_ua":100') + len(b'"amplitude_ua":')
    return data[:index] + b"9" + data[index + 1:]  # 100 -> 900 µA, same length


@pytest.mark.parametrize("case, reason", [
    ("unsigned", "malformed"),
    ("forged", "bad_signature"),
    ("tampered", "bad_signature"),
    ("unknown_clinician", "unknown_clinician"),
    ("other_version", "unknown_version"),
    ("garbage", "malformed"),
    ("not_bytes", "malformed"),
    ("stale", "stale"),
    ("future", "future"),
    ("unsafe", "outside_envelope"),
    ("bad_train", "bad_train"),
])
def test_each_gate_refuses_and_audits(case, reason):
    interlock, driver, audit = make_interlock()
    now_ns = 100 * NS
    good = sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=now_ns)
    data = {
        "unsigned": good[:-64],
        "forged": sign_command(safe_train(), ATTACKER, clinician_id="dr-a", issued_ns=now_ns),
        "tampered": _tamper(good),
        "unknown_clinician": sign_command(safe_train(), ATTACKER, clinician_id="mallory", issued_ns=now_ns),
        "other_version": good[:4] + b"\x02" + good[5:],
        "garbage": COMMAND_MAGIC + b"\x01" + b"\xff" * 200,
        "not_bytes": "a string",
        "stale": sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=now_ns - 3 * NS),
        "future": sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=now_ns + NS),
        "unsafe": sign_command(safe_train(amplitude_ua=150, anodic_amplitude_ua=75), CLINICIAN,
                               clinician_id="dr-a", issued_ns=now_ns),
        "bad_train": _signed_body(b'{"clinician_id":"dr-a","command_id":"x","issued_ns":1,"train":{"amplitude_ua":-1}}'),
    }[case]
    outcome = interlock.submit(data, now_ns=now_ns)
    assert not outcome.delivered
    assert outcome.reason == reason, outcome.message
    assert driver.delivered == []
    assert len(audit.entries) == 1
    entry = audit.entries[0]
    assert entry["action"] == "stim_refused" and entry["reason"] == reason
    if reason == "outside_envelope":
        assert set(entry["rules"]) >= {"amplitude", "charge_per_phase"}
        assert entry["actor"] == "dr-a"
    if reason in ("malformed", "bad_signature", "unknown_clinician"):
        assert entry["actor"] == "unauthenticated"


def _signed_body(body: bytes) -> bytes:
    import struct

    signed = struct.pack(">4sBI", COMMAND_MAGIC, 1, len(body)) + body
    return signed + CLINICIAN.sign(signed)


def test_a_replay_is_refused_even_when_fresh():
    interlock, driver, audit = make_interlock()
    data = sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=NS)
    assert interlock.submit(data, now_ns=NS).delivered
    outcome = interlock.submit(data, now_ns=NS + 10)
    assert outcome.reason == "replayed"
    assert len(driver.delivered) == 1
    assert [e["action"] for e in audit.entries] == ["stim_delivered", "stim_refused"]


def test_a_flood_is_rate_limited():
    interlock, driver, audit = make_interlock(max_commands_per_s=5)
    reasons = []
    for index in range(12):
        train = safe_train(channels=(index,), train_s=0.01)
        data = sign_command(train, CLINICIAN, clinician_id="dr-a", issued_ns=NS)
        reasons.append(interlock.submit(data, now_ns=NS + index).reason)
    assert reasons.count("delivered") == 5 and reasons.count("rate_limited") == 7
    assert len(audit.entries) == 12
    later = sign_command(safe_train(channels=(50,)), CLINICIAN, clinician_id="dr-a", issued_ns=3 * NS)
    assert interlock.submit(later, now_ns=3 * NS).delivered


def test_the_driver_rechecks_its_hardware_range():
    narrow = HardwareRange("bench stimulator", max_amplitude_ua=50, min_interphase_us=53, min_frequency_hz=4,
                           max_frequency_hz=5000, max_phase_width_us=65535)
    driver = SimulatedStimDriver(hardware=narrow)
    audit = AuditSpy()
    interlock = StimInterlock(SafetyEnvelope(), driver, clinician_keys=KEYS, audit=audit)
    data = sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=NS)
    outcome = interlock.submit(data, now_ns=NS)
    assert outcome.reason == "driver_refused" and "bench stimulator" in outcome.message
    assert driver.delivered == [] and interlock.state.scheduled() == []
    assert audit.entries[-1]["reason"] == "driver_refused"


def test_a_locked_electrode_refuses_until_unlocked():
    interlock, driver, audit = make_interlock()
    interlock.state.lock(0, "impedance jumped")
    data = sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=NS)
    outcome = interlock.submit(data, now_ns=NS)
    assert outcome.reason == "outside_envelope" and "electrode_locked" in outcome.result.rules


def test_the_implant_clock_does_not_run_backwards():
    interlock, _, _ = make_interlock()
    first = sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=10 * NS)
    assert interlock.submit(first, now_ns=10 * NS).delivered
    # a host cannot make an old command fresh by the implant's clock glitching back
    old = sign_command(safe_train(channels=(1,)), CLINICIAN, clinician_id="dr-a", issued_ns=5 * NS)
    assert interlock.submit(old, now_ns=5 * NS).reason == "stale"


def test_works_with_the_privacy_audit_log(tmp_path):
    from neurolace.privacy.audit import AuditLog, read_entries

    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    interlock = StimInterlock(SafetyEnvelope(), SimulatedStimDriver(), clinician_keys=KEYS, audit=log.append,
                              participant_id="P1")
    interlock.submit(sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=NS), now_ns=NS)
    interlock.submit(b"junk", now_ns=NS)
    log.close()
    entries = [entry for _, entry in read_entries(tmp_path / "audit" / "audit.jsonl")]
    stim = [entry for entry in entries if entry["action"].startswith("stim_")]
    assert [entry["action"] for entry in stim] == ["stim_delivered", "stim_refused"]
    assert stim[0]["actor"] == "dr-a" and stim[1]["details"]["reason"] == "malformed"


def test_keys_round_trip(tmp_path):
    path = save_clinician_key(CLINICIAN, tmp_path / "dr-a.pem")
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_key_text(load_clinician_key(path)) == public_key_text(CLINICIAN)
    public = public_key_from_text(public_key_text(CLINICIAN))
    data = sign_command(safe_train(), CLINICIAN, clinician_id="dr-a", issued_ns=1)
    assert verify_command(data, {"dr-a": public}).train == safe_train()
    with pytest.raises(CommandError, match="unknown_clinician|no key"):
        verify_command(data, {})


# --- property: nothing outside the envelope reaches the driver --------------------------------------
numbers = st.one_of(st.floats(0.5, 3000, allow_nan=False), st.sampled_from([1, 20, 50, 53, 100, 200, 300, 400]))
trains = st.builds(
    lambda channels, amplitude, cathodic, gap, anodic, balance, anodic_amplitude, frequency, train_s, first, onset:
    PulseTrain(
        channels=tuple(sorted(set(channels))), amplitude_ua=amplitude, cathodic_width_us=cathodic,
        interphase_us=gap, anodic_width_us=anodic,
        anodic_amplitude_ua=amplitude * cathodic / anodic if balance else anodic_amplitude,
        frequency_hz=frequency, train_s=train_s, cathodic_first=first, onset_s=onset,
    ),
    channels=st.lists(st.one_of(st.integers(0, 12), st.just(5000)), min_size=1, max_size=20),
    amplitude=st.one_of(st.floats(0.1, 300), st.sampled_from([10.0, 50.0, 100.0, 101.0])),
    cathodic=st.one_of(st.floats(1, 2000), st.just(200.0)),
    gap=st.one_of(st.floats(0, 200), st.sampled_from([0.0, 53.0, 100.0])),
    anodic=st.one_of(st.floats(1, 2000), st.sampled_from([200.0, 400.0])),
    balance=st.booleans(),
    anodic_amplitude=st.floats(0, 300),
    frequency=st.one_of(st.floats(1, 1000), st.sampled_from([20.0, 100.0, 300.0, 301.0])),
    train_s=st.one_of(st.floats(0.001, 30), st.sampled_from([0.1, 1.0, 15.0])),
    first=st.booleans(),
    onset=st.one_of(st.just(0.0), st.floats(0, 0.02)),
)
#: trains of the human regime, mostly safe, sometimes near a limit (several channels, long, fast)
regime_trains = st.builds(
    lambda channels, amplitude, gap, asymmetric, frequency, train_s, onset: PulseTrain(
        channels=tuple(sorted(set(channels))), amplitude_ua=amplitude, cathodic_width_us=200, interphase_us=gap,
        anodic_width_us=400 if asymmetric else 200, anodic_amplitude_ua=amplitude / 2 if asymmetric else amplitude,
        frequency_hz=frequency, train_s=train_s, onset_s=onset,
    ),
    channels=st.lists(st.integers(0, 40), min_size=1, max_size=18),
    amplitude=st.floats(1, 100),
    gap=st.sampled_from([53.0, 100.0]),
    asymmetric=st.booleans(),
    frequency=st.floats(20, 300),
    train_s=st.floats(0.01, 16),
    onset=st.one_of(st.just(0.0), st.floats(0, 0.01)),
)
actions = st.lists(st.tuples(
    st.sampled_from(["valid", "valid", "valid", "colleague", "forged", "unknown", "replay", "tamper", "stale",
                     "future", "garbage", "flood"]),
    st.one_of(regime_trains, regime_trains, trains),
    st.integers(0, 2**31),
    st.binary(max_size=120),
    st.integers(0, 3 * NS),
), min_size=1, max_size=14)


def _inside_default_limits(train: PulseTrain) -> bool:
    """The default limits written out again, without the envelope's code (SIROF, 2,000 µm² electrodes)."""
    cathodic_nc = train.amplitude_ua * train.cathodic_width_us / 1000
    anodic_nc = train.anodic_amplitude_ua * train.anodic_width_us / 1000
    charge_nc = max(cathodic_nc, anodic_nc)
    density = charge_nc * 1e-3 / (2000 * 1e-8)
    k = math.log10(density) + math.log10(charge_nc * 1e-3)
    slack = 1 + 1e-9
    return (
        all(0 <= channel < 1024 for channel in train.channels)
        and abs(cathodic_nc - anodic_nc) <= 0.01 * cathodic_nc * slack
        and charge_nc <= 20 * slack
        and density <= 1500 * slack
        and k <= 1.5 * slack
        and max(train.amplitude_ua, train.anodic_amplitude_ua) <= 100 * slack
        and train.frequency_hz <= 300 * slack and train.frequency_hz >= 4 / slack
        and train.train_s <= 15 * slack
        and train.interphase_us >= 53 / slack
        and train.cathodic_width_us + train.interphase_us + train.anodic_width_us < 1e6 / train.frequency_hz
        and len(train.channels) * max(train.amplitude_ua, train.anodic_amplitude_ua) <= 1500 * slack
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_nothing_outside_the_envelope_reaches_the_driver(plan):
    interlock, driver, audit = make_interlock(max_commands_per_s=8)
    now_ns = 10 * NS
    sent = []  # every byte string submitted
    legitimate = {}  # command id -> issued_ns of the commands a registered clinician really signed
    submissions = 0
    for kind, train, number, junk, step_ns in plan:
        now_ns += step_ns
        batch = []
        if kind in ("valid", "colleague", "flood"):
            key, who = (COLLEAGUE, "dr-b") if kind == "colleague" else (CLINICIAN, "dr-a")
            for copy in range(6 if kind == "flood" else 1):
                command_id = f"{number}-{copy}-{len(sent)}"
                legitimate[command_id] = now_ns
                batch.append(sign_command(train, key, clinician_id=who, issued_ns=now_ns, command_id=command_id))
        elif kind == "forged":
            batch.append(sign_command(train, ATTACKER, clinician_id="dr-a", issued_ns=now_ns))
        elif kind == "unknown":
            batch.append(sign_command(train, ATTACKER, clinician_id="mallory", issued_ns=now_ns))
        elif kind == "replay" and sent:
            batch.append(sent[number % len(sent)])
        elif kind == "tamper" and sent:
            original = bytearray(sent[number % len(sent)])
            original[number % len(original)] ^= 1 + number % 255
            batch.append(bytes(original))
        elif kind in ("stale", "future"):
            issued = now_ns - 3 * NS if kind == "stale" else now_ns + NS
            batch.append(sign_command(train, CLINICIAN, clinician_id="dr-a", issued_ns=max(0, issued)))
        else:
            batch.append(junk)
        for data in batch:
            outcome = interlock.submit(data, now_ns=now_ns)
            submissions += 1
            sent.append(data)
            assert outcome.reason == "delivered" or outcome.reason in REFUSAL_REASONS
            assert outcome.delivered == (outcome.reason == "delivered")
    # exactly one audit entry per submission, refusals included
    assert len(audit.entries) == submissions
    assert sum(interlock.counts.values()) == submissions
    delivered_ids = [e["command_id"] for e in audit.entries if e["action"] == "stim_delivered"]
    assert len(delivered_ids) == len(driver.delivered) == interlock.counts["delivered"]
    assert len(set(delivered_ids)) == len(delivered_ids), "a command was delivered twice"
    assert set(delivered_ids) <= set(legitimate), "an unsigned, forged or altered command was delivered"
    event(f"delivered {min(len(driver.delivered), 3)}+")
    replay_state = ElectrodeState()
    envelope = SafetyEnvelope()
    for delivered in driver.delivered:
        assert _inside_default_limits(delivered.train), delivered.train
        # with everything delivered before it, each train was inside the envelope's stateful rules too
        assert envelope.check(delivered.train, state=replay_state, start_s=delivered.start_s).safe
        envelope.commit(delivered.train, replay_state, start_s=delivered.start_s)
