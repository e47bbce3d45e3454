"""De-identified NWB export: strip or replace the identifiers of an NWB file, shift its dates.

:func:`deidentify_nwb` reads one NWB file (a path, or its bytes as read from the vault) and
writes a new file in which every field of :data:`DEID_FIELDS` was removed, replaced,
pseudonymised, generalised or shifted, each with its source:

* HIPAA's Safe Harbor method, 45 CFR 164.514(b)(2)(i), letters (A) to (R): names, geographic
  units smaller than a state, every element of a date but the year (and ages over 89), device
  identifiers and serial numbers, any other unique identifying number or code, full-face
  images;
* DANDI's upload requirements (handbook, "Validation Levels for NWB Files"): a Subject with a
  ``subject_id``, ``species``, ``sex`` and an ``age`` or ``date_of_birth``, so the pseudonym
  replaces the id and an age replaces the date of birth instead of leaving them out; only
  nwbinspector's CRITICAL results block an upload there.

Dates move by a whole number of days, the same for every export of one participant (derive
it with :func:`derive_date_offset_days` from a per-participant secret; the CLI keeps that secret
in the vault, so shredding the participant destroys it too) and are written in UTC (a time
zone narrows down where someone lives). The offset is written nowhere in the output and not
in the report. Times inside the file (series, intervals, spikes) are relative to
``timestamps_reference_time`` and keep their exact values.

Before the output is published, every name, attribute and text dataset of the new file is
scanned for the identifiers that were removed (subject id, experimenter, institution, lab,
session id, serial numbers, the original identifier and the original dates); one found
anywhere (a series description naming the participant, a device named after its serial)
refuses the export, naming the field and the place but never the value. The file is written
through :func:`neurolace.io.atomic.atomic_output`: on any refusal or error nothing is left.

Residual risk, written down in docs/privacy.md: free text this module does not know (series
and table descriptions, custom columns) is kept and only scanned for the known identifiers;
the neural data itself is not altered (and may be identifying in ways no field list covers).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac

from neurolace.core.checks import check_int
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.io.atomic import atomic_output, check_output_path
from neurolace.io.paths import check_input_file
from neurolace.privacy.errors import PrivacyError
from neurolace.privacy.site import check_participant_id

__all__ = [
    "DEID_FIELDS",
    "DATE_OFFSET_RANGE_DAYS",
    "DeidField",
    "DeidReport",
    "FieldChange",
    "IdentifierLeakError",
    "derive_date_offset_days",
    "derive_pseudonym",
    "deidentify_nwb",
    "DEID_KEY_ENTRY",
    "participant_secret",
]

# -- sources (cited by every entry of DEID_FIELDS) -----------------------------------------------

_SAFE_HARBOR = "HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)"
_HIPAA_NAMES = f"{_SAFE_HARBOR}(A) names"
_HIPAA_GEOGRAPHY = f"{_SAFE_HARBOR}(B) geographic subdivisions smaller than a state"
_HIPAA_DATES = f"{_SAFE_HARBOR}(C) all elements of dates except the year; ages over 89 aggregated as 90 or older"
_HIPAA_DEVICES = f"{_SAFE_HARBOR}(M) device identifiers and serial numbers"
_HIPAA_IMAGES = f"{_SAFE_HARBOR}(Q) full-face photographs and comparable images"
_HIPAA_CODES = f"{_SAFE_HARBOR}(R) any other unique identifying number, characteristic or code"
_HIPAA_FREE_TEXT = f"{_SAFE_HARBOR}(A)-(R): free text can hold any of them and cannot be checked"
_DANDI_SUBJECT = (
    "DANDI handbook, Validation Levels for NWB Files: a Subject with subject_id, species, sex and "
    "age or date_of_birth is required"
)
_NOT_AN_IDENTIFIER = "not among the 18 Safe Harbor identifiers; needed to reuse the data"


@dataclass(frozen=True)
class DeidField:
    """One field of an NWB file and what de-identification does to it.

    Attributes
    ----------
    path : str
        Where the field lives (``/general/subject/subject_id``; ``*`` for every object of a kind).
    action : str
        ``"pseudonymised"``, ``"removed"``, ``"replaced"``, ``"shifted"``, ``"generalised"``,
        ``"scrubbed"`` (neurolace's JSON kept without its free-form metadata), ``"refused"``
        (the export stops) or ``"kept"``.
    source : str
        The rule that decides it (HIPAA Safe Harbor letter, DANDI requirement).
    """

    path: str
    action: str
    source: str


_NWBFILE_REMOVED = (
    # (NWBFile field, its path under /general, source, whether the output is scanned for its value)
    ("experimenter", "experimenter", _HIPAA_NAMES, True),
    ("institution", "institution", _HIPAA_GEOGRAPHY, True),
    ("lab", "lab", _HIPAA_GEOGRAPHY, True),
    ("session_id", "session_id", _HIPAA_CODES, True),
    ("protocol", "protocol", f"{_HIPAA_CODES} (a protocol number names the site)", True),
    ("source_script_file_name", "source_script_file_name", f"{_HIPAA_FREE_TEXT} (paths hold user names)", True),
    ("notes", "notes", _HIPAA_FREE_TEXT, False),
    ("experiment_description", "experiment_description", _HIPAA_FREE_TEXT, False),
    ("surgery", "surgery", f"{_HIPAA_FREE_TEXT}; surgery notes hold dates and names", False),
    ("pharmacology", "pharmacology", _HIPAA_FREE_TEXT, False),
    ("virus", "virus", _HIPAA_FREE_TEXT, False),
    ("data_collection", "data_collection", _HIPAA_FREE_TEXT, False),
    ("stimulus_notes", "stimulus", _HIPAA_FREE_TEXT, False),
    ("slices", "slices", _HIPAA_FREE_TEXT, False),
    ("source_script", "source_script", f"{_HIPAA_FREE_TEXT} (paths hold user names)", False),
)
"""NWBFile fields removed: free text, names, places and codes."""


DEID_FIELDS: tuple[DeidField, ...] = (
    DeidField("/identifier", "replaced", f"{_HIPAA_CODES} (a new random UUID)"),
    DeidField("/session_description", "replaced", _HIPAA_FREE_TEXT),
    DeidField("/session_start_time", "shifted", f"{_HIPAA_DATES} (shifted by the participant's offset, in UTC)"),
    DeidField("/timestamps_reference_time", "shifted", _HIPAA_DATES),
    DeidField("/file_create_date", "shifted", _HIPAA_DATES),
    *(DeidField(f"/general/{path}", "removed", source) for _name, path, source, _scan in _NWBFILE_REMOVED),
    DeidField("/general/*lab_meta_data*", "removed", f"{_HIPAA_FREE_TEXT} (extension objects of any content)"),
    DeidField("/scratch/*", "removed", _HIPAA_FREE_TEXT),
    DeidField("/general/keywords", "kept", _NOT_AN_IDENTIFIER),
    DeidField("/general/related_publications", "kept", f"{_NOT_AN_IDENTIFIER} (publications of the study)"),
    DeidField("/general/was_generated_by", "kept", _NOT_AN_IDENTIFIER),
    DeidField("/general/subject/subject_id", "pseudonymised", f"{_HIPAA_CODES}; {_DANDI_SUBJECT}"),
    DeidField("/general/subject/date_of_birth", "removed", f"{_HIPAA_DATES}; the age replaces it ({_DANDI_SUBJECT})"),
    DeidField("/general/subject/age", "generalised", f"{_HIPAA_DATES} (90 or older becomes 'P90Y/')"),
    DeidField("/general/subject/description", "replaced", _HIPAA_FREE_TEXT),
    DeidField("/general/subject/genotype", "removed", f"{_HIPAA_CODES} (genetic data identifies)"),
    DeidField("/general/subject/species", "kept", _DANDI_SUBJECT),
    DeidField("/general/subject/sex", "kept", _DANDI_SUBJECT),
    DeidField("/general/subject/weight", "kept", _NOT_AN_IDENTIFIER),
    DeidField("/general/subject/strain", "kept", _NOT_AN_IDENTIFIER),
    DeidField("/general/devices/*/serial_number", "removed", _HIPAA_DEVICES),
    DeidField("/general/devices/*/description", "replaced", f"{_HIPAA_DEVICES} (descriptions carry serials)"),
    DeidField("/general/devices/*/manufacturer, model_number, model_name", "kept",
              f"{_NOT_AN_IDENTIFIER} (a product, not one unit)"),
    DeidField("/general/extracellular_ephys/*/description", "replaced",
              f"{_HIPAA_DEVICES} (electrode group descriptions carry array serials)"),
    DeidField("*/comments", "scrubbed", f"{_HIPAA_FREE_TEXT} (neurolace's JSON kept without 'metadata')"),
    DeidField("* ImageSeries, OpticalSeries, Images", "refused", _HIPAA_IMAGES),
)
"""Every field :func:`deidentify_nwb` changes or deliberately keeps, with its source."""

DATE_OFFSET_RANGE_DAYS = (-3652, -365)
"""Range of the offsets :func:`derive_date_offset_days` draws from (days, inclusive): one to ten
years into the past, so the year changes too and no date moves into the future (nwbinspector
reports a future ``session_start_time`` as CRITICAL)."""

_DEID_SUBJECT_DESCRIPTION = "participant; identifying details removed on export"
_DEID_SESSION_DESCRIPTION = "de-identified neurolace session export (free text removed on export)"
_DEID_DEVICE_DESCRIPTION = "recording device (description removed on export)"
_NO_COMMENTS = "no comments"

_CORE_NAMESPACES = ("core", "hdmf-common", "hdmf-experimental")
_MIN_SUBSTRING_CHARS = 6  # shorter identifiers are matched as whole words only (case-insensitive)
_DAYS_PER_YEAR = 365.2425
_HIPAA_AGE_LIMIT_YEARS = 90
_ISO_DURATION = re.compile(
    r"P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
_OFFSET_LABEL = b"neurolace deidentify date offset v1\x00"
_PSEUDONYM_LABEL = b"neurolace deidentify pseudonym v1\x00"
_MIN_SECRET_BYTES = 16
_SECRET_BYTES = 32
DEID_KEY_ENTRY = "_deidentify.key"
"""Vault entry holding a participant's de-identification secret (sealed under their data key)."""
DEID_KEY_KIND = "deid_key"


class IdentifierLeakError(PrivacyError):
    """A removed identifier still appears in the de-identified output (nothing was written)."""


@dataclass(frozen=True)
class FieldChange:
    """What was done to one field of one file (never its old value)."""

    path: str
    action: str


@dataclass
class DeidReport:
    """What :func:`deidentify_nwb` did: the fields it changed, never their old values.

    Attributes
    ----------
    out_path : Path
        The de-identified file.
    pseudonym : str
        The subject id written in place of the participant's.
    changes : tuple of FieldChange
        Every field removed, replaced, pseudonymised, generalised, shifted or scrubbed.
    strings_checked : int
        Names, attributes and text values of the output scanned for the removed identifiers.
    notes : tuple of str
        Remarks for the operator (e.g. the source had no Subject).
    """

    out_path: Path
    pseudonym: str
    changes: tuple[FieldChange, ...] = ()
    strings_checked: int = 0
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (holds no removed value and not the date offset)."""
        return {
            "out": str(self.out_path),
            "pseudonym": self.pseudonym,
            "changes": [{"path": change.path, "action": change.action} for change in self.changes],
            "strings_checked": self.strings_checked,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return (
            f"DeidReport(out_path={str(self.out_path)!r}, pseudonym={self.pseudonym!r}, "
            f"{len(self.changes)} field(s) changed, {self.strings_checked} string(s) checked)"
        )


# -- per-participant derivations -------------------------------------------------------------------


def _keyed_digest(secret: bytes, label: bytes, participant_id: str) -> bytes:
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < _MIN_SECRET_BYTES:
        raise InvalidInputError(
            f"secret must be at least {_MIN_SECRET_BYTES} bytes, got "
            + (f"{len(secret)} bytes" if isinstance(secret, (bytes, bytearray)) else type(secret).__name__)
        )
    mac = hmac.HMAC(bytes(secret), hashes.SHA256())
    mac.update(label + check_participant_id(participant_id).encode("ascii"))
    return mac.finalize()


def derive_date_offset_days(secret: bytes, participant_id: str) -> int:
    """The participant's date offset: HMAC-SHA-256(secret, label + id) mapped into the offset range.

    The same secret and id always give the same offset (so every export of one participant
    shifts alike, and intervals between their sessions survive); another id gives an
    independent one. Without the secret the offset cannot be recomputed.

    Parameters
    ----------
    secret : bytes
        At least 16 bytes, kept at the site (the CLI keeps one per participant in the vault).
    participant_id : str
        The participant (checked by :func:`~neurolace.privacy.site.check_participant_id`).

    Returns
    -------
    int
        Days, in :data:`DATE_OFFSET_RANGE_DAYS` (negative: dates move into the past).
    """
    low, high = DATE_OFFSET_RANGE_DAYS
    digest = _keyed_digest(secret, _OFFSET_LABEL, participant_id)
    # 2**64 values over a span of 3288: the modulo bias is below 1e-15
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


def derive_pseudonym(secret: bytes, participant_id: str) -> str:
    """The participant's pseudonym: ``"P-"`` and 16 hex digits of HMAC-SHA-256(secret, label + id).

    A re-identification code in the sense of 45 CFR 164.514(c): it cannot be translated back
    to the id without the site's secret, and the same secret and id always give the same code.
    """
    return "P-" + _keyed_digest(secret, _PSEUDONYM_LABEL, participant_id)[:8].hex().upper()


def participant_secret(vault: Any, participant_id: str) -> bytes:
    """The participant's de-identification secret, kept in the vault (made at the first export).

    32 random bytes in the vault entry :data:`DEID_KEY_ENTRY`, sealed under the participant's
    data key: it is never in the clear on disk, and shredding the participant destroys it
    with the rest of their data. Feed it to :func:`derive_date_offset_days` and
    :func:`derive_pseudonym`.

    Parameters
    ----------
    vault : neurolace.privacy.vault.Vault
        The site's open vault; ``participant_id`` must have a data key in it.
    participant_id : str

    Raises
    ------
    KeyMissingError, ShreddedError
        The participant has no data key (never added, or shredded).
    """
    participant_id = check_participant_id(participant_id)
    if not vault.exists(participant_id, DEID_KEY_ENTRY):
        try:
            vault.write_bytes(participant_id, DEID_KEY_ENTRY, os.urandom(_SECRET_BYTES), kind=DEID_KEY_KIND)
        except InvalidInputError:
            if not vault.exists(participant_id, DEID_KEY_ENTRY):
                raise
            # another export made it meanwhile: use that one
    secret = vault.read_bytes(participant_id, DEID_KEY_ENTRY)
    if len(secret) != _SECRET_BYTES:
        raise PrivacyError(f"vault entry {participant_id}/{DEID_KEY_ENTRY} is not a de-identification secret")
    return secret


# -- field changes ---------------------------------------------------------------------------------


def _set_field(container: Any, name: str, value: Any) -> None:
    """Replace (or, with None, remove) a field of an hdmf container read from a file.

    hdmf fields are write-once through their properties, so the container's ``fields`` dict is
    changed directly, and the container is marked modified so that export rebuilds it from the
    new values instead of reusing what was read.
    """
    if value is None:
        container.fields.pop(name, None)
    else:
        container.fields[name] = value
    container.set_modified()


def _date_strings(value: dt.datetime | dt.date) -> list[str]:
    """The ways a date is spelled in text: ISO date (in its own zone and in UTC) and compact."""
    found = set()
    candidates = [value]
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        candidates.append(value.astimezone(dt.UTC))
    for moment in candidates:
        found.add(moment.strftime("%Y-%m-%d"))
        found.add(moment.strftime("%Y%m%d"))
    return sorted(found)


def _as_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _duration_years(text: str) -> float | None:
    """Length of an ISO 8601 duration in years (months of 1/12 year), or None if it is not one."""
    match = _ISO_DURATION.fullmatch(text.strip())
    if match is None:
        return None
    years, months, weeks, days, hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    total_days = days + 7 * weeks + (hours + minutes / 60 + seconds / 3600) / 24
    return years + months / 12 + total_days / _DAYS_PER_YEAR


def _generalised_age(age: str) -> str:
    """``age`` with every bound of 90 years or more aggregated into the open range ``"P90Y/"``.

    Raises
    ------
    PrivacyError
        ``age`` is not an ISO 8601 duration or range of them, so an age over 89 cannot be told.
    """
    bounds = age.split("/") if "/" in age else [age]
    if len(bounds) > 2:
        raise PrivacyError("subject.age has more than one '/'; expected an ISO 8601 duration or 'LOWER/UPPER'")
    lengths = []
    for bound in bounds:
        years = _duration_years(bound) if bound.strip() else None
        if bound.strip() and years is None:
            raise PrivacyError(
                "subject.age is not an ISO 8601 duration (e.g. 'P34Y') or range ('P30Y/P40Y'), so an age "
                "over 89 could not be aggregated; fix the source file"
            )
        lengths.append(years)
    lower = lengths[0]
    if lower is not None and lower >= _HIPAA_AGE_LIMIT_YEARS:
        return f"P{_HIPAA_AGE_LIMIT_YEARS}Y/"
    if len(bounds) == 2 and lengths[1] is not None and lengths[1] >= _HIPAA_AGE_LIMIT_YEARS:
        return f"{bounds[0].strip()}/"  # the upper bound would tell an age over 89
    return age


def _age_from_birth(date_of_birth: dt.datetime, session_start: dt.datetime) -> str:
    """Whole years from birth to the session, ``"P90Y/"`` from 90 on."""
    years = int((_as_utc(session_start) - _as_utc(date_of_birth)).days // _DAYS_PER_YEAR)
    if years < 0:
        raise PrivacyError("subject.date_of_birth is after session_start_time; fix the source file")
    return f"P{_HIPAA_AGE_LIMIT_YEARS}Y/" if years >= _HIPAA_AGE_LIMIT_YEARS else f"P{years}Y"


def _scrub_comments(comments: str) -> str:
    """neurolace's technical JSON without its free-form ``metadata``; any other text removed."""
    try:
        parsed = json.loads(comments)
    except ValueError:
        return _NO_COMMENTS
    if not isinstance(parsed, dict) or not isinstance(parsed.get("neurolace"), dict) or len(parsed) != 1:
        return _NO_COMMENTS
    info = {key: value for key, value in parsed["neurolace"].items() if key != "metadata"}
    return json.dumps({"neurolace": info})


class _Changes:
    """Collects the field changes and the identifiers the output must not contain."""

    def __init__(self) -> None:
        self.changes: list[FieldChange] = []
        self.identifiers: list[tuple[str, str]] = []  # (field path, value)
        self.notes: list[str] = []

    def record(self, path: str, action: str) -> None:
        self.changes.append(FieldChange(path, action))

    def forbid(self, path: str, value: Any) -> None:
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, (dt.datetime, dt.date)):
                for text in _date_strings(item):
                    self.identifiers.append((path, text))
            elif item is not None and str(item).strip():
                self.identifiers.append((path, str(item).strip()))


