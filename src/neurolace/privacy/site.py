"""The site directory: where a clinical site keeps its vault, consent records and audit log.

One site directory per clinical site (default ``./out/site``, or the directory named by
the environment variable ``NEUROLACE_SITE_DIR``; the CLI's ``--site DIR``)::

    site/site.json            the vault: version, scrypt parameters and salt, the wrapped site key
    site/keys/<pid>.key       the participant's data key, wrapped by the site key
    site/vault/<pid>/<name>   chunked AEAD streams (neurolace.privacy.vault)
    site/consent.json         consent records (neurolace.privacy.consent)
    site/audit.log            the hash-chained audit log (neurolace.privacy.audit)
    site/audit_signing.key    its Ed25519 signing key (audit_signing.pub beside it)

This module owns the layout's names, the checks of participant ids and vault entry
names (so no name can leave its directory), and the two ways to put things on disk
privately: directories of mode 0700 and secret files of mode 0600 written atomically
(through :func:`neurolace.io.atomic.atomic_output`, so a crash leaves the old file or
nothing).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from neurolace.core.errors import InvalidInputError
from neurolace.io.atomic import atomic_output

__all__ = [
    "AUDIT_LOG_FILE",
    "AUDIT_PUBLIC_KEY_FILE",
    "AUDIT_SIGNING_KEY_FILE",
    "CONSENT_FILE",
    "DEFAULT_SITE_DIR",
    "KEYS_DIR",
    "PARTIAL_SUFFIX",
    "PASSPHRASE_ENV",
    "PRIVATE_DIR_MODE",
    "SECRET_FILE_MODE",
    "SITE_DIR_ENV",
    "SITE_FILE",
    "VAULT_DIR",
    "check_name",
    "check_participant_id",
    "default_site_dir",
    "make_private_dir",
    "resolve_site_dir",
    "write_secret_file",
]

SITE_DIR_ENV = "NEUROLACE_SITE_DIR"
"""Environment variable naming the site directory when none is given."""

PASSPHRASE_ENV = "NEUROLACE_SITE_PASSPHRASE"
"""Environment variable holding the site passphrase (never pass it on the command line)."""

DEFAULT_SITE_DIR = Path("out") / "site"

SITE_FILE = "site.json"
KEYS_DIR = "keys"
VAULT_DIR = "vault"
CONSENT_FILE = "consent.json"
AUDIT_LOG_FILE = "audit.log"
AUDIT_SIGNING_KEY_FILE = "audit_signing.key"
AUDIT_PUBLIC_KEY_FILE = "audit_signing.pub"

PRIVATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600

_PARTICIPANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# One path component: starts with a letter, digit or underscore (never "." or ".."), no separators.
_ENTRY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
PARTIAL_SUFFIX = ".partial"
"""Suffix of a vault stream still being written (renamed away when its writer closes)."""


def default_site_dir() -> Path:
    """The site directory to use when none is given: ``$NEUROLACE_SITE_DIR``, else ``./out/site``."""
    value = os.environ.get(SITE_DIR_ENV, "").strip()
    return Path(value) if value else DEFAULT_SITE_DIR


def resolve_site_dir(site_dir: str | os.PathLike | None) -> Path:
    """``site_dir`` as a :class:`~pathlib.Path`, or :func:`default_site_dir` when it is None."""
    if site_dir is None:
        return default_site_dir()
    if not isinstance(site_dir, (str, os.PathLike)) or not str(site_dir):
        raise InvalidInputError(f"site_dir must be a directory path, got {site_dir!r}")
    return Path(site_dir)


def check_participant_id(pid) -> str:
    """Return ``pid`` after checking it is 1 to 64 characters of ``A-Z a-z 0-9 _ -``.

    A participant id becomes a file and directory name in the site, so nothing else
    is allowed (no separators, no dots, no spaces).

    Raises
    ------
    InvalidInputError
        ``pid`` is not a string of that form.
    """
    if not isinstance(pid, str) or _PARTICIPANT_ID.fullmatch(pid) is None:
        raise InvalidInputError(
            f"participant id must be 1 to 64 characters of letters, digits, '_' or '-', got {pid!r}"
        )
    return pid


def check_name(name) -> str:
    """Return ``name`` after checking it is a safe vault entry name (one file name, no traversal).

    Allowed: 1 to 200 characters of letters, digits, ``.``, ``_`` and ``-``, starting with a
    letter, digit or ``_`` (so never ``.``, ``..`` or a hidden file), not ending in ``.partial``
    (the suffix of a stream being written).

    Raises
    ------
    InvalidInputError
        ``name`` has a path separator, starts with a dot, or has other characters.
    """
    if not isinstance(name, str) or _ENTRY_NAME.fullmatch(name) is None:
        raise InvalidInputError(
            "vault entry name must be one file name of 1 to 200 letters, digits, '.', '_' or '-' "
            f"starting with a letter, digit or '_' (no '/' or '..'), got {name!r}"
        )
    if name.endswith(PARTIAL_SUFFIX):
        raise InvalidInputError(f"vault entry name must not end in {PARTIAL_SUFFIX!r}, got {name!r}")
    return name


def make_private_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and missing parents) and make ``path`` itself mode 0700; return it.

    Missing parents are created 0700 too; existing parents are left as they are.

    Raises
    ------
    InvalidInputError
        ``path`` exists and is not a directory.
    """
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"{directory} exists and is not a directory")
    missing = []
    walk = directory
    while not walk.exists() and walk != walk.parent:
        missing.append(walk)
        walk = walk.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # made by another process meanwhile
            pass
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    os.chmod(directory, PRIVATE_DIR_MODE)
    return directory


def write_secret_file(
    path: str | os.PathLike, data: bytes | str, *, overwrite: bool = True
) -> Path:
    """Write ``data`` to ``path`` atomically with mode 0600 (set before a byte is written).

    The folder holding ``path`` is created 0700 when missing. A crash leaves the
    previous file or none (never half a file).

    Parameters
    ----------
    path : str or path-like
        The file to write.
    data : bytes or str
        The content (a str is written as UTF-8).
    overwrite : bool
        If false, an existing file is refused (:class:`neurolace.io.atomic.OutputExistsError`).

    Returns
    -------
    Path
        ``path``.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        make_private_dir(parent)
    with atomic_output(target, overwrite=overwrite) as temporary:
        os.chmod(temporary, SECRET_FILE_MODE)
        with open(temporary, "wb") as stream:
            stream.write(payload)
    os.chmod(target, SECRET_FILE_MODE)
    return target
