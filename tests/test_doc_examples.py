"""Every ```python block of README.md and docs/*.md runs here as written, read from the files.

The blocks of one page run in order in one namespace, as a reader pastes them, in a folder
holding what ``make demo`` writes (``demo/raw``, ``demo/catalog``), with ``MAMAMIA_URL``
pointing at a live server of that catalog. Each block asserts something. A block that
genuinely cannot run here (Synapse credentials, a GPU model) is preceded by the line
``<!-- example: no-run (reason) -->``; the reason is required.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import start_server

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)```", re.S)
_NO_RUN = re.compile(r"^<!-- example: no-run \((?P<reason>[^)]+)\) -->$")


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, reason not to run or None) of each Python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    out = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        marker = _NO_RUN.match(match["before"].strip())
        if match["before"].strip().startswith("<!-- example") and marker is None:
            raise AssertionError(f"{page.name}:{line}: malformed example marker")
        out.append((line, match["code"], marker["reason"] if marker else None))
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder with what ``make demo`` writes, and a server of its catalog."""
    from mamamia_ingest import ingest, write_phantom

    base = tmp_path_factory.mktemp("demo")
    write_phantom(base / "demo" / "raw", cases=8, scale=0.25, seed=0, progress=False)
    ingest(base / "demo" / "raw", base / "demo" / "catalog", jobs=2, progress=False)
    server = start_server(base / "demo" / "catalog")
    yield base, server.url
    server.stop()


PAGES_WITH_CODE = [p for p in PAGES if any(r is None for _, _, r in blocks(p))]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_examples_run_as_written(
    page: Path,
    demo: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, url = demo
    for name in ("raw", "catalog"):
        (tmp_path / "demo").mkdir(exist_ok=True)
        os.symlink(base / "demo" / name, tmp_path / "demo" / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAMAMIA_URL", url)
    monkeypatch.setenv("MAMAMIA_CACHE_DIR", str(tmp_path / "cache"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    for line, code, reason in blocks(page):
        if reason is not None:
            continue
        assert re.search(r"^\s*assert ", code, re.M), (
            f"{page.name}:{line}: the block asserts nothing"
        )
        where = f"{page.relative_to(ROOT).as_posix()}:{line}"
        exec(compile(code, where, "exec"), namespace)
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_every_page_with_code_is_collected() -> None:
    pages = {p.name for p in PAGES_WITH_CODE}
    assert {"README.md", "crops.md", "query-safety.md", "evaluate.md"} <= pages
    skipped = [(p.name, r) for p in PAGES for _, _, r in blocks(p) if r is not None]
    assert all(len(r) > 10 for _, r in skipped), skipped
    # Only blocks that need what a test machine cannot have are left out.
    assert {name for name, _ in skipped} <= {"sync.md"}, skipped
