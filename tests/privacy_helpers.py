"""A test site: a vault with a fast scrypt, its passphrase in the environment, no OS keyring consulted."""

from __future__ import annotations

from neurolace.privacy.site import PASSPHRASE_ENV
from neurolace.privacy.vault import Vault


def make_site(tmp_path, monkeypatch, passphrase: str, participants=("P001",)):
    """``(site directory, Vault)`` with ``participants`` added."""
    monkeypatch.setenv(PASSPHRASE_ENV, passphrase)
    monkeypatch.setattr("neurolace.privacy.vault._keyring_passphrase", lambda site_dir: None)
    site = tmp_path / "site"
    vault = Vault.create(site, passphrase, scrypt_n=16)
    for pid in participants:
        vault.add_participant(pid)
    return site, vault