_TOP_LEVEL_GROUPS = (("acquisition", "acquisition"), ("stimulus", "stimulus"), ("analysis", "analysis"),
                     ("processing", "processing"), ("devices", "general/devices"))


def _object_path(container: Any) -> str:
    """Where ``container`` sits in the file (``/acquisition/ElectricalSeries``), for messages."""
    parts = []
    walk = container
    while walk is not None and walk.parent is not None:
        parts.append(walk.name)
        if walk.parent.parent is None:  # a child of the NWBFile: name the group that holds it
            for attribute, group in _TOP_LEVEL_GROUPS:
                if walk.parent.fields.get(attribute, {}).get(walk.name) is walk:
                    parts.append(group)
                    break
        walk = walk.parent
    return "/" + "/".join(reversed(parts))


def _refuse_images(nwbfile: Any) -> None:
    from pynwb.base import Image, Images
    from pynwb.image import ImageSeries, OpticalSeries

    for container in nwbfile.objects.values():
        if type(container) in (ImageSeries, OpticalSeries) or isinstance(container, (Images, Image)):
            raise PrivacyError(
                f"{type(container).__name__} {_object_path(container)!r} holds images or video, which may show "
                f"the participant's face ({_HIPAA_IMAGES}); remove it from the source before a de-identified export"
            )


