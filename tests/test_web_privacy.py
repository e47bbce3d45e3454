"""Issue 11, dashboard accounts: scrypt passwords, logout, consent-governed views, the audit trail.

The server tests run ``start_in_background`` with a site directory on 127.0.0.1 and talk to it
with real HTTP and WebSocket clients; consent is changed through the registry in this process,
in another process, and through the dashboard's own sharing endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
import websockets
from test_web_hardening import _stream_until_closed, _ws_url

from neurolace.core.errors import InvalidInputError
from neurolace.privacy.audit import read_entries, verify_log
from neurolace.privacy.consent import ConsentRegistry
from neurolace.web import auth
from neurolace.web.access import Access
from neurolace.web.app import CLOSE_ACCESS, CLOSE_TOKEN
from neurolace.web.auth import AuthError, User, WebStore, check_password, hash_password, needs_rehash
from neurolace.web.games import GameResult
from neurolace.web.live import LiveSession
from neurolace.web.server import start_in_background

OWN = "sim-a"  # the live session's participant
OTHER = "sim-b"  # another participant, with a score of their own


def _pbkdf2(password: str, iterations: int = 120_000) -> str:
    """A hash in the format the store wrote before scrypt (a known answer, built with hashlib alone)."""
    salt = bytes(range(16))
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def _set_stored_hash(store: WebStore, name: str, stored: str) -> None:
    path = store.data_dir / "users.json"
    data = json.loads(path.read_text())
    data["users"][name]["password"] = stored
    path.write_text(json.dumps(data))  # as an older neurolace (or another process) left it


# passwords ----------------------------------------------------------------------------------------
def test_new_password_hashes_are_scrypt_and_record_their_parameters():
    stored = hash_password("correct horse battery")
    scheme, parameters, salt_hex, digest_hex = stored.split("$")
    assert (scheme, parameters) == ("scrypt", "n=16384,r=8,p=1")
    salt = bytes.fromhex(salt_hex)
    assert len(salt) == 16 and len(digest_hex) == 64
    expected = hashlib.scrypt(b"correct horse battery", salt=salt, n=16384, r=8, p=1, maxmem=64 * 2**20, dklen=32)
    assert digest_hex == expected.hex()  # plain RFC 7914 scrypt, readable by any implementation
    assert check_password("correct horse battery", stored) and not check_password("correct horse batter", stored)
    stronger = hash_password("correct horse battery", n=2**15)
    assert stronger.startswith("scrypt$n=32768,r=8,p=1$") and check_password("correct horse battery", stronger)
    assert not needs_rehash(stored) and not needs_rehash(stronger) and not needs_rehash(None)


@pytest.mark.parametrize("parameters,message", [
    ({"n": 2**13}, "n a power of two >= 16384"), ({"n": 20000}, "got n=20000"), ({"r": 4}, "r >= 8"),
    ({"p": 0}, "p in \\[1, 16\\]"), ({"n": 2**22}, "at most 256 MiB"), ({"n": 16384.0}, "n must be an integer"),
])
def test_weak_or_unbounded_scrypt_parameters_are_refused(parameters, message):
    with pytest.raises(InvalidInputError, match=message):
        hash_password("a long password", **parameters)


@pytest.mark.parametrize("stored", [
    "scrypt$n=16384,r=8$00$00", "scrypt$n=3,r=8,p=1$00$00", "scrypt$n=1048576,r=64,p=1$00$00",
    "scrypt$n=x,r=8,p=1$00$00", "scrypt$n=16384,r=8,p=1$zz$00", "md5$1$00$00", "", "scrypt",
])
def test_mangled_or_oversized_stored_hashes_never_match_and_cost_one_default_derivation(stored, monkeypatch):
    calls = []
    real = hashlib.scrypt
    monkeypatch.setattr(auth.hashlib, "scrypt", lambda pw, **kw: calls.append((kw["n"], kw["r"])) or real(pw, **kw))
    assert not check_password("a long password", stored)
    assert calls == [(auth.SCRYPT_N, auth.SCRYPT_R)]


def test_a_pbkdf2_hash_still_verifies_and_is_rehashed_to_scrypt_at_the_next_login(tmp_path, monkeypatch):
    store = WebStore(tmp_path)
    store.create_user("ana", "clinician", password="placeholder-pass")
    legacy = _pbkdf2("old clinic password")
    assert check_password("old clinic password", legacy) and needs_rehash(legacy)
    _set_stored_hash(store, "ana", legacy)
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        store.login("ana", "wrong password")
    assert store._record("ana")["password"] == legacy  # a failed login changes nothing
    calls = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(auth.hashlib, "pbkdf2_hmac", lambda *a: calls.append(a[3]) or real(*a))
    assert store.login("ana", "old clinic password") == User("ana", "clinician")
    assert calls == [120_000]  # the login itself ran the legacy derivation once
    migrated = WebStore(tmp_path)._record("ana")["password"]  # on disk, as another process sees it
    assert migrated.startswith("scrypt$n=16384,r=8,p=1$") and not needs_rehash(migrated)
    calls.clear()
    assert WebStore(tmp_path).login("ana", "old clinic password").name == "ana"
    assert calls == []  # from now on scrypt only


def test_a_rehash_does_not_overwrite_a_password_changed_meanwhile(tmp_path):
    store = WebStore(tmp_path)
    store.create_user("bo", "researcher", password="placeholder-pass")
    legacy = _pbkdf2("first password")
    _set_stored_hash(store, "bo", legacy)
    WebStore(tmp_path).create_user("bo", "researcher", password="second password")  # another process
    store._rehash("bo", legacy, hash_password("first password"))
    assert store.login("bo", "second password").name == "bo"
    with pytest.raises(AuthError):
        store.login("bo", "first password")


# single-token revocation --------------------------------------------------------------------------
def test_revoking_one_token_leaves_the_users_other_tokens_and_prunes_expired_ids(tmp_path):
    store = WebStore(tmp_path)
    user = store.create_user("cy", "clinician")
    first = store.issue_token(user, lifetime_s=60.0, now_s=1000.0)
    second = store.issue_token(user, lifetime_s=600.0, now_s=1000.0)
    claims = store.revoke_token(first, now_s=1010.0)
    with pytest.raises(AuthError, match=r"token revoked \(logged out\)"):
        store.authenticate(first, now_s=1020.0)
    assert store.authenticate(second, now_s=1020.0) == user
    assert store.revoked_token_ids() == {claims.token_id: 1060.0}
    third = store.issue_token(user, lifetime_s=600.0, now_s=1100.0)
    store.revoke_token(second, now_s=1100.0)  # the first has expired by now: its id is pruned
    assert set(WebStore(tmp_path).revoked_token_ids()) == {store.signer.verify(second, now_s=1100.0).token_id}
    assert store.authenticate(third, now_s=1101.0) == user
    with pytest.raises(AuthError, match="token expired"):
        store.revoke_token(first, now_s=2000.0)


# the dashboard with a site ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("web")
    site = tmp_path_factory.mktemp("site")
    scores = [GameResult("g-own", "pa", OWN, 30, 30.0, 20, 1, 38.0, 2.5, 1.4).to_dict(),
              GameResult("g-other", "pb", OTHER, 30, 30.0, 12, 3, 18.0, 1.1, 2.2).to_dict()]
    (data_dir / "scores.json").write_text(json.dumps(scores))
    live = LiveSession("live", OWN)
    handle = start_in_background(port=0, data_dir=data_dir, sessions=[live], start_sessions=False, site_dir=site)
    handle.site = site
    store = handle.store
    store.create_user("pa", "participant", participant_id=OWN, password="participant-a-pass")
    store.create_user("pb", "participant", participant_id=OTHER)
    store.create_user("cleo", "clinician", password="clinic-pass")
    store.create_user("rita", "researcher")
    handle.access.consent.grant(OWN, "clinician_view", recorded_by="dr-lee", note="enrolment")
    live.start(wait=True)
    assert live.wait_for_frames(5), f"live session did not produce frames: {live.state} {live.error}"
    yield handle
    handle.stop()


def _token(server, name: str) -> str:
    return server.store.issue_token(server.store.user(name))


def _get(server, path: str, token: str) -> httpx.Response:
    return httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def _entries(server, action: str | None = None) -> list[dict]:
    entries = [entry for _, entry in read_entries(server.site / "audit.log") if entry is not None]
    return [entry for entry in entries if action is None or entry["action"] == action]


def _login(server, username: str, password: str) -> httpx.Response:
    return httpx.post(server.url + "/api/login", json={"username": username, "password": password}, timeout=30.0)


def test_a_site_means_consent_decides_and_nothing_is_shared_by_default(server):
    assert isinstance(server.access, Access) and server.access.consent is not None
    assert server.access.sharing(OWN) == ("clinician",)  # what the fixture's consent record says
    server.store.set_sharing(OWN, ["clinician", "researcher"])  # the store's sharing no longer decides
    try:
        assert [s["session_id"] for s in _get(server, "/api/sessions", _token(server, "cleo")).json()] == ["live"]
        assert _get(server, "/api/sessions", _token(server, "rita")).json() == []  # no research_sharing on record
        assert _get(server, "/api/sessions/live", _token(server, "rita")).status_code == 404
    finally:
        server.store.set_sharing(OWN, ["clinician"])
    assert _get(server, "/api/sessions/live", _token(server, "pa")).status_code == 200  # their own, always


def test_logout_revokes_only_that_token_and_closes_its_socket_at_once(server):
    tokens = [_login(server, "cleo", "clinic-pass").json()["token"] for _ in range(2)]
    logged_out, kept = tokens

    def logout() -> None:
        response = httpx.post(server.url + "/api/logout", headers={"Authorization": f"Bearer {logged_out}"})
        assert response.status_code == 200 and response.json()["logged_out"] == "cleo"

    started = time.monotonic()
    result = asyncio.run(_stream_until_closed(_ws_url(server), logged_out, timeout_s=20.0, action=logout))
    assert result["code"] == CLOSE_TOKEN and "logged out" in result["reason"]
    assert result["closed_after_s"] - started < 20.0
    assert _get(server, "/api/me", logged_out).status_code == 401
    assert httpx.post(server.url + "/api/logout", headers={"Authorization": f"Bearer {logged_out}"}).status_code == 401
    assert _get(server, "/api/me", kept).json()["name"] == "cleo"  # the other token of the same user holds
    assert _get(server, "/api/sessions/live", kept).status_code == 200
    logout_entries = [e for e in _entries(server, "logout") if e["actor"] == "cleo"]
    assert logout_entries and logout_entries[-1]["details"]["token_id"] == server.store.signer.verify(
        logged_out, now_s=time.time()).token_id


async def _frames_then_still_open(url: str, token: str, n_frames: int) -> bool:
    async with websockets.connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"]) as ws:
        received = 0
        while received < n_frames:
            if isinstance(await asyncio.wait_for(ws.recv(), 5.0), bytes):
                received += 1
        return ws.close_code is None


def test_consent_withdrawn_in_another_process_closes_the_clinicians_socket_and_the_next_read(server):
    consent = server.access.consent
    token = _token(server, "cleo")
    withdraw = ("from neurolace.privacy.consent import ConsentRegistry; import sys; "
                "ConsentRegistry.for_site(sys.argv[1]).withdraw(sys.argv[2], 'clinician_view', "
                "recorded_by='dr-lee', note='participant asked')")

    def withdraw_elsewhere() -> None:
        subprocess.run([sys.executable, "-c", withdraw, str(server.site), OWN], check=True, capture_output=True,
                       timeout=120)

    try:
        result = asyncio.run(_stream_until_closed(_ws_url(server), token, timeout_s=60.0, action=withdraw_elsewhere))
        assert result["code"] == CLOSE_ACCESS and "no longer see session 'live'" in result["reason"]
        assert _get(server, "/api/sessions/live", token).status_code == 404
        assert _get(server, "/api/sessions/live/export", token).status_code == 404
        assert _get(server, "/api/sessions", token).json() == []
        closed = [e for e in _entries(server, "access_refused") if e["details"].get("closed")]
        assert closed and closed[-1]["actor"] == "cleo" and closed[-1]["participant_id"] == OWN
    finally:
        consent.grant(OWN, "clinician_view", recorded_by="dr-lee", note="re-consented")
    assert asyncio.run(_frames_then_still_open(_ws_url(server), token, 3))  # granted again: admitted again


def test_the_participant_switches_sharing_into_consent_records_and_the_researcher_follows(server):
    consent = server.access.consent
    participant = _login(server, "pa", "participant-a-pass").json()["token"]
    rita = _token(server, "rita")
    share = httpx.put(f"{server.url}/api/participants/{OWN}/sharing", json={"shared_with_roles": ["clinician",
                      "researcher"]}, headers={"Authorization": f"Bearer {participant}"})
    assert share.status_code == 200 and share.json()["shared_with_roles"] == ["clinician", "researcher"]
    assert consent.history(OWN)[-1].recorded_by == "pa" and consent.allowed(OWN, "research_sharing")
    assert _get(server, "/api/sessions/live", rita).status_code == 200

    def unshare() -> None:
        response = httpx.put(f"{server.url}/api/participants/{OWN}/sharing", json={"shared_with_roles": ["clinician"]},
                             headers={"Authorization": f"Bearer {participant}"})
        assert response.json()["shared_with_roles"] == ["clinician"]

    result = asyncio.run(_stream_until_closed(_ws_url(server), rita, timeout_s=30.0, action=unshare))
    assert result["code"] == CLOSE_ACCESS
    assert not consent.allowed(OWN, "research_sharing") and consent.allowed(OWN, "clinician_view")
    withdrawals = [e for e in _entries(server, "consent_withdraw") if e["actor"] == "pa"]
    assert withdrawals and withdrawals[-1]["details"]["purpose"] == "research_sharing"
    other = httpx.put(f"{server.url}/api/participants/{OTHER}/sharing", json={"shared_with_roles": ["researcher"]},
                      headers={"Authorization": f"Bearer {participant}"})
    assert other.status_code == 403 and not consent.allowed(OTHER, "research_sharing")


def test_a_participant_sees_only_their_own_sessions_and_scores(server):
    own, other = _token(server, "pa"), _token(server, "pb")
    own_scores = _get(server, "/api/webgrid/scores", own).json()
    assert [s["game_id"] for s in own_scores["scores"]] == ["g-own"]
    assert own_scores["decoder_blocks"] == [] or all(b["session_id"] == "live" for b in own_scores["decoder_blocks"])
    other_scores = _get(server, "/api/webgrid/scores", other).json()
    assert [s["game_id"] for s in other_scores["scores"]] == ["g-other"] and other_scores["decoder_blocks"] == []
    assert _get(server, "/api/sessions", other).json() == []
    for path in ("/api/sessions/live", "/api/sessions/live/export", "/api/sessions/live/runtime"):
        assert _get(server, path, other).status_code == 404  # exactly like an unknown id
    assert [s["game_id"] for s in _get(server, "/api/webgrid/scores", _token(server, "cleo")).json()["scores"]] == [
        "g-own"]  # the clinician: only the participant who consented to clinician_view


async def _handshake_status(url: str, token: str) -> int | None:
    try:
        async with websockets.connect(url, subprotocols=["neurolace.v1", f"bearer.{token}"]):
            return None
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


def test_logins_logouts_and_accesses_are_in_the_audit_log_and_it_verifies(server):
    before = len(_entries(server))
    assert _login(server, "cleo", "not the password").status_code == 401
    token = _login(server, "cleo", "clinic-pass").json()["token"]
    assert _get(server, "/api/sessions", token).status_code == 200
    assert _get(server, "/api/webgrid/scores", token).status_code == 200
    assert asyncio.run(_frames_then_still_open(_ws_url(server), token, 1))
    assert asyncio.run(_handshake_status(_ws_url(server), _token(server, "pb"))) == 404
    assert httpx.post(server.url + "/api/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    new = _entries(server)[before:]
    seen = [(e["action"], e["actor"], e["participant_id"], e["details"].get("resource")) for e in new
            if e["action"] != "checkpoint"]
    assert seen == [
        ("login_failed", "cleo", None, None),
        ("login", "cleo", None, None),
        ("access", "cleo", OWN, "session_list"),
        ("access", "cleo", OWN, "scores"),
        ("access", "cleo", OWN, "live_socket"),
        ("access_refused", "pb", OWN, "live_socket"),
        ("logout", "cleo", None, None),
    ]
    assert new[0]["details"]["address"] == "127.0.0.1" and "password" not in json.dumps(new)
    server.access.audit.checkpoint()
    report = verify_log(server.site / "audit.log")
    assert report.ok, report.problems


def test_a_damaged_consent_file_shows_nothing_and_says_why(server, tmp_path):
    store = WebStore(tmp_path / "web")
    (tmp_path / "site").mkdir()
    registry = ConsentRegistry.for_site(tmp_path / "site")
    registry.grant(OWN, "research_sharing", recorded_by="dr-lee")
    access = Access(store, consent=registry)
    assert access.can_view(User("r", "researcher"), OWN)
    (tmp_path / "site" / "consent.json").write_text("{not json")
    with pytest.raises(AuthError, match="consent records cannot be read") as refused:
        access.can_view(User("r", "researcher"), OWN)
    assert refused.value.status == 503
    assert access.can_view(User("p", "participant", OWN), OWN)  # a participant's own data needs no record


# the command line ---------------------------------------------------------------------------------
def _serve_args(argv: list[str]) -> argparse.Namespace:
    from neurolace.cli import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_the_default_site_is_used_only_when_it_exists(tmp_path, monkeypatch):
    from neurolace.cli.serve import site_for

    monkeypatch.setenv("NEUROLACE_SITE_DIR", str(tmp_path / "site"))
    assert site_for(_serve_args([])) is None  # a fresh machine: the dashboard runs without a site
    (tmp_path / "site").mkdir()
    assert site_for(_serve_args([])) == tmp_path / "site"
    assert site_for(_serve_args(["--no-site"])) is None
    assert site_for(_serve_args(["--site", str(tmp_path / "new")])) == tmp_path / "new"
    with pytest.raises(SystemExit):
        _serve_args(["--site", "x", "--no-site"])


def test_revoke_tokens_on_the_command_line_is_audited_with_a_site(tmp_path, capsys):
    WebStore(tmp_path / "web").create_user("vera", "clinician")
    args = _serve_args(["--data-dir", str(tmp_path / "web"), "--site", str(tmp_path / "site"), "--revoke-tokens",
                        "vera"])
    assert args.handler(args) == 0
    entries = [entry for _, entry in read_entries(tmp_path / "site" / "audit.log") if entry["action"] != "checkpoint"]
    assert [(e["action"], e["actor"], e["details"]["user"]) for e in entries] == [("token_revoked", "cli", "vera")]
    assert verify_log(tmp_path / "site" / "audit.log").ok


def test_serve_with_a_site_says_so_and_names_the_missing_consent(tmp_path):
    site = tmp_path / "site"
    process = subprocess.Popen([sys.executable, "-m", "neurolace.cli.main", "serve", "--data-dir", str(tmp_path / "web"),
                                "--site", str(site), "--port", "0", "--no-start", "--participant-id", "sim-q"],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "300"})
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "neurolace consent grant" in line or process.poll() is not None:
                break
    finally:
        process.terminate()
        process.wait(60)
    text = "".join(lines)
    assert f"site {site}: consent records decide who sees what" in text, text
    assert ("participant 'sim-q' has no consent on record for clinician_view (clinicians) or research_sharing "
            "(researchers) to see the live session; record it with"
            f" 'neurolace consent grant sim-q PURPOSE --by NAME --site {site}'") in text
    assert (site / "audit.log").exists() and verify_log(site / "audit.log").ok
