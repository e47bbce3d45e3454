"""The vault: exact round trips, every kind of tampering refused by name, crypto-shredding, keys and modes."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolace.core.errors import InvalidInputError
from neurolace.privacy.errors import (
    IntegrityError,
    KeyMissingError,
    ShreddedError,
    WrongPassphraseError,
)
from neurolace.privacy.site import (
    PASSPHRASE_ENV,
    SITE_DIR_ENV,
    check_name,
    check_participant_id,
    default_site_dir,
    make_private_dir,
    write_secret_file,
)
from neurolace.privacy.vault import MAGIC, EntryMissingError, Vault, keyring_username

PASSPHRASE = "correct horse battery staple"
SMALL_N = 2**4  # scrypt cost for tests only (the default is 2**15)
MARKER = b"CLEAR-TEXT-MARKER-7f3a"
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def site(tmp_path):
    return tmp_path / "site"


@pytest.fixture
def vault(site):
    vault = Vault.create(site, PASSPHRASE, scrypt_n=SMALL_N)
    vault.add_participant("P1")
    vault.add_participant("P2")
    return vault


@pytest.fixture(autouse=True)
def no_ambient_passphrase(monkeypatch):
    """No test sees a passphrase from the developer's environment or keyring."""
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    install_keyring(monkeypatch, {})


def install_keyring(monkeypatch, secrets: dict):
    """Make ``keyring`` use an in-memory backend holding ``secrets`` {(service, user): password}."""
    import keyring
    import keyring.backend

    class MemoryKeyring(keyring.backend.KeyringBackend):
        priority = 1

        def get_password(self, service, username):
            return secrets.get((service, username))

        def set_password(self, service, username, password):
            secrets[(service, username)] = password

        def delete_password(self, service, username):
            secrets.pop((service, username), None)

    monkeypatch.setattr(keyring.core, "_keyring_backend", MemoryKeyring())  # undone after the test


