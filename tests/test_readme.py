"""The README's examples run as written: its Python blocks, its commands, and its shell examples.

The shell block under "A few runs, as written" runs line by line in bash from a temporary
directory laid out like a checkout: ``sessions/`` is the repository's, and ``../shared/data``
resolves to the public recordings beside the repository, so every path in it is used exactly as
the README spells it. ``neurolace`` is the one installed beside this interpreter (``.venv/bin``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SHARED_DATA, shared_data

from neurolace.cli.main import build_parser

README = REPO_ROOT / "README.md"
SHELL_HEADING = "A few runs, as written"
SIGNAL_SECTIONS = ("Raw traces", "Spike raster", "Crossing rate per channel", "Noise per channel",
                   "Detection rates", "Spike-band power", "Tuning curves")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def shell_examples() -> list[str]:
    """The lines of the first ```sh block after the "A few runs, as written" sentence."""
    text = README.read_text()
    assert SHELL_HEADING in text, f"README should keep its {SHELL_HEADING!r} examples"
    block = re.search(r"```sh\n(.*?)```", text[text.index(SHELL_HEADING):], flags=re.S)
    assert block, f"README: no ```sh block after {SHELL_HEADING!r}"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_python_examples():
    assert python_blocks(), "README should show how to use neurolace from Python"


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out  # the examples print what they show


def test_readme_commands_exist():
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    named = set(re.findall(r"`neurolace ([a-z]+)", README.read_text()))
    assert named, "README should name its commands"
    assert named <= set(choices), f"README names commands that do not exist: {sorted(named - set(choices))}"


@pytest.fixture
def checkout_like(tmp_path) -> Path:
    """A working directory whose ``sessions/`` and ``../shared/data`` are the real ones."""
    for line in shell_examples():
        for relative in re.findall(r"\.\./shared/data/(\S+)", line):
            shared_data(*relative.split("/"))  # fails, naming the path, when the data is missing
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA, target_is_directory=True)
    work = tmp_path / "neurolace"
    work.mkdir()
    (work / "sessions").symlink_to(REPO_ROOT / "sessions", target_is_directory=True)
    return work


def test_readme_shell_examples_run_as_written_and_show_what_it_says(checkout_like):
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "COLUMNS": "160"}
    outputs = {}
    for line in shell_examples():
        done = subprocess.run(["bash", "-c", line], cwd=checkout_like, env=environment, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"README example failed ({done.returncode}): {line}\n{done.stderr[-2000:]}"
        outputs[line.split()[1]] = done.stdout  # keyed by subcommand (decode keeps the cmp line)

    assert (checkout_like / "small.nwb").is_file()
    detected = json.loads(outputs["detect"])  # --json: exactly one object
    assert detected["n_channels"] == 64 and detected["n_spikes"] > 0

    # the decode line ends in cmp, which printed nothing and exited 0: byte-exact round trip
    source = next(re.finditer(r"\.\./shared/data/\S+\.wav", " ".join(shell_examples()))).group(0)
    assert (checkout_like / "clip.wav").read_bytes() == (checkout_like / source).read_bytes()
    assert (checkout_like / "clip.nlx").stat().st_size < (checkout_like / "clip.wav").stat().st_size / 3

    # 30 s runs past the 20 s calibration: a score, or the reason none was scored
    assert re.search(r"task: (\d+ correct, \d+ incorrect, \d+\.\d\d bits/s|no Webgrid target scored \(.+\))",
                     outputs["run"]), outputs["run"][-2000:]

    report = (checkout_like / "report.html").read_text()
    assert "7 of 10 sections drawn" in outputs["report"]
    assert "needs a session run: BPS per block, Time to target, Loop latency" in outputs["report"]
    assert all(f"<h2>{title}</h2>" in report for title in SIGNAL_SECTIONS)
    assert report.count("data:image/png;base64,") == len(SIGNAL_SECTIONS)
    # the report's crossings are the ones detect found in the same file
    assert f"<td>crossings</td><td>{detected['n_spikes']}</td>" in report


PRIVACY_HEADING = "Privacy, stimulation and surgery planning, as written"


def test_readme_privacy_stimulation_and_surgery_examples_run_as_written(tmp_path):
    """The second shell block, in one bash (its first line exports the site): each line's exit status as it says."""
    text = README.read_text()
    assert PRIVACY_HEADING in text, f"README should keep its {PRIVACY_HEADING!r} examples"
    block = re.search(r"```sh\n(.*?)```", text[text.index(PRIVACY_HEADING):], flags=re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    work = tmp_path / "neurolace"
    work.mkdir()
    for name in ("sessions", "examples"):
        (work / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    script = "\n".join(f"{line.split('  #')[0]}\necho \"@@ $?\"" for line in lines)
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "COLUMNS": "160"}
    environment.pop("NEUROLACE_SITE_DIR", None)
    environment.pop("NEUROLACE_SITE_PASSPHRASE", None)
    done = subprocess.run(["bash", "-c", script], cwd=work, env=environment, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    statuses = [int(code) for code in re.findall(r"^@@ (\d+)$", done.stdout, flags=re.M)]
    expected = [3 if "# exits 3" in line else 0 for line in lines]
    assert statuses == expected, f"exit statuses {statuses}, README says {expected}\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-2000:]}"
    assert "SAFE" in done.stdout and "Shannon k          1.30" in done.stdout
    assert "intact" in done.stdout and (work / "share" / "P001.nwb").is_file()
    assert b"P001" not in (work / "share" / "P001.nwb").read_bytes()  # the participant id left behind
    stored = (work / "site" / "vault" / "P001" / "closed-loop.nlrec").read_bytes()
    assert b"NLREC1" not in stored and b"closed-loop-recorded" not in stored  # nothing of the record in clear
    plan = json.loads((work / "plan.json").read_text())
    assert len(plan["sites"]) == 64 and plan["clearance_um"] == 52.0 and plan["min_margin_um"] >= 0
    assert all(site["margin_um"] >= 0 and 0 <= site["hit_probability"] <= 1 for site in plan["sites"])
    assert 5 * 60 < plan["estimated_duration_s"] < 20 * 60 and (work / "plan.png").stat().st_size > 10_000
