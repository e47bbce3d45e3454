"""``neurolace vault`` and ``run --vault``: exit status 0 when it works, 2 and one clear line when not."""

from __future__ import annotations

import json
import stat

import pytest
from cli_helpers import error_line, run_cli

from neurolace.privacy.site import PASSPHRASE_ENV
from neurolace.privacy.vault import Vault

PASSPHRASE = "cli test passphrase"


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    monkeypatch.setattr("neurolace.privacy.vault._keyring_passphrase", lambda site_dir: None)
    return tmp_path / "site"


def init(site, capsys, *extra):
    return run_cli(["vault", "init", "--site", site, "--scrypt-n", "16", *extra], capsys)


def test_init_add_list_cat_shred(site, tmp_path, capsys):
    code, out, _ = init(site, capsys, "--json")
    assert code == 0 and json.loads(out)["created"]
    assert run_cli(["vault", "add-participant", "P1", "--site", site, "--by", "admin"], capsys)[0] == 0
    Vault.open(site, PASSPHRASE).write_bytes("P1", "scores.json", b'{"bps": 4.1}', kind="scores")
    code, out, _ = run_cli(["vault", "list", "--site", site, "--json"], capsys)
    assert code == 0 and json.loads(out)["participants"] == ["P1"]
    code, out, _ = run_cli(["vault", "list", "P1", "--site", site, "--json"], capsys)
    (entry,) = json.loads(out)["entries"]
    assert entry["name"] == "scores.json" and entry["kind"] == "scores" and entry["complete"]
    target = tmp_path / "clear" / "scores.json"
    code, out, _ = run_cli(["vault", "cat", "P1", "scores.json", "--out", target, "--site", site], capsys)
    assert code == 0 and target.read_bytes() == b'{"bps": 4.1}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    code, _, err = run_cli(["vault", "cat", "P1", "scores.json", "--out", target, "--site", site], capsys)
    assert code == 2 and "--force" in error_line(err, "vault")
    code, _, err = run_cli(["vault", "shred", "P1", "--site", site], capsys)
    assert code == 2 and "add --yes to confirm" in error_line(err, "vault")
    assert run_cli(["vault", "shred", "P1", "--yes", "--by", "dr_lee", "--site", site], capsys)[0] == 0
    code, _, err = run_cli(["vault", "cat", "P1", "scores.json", "--out", tmp_path / "again", "--site", site],
                           capsys)
    assert code == 2 and "shredded" in error_line(err, "vault")
    assert not (tmp_path / "again").exists()
    actions = [json.loads(line)["action"] for line in (site / "audit.log").read_text().splitlines()]
    assert [a for a in actions if a.startswith("key_") or a == "export"] == [
        "key_create", "key_open", "key_create", "key_open", "key_open", "key_open", "export", "key_open",
        "key_shred", "key_open",
    ]


def test_bad_input_is_one_line_and_status_2(site, tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["vault", "list", "--site", site], capsys)
    assert code == 2 and "no vault in site" in error_line(err, "vault")
    assert not site.exists()  # a refused command writes nothing
    init(site, capsys)
    code, _, err = init(site, capsys)
    assert code == 2 and "already has a vault" in error_line(err, "vault")
    code, _, err = run_cli(["vault", "add-participant", "../P1", "--site", site], capsys)
    assert code == 2 and "participant id must be" in error_line(err, "vault")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    code, _, err = run_cli(["vault", "list", "--site", site, "--passphrase-file", wrong], capsys)
    assert code == 2 and "passphrase does not open the vault" in error_line(err, "vault")
    code, _, err = run_cli(["vault", "list", "--site", site, "--passphrase-file", tmp_path / "none"], capsys)
    assert code == 2 and "cannot read --passphrase-file" in error_line(err, "vault")
    monkeypatch.delenv(PASSPHRASE_ENV)
    code, _, err = run_cli(["vault", "list", "--site", site], capsys)
    assert code == 2 and f"set {PASSPHRASE_ENV}, or keep it in the OS keyring" in error_line(err, "vault")
    code, _, err = run_cli(["vault", "init", "--site", site, "--scrypt-n", "1000"], capsys)
    assert code == 2


def test_passphrase_file_and_missing_entry(site, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(PASSPHRASE_ENV)
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    assert init(site, capsys, "--passphrase-file", secret)[0] == 0
    assert Vault.open(site, PASSPHRASE).participants() == []
    added = run_cli(["vault", "add-participant", "P1", "--site", site, "--passphrase-file", secret], capsys)
    assert added[0] == 0
    code, _, err = run_cli(["vault", "cat", "P1", "nothing.bin", "--out", tmp_path / "x", "--site", site,
                            "--passphrase-file", secret], capsys)
    assert code == 2 and "does not exist" in error_line(err, "vault")
    assert not (tmp_path / "x").exists()


def test_cat_recover_writes_the_intact_part_of_an_unfinished_entry(site, tmp_path, capsys):
    init(site, capsys)
    vault = Vault.open(site, PASSPHRASE)
    vault.add_participant("P1")
    writer = vault.writer("P1", "run.nlrec", kind="record")
    writer.write_chunk(b"block 0;")
    writer.write_chunk(b"block 1;")  # never closed: a killed run
    code, _, err = run_cli(["vault", "cat", "P1", "run.nlrec", "--out", tmp_path / "a", "--site", site],
                           capsys)
    assert code == 2 and "truncated after chunk 1" in error_line(err, "vault")
    assert not (tmp_path / "a").exists()
    code, _, err = run_cli(["vault", "cat", "P1", "run.nlrec", "--out", tmp_path / "b", "--recover",
                            "--site", site], capsys)
    assert code == 0 and (tmp_path / "b").read_bytes() == b"block 0;block 1;" and "intact part only" in err


def test_run_records_into_the_vault(site, tmp_path, capsys):
    from neurolace.runtime.recorder import read_record

    init(site, capsys)
    Vault.open(site, PASSPHRASE).add_participant("P1")
    session = tmp_path / "session.toml"
    session.write_text(
        '[session]\nname = "vaulted"\n[nodes.participant]\ntype = "sim_participant"\nn_channels = 8\n'
        '[nodes.recorder]\ntype = "recorder"\npath = "run.nlrec"\ninputs = { streams = "*" }\n'
    )
    code, out, err = run_cli(["run", session, "--duration-s", "0.3", "--vault", "--participant", "P1",
                              "--site", site, "--json"], capsys)
    assert code == 0, err
    assert not (tmp_path / "run.nlrec").exists() and not (tmp_path / "run.nwb").exists()
    vault = Vault.open(site, PASSPHRASE)
    assert {entry.name for entry in vault.list("P1")} == {"run.nlrec", "run.nwb"}
    assert read_record(vault.ref("P1", "run.nlrec")).clean
    code, _, err = run_cli(["run", session, "--duration-s", "0.3", "--vault", "--site", site], capsys)
    assert code == 2 and "--vault needs --participant" in error_line(err, "run")
    code, _, err = run_cli(["run", session, "--duration-s", "0.3", "--participant", "P1"], capsys)
    assert code == 2 and "go with --vault" in error_line(err, "run")
    code, _, err = run_cli(["run", session, "--duration-s", "0.3", "--vault", "--participant", "P2",
                            "--site", site], capsys)
    assert code != 0 and "P2 has no data key" in err
