"""Tokens, passwords, the user store and the one access check of the dashboard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat

import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.web.access import can_view
from neurolace.web.auth import AuthError, TokenSigner, User, WebStore, check_password, hash_password

SECRET = bytes(range(32))
ALICE = User("alice", "researcher")


def test_token_round_trip_carries_user_role_and_expiry():
    signer = TokenSigner(SECRET, lifetime_s=60.0)
    claims = signer.verify(signer.issue(ALICE, now_s=1000.0), now_s=1059.0)
    assert (claims.subject, claims.role, claims.issued_s, claims.expires_s) == ("alice", "researcher", 1000.0, 1060.0)


def test_token_signature_is_hmac_sha256_of_prefix_and_payload():
    token = TokenSigner(SECRET).issue(ALICE, now_s=0.0)
    prefix, payload, signature = token.split(".")
    expected = hmac.new(SECRET, f"{prefix}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


def test_expired_token_is_refused_with_how_long_ago():
    signer = TokenSigner(SECRET, lifetime_s=60.0)
    token = signer.issue(ALICE, now_s=1000.0)
    with pytest.raises(AuthError, match=r"token expired 40 s ago; log in again"):
        signer.verify(token, now_s=1100.0)


def test_forged_or_mangled_tokens_are_refused():
    signer = TokenSigner(SECRET)
    token = signer.issue(ALICE)
    prefix, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "clinician"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="invalid token signature"):
        signer.verify(f"{prefix}.{forged}.{signature}")
    with pytest.raises(AuthError, match="invalid token signature"):
        TokenSigner(bytes(32)).verify(token)
    with pytest.raises(AuthError, match="malformed token: expected 'nl1"):
        signer.verify("eyJhbGciOiJub25lIn0.e30.")
    with pytest.raises(AuthError, match="missing token"):
        signer.verify(None)
    with pytest.raises(AuthError, match="missing token"):
        signer.verify("")


def test_signer_refuses_a_short_secret():
    with pytest.raises(InvalidInputError, match="at least 32 bytes"):
        TokenSigner(b"short")


def test_password_hash_checks_only_the_right_password():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$n=16384,r=8,p=1$")
    assert check_password("correct horse", stored)
    assert not check_password("correct hors", stored)
    assert not check_password("anything", None)
    assert not check_password("anything", "md5$1$00$00")
    with pytest.raises(InvalidInputError, match="at least 8 characters"):
        hash_password("short")


def test_store_persists_users_and_keeps_secret_private(tmp_path):
    store = WebStore(tmp_path)
    store.create_user("ana", "clinician", password="s3cret-pass")
    store.create_user("p01", "participant", participant_id="sim-007")
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    reopened = WebStore(tmp_path)
    assert reopened.user("p01") == User("p01", "participant", "sim-007")
    assert reopened.login("ana", "s3cret-pass") == User("ana", "clinician", None)
    token = store.issue_token(reopened.user("ana"))
    assert reopened.authenticate(token).name == "ana"  # same secret on disk
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        reopened.login("ana", "wrong-pass")
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        reopened.login("nobody", "s3cret-pass")
    assert reopened.sharing("sim-007") == ("clinician",)  # a new participant shares with their clinician only


def test_token_dies_with_a_changed_role(tmp_path):
    store = WebStore(tmp_path)
    token = store.issue_token(store.create_user("bo", "researcher"))
    store.create_user("bo", "clinician")
    with pytest.raises(AuthError, match="removed or changed role"):
        store.authenticate(token)


def test_store_checks_names_and_roles(tmp_path):
    store = WebStore(tmp_path)
    with pytest.raises(InvalidInputError, match="role must be one of participant, clinician, researcher; got 'admin'"):
        store.create_user("x", "admin")
    with pytest.raises(InvalidInputError, match="user name must be 1-64 characters"):
        store.create_user("bad name/..", "researcher")
    with pytest.raises(InvalidInputError, match="only participants have a participant id"):
        store.create_user("r", "researcher", participant_id="sim-001")


def test_can_view_follows_the_participants_sharing(tmp_path):
    store = WebStore(tmp_path)
    store.set_sharing("sim-001", ["clinician"])
    store.set_sharing("sim-002", ["clinician", "researcher"])
    own = User("p1", "participant", "sim-001")
    clinician, researcher = User("c", "clinician"), User("r", "researcher")
    assert can_view(store, own, "sim-001")
    assert not can_view(store, own, "sim-002")
    assert can_view(store, clinician, "sim-001") and can_view(store, clinician, "sim-002")
    assert not can_view(store, researcher, "sim-001") and can_view(store, researcher, "sim-002")
    assert not can_view(store, researcher, "never-registered")
    assert can_view(store, researcher, None) and not can_view(store, own, None)
    store.set_sharing("sim-001", [])
    assert not can_view(store, clinician, "sim-001") and can_view(store, own, "sim-001")
