"""The package layering of docs/architecture.md, checked on the source's import statements.

schema imports nothing of ours; the sdk imports only schema; ingest and server may import schema
and sdk; nothing imports ingest or server. Beyond the layers: no package imports another one's
private modules, no module imports a private name from another module, and no package has an
import cycle. Every import statement counts, function-local ones included; only imports under
``if TYPE_CHECKING:`` are left out of the cycle check (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Import:
    """One imported module, and the names taken from it (empty for ``import x``)."""

    module: str
    names: tuple[str, ...]
    type_only: bool
    line: int


def module_name(path: Path, package_root: Path) -> str:
    parts = [package_root.name, *path.relative_to(package_root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (of module ``module``), relative ones made absolute."""
    tree = ast.parse(source)
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(alias.name, (), type_only, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = tuple(alias.name for alias in node.names)
            found.append(Import(base, names, type_only, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: tuple[Import, ...]


def package_modules(package: str) -> dict[str, Module]:
    root = SOURCES[package]
    modules: dict[str, Module] = {}
    # A compiled module is known by its stub (``_boxdecode.pyi`` beside ``_boxdecode.c``).
    stubs = [p for p in root.rglob("*.pyi") if not p.with_suffix(".py").exists()]
    for path in sorted([*root.rglob("*.py"), *stubs]):
        name = module_name(path, root)
        found = imports_of(
            path.read_text(encoding="utf-8"), name, is_package=path.name == "__init__.py"
        )
        modules[name] = Module(name, path, tuple(found))
    return modules


ALL_MODULES: dict[str, Module] = {
    name: module for package in SOURCES for name, module in package_modules(package).items()
}


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _where(module: Module, line: int) -> str:
    return f"{module.path.relative_to(ROOT)}:{line}"


def _targets(imp: Import, known: set[str]) -> Iterator[str]:
    """The modules an import runs: ``from pkg import sub`` runs ``pkg.sub``."""
    if not imp.names:
        yield imp.module
        return
    for name in imp.names:
        sub = f"{imp.module}.{name}"
        yield sub if sub in known else imp.module


def layer_offences(package: str, modules: dict[str, Module]) -> list[str]:
    out = []
    for module in modules.values():
        for imp in module.imports:
            top = imp.module.split(".")[0]
            if top in OURS and top not in ALLOWED[package]:
                out.append(f"{_where(module, imp.line)} imports {imp.module}")
    return out


def private_module_offences(package: str, modules: dict[str, Module]) -> list[str]:
    """Imports of another package's private modules (``mamamia._objstore`` from the server)."""
    out = []
    for module in modules.values():
        for imp in module.imports:
            for target in _targets(imp, set(ALL_MODULES)):
                top = target.split(".")[0]
                if top in OURS and top != package and _private(target):
                    out.append(f"{_where(module, imp.line)} imports {target}")
    return out


def private_name_offences(modules: dict[str, Module]) -> list[str]:
    """``from x import _name`` of another module (importing a ``_module`` itself is fine)."""
    out = []
    for module in modules.values():
        for imp in module.imports:
            if imp.module.split(".")[0] not in OURS or imp.module == module.name:
                continue
            for name in imp.names:
                if _private(name) and f"{imp.module}.{name}" not in ALL_MODULES:
                    out.append(f"{_where(module, imp.line)} imports {name} from {imp.module}")
    return out


def import_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Each cycle of the package's run-time import graph, once (Tarjan's components)."""
    known = set(modules)
    graph = {
        name: sorted(
            {
                target
                for imp in module.imports
                if not imp.type_only
                for target in _targets(imp, known)
                if target in known and target != name
            }
        )
        for name, module in modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            connect(name)
    return cycles


def _package(package: str) -> dict[str, Module]:
    modules = {n: m for n, m in ALL_MODULES.items() if n.split(".")[0] == package}
    assert modules, f"no sources found for {package}"
    return modules


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    assert layer_offences(package, _package(package)) == []


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_no_package_imports_another_ones_private_modules(package: str) -> None:
    assert private_module_offences(package, _package(package)) == []


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_no_private_name_is_imported_from_another_module(package: str) -> None:
    assert private_name_offences(_package(package)) == []


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_no_import_cycle(package: str) -> None:
    assert import_cycles(_package(package)) == []


def _fake(name: str, source: str) -> Module:
    return Module(name, ROOT / "x.py", tuple(imports_of(source, name)))


def test_the_checker_sees_a_forbidden_import() -> None:
    bad = _fake("mamamia.bad", "import mamamia_server.app\nfrom mamamia_ingest import x\n")
    assert len(layer_offences("mamamia", {bad.name: bad})) == 2


def test_the_checker_sees_private_modules_and_names() -> None:
    server = _fake(
        "mamamia_server.x",
        "def f():\n    from mamamia._objstore import ObjectStore\n"
        "from mamamia._errors import _BY_SLUG\nfrom . import _problem_responses\n",
    )
    assert private_module_offences("mamamia_server", {server.name: server}) == [
        "x.py:2 imports mamamia._objstore",
        "x.py:3 imports mamamia._errors",
    ]
    assert private_name_offences({server.name: server}) == [
        "x.py:3 imports _BY_SLUG from mamamia._errors"
    ]


def test_the_checker_sees_a_cycle_through_a_function_local_import() -> None:
    a = _fake("mamamia._a", "from mamamia._b import f\n")
    b = _fake("mamamia._b", "def f():\n    from mamamia._a import g\n")
    c = _fake(
        "mamamia._c",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mamamia._a import g\n",
    )
    assert import_cycles({m.name: m for m in (a, b, c)}) == [["mamamia._a", "mamamia._b"]]


# ------------------------------------------------------------------------------ unique names
# A module stem or a public class name means one thing across the four packages, so a reader
# (and a traceback) never has to ask which ``_errors`` or which ``Report`` is meant.

MAX_MODULE_LINES = 650


def stem_collisions(paths: list[Path]) -> dict[str, list[str]]:
    """File stems that two modules share (``__init__`` and ``__main__`` apart)."""
    by_stem: dict[str, list[str]] = {}
    for path in paths:
        if path.stem not in {"__init__", "__main__"}:
            by_stem.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    return {stem: sorted(found) for stem, found in sorted(by_stem.items()) if len(found) > 1}


def public_classes(source: str) -> list[str]:
    """The public classes a module defines (re-exports and aliases are not definitions)."""
    return [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
    ]


def class_collisions(defined: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """Class names defined in more than one package; ``defined[package][module]`` lists the
    classes of each module."""
    by_name: dict[str, dict[str, list[str]]] = {}
    for package, modules in defined.items():
        for module, names in modules.items():
            for name in names:
                by_name.setdefault(name, {}).setdefault(package, []).append(module)
    return {
        name: sorted(m for found in packages.values() for m in found)
        for name, packages in sorted(by_name.items())
        if len(packages) > 1
    }


def _defined_classes() -> dict[str, dict[str, list[str]]]:
    return {
        package: {
            name: public_classes(module.path.read_text(encoding="utf-8"))
            for name, module in ALL_MODULES.items()
            if name.split(".")[0] == package
        }
        for package in SOURCES
    }


def test_no_two_modules_share_a_file_stem() -> None:
    assert stem_collisions([m.path for m in ALL_MODULES.values()]) == {}


def test_no_two_packages_define_a_class_of_one_name() -> None:
    assert class_collisions(_defined_classes()) == {}


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        str(m.path.relative_to(ROOT)): len(m.path.read_text(encoding="utf-8").splitlines())
        for m in ALL_MODULES.values()
    }
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_the_checker_sees_shared_stems_and_class_names() -> None:
    paths = [
        ROOT / "a/_errors.py",
        ROOT / "b/_errors.py",
        ROOT / "a/__init__.py",
        ROOT / "b/__init__.py",
    ]
    assert stem_collisions(paths) == {"_errors": ["a/_errors.py", "b/_errors.py"]}
    assert public_classes("class Report: ...\nclass _Hidden: ...\nAlias = Report\n") == ["Report"]
    defined = {
        "mamamia": {"mamamia._x": ["Report", "Volume"]},
        "mamamia_server": {"mamamia_server._y": ["Report"], "mamamia_server._z": ["Volume2"]},
    }
    assert class_collisions(defined) == {"Report": ["mamamia._x", "mamamia_server._y"]}
