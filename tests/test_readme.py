"""The README's Python examples run as written and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from neurolace.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


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
