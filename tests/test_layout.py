"""Project rules checked in the test run: import direction (DESIGN.md) and ruff lint."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gen3d"

# Layers that must never import the layers above them (DESIGN.md, "Import direction").
CORE = ("gen3d.types", "gen3d.errors", "gen3d.diffusion", "gen3d.geometry", "gen3d.render", "gen3d.nn")
ABOVE_CORE = ("gen3d.stages", "gen3d.pipelines", "gen3d.train", "gen3d.serve", "gen3d.cli", "gen3d.cli_args")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _violations(module: str, imported_names: set[str]) -> list[str]:
    """The DESIGN.md import rules broken by `module` importing `imported_names`."""
    violations = []
    for imported in sorted(imported_names):
        if imported.startswith(("tools", "blender_addon", "tests")):
            violations.append(f"{module} imports {imported} (gen3d/ never imports tools/tests/add-on)")
        if any(_within(module, c) for c in CORE) and any(_within(imported, a) for a in ABOVE_CORE):
            violations.append(f"{module} (core) imports {imported}")
        if _within(module, "gen3d.stages"):
            own_stage = ".".join(module.split(".")[:3])
            other_stage = _within(imported, "gen3d.stages") and not _within(imported, own_stage)
            if other_stage and imported != "gen3d.stages":
                violations.append(f"{module} imports another stage: {imported}")
        lower = imported.startswith("gen3d.") and not _within(imported, "gen3d.errors")
        if _within(module, "gen3d.types") and lower:
            violations.append(f"{module} imports {imported} (types sit at the bottom)")
    return violations


def test_import_direction():
    violations = [v for path in sorted(PACKAGE.rglob("*.py")) for v in _violations(_module_name(path), _imports(path))]
    assert not violations, "\n".join(violations)


def test_import_direction_check_catches_violations(tmp_path):
    """The checker itself can fail: each rule reports a module that breaks it, and spares one that does not."""
    bad = tmp_path / "x.py"
    bad.write_text("from gen3d.stages.texture import bake\nimport gen3d.cli\nimport tools.bench\n")
    found = _violations("gen3d.stages.fusion.remesh", _imports(bad))
    assert any("another stage: gen3d.stages.texture" in v for v in found)
    assert any("imports tools" in v for v in found)
    assert _violations("gen3d.geometry.io", {"gen3d.pipelines.image_to_3d"}) == [
        "gen3d.geometry.io (core) imports gen3d.pipelines.image_to_3d"]
    assert _violations("gen3d.types", {"gen3d.geometry"}) and not _violations("gen3d.types", {"gen3d.errors"})
    assert not _violations("gen3d.stages.fusion.remesh", {"gen3d.stages.fusion.mesh", "gen3d.render.raster"})


def test_ruff_lint():
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    if not ruff:
        pytest.importorskip("ruff")
    result = subprocess.run([*command, "check", "gen3d", "tests", "tools"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_bare_except():
    offenders = []
    for path in sorted(list(PACKAGE.rglob("*.py")) + list((REPO / "tools").rglob("*.py"))):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is None:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


def test_modules_stay_small():
    too_long = [
        f"{p.relative_to(REPO)} ({n} lines)"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    ]
    assert not too_long, too_long