def _deidentify_file_fields(nwbfile: Any, changes: _Changes, offset: dt.timedelta) -> None:
    changes.forbid("/identifier", nwbfile.identifier)
    _set_field(nwbfile, "identifier", str(uuid.uuid4()))
    changes.record("/identifier", "replaced")
    _set_field(nwbfile, "session_description", _DEID_SESSION_DESCRIPTION)
    changes.record("/session_description", "replaced")
    for name, path, _source, is_identifier in _NWBFILE_REMOVED:
        value = nwbfile.fields.get(name)
        if value is None:
            continue
        if is_identifier:
            changes.forbid(f"/general/{path}", value)
        _set_field(nwbfile, name, None)
        changes.record(f"/general/{path}", "removed")
    for name in ("session_start_time", "timestamps_reference_time"):
        value = nwbfile.fields.get(name)
        if value is not None:
            changes.forbid(f"/{name}", value)
            _set_field(nwbfile, name, _as_utc(value) + offset)
            changes.record(f"/{name}", "shifted")
    created = nwbfile.fields.get("file_create_date")
    if created is not None:
        changes.forbid("/file_create_date", list(created))
        _set_field(nwbfile, "file_create_date", [_as_utc(moment) + offset for moment in created])
        changes.record("/file_create_date", "shifted")
    for attribute, label in (("lab_meta_data", "/general"), ("scratch", "/scratch")):
        holder = nwbfile.fields.get(attribute)
        if not holder:
            continue
        for name in list(holder):
            changes.record(f"{label}/{name}", "removed")
        _set_field(nwbfile, attribute, None)


