"""Kill only the parent ``ingest`` (SIGKILL to its pid, not its group): within 5 s no process of
the run is left (workers, forkserver, resource tracker), and the catalog does not change after
the kill: no worker publishes a generation without its ingest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest_helpers import real_rows, write_case, write_table

CASES = sorted(c for c in real_rows()[1] if c.startswith("DUKE_"))[:12]

_SCRIPT = """
import sys
from mamamia_ingest import ingest
ingest(sys.argv[1], sys.argv[2], jobs=2, progress=False)
"""


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("orphans") / "raw"
    for i, case in enumerate(CASES):
        write_case(root, case, n_phases=4, shape=(32, 80, 80), seed=i)
    write_table(root, CASES)
    return root


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _published(catalog: Path) -> set[str]:
    names = {p.relative_to(catalog).as_posix() for p in catalog.glob("volumes/*/*.zarr")}
    return names | {p.name for p in catalog.glob("*.json")}


def test_killing_only_the_parent_leaves_no_process_and_no_change(raw: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(raw), str(catalog)], start_new_session=True
    )
    deadline = time.monotonic() + 240
    while (
        len(list(catalog.glob("volumes/*/*.zarr"))) < 1
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    assert proc.poll() is None, "ingest finished before it could be killed; make the input bigger"
    members = _session(proc.pid)
    assert len(members) >= 3, members  # the ingest, the forkserver, workers (and the tracker)
    os.kill(proc.pid, signal.SIGKILL)  # the parent only
    proc.wait()
    at_kill = _published(catalog)
    assert len(at_kill) < len(CASES)

    deadline = time.monotonic() + 5
    while _session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _session(proc.pid) == [], "processes of the killed ingest are still alive"
    assert _published(catalog) == at_kill
    assert not (catalog / "catalog.json").exists()


def test_publishing_needs_the_catalog_lock(tmp_path: Path) -> None:
    from mamamia_ingest._catalog_writer import catalog_lock
    from mamamia_ingest._lifecycle import publish_refusal

    refusal = publish_refusal(tmp_path)
    assert refusal is not None and "no ingest holds this catalog's lock" in refusal
    with catalog_lock(tmp_path):
        assert publish_refusal(tmp_path) is None  # held (by this process): allowed
    assert publish_refusal(tmp_path) is not None