def chunk_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each ``u32 length | ciphertext`` chunk of a stream file."""
    offset = len(MAGIC) + 16
    (length,) = struct.unpack_from("<I", data, offset)
    offset += 4 + length
    spans = []
    while offset < len(data):
        (length,) = struct.unpack_from("<I", data, offset)
        spans.append((offset, offset + 4 + length))
        offset += 4 + length
    return spans


def stream_file(vault, name="s.bin", chunks=(b"first chunk", b"second chunk", b"third chunk"), pid="P1"):
    with vault.writer(pid, name, kind="test", metadata={"note": "x"}) as writer:
        for chunk in chunks:
            writer.write_chunk(chunk)
    return vault.path(pid, name)


# --- the site directory ---------------------------------------------------------------------------

@pytest.mark.parametrize("pid", ["P1", "a", "x" * 64, "site-3_participant-12"])
def test_participant_ids_accepted(pid):
    assert check_participant_id(pid) == pid


@pytest.mark.parametrize("pid", ["", "x" * 65, "P 1", "../P1", "P1/..", "P.1", "é", None, 7])
def test_participant_ids_refused(pid):
    with pytest.raises(InvalidInputError, match="participant id must be 1 to 64"):
        check_participant_id(pid)


@pytest.mark.parametrize(
    "name", ["..", ".", "../x", "a/b", "/etc/passwd", ".hidden", "a\\b", "x.partial", "", "a\0b"]
)
def test_entry_names_cannot_leave_the_vault(vault, name):
    with pytest.raises(InvalidInputError, match="vault entry name"):
        check_name(name)
    with pytest.raises(InvalidInputError, match="vault entry name"):
        vault.path("P1", name)


def test_default_site_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv(SITE_DIR_ENV, raising=False)
    assert default_site_dir().as_posix() == "out/site"
    monkeypatch.setenv(SITE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_site_dir() == tmp_path / "elsewhere"


def test_private_dirs_and_secret_files(tmp_path):
    folder = make_private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    secret = write_secret_file(tmp_path / "new" / "s.key", b"secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert secret.read_bytes() == b"secret"
    assert [p.name for p in secret.parent.iterdir()] == ["s.key"]  # no temporary left


def test_site_files_are_private(vault, site):
    stream_file(vault)
    for path in [site, *site.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


# --- keys -----------------------------------------------------------------------------------------

def test_create_refuses_an_existing_site(vault, site):
    with pytest.raises(InvalidInputError, match="already has a vault"):
        Vault.create(site, PASSPHRASE, scrypt_n=SMALL_N)


def test_open_with_the_passphrase(vault, site):
    reopened = Vault.open(site, PASSPHRASE)
    stream_file(vault)
    assert reopened.read_bytes("P1", "s.bin") == b"first chunksecond chunkthird chunk"
    assert reopened.participants() == ["P1", "P2"]


def test_wrong_passphrase_is_named(vault, site):
    with pytest.raises(WrongPassphraseError, match="passphrase does not open the vault of site"):
        Vault.open(site, "wrong")


def test_open_a_missing_site(tmp_path):
    with pytest.raises(KeyMissingError, match="no vault in site .*vault init"):
        Vault.open(tmp_path / "nothing", PASSPHRASE)


def test_corrupt_site_file(vault, site):
    (site / "site.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="site.json is not valid JSON"):
        Vault.open(site, PASSPHRASE)


def test_altered_scrypt_cost_is_refused_not_run(vault, site):
    document = json.loads((site / "site.json").read_text())
    document["kdf"]["n"] = 2**40
    (site / "site.json").write_text(json.dumps(document))
    with pytest.raises(IntegrityError, match="kdf.n must be <="):
        Vault.open(site, PASSPHRASE)


def test_passphrase_from_the_environment(vault, site, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    assert Vault.open(site).participants() == ["P1", "P2"]
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(WrongPassphraseError):
        Vault.open(site)


def test_passphrase_from_the_keyring(vault, site, monkeypatch):
    install_keyring(monkeypatch, {("neurolace", keyring_username(site)): PASSPHRASE})
    assert Vault.open(site).participants() == ["P1", "P2"]


def test_no_passphrase_anywhere_names_both_sources(vault, site):
    with pytest.raises(KeyMissingError, match=f"set {PASSPHRASE_ENV}, or keep it in the OS keyring"):
        Vault.open(site)


def test_scrypt_n_must_be_a_power_of_two(tmp_path):
    with pytest.raises(InvalidInputError, match="scrypt_n must be a power of two"):
        Vault.create(tmp_path / "s", PASSPHRASE, scrypt_n=1000)
    assert not (tmp_path / "s").exists()


def test_participants(vault):
    with pytest.raises(InvalidInputError, match="already has a data key"):
        vault.add_participant("P1")
    with pytest.raises(KeyMissingError, match="participant P3 has no data key.*add-participant P3"):
        vault.writer("P3", "x", kind="test")


def test_a_key_file_copied_to_another_participant_is_refused(vault, site):
    stream_file(vault, pid="P2")
    (site / "keys" / "P2.key").write_bytes((site / "keys" / "P1.key").read_bytes())
    with pytest.raises(IntegrityError, match="P2.key fails authentication"):
        vault.read_bytes("P2", "s.bin")


def test_audit_hook_sees_key_operations(site):
    calls = []

    def audit(action, *, actor, participant_id=None, **details):
        calls.append((action, actor, participant_id))

    vault = Vault.create(site, PASSPHRASE, scrypt_n=SMALL_N, audit=audit, actor="admin")
    vault.add_participant("P1", actor="admin")
    Vault.open(site, PASSPHRASE, audit=audit, actor="nurse")
    with pytest.raises(WrongPassphraseError):
        Vault.open(site, "bad", audit=audit, actor="mallory")
    vault.shred("P1", actor="admin")
    assert calls == [
        ("key_create", "admin", None), ("key_create", "admin", "P1"), ("key_open", "nurse", None),
        ("access_refused", "mallory", None), ("key_shred", "admin", "P1"),
    ]


# --- round trips ----------------------------------------------------------------------------------

@PROPERTY
@given(chunks=st.lists(st.binary(max_size=300), max_size=8))
def test_chunks_round_trip_exactly(vault, chunks):
    name = f"r{os.urandom(6).hex()}"
    with vault.writer("P1", name, kind="test") as writer:
        for chunk in chunks:
            writer.write_chunk(chunk)
    with vault.reader("P1", name) as reader:
        assert list(reader) == chunks
        assert reader.clean and reader.chunks_read == len(chunks)


@PROPERTY
@given(data=st.binary(max_size=5000), chunk_bytes=st.integers(1, 2000))
def test_bytes_round_trip_exactly(vault, data, chunk_bytes):
    name = f"b{os.urandom(6).hex()}"
    vault.write_bytes("P1", name, data, kind="blob", metadata={"n": len(data)}, chunk_bytes=chunk_bytes)
    assert vault.read_bytes("P1", name) == data
    with vault.reader("P1", name) as reader:
        assert reader.metadata == {"n": len(data)} and reader.kind == "blob"


def test_no_clear_bytes_on_disk(vault, site):
    payload = MARKER * 5000
    vault.write_bytes("P1", "marked.bin", payload, kind="marker-kind", metadata={"subject": MARKER.decode()})
    with vault.writer("P1", "open.bin", kind="test") as writer:
        writer.write_chunk(MARKER)
    unclosed = vault.writer("P2", "partial.bin", kind="test")
    unclosed.write_chunk(MARKER)
    assert vault.read_bytes("P1", "marked.bin") == payload
    for path in site.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert MARKER not in content and b"marker-kind" not in content, path
    unclosed.abort()


def test_list_and_entries(vault):
    vault.write_bytes("P1", "a.bin", b"abc", kind="blob")
    writer = vault.writer("P1", "b.rec", kind="record")
    writer.write_chunk(b"x")
    entries = {entry.name: entry for entry in vault.list("P1")}
    assert entries["a.bin"].kind == "blob" and entries["a.bin"].complete
    assert entries["b.rec"].kind == "record" and not entries["b.rec"].complete
    assert entries["a.bin"].size_bytes == vault.path("P1", "a.bin").stat().st_size
    writer.close()
    assert all(entry.complete for entry in vault.list("P1"))
    assert vault.list("P2") == []


def test_an_entry_is_never_overwritten_unless_asked(vault):
    vault.write_bytes("P1", "a.bin", b"one", kind="blob")
    with pytest.raises(InvalidInputError, match="already exists"):
        vault.write_bytes("P1", "a.bin", b"two", kind="blob")
    vault.write_bytes("P1", "a.bin", b"two", kind="blob", overwrite=True)
    assert vault.read_bytes("P1", "a.bin") == b"two"


def test_a_failed_write_publishes_nothing(vault):
    with pytest.raises(RuntimeError), vault.writer("P1", "x.bin", kind="test") as writer:
        writer.write_chunk(b"data")
        raise RuntimeError("boom")
    assert not vault.exists("P1", "x.bin")
    assert list(vault.path("P1", "x.bin").parent.iterdir()) == []


def test_missing_entry(vault):
    with pytest.raises(EntryMissingError, match="P1/nothing.bin of site .* does not exist"):
        vault.read_bytes("P1", "nothing.bin")


def test_bad_metadata(vault):
    with pytest.raises(InvalidInputError, match="JSON-serialisable"):
        vault.writer("P1", "x", kind="test", metadata={"a": object()})
    with pytest.raises(InvalidInputError, match="kind must be"):
        vault.writer("P1", "x", kind="")


# --- tampering ------------------------------------------------------------------------------------

def test_every_flipped_bit_is_detected(vault):
    path = stream_file(vault, chunks=(b"a" * 7, b"b" * 3))
    original = path.read_bytes()
    for bit in range(len(original) * 8):
        damaged = bytearray(original)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        with pytest.raises(IntegrityError, match=str(path)):
            vault.read_bytes("P1", "s.bin")
    path.write_bytes(original)
    assert vault.read_bytes("P1", "s.bin") == b"a" * 7 + b"b" * 3


def test_every_truncation_is_detected(vault):
    path = stream_file(vault)
    original = path.read_bytes()
    spans = chunk_spans(original)
    for size in range(len(original)):
        path.write_bytes(original[:size])
        with pytest.raises(IntegrityError, match=str(path)):
            vault.read_bytes("P1", "s.bin")
    for index, (_, end) in enumerate(spans[:-1]):  # cut at a chunk boundary: named after that chunk
        path.write_bytes(original[:end])
        with pytest.raises(IntegrityError, match=f"truncated after chunk {index}: its last chunk is missing"):
            vault.read_bytes("P1", "s.bin")


def test_swapped_chunks_are_detected(vault):
    path = stream_file(vault)
    data = path.read_bytes()
    (a0, a1), (b0, b1) = chunk_spans(data)[:2]
    path.write_bytes(data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:])
    with pytest.raises(IntegrityError, match="chunk 0 fails authentication"):
        vault.read_bytes("P1", "s.bin")


def test_a_dropped_chunk_is_detected(vault):
    path = stream_file(vault)
    data = path.read_bytes()
    start, end = chunk_spans(data)[1]
    path.write_bytes(data[:start] + data[end:])
    with pytest.raises(IntegrityError, match="chunk 1 fails authentication"):
        vault.read_bytes("P1", "s.bin")


def test_a_chunk_spliced_from_another_stream_is_detected(vault):
    path = stream_file(vault, "a.bin")
    other = stream_file(vault, "b.bin").read_bytes()
    data = path.read_bytes()
    start, end = chunk_spans(data)[1]
    o_start, o_end = chunk_spans(other)[1]  # same index, same participant, same length
    path.write_bytes(data[:start] + other[o_start:o_end] + data[end:])
    with pytest.raises(IntegrityError, match="chunk 1 fails authentication"):
        vault.read_bytes("P1", "a.bin")


def test_data_after_the_last_chunk_is_detected(vault):
    path = stream_file(vault)
    path.write_bytes(path.read_bytes() + b"\0" * 20)
    with pytest.raises(IntegrityError, match="20 bytes after the last chunk"):
        vault.read_bytes("P1", "s.bin")


def test_another_participants_file_is_refused(vault, site):
    path = stream_file(vault, pid="P1")
    target = vault.path("P2", "s.bin")
    target.write_bytes(path.read_bytes())
    with pytest.raises(IntegrityError, match=f"{target}: stream header fails authentication.*wrong key"):
        vault.read_bytes("P2", "s.bin")


def test_a_renamed_file_is_refused(vault):
    path = stream_file(vault)
    path.rename(vault.path("P1", "renamed.bin"))
    with pytest.raises(IntegrityError, match="belongs to P1/s.bin, not P1/renamed.bin"):
        vault.read_bytes("P1", "renamed.bin")


def test_another_sites_file_is_refused(vault, tmp_path):
    other = Vault.create(tmp_path / "other", PASSPHRASE, scrypt_n=SMALL_N)
    other.add_participant("P1")
    path = stream_file(other)
    vault.path("P1", "s.bin").write_bytes(path.read_bytes())
    with pytest.raises(IntegrityError, match="wrong key"):
        vault.read_bytes("P1", "s.bin")


def test_not_a_vault_file(vault):
    vault.path("P1", "plain.txt").write_bytes(b"hello world, this is not encrypted at all")
    with pytest.raises(IntegrityError, match="not a neurolace vault stream"):
        vault.read_bytes("P1", "plain.txt")


def test_recovery_reads_up_to_the_first_bad_chunk(vault):
    path = stream_file(vault)
    data = bytearray(path.read_bytes())
    start, _ = chunk_spans(bytes(data))[1]
    data[start + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with vault.reader("P1", "s.bin", strict=False) as reader:
        assert list(reader) == [b"first chunk"]
        assert "chunk 1 fails authentication" in reader.problem
        assert reader.good_bytes == start and reader.discarded_bytes == len(data) - start
        assert not reader.clean


# --- crashes --------------------------------------------------------------------------------------

def test_a_killed_writer_loses_nothing_it_wrote(vault, site):
    script = textwrap.dedent(f"""
        import os
        from neurolace.privacy.vault import Vault
        vault = Vault.open({str(site)!r}, {PASSPHRASE!r})
        writer = vault.writer("P1", "killed.bin", kind="test")
        for index in range(5):
            writer.write_chunk(b"chunk %d" % index)
        os._exit(0)  # killed: no close, no last chunk
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert not vault.path("P1", "killed.bin").exists()
    with pytest.raises(IntegrityError, match="truncated after chunk 4"):
        vault.read_bytes("P1", "killed.bin")
    with vault.reader("P1", "killed.bin", strict=False) as reader:
        assert list(reader) == [b"chunk %d" % index for index in range(5)]
        assert not reader.complete
    with pytest.raises(InvalidInputError, match="was interrupted"):
        vault.writer("P1", "killed.bin", kind="test")