_SUBJECT_FILL_FIELDS = ("species", "sex", "age")
_SEX_CODES = ("M", "F", "O", "U")


def _check_subject_fill(subject: Any) -> dict[str, str]:
    """The ``subject`` argument of :func:`deidentify_nwb`: species, sex and age to fill in."""
    if subject is None:
        return {}
    if not isinstance(subject, dict):
        raise InvalidInputError(f"subject must be a dict of {_SUBJECT_FILL_FIELDS} or None, got {type(subject).__name__}")
    unknown = sorted(set(subject) - set(_SUBJECT_FILL_FIELDS))
    if unknown:
        raise InvalidInputError(f"subject may give only {_SUBJECT_FILL_FIELDS}, got {unknown}")
    fill = {}
    for name, value in subject.items():
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"subject[{name!r}] must be a non-empty string, got {value!r}")
        fill[name] = value.strip()
    if "sex" in fill and fill["sex"] not in _SEX_CODES:
        raise InvalidInputError(f"subject['sex'] must be one of {_SEX_CODES}, got {fill['sex']!r}")
    if "age" in fill:
        _generalised_age(fill["age"])  # refuses what is not an ISO 8601 duration
    return fill


def _deidentify_subject(
    nwbfile: Any, changes: _Changes, participant_id: str, pseudonym: str, fill: dict[str, str]
) -> None:
    from pynwb.file import Subject

    subject = nwbfile.subject
    changes.forbid("/general/subject/subject_id", participant_id)
    if subject is None:
        nwbfile.subject = Subject(subject_id=pseudonym, description=_DEID_SUBJECT_DESCRIPTION, **fill)
        nwbfile.set_modified()
        changes.record("/general/subject", "added (the source has none; it carries the pseudonym)")
        subject = nwbfile.subject
    else:
        if subject.subject_id is not None and str(subject.subject_id) != participant_id:
            raise PrivacyError(
                "the file's subject_id is not the participant this export was consented and audited for "
                f"(participant {participant_id!r}); export it under its own participant"
            )
        for name, value in fill.items():
            if subject.fields.get(name) is None and not (name == "age" and subject.fields.get("date_of_birth")):
                _set_field(subject, name, value)
                changes.record(f"/general/subject/{name}", "added")
    _set_field(subject, "subject_id", pseudonym)
    changes.record("/general/subject/subject_id", "pseudonymised")
    date_of_birth = subject.fields.get("date_of_birth")
    age = subject.fields.get("age")
    if age is not None:
        new_age = _generalised_age(str(age))
        if new_age != age:
            _set_field(subject, "age", new_age)
            changes.record("/general/subject/age", "generalised")
    elif date_of_birth is not None:
        _set_field(subject, "age", _age_from_birth(date_of_birth, nwbfile.fields["session_start_time"]))
        _set_field(subject, "age__reference", "birth")
        changes.record("/general/subject/age", "generalised")
    if date_of_birth is not None:
        changes.forbid("/general/subject/date_of_birth", date_of_birth)
        _set_field(subject, "date_of_birth", None)
        changes.record("/general/subject/date_of_birth", "removed")
    if subject.fields.get("description") is not None:
        _set_field(subject, "description", _DEID_SUBJECT_DESCRIPTION)
        changes.record("/general/subject/description", "replaced")
    if subject.fields.get("genotype") is not None:
        _set_field(subject, "genotype", None)
        changes.record("/general/subject/genotype", "removed")
    missing = [name for name in _SUBJECT_FILL_FIELDS if subject.fields.get(name) is None]
    if missing:
        changes.notes.append(
            f"the Subject has no {', '.join(missing)}: DANDI requires them and nwbinspector reports a "
            "missing age as CRITICAL; give them (deidentify_nwb subject=..., neurolace export --species/--sex/--age)"
        )


