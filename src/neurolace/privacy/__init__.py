"""Neural-data privacy: the encrypted vault, consent records, the audit log, de-identified export.

One capability, usable from Python on its own and used by ``runtime``, ``web``
and ``cli``. Neural data is sensitive by law (Colorado 2024, California 2024,
Montana 2025, Connecticut 2026; Chile's constitution); see docs/privacy.md.
"""

from neurolace.privacy.errors import (
    AuditError,
    ConsentError,
    IntegrityError,
    KeyMissingError,
    PrivacyError,
    ShreddedError,
    WrongPassphraseError,
)

__all__ = [
    "AuditError",
    "ConsentError",
    "IntegrityError",
    "KeyMissingError",
    "PrivacyError",
    "ShreddedError",
    "WrongPassphraseError",
]
