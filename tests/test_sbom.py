"""``make sbom``: the Makefile's own cyclonedx-py command writes a CycloneDX SBOM listing what is installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sbom_recipe() -> list[str]:
    """The command of the Makefile's ``sbom`` target that runs cyclonedx-py, as an argument list."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(index for index, line in enumerate(lines) if re.match(r"^sbom\s*:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    commands = [line for line in recipe if "cyclonedx-py" in line]
    assert len(commands) == 1, f"the Makefile's sbom recipe should run cyclonedx-py once, got {recipe}"
    return commands[0].split()


@pytest.fixture(scope="module")
def sbom(tmp_path_factory) -> dict:
    venv = Path(sys.executable).parent.parent
    out = tmp_path_factory.mktemp("sbom") / "sbom.cdx.json"
    substitutions = {"$(VENV)": str(venv), "$(SBOM)": str(out), "$(PY)": sys.executable}
    command = []
    for word in _sbom_recipe():
        for variable, value in substitutions.items():
            word = word.replace(variable, value)
        assert "$(" not in word, f"unknown Makefile variable in the sbom recipe: {word}"
        command.append(word)
    if not Path(command[0]).exists():
        raise FileNotFoundError(f"{command[0]} is missing: pip install -e '.[test]' (cyclonedx-bom is a test extra)")
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=120)
    return json.loads(out.read_text(encoding="utf-8"))


def test_sbom_is_cyclonedx(sbom):
    assert sbom["bomFormat"] == "CycloneDX"
    assert tuple(int(part) for part in sbom["specVersion"].split(".")) >= (1, 4)
    assert len(sbom["components"]) > 20


@pytest.mark.parametrize("name", ["numpy", "cryptography", "pynwb", "h5py"])
def test_components_carry_the_installed_versions(sbom, name):
    found = [component for component in sbom["components"] if component["name"].lower() == name]
    assert len(found) == 1, f"{name} missing from the SBOM"
    assert found[0]["version"] == metadata.version(name)
    assert found[0]["purl"] == f"pkg:pypi/{name}@{metadata.version(name)}"
