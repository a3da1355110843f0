"""``mamamia.atomic_write``: the old file until the new one is complete, never a torn one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mamamia import ATOMIC_TEMP_PREFIX, atomic_write, write_atomic


def test_success_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    assert write_atomic(target, "old") == 3  # the parent folder is made
    with atomic_write(target, fsync=True) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.startswith(ATOMIC_TEMP_PREFIX)
        assert tmp.name.endswith("state.json"), "same suffixes, so format-by-name writers agree"
        tmp.write_text("new")
        assert target.read_text() == "old", "the target is untouched until the block ends"
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_exception_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"
    write_atomic(target, b"old bytes")

    def crash() -> None:
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half of the ne")
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        crash()
    assert target.read_bytes() == b"old bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"], "temporary removed"


def test_killed_process_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "catalog.json"
    target.write_text('{"version": 1}')
    # A hard exit (no finally blocks run), as a kill or power cut would stop the writer.
    code = (
        "import os, sys\n"
        "from mamamia import atomic_write\n"
        "with atomic_write(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('{\"vers')\n"
        "    os._exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert done.returncode == 3
    assert target.read_text() == '{"version": 1}'
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "catalog.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(ATOMIC_TEMP_PREFIX), leftovers


def test_replacing_keeps_the_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_atomic(target, "new", fsync=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.json"
    write_atomic(fresh, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_a_block_that_writes_nothing_fails_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    target.write_bytes(b"keep")
    with pytest.raises(FileNotFoundError), atomic_write(target):
        pass
    assert target.read_bytes() == b"keep"
