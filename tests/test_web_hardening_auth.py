"""Issue 17, auth half: token lifetimes, the locked user store, revocation, constant-work logins, the limiter."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import subprocess
import sys

import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.web import auth
from neurolace.web.auth import MAX_TOKEN_LIFETIME_S, AuthError, LoginLimiter, TokenSigner, User, WebStore

SECRET = bytes(range(32))


@pytest.mark.parametrize("lifetime_s", [math.inf, 1e300, math.nan, -1.0, 0.0, MAX_TOKEN_LIFETIME_S * 1.01, "12", True])
def test_token_lifetimes_that_never_end_or_make_no_sense_are_refused(tmp_path, lifetime_s):
    with pytest.raises(InvalidInputError, match=r"must be a (finite )?number of seconds"):
        TokenSigner(SECRET, lifetime_s=lifetime_s)
    with pytest.raises(InvalidInputError, match="token_lifetime_s must be"):
        WebStore(tmp_path, token_lifetime_s=lifetime_s)
    with pytest.raises(InvalidInputError, match="lifetime_s must be"):
        TokenSigner(SECRET).issue(User("a", "researcher"), lifetime_s=lifetime_s)


def test_the_longest_lifetime_is_accepted_and_expires():
    signer = TokenSigner(SECRET, lifetime_s=MAX_TOKEN_LIFETIME_S)
    token = signer.issue(User("a", "researcher"), now_s=0.0)
    assert signer.verify(token, now_s=MAX_TOKEN_LIFETIME_S - 1).expires_s == MAX_TOKEN_LIFETIME_S
    with pytest.raises(AuthError, match="token expired"):
        signer.verify(token, now_s=MAX_TOKEN_LIFETIME_S)


def _create_users(data_dir: str, prefix: str, count: int) -> None:
    store = WebStore(data_dir)
    for index in range(count):
        store.create_user(f"{prefix}{index}", "clinician")
        store.set_sharing(f"{prefix}-p", ["clinician"])


def test_concurrent_writers_in_several_processes_lose_no_user(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_create_users, args=(str(tmp_path), f"w{k}-", 15)) for k in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    names = {user.name for user in WebStore(tmp_path).users()}
    assert names == {f"w{k}-{i}" for k in range(3) for i in range(15)}


def test_a_running_store_sees_a_user_the_cli_created_and_keeps_it_on_its_next_write(tmp_path):
    server_store = WebStore(tmp_path)
    server_store.create_user("admin", "researcher")
    seen = []
    server_store.on_change(lambda: seen.append(1))
    created = subprocess.run(
        [sys.executable, "-m", "neurolace.cli.main", "serve", "--data-dir", str(tmp_path), "--create-user", "ana",
         "--role", "clinician", "--json"], capture_output=True, text=True, timeout=120, check=True)
    token = json.loads(created.stdout)["token"]
    assert server_store.authenticate(token).name == "ana"  # before: 'removed or changed role'
    assert seen  # the reload told the listeners
    server_store.set_sharing("sim-001", [])  # a write of the server after the CLI's
    assert {user.name for user in WebStore(tmp_path).users()} == {"admin", "ana"}


def test_revoked_tokens_stop_working_and_new_ones_work(tmp_path):
    store = WebStore(tmp_path)
    user = store.create_user("bo", "researcher")
    old = store.issue_token(user, now_s=1000.0)
    store.revoke_tokens("bo", now_s=1000.5)
    with pytest.raises(AuthError, match="token revoked"):
        store.authenticate(old, now_s=1001.0)
    assert store.authenticate(store.issue_token(user, now_s=1000.6), now_s=1001.0) == user
    with pytest.raises(InvalidInputError, match="no user 'nobody'"):
        store.revoke_tokens("nobody")


def test_every_login_runs_the_key_derivation_once_with_the_same_work(tmp_path, monkeypatch):
    store = WebStore(tmp_path)
    store.create_user("with-pw", "clinician", password="a long password")
    store.create_user("without-pw", "clinician")
    calls = []
    real = hashlib.scrypt

    def spy(password, *, salt, n, r, p, **rest):
        calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, **rest)

    monkeypatch.setattr(auth.hashlib, "scrypt", spy)
    monkeypatch.setattr(auth.hashlib, "pbkdf2_hmac", lambda *a: calls.append("pbkdf2"))
    for name, password in [("with-pw", "a long password"), ("with-pw", "wrong"), ("without-pw", "anything"),
                           ("nobody", "anything"), ("without-pw", "")]:
        calls.clear()
        try:
            store.login(name, password)
        except AuthError as exc:
            assert exc.reason == "unknown user or wrong password"
        assert calls == [(auth.SCRYPT_N, auth.SCRYPT_R, auth.SCRYPT_P)], (name, password, calls)


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_login_limiter_counts_failures_per_user_and_per_address():
    clock = FakeClock()
    limiter = LoginLimiter(max_failures_per_user=3, max_failures_per_address=5, window_s=60.0, clock=clock)
    for _ in range(3):
        limiter.check("ana", "10.0.0.1")
        limiter.failed("ana", "10.0.0.1")
    with pytest.raises(AuthError, match="too many failed logins for this user: try again in 60 s") as refused:
        limiter.check("ana", "10.0.0.2")  # another address does not help
    assert refused.value.status == 429 and refused.value.retry_after_s == 60.0
    limiter.check("bo", "10.0.0.1")
    limiter.failed("bo", "10.0.0.1")
    limiter.failed("cy", "10.0.0.1")
    with pytest.raises(AuthError, match="for this address"):
        limiter.check("dan", "10.0.0.1")  # 5 failures from one address, over several names
    limiter.check("dan", "10.0.0.9")
    clock.now_s = 60.0  # the window slides
    limiter.check("ana", "10.0.0.1")
    limiter.failed("ana", "10.0.0.3")
    limiter.succeeded("ana")
    limiter.check("ana", "10.0.0.3")


def test_data_dir_that_is_a_file_or_a_corrupt_store_is_a_clear_error(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InvalidInputError, match="data directory .*file is a file"):
        WebStore(a_file)
    with pytest.raises(InvalidInputError, match="a parent is a file"):
        WebStore(a_file / "sub")
    (tmp_path / "users.json").write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="must hold an object with 'users'"):
        WebStore(tmp_path)
    (tmp_path / "users.json").write_text("[" * 100_000)
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        WebStore(tmp_path)