# --- shredding ------------------------------------------------------------------------------------

def test_a_shredded_participants_files_cannot_be_opened(vault, site):
    path = stream_file(vault, pid="P1")
    already_open = Vault.open(site, PASSPHRASE)  # e.g. another process, opened before the shred
    vault.shred("P1", actor="admin")
    assert path.exists()  # the ciphertext stays; its key is gone
    assert not (site / "keys" / "P1.key").exists()
    for opener in (vault, already_open, Vault.open(site, PASSPHRASE)):
        with pytest.raises(ShreddedError, match="P1's data key was shredded"):
            opener.read_bytes("P1", "s.bin")
    with pytest.raises(ShreddedError):
        vault.writer("P1", "new.bin", kind="test")
    with pytest.raises(ShreddedError, match="never reused"):
        vault.add_participant("P1")
    with pytest.raises(ShreddedError, match="already shredded"):
        vault.shred("P1", actor="admin")
    assert vault.participants() == ["P2"] and vault.shredded() == ["P1"]
    stream_file(vault, pid="P2")  # others are untouched
    assert vault.read_bytes("P2", "s.bin")


def test_shred_needs_an_actor_and_a_participant(vault):
    with pytest.raises(InvalidInputError, match="actor"):
        vault.shred("P1", actor="")
    with pytest.raises(KeyMissingError, match="nothing to shred"):
        vault.shred("P9", actor="admin")
