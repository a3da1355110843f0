"""docs/interop.md's ``mamamia`` commands run as written (its Python blocks run in
tests/test_doc_examples.py with every other page's)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

# The doc's examples need every interop extra; `make test` installs them, so a missing one fails.
import monai  # noqa: F401
import nnunetv2  # noqa: F401
import pytest
import torchio  # noqa: F401
from click.testing import CliRunner

from mamamia._cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "interop.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_commands_run_as_written(
    catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "catalog").symlink_to(catalog_dir)
    monkeypatch.chdir(tmp_path)
    commands = [
        shlex.split(line[2:])
        for block in _blocks("console")
        for line in block.splitlines()
        if line.startswith("$ mamamia ")
    ]
    assert len(commands) == 3
    for command in commands:
        result = CliRunner().invoke(main, command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "nnUNet_raw" / "Dataset105_MAMAMIA" / "dataset.json").is_file()
    assert (tmp_path / "challenge_input" / "patient_info_files").is_dir()
