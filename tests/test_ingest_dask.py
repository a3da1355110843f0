"""Distributed ingest: one task per case on a dask.distributed LocalCluster of worker processes.

The catalog equals the local executor's (``catalog_dir``: same catalog_version, tables, voxels);
a worker killed mid-case is retried by the scheduler, leaving a complete catalog that verifies.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from dask.distributed import WorkerPlugin


def _tables(root: Path) -> dict[str, list[dict[str, Any]]]:
    import json

    manifest = json.loads((root / "catalog.json").read_text())
    out = {}
    for name, ref in manifest["tables"].items():
        rows = pq.read_table(root / ref["path"]).to_pylist()
        out[name] = sorted(rows, key=str)
    return out


def test_dask_executor_equals_the_local_one(
    phantom_raw_dir: Path, catalog_dir: Path, tmp_path: Path
) -> None:
    from mamamia_ingest import ingest, verify

    out = tmp_path / "catalog"
    report = ingest(phantom_raw_dir, out, jobs=2, executor="dask", progress=False)
    assert report.published and report.failed == 0, report.summary()
    local = (catalog_dir / "catalog.json").read_text()
    import json

    assert report.catalog_version == json.loads(local)["catalog_version"]
    assert _tables(out) == _tables(catalog_dir)  # volume checksums included: equal voxels
    assert sorted(p.name for p in (out / "volumes").iterdir()) == sorted(
        p.name for p in (catalog_dir / "volumes").iterdir()
    )
    assert verify(out).exit_code == 0


class KillOnce(WorkerPlugin):
    """A worker plugin: SIGKILL its own worker process once a case's temporary generation
    folder exists (mid-case), the first time any worker sees one (a marker file says so)."""

    name = "mamamia-kill-once"

    def __init__(self, catalog: str, marker: str) -> None:
        self.catalog = catalog
        self.marker = marker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing" or os.path.exists(self.marker):
            return

        def watch() -> None:
            deadline = time.monotonic() + 60
            volumes = Path(self.catalog) / "volumes"
            while time.monotonic() < deadline:
                if any(volumes.glob("*/*.tmp-*")):
                    try:
                        fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    except FileExistsError:
                        return
                    os.close(fd)
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(0.001)

        threading.Thread(target=watch, daemon=True).start()


def test_a_worker_killed_mid_case_is_retried(
    phantom_raw_dir: Path, catalog_dir: Path, tmp_path: Path
) -> None:
    import cloudpickle
    from dask.distributed import Client, LocalCluster

    from mamamia_ingest import ingest, verify

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    out = tmp_path / "catalog"
    marker = tmp_path / "killed"
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(KillOnce(str(out), str(marker)))
        report = ingest(
            phantom_raw_dir,
            out,
            jobs=2,
            executor="dask",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    assert marker.exists(), "no worker was killed: the test did not test anything"
    assert report.published and report.failed == 0, report.summary()
    assert _tables(out) == _tables(catalog_dir)
    assert not list((out / "volumes").glob("*/*.tmp-*")), "a partial case was left behind"
    assert verify(out).exit_code == 0


def test_bad_executor_arguments_are_refused(phantom_raw_dir: Path, tmp_path: Path) -> None:
    from mamamia_ingest import IngestError, ingest

    with pytest.raises(IngestError, match="--executor"):
        ingest(phantom_raw_dir, tmp_path / "c", executor="spark", progress=False)
    with pytest.raises(IngestError, match="--scheduler needs"):
        ingest(phantom_raw_dir, tmp_path / "c", scheduler="tcp://x:1", progress=False)
