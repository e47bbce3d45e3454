"""The implant-side interlock: only signed, fresh, in-envelope commands reach the stimulator.

:class:`StimInterlock` sits where the implant would hold it, after the link: the host
(which may be compromised) sends command bytes, and :meth:`StimInterlock.submit` runs, in
order, each gate below; the first that fails refuses the command, and only a command that
passes them all reaches ``driver.deliver``:

1. framing and version, 2. a clinician the implant knows, 3. that clinician's Ed25519
signature (:func:`~neurolace.stim.commands.verify_command`), 4. freshness (``issued_ns``
neither older than ``max_age_ns`` nor further ahead than ``max_ahead_ns`` of the implant's
clock), 5. a command id never seen (a replay is refused even inside the freshness window),
6. a rate cap on authenticated commands (a flood from a stolen session), 7. the safety
envelope with the electrodes' live state (:class:`~neurolace.stim.envelope.SafetyEnvelope`).

Every delivery and every refusal goes to ``audit(action, *, actor, participant_id=None,
**details)`` when given (``neurolace.privacy.AuditLog.append`` has that signature; this
package does not import privacy). A driver's own range check
(:class:`SimulatedStimDriver`) is defence in depth, not the safety mechanism.

The lead wires :meth:`StimInterlock.submit` to the payload of each STIM frame the implant's
secure link opens (``interlock.submit(payload_bytes, now_ns=...)``); the host builds those
payloads with :func:`~neurolace.stim.commands.sign_command`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.stim.commands import COMMAND_REFUSALS, verify_command
from neurolace.stim.envelope import CERESTIM_R96, ElectrodeState, EnvelopeResult, HardwareRange, SafetyEnvelope
from neurolace.stim.errors import CommandError, DriverError
from neurolace.stim.pulses import PulseTrain

__all__ = [
    "REFUSAL_REASONS",
    "DeliveredTrain",
    "SimulatedStimDriver",
    "StimDriver",
    "StimInterlock",
    "StimOutcome",
]

#: why the interlock refuses a command (the ``reason`` of a refused :class:`StimOutcome`)
REFUSAL_REASONS = COMMAND_REFUSALS + (
    "stale",             # issued longer ago than max_age_ns
    "future",            # issued further ahead than max_ahead_ns: a clock attack or a skewed host
    "replayed",          # command id already seen
    "rate_limited",      # more authenticated commands in the last second than the cap
    "outside_envelope",  # the safety envelope refused the train (its rules are in ``result``)
    "driver_refused",    # the driver's own check refused it
)
_NS_PER_S = 1_000_000_000


class StimDriver(Protocol):
    """What the interlock needs of a stimulator."""

    def deliver(self, train: PulseTrain, *, start_s: float) -> None:
        """Run ``train`` from ``start_s`` (implant clock, s); raise :class:`DriverError` to refuse."""


@dataclass(frozen=True)
class StimOutcome:
    """What became of one submitted command.

    Attributes
    ----------
    delivered : bool
    command_id : str or None
        None when the bytes were not a readable command.
    result : EnvelopeResult or None
        The envelope's answer (None when a gate before the envelope refused).
    reason : str
        ``"delivered"`` or one of :data:`REFUSAL_REASONS`.
    message : str
        A sentence for people.
    clinician_id : str or None
        The authenticated clinician (None before authentication).
    """

    delivered: bool
    command_id: str | None
    result: EnvelopeResult | None
    reason: str
    message: str = ""
    clinician_id: str | None = None


class StimInterlock:
    """Gate every stimulation command on the implant side (see the module docstring for the gates).

    Parameters
    ----------
    envelope : SafetyEnvelope
    driver : StimDriver
        Gets ``deliver(train, start_s=...)`` for every command that passes.
    clinician_keys : dict of str to Ed25519PublicKey
        The clinicians allowed to stimulate, by id.
    audit : callable, optional
        ``audit(action, *, actor, participant_id=None, **details)``.
    state : ElectrodeState, optional
        The electrodes' live state (default: a new one).
    participant_id : str, optional
        Passed to ``audit``.
    max_age_ns, max_ahead_ns : int
        Freshness window around the implant's clock. Defaults 2 s back, 0.5 s ahead.
    max_commands_per_s : int
        Authenticated commands accepted per rolling second (default 20).
    """

    def __init__(
        self,
        envelope: SafetyEnvelope,
        driver: StimDriver,
        *,
        clinician_keys: Mapping[str, Ed25519PublicKey],
        audit: Callable[..., object] | None = None,
        state: ElectrodeState | None = None,
        participant_id: str | None = None,
        max_age_ns: int = 2 * _NS_PER_S,
        max_ahead_ns: int = _NS_PER_S // 2,
        max_commands_per_s: int = 20,
    ) -> None:
        if not isinstance(envelope, SafetyEnvelope):
            raise InvalidInputError(f"envelope must be a SafetyEnvelope, got {type(envelope).__name__}")
        if not callable(getattr(driver, "deliver", None)):
            raise InvalidInputError("driver must have a deliver(train, *, start_s) method")
        keys = dict(clinician_keys)
        for clinician_id, key in keys.items():
            if not isinstance(clinician_id, str) or not isinstance(key, Ed25519PublicKey):
                raise InvalidInputError(
                    f"clinician_keys must map clinician ids (str) to Ed25519PublicKey, got {clinician_id!r}: "
                    f"{type(key).__name__}"
                )
        if audit is not None and not callable(audit):
            raise InvalidInputError(f"audit must be callable, got {type(audit).__name__}")
        self.envelope = envelope
        self.driver = driver
        self.state = ElectrodeState() if state is None else state
        self.participant_id = participant_id
        self._keys = keys
        self._audit = audit
        self.max_age_ns = check_int(max_age_ns, "max_age_ns", minimum=1)
        self.max_ahead_ns = check_int(max_ahead_ns, "max_ahead_ns", minimum=0)
        self.max_commands_per_s = check_int(max_commands_per_s, "max_commands_per_s", minimum=1)
        self._seen: dict[str, int] = {}  # command id -> issued_ns, forgotten once stale anyway
        self._recent_ns: deque[int] = deque()
        self._last_now_ns = 0
        self.counts: dict[str, int] = dict.fromkeys(("delivered",) + REFUSAL_REASONS, 0)

    def __repr__(self) -> str:
        return f"StimInterlock(clinicians={sorted(self._keys)}, counts={self.counts})"

    def submit(self, command_bytes: bytes, *, now_ns: int) -> StimOutcome:
        """Judge one command received at ``now_ns`` (the implant's clock) and deliver it if it passes.

        Never raises on anything the host sends; a bad ``now_ns`` (the implant's own clock) raises
        :class:`~neurolace.core.errors.InvalidInputError`.
        """
        now_ns = check_int(now_ns, "now_ns", minimum=0)
        now_ns = max(now_ns, self._last_now_ns)  # the implant's clock never runs backwards
        self._last_now_ns = now_ns
        try:
            command = verify_command(command_bytes, self._keys)
        except CommandError as error:
            return self._refuse(error.reason, str(error), None, None, None)
        clinician, command_id = command.clinician_id, command.command_id
        age_ns = now_ns - command.issued_ns
        if age_ns > self.max_age_ns:
            return self._refuse("stale", f"issued {age_ns / 1e9:.3f} s ago (at most {self.max_age_ns / 1e9:g} s)",
                                command_id, clinician, None)
        if -age_ns > self.max_ahead_ns:
            return self._refuse("future", f"issued {-age_ns / 1e9:.3f} s ahead of the implant's clock",
                                command_id, clinician, None)
        self._forget(now_ns)
        if command_id in self._seen:
            return self._refuse("replayed", f"command id {command_id!r} was already received", command_id,
                                clinician, None)
        if len(self._recent_ns) >= self.max_commands_per_s:
            return self._refuse("rate_limited", f"more than {self.max_commands_per_s} commands in one second",
                                command_id, clinician, None)
        self._seen[command_id] = command.issued_ns  # at most max_commands_per_s a second are remembered
        self._recent_ns.append(now_ns)
        start_s = now_ns / _NS_PER_S
        result = self.envelope.check(command.train, state=self.state, start_s=start_s)
        if not result.safe:
            return self._refuse("outside_envelope", "; ".join(v.message for v in result.violations), command_id,
                                clinician, result)
        try:
            self.driver.deliver(command.train, start_s=start_s)
        except DriverError as error:
            return self._refuse("driver_refused", str(error), command_id, clinician, result)
        self.envelope.commit(command.train, self.state, start_s=start_s)
        self.counts["delivered"] += 1
        self._record("stim_delivered", clinician, command_id=command_id, issued_ns=command.issued_ns,
                     received_ns=now_ns, train=command.train.to_dict(),
                     charge_per_phase_nc=result.charge_per_phase_nc,
                     charge_density_uc_per_cm2=result.charge_density_uc_per_cm2, shannon_k=result.shannon_k)
        return StimOutcome(True, command_id, result, "delivered", "delivered", clinician)

    def _forget(self, now_ns: int) -> None:
        horizon = now_ns - self.max_age_ns - self.max_ahead_ns
        if self._seen and len(self._seen) > 4 * self.max_commands_per_s:
            self._seen = {cid: issued for cid, issued in self._seen.items() if issued >= horizon}
        while self._recent_ns and self._recent_ns[0] <= now_ns - _NS_PER_S:
            self._recent_ns.popleft()

    def _refuse(self, reason, message, command_id, clinician, result) -> StimOutcome:
        assert reason in REFUSAL_REASONS, reason
        self.counts[reason] += 1
        details = {"reason": reason, "message": message[:500], "command_id": command_id}
        if result is not None:
            details["rules"] = list(result.rules)
        self._record("stim_refused", clinician or "unauthenticated", **details)
        return StimOutcome(False, command_id, result, reason, message, clinician)

    def _record(self, action: str, actor: str, **details) -> None:
        if self._audit is not None:
            self._audit(action, actor=actor, participant_id=self.participant_id, **details)


@dataclass(frozen=True)
class DeliveredTrain:
    """A train a :class:`SimulatedStimDriver` ran: when, and at which sample of the recording clock.

    Attributes
    ----------
    train : PulseTrain
    start_s : float
        Delivery time on the implant clock (s); the first pulse is at ``start_s + train.onset_s``.
    onset_sample : int
        Index of the first pulse's sample at ``fs_hz`` (``round((start_s + onset_s) * fs_hz)``).
    """

    train: PulseTrain
    start_s: float
    onset_sample: int

    def pulse_samples(self, fs_hz: float):
        """Sample index of every pulse's start at ``fs_hz``, ndarray of int64, shape (n_pulses,)."""
        import numpy as np

        times = self.start_s + self.train.pulse_times_s()
        return np.rint(times * check_positive(fs_hz, "fs_hz")).astype(np.int64)


class SimulatedStimDriver:
    """A stimulator that records what it was asked to run (for the artifact model and tests).

    It re-checks its hardware range (defence in depth, not the safety mechanism: that is the
    interlock's envelope) and raises :class:`~neurolace.stim.errors.DriverError` outside it.

    Parameters
    ----------
    fs_hz : float
        Sample rate of the recording clock the onsets are given on (default the implant's 19,531.25 Hz).
    hardware : HardwareRange
        Default :data:`~neurolace.stim.envelope.CERESTIM_R96`.
    """

    def __init__(self, fs_hz: float = 19531.25, hardware: HardwareRange = CERESTIM_R96) -> None:
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.hardware = hardware
        self.delivered: list[DeliveredTrain] = []

    def deliver(self, train: PulseTrain, *, start_s: float = 0.0) -> None:
        """Record ``train`` as run from ``start_s``; refuse it outside the hardware range."""
        problems = self.hardware.violations(train)
        if problems:
            raise DriverError("; ".join(problem.message for problem in problems))
        onset = round((start_s + train.onset_s) * self.fs_hz)
        self.delivered.append(DeliveredTrain(train, float(start_s), onset))

    def __repr__(self) -> str:
        return f"SimulatedStimDriver(fs_hz={self.fs_hz:g}, delivered={len(self.delivered)})"
