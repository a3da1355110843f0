"""Writing the catalog's tables and manifest atomically, and removing what no manifest names.

Order of a publish: content-addressed tables ``tables/<name>-<sha12>.parquet`` (new names, never
overwritten), then ``tables/<name>.parquet`` (atomic replace), then ``catalog.json`` (atomic
replace) last. A reader that opens the paths one manifest names always sees one consistent view.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mamamia import write_atomic
from mamamia_ingest._ingest_report import IngestError

__all__ = [
    "CatalogLocked",
    "IngestError",
    "PreviousCatalog",
    "catalog_lock",
    "collect_garbage",
    "read_previous",
    "write_table",
]


class CatalogLocked(IngestError):
    """Another ingest holds the catalog."""


def parquet_bytes(table: pa.Table) -> bytes:
    """The Parquet encoding of ``table``: the same bytes for the same table (no timestamps)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def write_table(catalog: Path, name: str, table: pa.Table) -> dict[str, Any]:
    """Publish one table; returns its manifest entry ``{path, sha256, rows}``."""
    data = parquet_bytes(table)
    digest = hashlib.sha256(data).hexdigest()
    rel = f"tables/{name}-{digest[:12]}.parquet"
    target = catalog / rel
    if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != digest:
        write_atomic(target, data, fsync=True)
    write_atomic(catalog / "tables" / f"{name}.parquet", data, fsync=True)
    return {"path": rel, "sha256": digest, "rows": table.num_rows}


@dataclass
class PreviousCatalog:
    """What the catalog folder held before this ingest."""

    manifest: dict[str, Any] | None = None
    generations: set[str] = field(default_factory=set)  # "volumes/<CASE>/<GEN>.zarr"
    table_paths: set[str] = field(default_factory=set)

    @property
    def catalog_version(self) -> str | None:
        if self.manifest is None:
            return None
        v = self.manifest.get("catalog_version")
        return v if isinstance(v, str) else None


def generations_in(catalog: Path, volumes_ref: Mapping[str, Any] | None) -> set[str]:
    """The generation folders a volumes table names."""
    if not volumes_ref:
        return set()
    path = catalog / str(volumes_ref.get("path", ""))
    if not path.is_file():
        return set()
    column = pq.read_table(path, columns=["zarr_path"]).column("zarr_path").to_pylist()
    return {"/".join(str(p).split("/")[:3]) for p in column if p}


def read_previous(catalog: Path) -> PreviousCatalog:
    """What the current catalog.json names, read leniently on purpose: a damaged or older
    manifest must not stop the ingest that replaces it, and whatever it still names is kept
    from the garbage collection (its readers may still be using it)."""
    path = catalog / "catalog.json"
    if not path.is_file():
        return PreviousCatalog()
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return PreviousCatalog()
    if not isinstance(manifest, dict):
        return PreviousCatalog()
    tables = manifest.get("tables") if isinstance(manifest.get("tables"), dict) else {}
    assert isinstance(tables, dict)
    prev = PreviousCatalog(manifest=manifest)
    prev.table_paths = {str(ref.get("path")) for ref in tables.values() if isinstance(ref, dict)}
    with contextlib.suppress(OSError, pa.ArrowException):
        prev.generations = generations_in(catalog, tables.get("volumes"))
    return prev


def collect_garbage(catalog: Path, keep_generations: set[str], keep_tables: set[str]) -> int:
    """Remove generations, unfinished temporaries and table copies that no kept manifest names.

    Returns how many entries were removed.
    """
    removed = 0
    volumes = catalog / "volumes"
    if volumes.is_dir():
        for case_dir in sorted(volumes.iterdir()):
            if not case_dir.is_dir():
                continue
            for entry in sorted(case_dir.iterdir()):
                rel = f"volumes/{case_dir.name}/{entry.name}"
                if rel in keep_generations:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
            with contextlib.suppress(OSError):
                case_dir.rmdir()  # only when empty
    tables = catalog / "tables"
    if tables.is_dir():
        for entry in sorted(tables.iterdir()):
            rel = f"tables/{entry.name}"
            stable = entry.name.count("-") == 0 and entry.suffix == ".parquet"
            if rel in keep_tables or stable:
                continue
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def catalog_lock(catalog: Path) -> Iterator[None]:
    """One ingest at a time per catalog (an flock on the folder itself: no lock file is left)."""
    fd = os.open(catalog, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CatalogLocked(
                f"{catalog}: another mamamia ingest is writing this catalog"
            ) from None
        yield
    finally:
        os.close(fd)
