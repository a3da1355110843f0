"""Each package's README (its PyPI front page) has a Python example; it runs here as written,
in a folder where ``catalog`` is the session's catalog (the ingest example builds its own)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schema", "sdk", "ingest", "server")


def example(package: str) -> str:
    text = (ROOT / package / "README.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```python\n(.*?)```", text, re.S)
    return block


@pytest.mark.parametrize("package", PACKAGES)
def test_readme_example_runs(
    package: str,
    catalog_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if package != "ingest":
        os.symlink(catalog_dir, tmp_path / "catalog")
    monkeypatch.chdir(tmp_path)
    exec(compile(example(package), f"{package}/README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    expected_lines = {"schema": 4, "sdk": 3, "ingest": 2, "server": 2}[package]
    assert len(out) == expected_lines, out
    if package == "ingest":
        assert out[0].split()[0] == "0" and out[1] == "True", out
    if package == "server":
        assert out[0] == "ok" and int(out[1]) >= 1, out


@pytest.mark.parametrize("package", PACKAGES)
def test_readme_is_a_front_page(package: str) -> None:
    text = (ROOT / package / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# mamamia"), package
    assert "pip install" in text and "MAMA-MIA" in text