def _deidentify_devices_and_series(nwbfile: Any, changes: _Changes) -> None:
    for name, device in (nwbfile.fields.get("devices") or {}).items():
        serial = device.fields.get("serial_number")
        if serial is not None:
            changes.forbid(f"/general/devices/{name}/serial_number", serial)
            _set_field(device, "serial_number", None)
            changes.record(f"/general/devices/{name}/serial_number", "removed")
        if device.fields.get("description") is not None:
            _set_field(device, "description", _DEID_DEVICE_DESCRIPTION)
            changes.record(f"/general/devices/{name}/description", "replaced")
    for name, group in (nwbfile.fields.get("electrode_groups") or {}).items():
        if group.fields.get("description") is not None:
            _set_field(group, "description", f"electrode group {name}")
            changes.record(f"/general/extracellular_ephys/{name}/description", "replaced")
    for container in nwbfile.objects.values():
        comments = container.fields.get("comments") if hasattr(container, "fields") else None
        if not isinstance(comments, str) or comments == _NO_COMMENTS:
            continue
        scrubbed = _scrub_comments(comments)
        if scrubbed != comments:
            _set_field(container, "comments", scrubbed)
            changes.record(f"{_object_path(container)}/comments", "scrubbed")


# -- the leak scan ---------------------------------------------------------------------------------


