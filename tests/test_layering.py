"""Imports only point downwards through the layers of docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "neurolace"

#: layer rank of each subpackage: a module may import its own rank or lower.
LAYERS = {
    "core": 0,
    "io": 0,
    "dsp": 1,
    "sim": 1,
    "decode": 2,
    "tasks": 2,
    "codec": 2,
    "link": 2,
    "stim": 2,
    "surgery": 2,
    "privacy": 2,
    "runtime": 3,
    "batch": 3,
    "cli": 4,
    "web": 4,
}
#: packages of one layer that must not import each other (one capability each)
INDEPENDENT = {"decode", "tasks", "codec", "link", "stim", "surgery", "privacy"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules():
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        relative = path.relative_to(PACKAGE_ROOT)
        if len(relative.parts) > 1:
            yield relative.parts[0], path


def test_every_subpackage_has_a_layer():
    packages = {p.name for p in PACKAGE_ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - set(LAYERS) == set(), "add new subpackages to LAYERS and docs/architecture.md"


def test_layering_detects_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from neurolace.decode import WienerFilter\nimport neurolace.cli.main\n")
    assert [name for _, name in _imports(bad)] == ["neurolace.decode", "neurolace.cli.main"]


@pytest.mark.parametrize("package,path", list(_modules()), ids=lambda v: str(v)[-40:] if isinstance(v, Path) else v)
def test_imports_point_downwards(package, path):
    own_rank = LAYERS[package]
    for line, module in _imports(path):
        parts = module.split(".")
        if parts[0] != "neurolace" or len(parts) < 2 or parts[1] not in LAYERS:
            continue
        target = parts[1]
        assert LAYERS[target] <= own_rank, (
            f"{path.relative_to(PACKAGE_ROOT)}:{line} imports neurolace.{target} "
            f"(layer {LAYERS[target]}) from layer {own_rank}"
        )
        if package in INDEPENDENT and target in INDEPENDENT and target != package:
            pytest.fail(f"{path.relative_to(PACKAGE_ROOT)}:{line}: {package} must not import {target}")
