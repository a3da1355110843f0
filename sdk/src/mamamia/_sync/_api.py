"""``mamamia.sync``: the Python entry point of the mirror."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mamamia._sync._download import RetryPolicy
from mamamia._sync._report import SyncReport
from mamamia._sync._sync_options import DEFAULT_SOURCE, SyncOptions

__all__ = ["DEFAULT_SOURCE", "sync"]


def sync(
    dest: str | os.PathLike[str],
    source: str = DEFAULT_SOURCE,
    include: Iterable[str] = (),
    cohort: str | Iterable[str] | Any = None,
    jobs: int | None = None,
    dry_run: bool = False,
    delete: bool = False,
    synapse_config: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    verify: bool = False,
    repair: bool = False,
    retries: int = 5,
    backoff: float = 1.0,
) -> SyncReport:
    """Mirror the Synapse folder tree ``source`` into ``dest``, incrementally and verified.

    Args:
        dest: the local mirror (created if missing); its state lives in ``dest/.mamamia-sync/``.
        source: the Synapse project or folder id to mirror.
        include: globs on the '/'-separated path relative to ``source`` (case-insensitive;
            a glob naming a folder takes everything under it). Empty: everything.
        cohort: a DuckDB WHERE clause on the clinical table (``"pcr = 1 AND age < 50"``), a
            ``mamamia.Cohort`` or a list of patient ids. The root tables are fetched first;
            then only the selected cases' images, masks and patient JSON are.
        jobs: concurrent downloads (threads); default 8.
        dry_run: list what would be fetched (``report.would_download``, ``bytes_planned``),
            write nothing.
        delete: remove local files whose entity is gone upstream (always reported).
        synapse_config: a ``.synapseConfig`` (``[endpoints]``, ``authtoken``); default
            ``~/.synapseConfig``. ``$SYNAPSE_AUTH_TOKEN`` wins over the file's token;
            with neither, the session is anonymous.
        progress: tqdm bars on stderr.
        verify: re-hash every mirrored file against the state instead of syncing.
        repair: with ``verify``, fetch again what differs.
        retries: attempts per file (and per REST call) before it is reported as failed.
        backoff: first backoff in seconds (doubles per attempt, with jitter).

    Returns:
        A :class:`SyncReport`; ``report.ok`` is False (``exit_code`` 1) when any file failed.
        Per-file failures never raise.

    Raises:
        SyncError: bad arguments, a damaged state file, a failed login, a bad cohort clause.
    """
    from mamamia._sync._run import run

    where: str | None = cohort if isinstance(cohort, str) or cohort is None else None
    ids: tuple[str, ...] | None = None
    if cohort is not None and where is None:
        listed = getattr(cohort, "case_ids", cohort)  # a Cohort, or any iterable of ids
        ids = tuple(listed)
    options = SyncOptions(
        dest=Path(dest),
        source=source,
        include=(include,) if isinstance(include, str) else tuple(include),
        cohort=where,
        cohort_ids=ids,
        jobs=jobs if jobs is not None else 8,
        dry_run=dry_run,
        delete=delete,
        verify=verify,
        repair=repair,
        synapse_config=Path(synapse_config) if synapse_config is not None else None,
        progress=progress,
        policy=RetryPolicy(attempts=retries, backoff_s=backoff),
    )
    return run(options)
