"""Imports run one way: the settings and stream specs at the bottom, transforms and connectors on them, the
Prefect-free engine over those, the hosts of a run (runner) over the engine, the Prefect flows over the
runner, the command line on top; the sandbox (emulator, demo shop) stands alone, so the
emulator never shares a guess with the client it checks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
OURS = {"altcraft_sync", "transforms", "connectors", "engine", "runner", "flows", "sandbox", "cli"}
ALLOWED = {
    "altcraft_sync": {"altcraft_sync"},
    "transforms": {"altcraft_sync", "transforms"},
    "connectors": {"altcraft_sync", "connectors"},
    "engine": {"altcraft_sync", "transforms", "connectors", "engine"},
    "runner": {"altcraft_sync", "transforms", "connectors", "engine", "runner"},
    "flows": {"altcraft_sync", "transforms", "connectors", "engine", "runner", "flows"},
    "sandbox": {"sandbox"},
    "cli": OURS,
}


def imported_packages(path: Path) -> set[str]:
    """Our top-level packages a module imports (at module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_runs_back_up_the_layers(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in wrong.items() if v} == {}