def _texts(value: Any) -> list[str]:
    import numpy as np

    if isinstance(value, bytes):
        return [value.decode("utf-8", "replace")]
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [text for item in value.ravel() for text in _texts(item)]
    return []


def _matches(identifier: str, text: str) -> bool:
    if len(identifier) >= _MIN_SUBSTRING_CHARS:
        return identifier.casefold() in text.casefold()
    word = r"(?<![0-9A-Za-z])" + re.escape(identifier) + r"(?![0-9A-Za-z])"
    return re.search(word, text, flags=re.IGNORECASE) is not None


def _redacted(text: str, identifiers: list[tuple[str, str]]) -> str:
    """``text`` with every identifier replaced by ``[removed]`` (messages never print one)."""
    for _field_path, identifier in identifiers:
        if len(identifier) >= _MIN_SUBSTRING_CHARS:
            text = re.sub(re.escape(identifier), "[removed]", text, flags=re.IGNORECASE)
        else:
            word = r"(?<![0-9A-Za-z])" + re.escape(identifier) + r"(?![0-9A-Za-z])"
            text = re.sub(word, "[removed]", text, flags=re.IGNORECASE)
    return text


def _scan_for_identifiers(path: Path, identifiers: list[tuple[str, str]]) -> int:
    """Raise IdentifierLeakError if a removed identifier is in a name, attribute or text of ``path``."""
    import h5py

    checked = 0

    def check(text: str, where: str) -> None:
        nonlocal checked
        checked += 1
        for field_path, identifier in identifiers:
            if _matches(identifier, text):
                raise IdentifierLeakError(
                    f"the value removed from {field_path} still appears at {_redacted(where, identifiers)} "
                    "of the output; "
                    "de-identified export refused (nothing written). Remove it from the source file"
                )

    def visit(name: str, item: Any) -> None:
        if name.startswith("specifications/") and name.split("/")[1] in _CORE_NAMESPACES:
            return  # the NWB and hdmf schemas, shipped by the libraries (no user data)
        where = "/" + name
        check(name.rsplit("/", 1)[-1], where)
        for key, value in item.attrs.items():
            for text in _texts(value if not isinstance(value, h5py.Reference) else None):
                check(text, f"{where} attribute {key!r}")
        if isinstance(item, h5py.Dataset) and (item.dtype.kind in "OSU" or h5py.check_string_dtype(item.dtype)):
            for text in _texts(item[()] if item.shape == () else item[...]):
                check(text, where)

    with h5py.File(path, "r") as handle:
        for key, value in handle.attrs.items():
            for text in _texts(value):
                check(text, f"/ attribute {key!r}")
        handle.visititems(visit)
    return checked


