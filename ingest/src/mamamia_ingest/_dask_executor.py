"""``mamamia ingest ... --executor dask [--scheduler tcp://HOST:8786]``: one task per case.

Workers run the same ``process_case`` as local worker processes, so they write each generation
straight into the catalog folder (which every worker must see at the same path: a shared
filesystem), under a temporary name renamed into place once complete. The driver gathers the
per-case rows and writes the tables and ``catalog.json``, exactly as with local processes, so the
catalog is the same (same ``catalog_version``, tables and voxels).

A worker lost mid-case (killed, out of memory, its node gone) only loses that task: the
scheduler reruns it elsewhere (up to ``distributed.scheduler.allowed-failures`` times) and the
half-written ``*.tmp-*`` folder it left is never named by a manifest, and is removed by the
ingest's garbage collection.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mamamia_ingest._volumes import CaseJob, CaseResult, init_worker, process_case

__all__ = ["dask_case", "run_on_dask"]

_initialised = False


def dask_case(job: CaseJob) -> CaseResult:
    """The task: a worker process (new ones too, after a restart) sets itself up once."""
    global _initialised
    if not _initialised:
        init_worker()
        _initialised = True
    return process_case(job)


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(
            "--executor dask needs dask.distributed: pip install 'mamamia-ingest[dask]'"
        ) from None
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_on_dask(
    case_jobs: Sequence[CaseJob],
    *,
    scheduler: str | None,
    workers: int,
    take: Callable[[CaseJob, CaseResult], bool],
) -> bool:
    """Run every case on the cluster; ``take`` gets each result and returns True to stop early
    (``--strict``). Returns True when stopped early. With no ``scheduler``, a LocalCluster of
    ``workers`` single-threaded worker processes is started for the run."""
    from dask.distributed import as_completed

    with _client(scheduler, workers) as client:
        futures = {}
        for job in case_jobs:
            # pure=False: a rerun of the same case after a change must not reuse a result.
            future = client.submit(
                dask_case,
                job,
                pure=False,
                key=f"mamamia-case-{job.patient_id}-{uuid.uuid4().hex[:12]}",
            )
            futures[future.key] = (future, job)
        stopped = False
        for future in as_completed([f for f, _job in futures.values()]):
            job = futures[future.key][1]
            result: CaseResult = future.result()
            if take(job, result):
                stopped = True
                break
        if stopped:
            client.cancel([f for f, _job in futures.values()])
        return stopped
