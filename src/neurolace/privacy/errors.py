"""The privacy package's error classes: what was refused, and what was missing or wrong.

Every refusal names what is missing (a key, a consent, a participant) or what is
wrong (a chunk that fails its tag, a log entry whose hash does not chain), so the
CLI can print one clear line and exit non-zero, and nothing is written in the clear.
"""

from __future__ import annotations

from neurolace.core.errors import FormatError, NeurolaceError

__all__ = [
    "AuditError",
    "ConsentError",
    "IntegrityError",
    "KeyMissingError",
    "PrivacyError",
    "ShreddedError",
    "WrongPassphraseError",
]


class PrivacyError(NeurolaceError):
    """Base class of every refusal of the privacy package."""


class WrongPassphraseError(PrivacyError):
    """The site passphrase (or keyring secret) does not unwrap the site key."""


class KeyMissingError(PrivacyError):
    """A key the operation needs is not there (no site key set up, no data key for the participant)."""


class ShreddedError(KeyMissingError):
    """The participant's data key was destroyed (crypto-shredding): their files can never be read again."""


class IntegrityError(PrivacyError, FormatError):
    """A stored file was altered: a flipped bit, a truncation, a reordered or spliced chunk, a wrong key."""


class ConsentError(PrivacyError, PermissionError):
    """The participant has not consented (or has withdrawn consent) to this purpose."""


class AuditError(PrivacyError, FormatError):
    """The audit log cannot be opened, appended to, or verified."""