# -- the export ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_source(source: str | os.PathLike | bytes):
    """An NWBHDF5IO reading the source file, or the bytes of one (held in memory)."""
    import h5py
    from pynwb import NWBHDF5IO

    in_memory = isinstance(source, (bytes, bytearray, memoryview))
    where = "the NWB bytes given" if in_memory else str(check_input_file(source, "NWB file"))
    try:
        handle = h5py.File(io.BytesIO(bytes(source)) if in_memory else where, "r")
    except OSError as exc:
        raise FormatError(f"{where}: not a readable NWB (HDF5) file: {exc}") from None
    with handle, NWBHDF5IO(file=handle, mode="r") as reader:
        yield reader


def deidentify_nwb(
    src_path_or_bytes: str | os.PathLike | bytes,
    out_path: str | os.PathLike,
    *,
    participant_id: str,
    date_offset_days: int,
    pseudonym: str,
    subject: dict[str, str] | None = None,
    overwrite: bool = False,
) -> DeidReport:
    """Write a de-identified copy of an NWB file: identifiers removed or replaced, dates shifted.

    Every field of :data:`DEID_FIELDS` is handled as listed there; everything else (the raw
    samples, electrodes, detections, features, units, intervals) is copied as it is. The
    output is scanned for the removed identifiers before it is published.

    Parameters
    ----------
    src_path_or_bytes : path or bytes
        The NWB file, or its bytes (e.g. from ``Vault.read_bytes``).
    out_path : path
        The de-identified ``.nwb`` to write (atomically; nothing is left on failure).
    participant_id : str
        The participant the export is for. A file whose ``subject_id`` is another participant's
        is refused (consent and audit were for this one).
    date_offset_days : int
        Days every date moves by, in [-36525, -1] (into the past). Use
        :func:`derive_date_offset_days` so one participant always shifts the same way.
    pseudonym : str
        The subject id of the output (same characters as a participant id; not the id itself).
        Use :func:`derive_pseudonym`.
    subject : dict, optional
        ``species``, ``sex`` (M, F, O or U) and ``age`` (ISO 8601, e.g. ``"P40Y"``) for a source
        without a Subject (one is added, carrying the pseudonym) or to fill the fields its
        Subject lacks (DANDI requires all three); never overrides what the source has.
    overwrite : bool
        Replace an existing ``out_path`` (default: refuse it).

    Returns
    -------
    DeidReport
        The fields changed (without their old values, and without the offset).

    Raises
    ------
    PrivacyError
        The file holds images or video, an age that cannot be aggregated, or another
        participant's subject_id.
    IdentifierLeakError
        A removed identifier still appears somewhere in the output (nothing is written).
    FormatError
        The source is not an NWB file.
    InvalidInputError
        A parameter is malformed, or ``out_path`` cannot be written (or exists, without ``overwrite``).
    """
    from pynwb import NWBHDF5IO

    participant_id = check_participant_id(participant_id)
    try:
        pseudonym = check_participant_id(pseudonym)
    except InvalidInputError:
        raise InvalidInputError(
            f"pseudonym must be 1 to 64 characters of letters, digits, '_' or '-', got {pseudonym!r}"
        ) from None
    if pseudonym == participant_id:
        raise InvalidInputError("pseudonym must differ from participant_id (it replaces it in the output)")
    date_offset_days = check_int(date_offset_days, "date_offset_days", minimum=-36525, maximum=-1)
    fill = _check_subject_fill(subject)
    target = check_output_path(out_path, name="out_path", overwrite=overwrite)
    if not isinstance(src_path_or_bytes, (bytes, bytearray, memoryview)):
        source_path = Path(src_path_or_bytes)
        if source_path.exists() and target.exists() and os.path.samefile(source_path, target):
            raise InvalidInputError(f"out_path {str(target)!r} is the source file; write the export elsewhere")
    offset = dt.timedelta(days=date_offset_days)
    changes = _Changes()
    with _open_source(src_path_or_bytes) as reader, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'", category=UserWarning)
        nwbfile = reader.read()
        _refuse_images(nwbfile)
        _deidentify_subject(nwbfile, changes, participant_id, pseudonym, fill)
        _deidentify_file_fields(nwbfile, changes, offset)
        _deidentify_devices_and_series(nwbfile, changes)
        with atomic_output(target, overwrite=overwrite) as temporary:
            with NWBHDF5IO(str(temporary), mode="w") as writer:
                writer.export(src_io=reader, nwbfile=nwbfile, write_args={"link_data": False})
            checked = _scan_for_identifiers(temporary, changes.identifiers)
    return DeidReport(
        out_path=target,
        pseudonym=pseudonym,
        changes=tuple(changes.changes),
        strings_checked=checked,
        notes=tuple(changes.notes),
    )
