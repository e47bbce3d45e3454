"""The one decision of who may see a participant's data: :func:`can_view`.

Every endpoint that returns participant data (live sessions, Webgrid scores,
reports) asks this function and nothing else, so the privacy work's consent
records plug in here: replace the ``shared_with_roles`` lookup with a query of
the consent record (scope, expiry, withdrawal) and every endpoint follows.

Rules today:

- a participant sees their own data and nobody else's;
- a clinician or researcher sees a participant's data when that participant
  shares it with their role (``WebStore.set_sharing``);
- data that belongs to no participant (``participant_id`` None: a researcher
  playing Webgrid with a mouse) is visible to clinicians and researchers, and
  to its owner (checked by the caller, who knows the owner).
"""

from __future__ import annotations

from neurolace.web.auth import User, WebStore

__all__ = ["can_view"]


def can_view(store: WebStore, user: User, participant_id: str | None) -> bool:
    """Whether ``user`` may see data of ``participant_id``.

    Parameters
    ----------
    store : WebStore
        Where participants' sharing choices live.
    user : User
        The authenticated viewer.
    participant_id : str or None
        Whose data it is; None for data of no participant.

    Returns
    -------
    bool
    """
    if participant_id is None:
        return user.role in ("clinician", "researcher")
    if user.role == "participant":
        return user.participant_id == participant_id
    return user.role in store.sharing(participant_id)
