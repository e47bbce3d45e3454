"""The one decision of who may see a participant's data (:func:`can_view`) and its trail (:class:`Access`).

Every endpoint that returns participant data (live sessions, session lists,
Webgrid scores, exports) asks :class:`Access` and nothing else.

Rules:

- a participant sees their own data and nobody else's, whatever is on record;
- with a site's consent records (:class:`neurolace.privacy.consent.ConsentRegistry`),
  a clinician sees a participant's data while consent ``"clinician_view"`` is
  granted and a researcher while ``"research_sharing"`` is (no record: not
  allowed); a withdrawal is seen at the next check, including a withdrawal
  recorded by another process (the registry re-reads its file when it changed);
- without a site (a plain ``neurolace demo``), the user store's per-participant
  sharing choices decide (``WebStore.set_sharing``: the roles a participant
  shares with);
- data that belongs to no participant (``participant_id`` None: a researcher
  playing Webgrid with a mouse) is visible to clinicians and researchers, and
  to its owner (checked by the caller, who knows the owner).

What a role may *do* is decided here too (:data:`ROLE_ACTIONS`,
:func:`allowed_actions`, :func:`check_action`): the server refuses an action a
role lacks (403) and the page shows only the controls of the actions the
server lists for the user (``GET /api/me``), so a participant sees no controls
and a clinician no researcher tools:

- participant: their own live view and Webgrid games; no session controls;
- clinician: also start a calibration, stop a session, run timed Webgrid blocks;
- researcher: also switch decoders, export a session, read the runtime report,
  and tune channels (threshold multiple, channel mask).

There is no administrator role: the ``admin`` user ``neurolace serve`` creates on
a first run is a researcher and sees what consent lets researchers see.

With a site's audit log (:class:`neurolace.privacy.audit.AuditLog`),
:meth:`Access.check` records each decision on a participant's data as
``"access"`` or ``"access_refused"`` (actor, participant, what was asked for);
a decision that cannot be recorded is refused (fail closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neurolace.core.errors import InvalidInputError
from neurolace.privacy.errors import PrivacyError
from neurolace.privacy.site import check_participant_id
from neurolace.web.auth import AuthError, User, WebStore, check_role

if TYPE_CHECKING:  # the privacy package's classes, only for annotations
    from neurolace.privacy.audit import AuditLog
    from neurolace.privacy.consent import ConsentRegistry

__all__ = ["ROLE_ACTIONS", "VIEW_PURPOSES", "Access", "allowed_actions", "can_view", "check_action"]

#: the consent purpose that lets each viewing role see a participant's data
VIEW_PURPOSES = {"clinician": "clinician_view", "researcher": "research_sharing"}
#: roles that see data belonging to no participant
_STAFF_ROLES = tuple(VIEW_PURPOSES)
#: what each role may do on a session it may see (the page shows exactly these controls)
ROLE_ACTIONS = {
    "participant": (),
    "clinician": ("start", "stop", "block"),
    "researcher": ("start", "stop", "block", "decoder", "export", "runtime", "tune"),
}
#: how messages name each action
_ACTION_NAMES = {"start": "start a calibration", "stop": "stop a session", "block": "run a timed block",
                 "decoder": "switch decoders", "export": "export a session", "runtime": "read the runtime report",
                 "tune": "tune channels"}


def allowed_actions(user: User) -> tuple[str, ...]:
    """The actions of :data:`ROLE_ACTIONS` that ``user``'s role may take."""
    return ROLE_ACTIONS.get(user.role, ())


def check_action(user: User, action: str) -> None:
    """Raise :class:`AuthError` (403, naming the roles that may) unless ``user`` may take ``action``."""
    if action in allowed_actions(user):
        return
    if not allowed_actions(user):
        roles, what = [role for role, actions in ROLE_ACTIONS.items() if actions], "control a session"
    else:
        roles = [role for role, actions in ROLE_ACTIONS.items() if action in actions]
        what = _ACTION_NAMES.get(action, action)
    raise AuthError(f"a {user.role} cannot {what} ({' and '.join(r + 's' for r in roles) or 'nobody'} can)",
                    status=403)


def can_view(store: WebStore, user: User, participant_id: str | None, *,
             consent: ConsentRegistry | None = None) -> bool:
    """Whether ``user`` may see data of ``participant_id``.

    Parameters
    ----------
    store : WebStore
        Where participants' sharing choices live (used when ``consent`` is None).
    user : User
        The authenticated viewer.
    participant_id : str or None
        Whose data it is; None for data of no participant.
    consent : ConsentRegistry, optional
        The site's consent records; when given they alone decide for clinicians and researchers.

    Returns
    -------
    bool
    """
    if participant_id is None:
        return user.role in _STAFF_ROLES
    if user.role == "participant":
        return user.participant_id == participant_id
    if consent is None:
        return user.role in store.sharing(participant_id)
    purpose = VIEW_PURPOSES.get(user.role)
    if purpose is None:
        return False
    try:
        return consent.allowed(participant_id, purpose)
    except InvalidInputError:  # an id the site cannot hold has no consent on record
        return False


