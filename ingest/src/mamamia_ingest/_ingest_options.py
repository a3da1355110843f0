"""``IngestOptions``: how one ingest runs, checked once when made (``ingest`` makes it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from mamamia_ingest._ingest_report import IngestError
from mamamia_ingest._nifti import DEFAULT_MAX_VOLUME_BYTES
from mamamia_ingest._shard_write import FORMAT2_INNER_ZYX
from mamamia_ingest._volumes import DEFAULT_CHUNKS_ZYX, VolumeSettings

__all__ = ["EXECUTORS", "FORMAT_VERSIONS", "IngestOptions"]

EXECUTORS = ("processes", "dask")
#: Catalog formats ingest writes: 1 (a file per chunk) and 2 (sharded, the default).
FORMAT_VERSIONS = (1, 2)


@dataclass(frozen=True, init=False)
class IngestOptions:
    """The options of ``mamamia ingest`` / ``ingest()``; the fields hold normalised values.

    ``jobs=None`` is one worker per CPU; ``cases`` (glob patterns on patient_id, one string
    comma-separated or several) is kept uppercased, ``None`` for every case; ``chunks`` is
    the (z, y, x) chunk shape (format 2: the inner chunk shape of its shards);
    ``format_version`` the catalog format written: 2 (sharded, the default) or 1 (a file per
    chunk; docs/format.md). A bad value raises
    ``IngestError`` naming the option.
    """

    jobs: int
    cases: tuple[str, ...] | None
    tables_only: bool
    strict: bool
    chunks: tuple[int, int, int]
    max_volume_bytes: int
    progress: bool
    executor: str
    scheduler: str | None
    format_version: int

    def __init__(
        self,
        *,
        jobs: int | None = None,
        cases: str | Sequence[str] | None = None,
        tables_only: bool = False,
        strict: bool = False,
        chunks: Sequence[int] | None = None,
        max_volume_bytes: int = DEFAULT_MAX_VOLUME_BYTES,
        progress: bool = True,
        executor: str = "processes",
        scheduler: str | None = None,
        format_version: int = 2,
    ) -> None:
        n_jobs = jobs if jobs is not None else (os.cpu_count() or 1)
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
            raise IngestError(f"--jobs must be at least 1, got {n_jobs}")
        if executor not in EXECUTORS:
            raise IngestError(f"--executor must be 'processes' or 'dask', got {executor!r}")
        if scheduler is not None and executor != "dask":
            raise IngestError("--scheduler needs --executor dask")
        if format_version not in FORMAT_VERSIONS or isinstance(format_version, bool):
            raise IngestError(f"--format must be 1 or 2, got {format_version!r}")
        default = FORMAT2_INNER_ZYX if format_version == 2 else DEFAULT_CHUNKS_ZYX
        try:
            chunk_zyx = tuple(int(c) for c in chunks) if chunks is not None else default
        except (TypeError, ValueError):
            raise IngestError(
                f"--chunks must be three positive integers Z,Y,X, got {chunks}"
            ) from None
        if len(chunk_zyx) != 3 or any(c < 1 for c in chunk_zyx):
            raise IngestError(f"--chunks must be three positive integers Z,Y,X, got {chunks}")
        if not isinstance(max_volume_bytes, int) or max_volume_bytes < 1:
            raise IngestError(f"--max-volume-mb must be positive, got {max_volume_bytes} bytes")
        # Frozen: the normalised values are set once, here.
        self.__dict__.update(
            jobs=n_jobs,
            cases=_patterns(cases),
            tables_only=bool(tables_only),
            strict=bool(strict),
            chunks=(chunk_zyx[0], chunk_zyx[1], chunk_zyx[2]),
            max_volume_bytes=max_volume_bytes,
            progress=bool(progress),
            executor=executor,
            scheduler=scheduler,
            format_version=format_version,
        )

    @property
    def volume_settings(self) -> VolumeSettings:
        """What the per-case workers need (the chunk shape and the volume size cap)."""
        return VolumeSettings(
            chunks_zyx=self.chunks,
            max_volume_bytes=self.max_volume_bytes,
            format_version=self.format_version,
        )


def _patterns(cases: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if cases is None:
        return None
    items = [cases] if isinstance(cases, str) else list(cases)
    out = tuple(p.strip().upper() for item in items for p in item.split(",") if p.strip())
    return out or None
