"""Consent records: what each participant agreed to, who recorded it and when.

One JSON file per site (``site/consent.json``, mode 0600) holds every grant and
withdrawal ever recorded, oldest first; nothing is rewritten or removed, and the
current state of a purpose is its last record. No record means **not allowed**.

Every change is a read-modify-write under an exclusive ``flock`` on
``consent.json.lock`` ending in an atomic rename, so the CLI and a running server
never lose each other's records. Readers compare the file's (inode, size, mtime_ns)
stamp at every :meth:`ConsentRegistry.allowed` call and re-read it when it changed, so
a withdrawal recorded by another process (``neurolace consent withdraw``) blocks a
long-running server's next check at once; :meth:`ConsentRegistry.on_change` tells
listeners (an open dashboard session) when that happens.

With an :class:`~neurolace.privacy.audit.AuditLog`, every grant and withdrawal is
audited (``consent_grant`` / ``consent_withdraw``) and every
:meth:`ConsentRegistry.require` check too (``access`` / ``access_refused``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from neurolace.core.checks import check_in
from neurolace.core.errors import InvalidInputError
from neurolace.privacy.errors import ConsentError, IntegrityError
from neurolace.privacy.locking import Listeners, file_stamp, locked
from neurolace.privacy.site import CONSENT_FILE, check_participant_id, resolve_site_dir, write_secret_file

__all__ = ["PURPOSES", "ConsentRecord", "ConsentRegistry"]

PURPOSES = ("clinician_view", "research_sharing", "model_training", "export_off_site")
"""What a participant can consent to: a clinician viewing their data, sharing it for research,
training models on it, and exporting it off the site."""

FILE_VERSION = 1
MAX_NAME_CHARS = 200
MAX_NOTE_CHARS = 2000
RECORD_FIELDS = ("pid", "purpose", "granted", "recorded_by", "time_ns", "note")


@dataclass(frozen=True)
class ConsentRecord:
    """One grant (``granted=True``) or withdrawal of consent to a purpose, as recorded.

    ``time_ns`` is wall-clock time in ns since the Unix epoch; ``recorded_by`` names who
    recorded it (a clinician, a study coordinator).
    """

    pid: str
    purpose: str
    granted: bool
    recorded_by: str
    time_ns: int
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _check_text(value, name: str, *, maximum: int, allow_empty: bool) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()) or len(value) > maximum:
        wanted = "a string" if allow_empty else "a non-empty string"
        raise InvalidInputError(f"{name} must be {wanted} of at most {maximum} characters, got {value!r}")
    return value


def _record_from(raw, path: Path, index: int) -> ConsentRecord:
    if not isinstance(raw, dict) or set(raw) != set(RECORD_FIELDS):
        raise IntegrityError(
            f"consent file {path}: record {index} must hold the fields {', '.join(RECORD_FIELDS)}"
        )
    if (raw["purpose"] not in PURPOSES or not isinstance(raw["granted"], bool)
            or not isinstance(raw["time_ns"], int) or isinstance(raw["time_ns"], bool)
            or not isinstance(raw["recorded_by"], str) or not isinstance(raw["note"], str)
            or not isinstance(raw["pid"], str)):
        raise IntegrityError(f"consent file {path}: record {index} has a field of the wrong type or value")
    return ConsentRecord(**raw)


class ConsentRegistry:
    """The consent records of one site, shared safely between processes.

    Parameters
    ----------
    path : str or path-like
        The consent file (``site/consent.json``); created 0600 at the first record.
    audit : AuditLog, optional
        Where grants, withdrawals and :meth:`require` checks are audited.

    Examples
    --------
    >>> consent = ConsentRegistry.for_site("out/site", audit=log)          # doctest: +SKIP
    >>> consent.grant("P001", "clinician_view", recorded_by="dr_lee")      # doctest: +SKIP
    >>> consent.require("P001", "clinician_view", actor="dr_lee")          # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, audit=None) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InvalidInputError(f"consent file path {self.path} is a directory")
        self.audit = audit
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock = threading.RLock()
        self._listeners = Listeners()
        self._stamp = None
        self._records: list[ConsentRecord] = []
        self._state: dict[tuple[str, str], ConsentRecord] = {}
        self._current()  # a corrupt file is refused at once

    @classmethod
    def for_site(cls, site_dir: str | os.PathLike | None = None, audit=None) -> ConsentRegistry:
        """The registry of a site directory (``site/consent.json``)."""
        return cls(resolve_site_dir(site_dir) / CONSENT_FILE, audit=audit)

    def __repr__(self) -> str:
        return f"ConsentRegistry({str(self.path)!r}, audit={self.audit!r})"

    # the file -----------------------------------------------------------------------------------
    def _read(self) -> list[ConsentRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except UnicodeDecodeError as exc:
            raise IntegrityError(f"consent file {self.path} is not UTF-8 text: {exc}") from exc
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise IntegrityError(f"consent file {self.path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != FILE_VERSION or not isinstance(
                data.get("records"), list):
            raise IntegrityError(
                f"consent file {self.path} must hold {{'version': {FILE_VERSION}, 'records': [...]}}")
        return [_record_from(raw, self.path, index) for index, raw in enumerate(data["records"])]

    def _load(self, records: list[ConsentRecord], stamp) -> None:
        self._records = records
        self._state = {(record.pid, record.purpose): record for record in records}
        self._stamp = stamp

    def _current(self) -> None:
        """Re-read the file if another process replaced it since we last looked; tell listeners."""
        with self._lock:
            stamp = file_stamp(self.path)
            if stamp == self._stamp:
                return
            self._load(self._read(), stamp)
        self._listeners.notify()

    def _record(self, pid: str, purpose: str, granted: bool, recorded_by: str, note: str) -> ConsentRecord:
        check_participant_id(pid)
        check_in(purpose, "purpose", PURPOSES)
        _check_text(recorded_by, "recorded_by", maximum=MAX_NAME_CHARS, allow_empty=False)
        _check_text(note, "note", maximum=MAX_NOTE_CHARS, allow_empty=True)
        with locked(self._lock_path, self._lock):
            records = self._read()
            record = ConsentRecord(pid, purpose, granted, recorded_by, time.time_ns(), note)
            records.append(record)
            payload = {"version": FILE_VERSION, "records": [r.to_dict() for r in records]}
            write_secret_file(self.path, json.dumps(payload, indent=1) + "\n")
            self._load(records, file_stamp(self.path))
            if self.audit is not None:
                self.audit.append("consent_grant" if granted else "consent_withdraw", actor=recorded_by,
                                  participant_id=pid, purpose=purpose, note=note)
        self._listeners.notify()
        return record

    # public -------------------------------------------------------------------------------------
    def grant(self, pid: str, purpose: str, *, recorded_by: str, note: str = "") -> ConsentRecord:
        """Record that participant ``pid`` consents to ``purpose``; returns the record.

        Raises
        ------
        InvalidInputError
            A bad participant id, an unknown purpose (one of :data:`PURPOSES`), an empty
            ``recorded_by``.
        """
        return self._record(pid, purpose, True, recorded_by, note)

    def withdraw(self, pid: str, purpose: str, *, recorded_by: str, note: str = "") -> ConsentRecord:
        """Record that participant ``pid`` withdraws consent to ``purpose``: every reader's next check refuses."""
        return self._record(pid, purpose, False, recorded_by, note)

    def allowed(self, pid: str, purpose: str) -> bool:
        """True if the last record for ``pid`` and ``purpose`` is a grant (no record: False).

        Re-reads the file first when another process changed it, so it is cheap enough to
        call on every access (one ``stat`` when nothing changed).
        """
        check_participant_id(pid)
        check_in(purpose, "purpose", PURPOSES)
        self._current()
        with self._lock:
            record = self._state.get((pid, purpose))
        return record is not None and record.granted

    def require(self, pid: str, purpose: str, *, actor: str) -> None:
        """Refuse unless ``pid`` consents to ``purpose`` now; audit it as ``access`` or ``access_refused``.

        Raises
        ------
        ConsentError
            No consent on record, or it was withdrawn (the message names the participant,
            the purpose, and who withdrew it when).
        """
        _check_text(actor, "actor", maximum=MAX_NAME_CHARS, allow_empty=False)
        allowed = self.allowed(pid, purpose)
        if self.audit is not None:
            self.audit.append("access" if allowed else "access_refused", actor=actor, participant_id=pid,
                              purpose=purpose)
        if allowed:
            return
        with self._lock:
            record = self._state.get((pid, purpose))
        if record is None:
            raise ConsentError(f"participant {pid!r} has no consent on record for {purpose!r}")
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.time_ns / 1e9))
        raise ConsentError(f"participant {pid!r} withdrew consent for {purpose!r} "
                           f"(recorded by {record.recorded_by} at {when})")

    def current(self, pid: str) -> dict[str, bool]:
        """``{purpose: allowed}`` for every purpose of :data:`PURPOSES`."""
        check_participant_id(pid)
        self._current()
        with self._lock:
            return {purpose: bool(self._state.get((pid, purpose)) and self._state[(pid, purpose)].granted)
                    for purpose in PURPOSES}

    def history(self, pid: str) -> list[ConsentRecord]:
        """Every record of ``pid``, oldest first (an unknown participant has none)."""
        check_participant_id(pid)
        self._current()
        with self._lock:
            return [record for record in self._records if record.pid == pid]

    def on_change(self, callback):
        """Call ``callback()`` after every grant or withdrawal (ours, or another process's once seen).

        Returns a function that stops the calls.
        """
        return self._listeners.add(callback)
