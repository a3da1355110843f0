"""The package layering of docs/design.md, checked on the source's import statements.

schema imports nothing of ours; the sdk imports only schema; ingest and server may import schema
and sdk; nothing imports ingest or server.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"mamamia_schema", "mamamia", "mamamia_ingest", "mamamia_server"}
ALLOWED: dict[str, set[str]] = {
    "mamamia_schema": {"mamamia_schema"},
    "mamamia": {"mamamia", "mamamia_schema"},
    "mamamia_ingest": {"mamamia_ingest", "mamamia", "mamamia_schema"},
    "mamamia_server": {"mamamia_server", "mamamia", "mamamia_schema"},
}
SOURCES = {
    "mamamia_schema": ROOT / "schema/src/mamamia_schema",
    "mamamia": ROOT / "sdk/src/mamamia",
    "mamamia_ingest": ROOT / "ingest/src/mamamia_ingest",
    "mamamia_server": ROOT / "server/src/mamamia_server",
}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & OURS


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    files = sorted(SOURCES[package].rglob("*.py"))
    assert files, f"no sources found for {package}"
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_top_levels(path) - ALLOWED[package])
        for path in files
        if imported_top_levels(path) - ALLOWED[package]
    }
    assert offenders == {}, f"{package} breaks the layering: {offenders}"


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import mamamia_server.app\nfrom mamamia_ingest import x\n", encoding="utf-8")
    assert imported_top_levels(bad) == {"mamamia_server", "mamamia_ingest"}