class Access:
    """Who may see whose data, from the user store and (when a site is set) its consent records and audit log.

    Parameters
    ----------
    store : WebStore
        Users and, without a site, their sharing choices.
    consent : ConsentRegistry, optional
        The site's consent records (:data:`VIEW_PURPOSES` maps roles to purposes).
    audit : AuditLog, optional
        The site's audit log; None records nothing.
    """

    def __init__(self, store: WebStore, *, consent: ConsentRegistry | None = None,
                 audit: AuditLog | None = None) -> None:
        self.store = store
        self.consent = consent
        self.audit = audit

    def __repr__(self) -> str:
        governed = "site consent" if self.consent is not None else "store sharing"
        return f"Access({governed}, audit={'on' if self.audit is not None else 'off'})"

    def can_view(self, user: User, participant_id: str | None) -> bool:
        """:func:`can_view` with this store and consent registry; records nothing (for filters and re-checks).

        Raises
        ------
        AuthError
            Status 503 when the consent records cannot be read (a damaged file): nothing is shown.
        """
        try:
            return can_view(self.store, user, participant_id, consent=self.consent)
        except PrivacyError as exc:
            raise AuthError(f"the consent records cannot be read; nothing is shown ({exc})"[:300], status=503) from exc

    def record(self, action: str, *, actor: str, participant_id: str | None = None, **details) -> None:
        """Append one entry to the site's audit log (nothing without one).

        Raises
        ------
        AuthError
            Status 503 when the log cannot be written, so the caller refuses what it could not record.
        """
        if self.audit is None:
            return
        if participant_id is not None:
            try:
                check_participant_id(participant_id)
            except InvalidInputError:  # a dashboard id the site cannot hold: named in the details instead
                participant_id, details = None, {**details, "participant": participant_id}
        try:
            self.audit.append(action, actor=actor.strip() or "(no name)", participant_id=participant_id, **details)
        except (PrivacyError, OSError) as exc:
            raise AuthError(f"the audit log cannot record this {action}; refused ({exc})"[:300], status=503) from exc

    def check(self, user: User, participant_id: str | None, *, resource: str, **details) -> bool:
        """:meth:`can_view`, recorded as ``"access"`` or ``"access_refused"`` when it concerns a participant.

        Parameters
        ----------
        user : User
        participant_id : str or None
            None (data of no participant) is decided but not recorded.
        resource : str
            What was asked for (``"live_socket"``, ``"session"``, ``"scores"``, ...), written in the entry.
        **details
            More fields for the entry (a session id).
        """
        allowed = self.can_view(user, participant_id)
        if participant_id is not None:
            self.record("access" if allowed else "access_refused", actor=user.name, participant_id=participant_id,
                        resource=resource, role=user.role, **details)
        return allowed

    def on_change(self, callback):
        """Call ``callback()`` after any change of users, sharing or consent; returns an unsubscribe function."""
        unsubscribers = [self.store.on_change(callback)]
        if self.consent is not None:
            unsubscribers.append(self.consent.on_change(callback))

        def unsubscribe() -> None:
            for stop in unsubscribers:
                stop()

        return unsubscribe

    # sharing: the participant's own choice, on the store or as consent records -------------------
    def sharing(self, participant_id: str) -> tuple[str, ...]:
        """Roles that see ``participant_id``'s data now (from consent with a site, else the store)."""
        if self.consent is None:
            return self.store.sharing(participant_id)
        try:
            return tuple(role for role, purpose in VIEW_PURPOSES.items()
                         if self.consent.allowed(participant_id, purpose))
        except InvalidInputError:  # an id the site cannot hold has no consent on record
            return ()

    def set_sharing(self, user: User, participant_id: str, roles: list[str]) -> tuple[str, ...]:
        """The participant ``user`` shares their data with exactly ``roles``; returns the roles now.

        With a site, each role's purpose is granted or withdrawn in the consent
        records (recorded by ``user``; purposes already in the asked state are left
        alone), so the dashboard's sharing switch and ``neurolace consent`` are one record.

        Raises
        ------
        AuthError
            403 unless ``user`` is that participant.
        InvalidInputError
            A role that is not one of the store's roles.
        """
        if user.role != "participant" or user.participant_id != participant_id:
            raise AuthError("only the participant can change who sees their data", status=403)
        if self.consent is None:
            self.store.set_sharing(participant_id, roles)
            return self.store.sharing(participant_id)
        wanted = {check_role(role) for role in roles}
        for role, purpose in VIEW_PURPOSES.items():
            allowed = self.consent.allowed(participant_id, purpose)
            if role in wanted and not allowed:
                self.consent.grant(participant_id, purpose, recorded_by=user.name, note="dashboard sharing")
            elif role not in wanted and allowed:
                self.consent.withdraw(participant_id, purpose, recorded_by=user.name, note="dashboard sharing")
        return self.sharing(participant_id)
