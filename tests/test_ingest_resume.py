"""Kill ingest mid-run (SIGKILL to the whole process group), run it again, and compare with one
uninterrupted run: the same catalog_version and the same tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest_helpers import write_case, write_table
from mamamia_ingest import ingest, verify

CASES = ["DUKE_001", "DUKE_002", "DUKE_005", "DUKE_009", "DUKE_010", "NACT_01", "NACT_02"]

_SCRIPT = """
import sys
from mamamia_ingest import ingest
ingest(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]), progress=False)
"""


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "raw"
    for i, case in enumerate(CASES):
        write_case(root, case, n_phases=4, shape=(32, 80, 80), seed=i)
    write_table(root, CASES)
    return root


@pytest.fixture(scope="module")
def reference(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    catalog = tmp_path_factory.mktemp("reference") / "catalog"
    assert ingest(raw, catalog, jobs=1, progress=False).exit_code == 0
    return catalog


def _tables(catalog: Path) -> tuple[str, dict[str, str]]:
    manifest = json.loads((catalog / "catalog.json").read_text())
    return manifest["catalog_version"], {
        name: ref["sha256"] for name, ref in manifest["tables"].items()
    }


def _finished(catalog: Path) -> int:
    return len(list(catalog.glob("volumes/*/*.zarr")))


def test_kill_and_resume_equals_one_run(raw: Path, reference: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    # Killed with 2 worker processes, resumed with 1: the job count does not change the output.
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(raw), str(catalog), "2"],
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    # Kill once some cases are finished and others are not.
    while _finished(catalog) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    was_running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert was_running, "ingest finished before it could be killed; make the input bigger"
    assert not (catalog / "catalog.json").exists()
    assert _finished(catalog) < len(CASES)
    # Leftovers of the killed run (an unfinished .tmp- folder) may be there; a rerun copes.
    report = ingest(raw, catalog, jobs=1, progress=False)
    assert report.exit_code == 0, report.summary()
    assert report.reused >= 2
    assert _tables(catalog) == _tables(reference)
    assert not list(catalog.glob("volumes/*/*.tmp-*"))
    assert verify(catalog).ok


def test_kill_during_a_rerun_keeps_the_previous_catalog(raw: Path, tmp_path: Path) -> None:
    """A reader of the previous catalog.json keeps a complete view while a new ingest runs."""
    catalog = tmp_path / "catalog"
    first = ingest(raw, catalog, jobs=1, cases="DUKE_*", progress=False)
    before = (catalog / "catalog.json").read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(raw), str(catalog), "1"],
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    n = _finished(catalog)
    while _finished(catalog) <= n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    was_running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert was_running
    assert (catalog / "catalog.json").read_bytes() == before
    assert verify(catalog).ok
    assert _tables(catalog)[0] == first.catalog_version
