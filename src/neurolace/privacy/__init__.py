"""Neural-data privacy: the encrypted vault, consent records, the audit log, de-identified export.

One capability, usable from Python on its own and used by ``runtime``, ``web``
and ``cli``. Neural data is sensitive by law (Colorado 2024, California 2024,
Montana 2025, Connecticut 2026; Chile's constitution); see docs/privacy.md.

- :mod:`~neurolace.privacy.site`: the site directory (keys, vault, consent, audit log) and its names.
- :mod:`~neurolace.privacy.vault`: envelope encryption, chunked AEAD streams, crypto-shredding.
- :mod:`~neurolace.privacy.consent`: consent per participant and purpose.
- :mod:`~neurolace.privacy.audit`: the hash-chained, signed audit log.
- :mod:`~neurolace.privacy.deidentify`: de-identified NWB copies (imports pynwb: not loaded here).
"""

from neurolace.privacy.audit import AUDIT_ACTIONS, AuditLog, AuditProblem, AuditReport, verify_head, verify_log
from neurolace.privacy.consent import PURPOSES, ConsentRecord, ConsentRegistry
from neurolace.privacy.errors import (
    AuditError,
    ConsentError,
    IntegrityError,
    KeyMissingError,
    PrivacyError,
    ShreddedError,
    WrongPassphraseError,
)
from neurolace.privacy.site import (
    PASSPHRASE_ENV,
    SITE_DIR_ENV,
    check_name,
    check_participant_id,
    default_site_dir,
)
from neurolace.privacy.vault import (
    EntryMissingError,
    Vault,
    VaultEntry,
    VaultReader,
    VaultRef,
    VaultWriter,
    keyring_username,
    resolve_passphrase,
)

__all__ = [
    "AUDIT_ACTIONS",
    "PASSPHRASE_ENV",
    "PURPOSES",
    "SITE_DIR_ENV",
    "AuditError",
    "AuditLog",
    "AuditProblem",
    "AuditReport",
    "ConsentError",
    "ConsentRecord",
    "ConsentRegistry",
    "EntryMissingError",
    "IntegrityError",
    "KeyMissingError",
    "PrivacyError",
    "ShreddedError",
    "Vault",
    "VaultEntry",
    "VaultReader",
    "VaultRef",
    "VaultWriter",
    "WrongPassphraseError",
    "check_name",
    "check_participant_id",
    "default_site_dir",
    "keyring_username",
    "resolve_passphrase",
    "verify_head",
    "verify_log",
]
