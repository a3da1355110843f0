"""``publish``: upload a local catalog folder to an object store (``mamamia ingest RAW s3://...``
ingests into a local staging catalog, then publishes it).

The staging catalog is a cache folder keyed by the URL, so re-runs are incremental exactly as a
local catalog's are. Publishing uploads in an order that keeps every reader consistent, because
object stores have no rename:

1. every generation object the store lacks (generations are immutable and named by content, so
   an object already there is the same bytes and is skipped);
2. the content-addressed table files the new manifest names;
3. ``catalog.json`` last: readers see the old version or the new one, never a mix;
4. then objects named by neither the new manifest nor the one it replaced are deleted (readers
   pinned to the previous version keep working).

One writer per catalog at a time (the staging folder's lock guards one machine only).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mamamia.manifest import parse_manifest
from mamamia.objstore import ObjectStore, read_store_manifest, store_cache_dir
from mamamia_schema import CatalogManifest

__all__ = ["PublishReport", "generations_of", "publish", "staging_dir"]

_UPLOAD_THREADS = 16


@dataclass
class PublishReport:
    """What one `publish` did: objects uploaded (and their bytes), skipped, deleted."""

    uploaded: int = 0
    uploaded_bytes: int = 0
    skipped: int = 0
    deleted: int = 0
    manifest_written: bool = False


def staging_dir(url: str) -> Path:
    """The local staging catalog of ``url`` (``$MAMAMIA_CACHE_DIR/ingest-s3_<bucket>_<prefix>``)."""
    return store_cache_dir(url, purpose="ingest")


def generations_of(volumes: pa.Table) -> set[str]:
    """``volumes/<CASE>/<GEN>.zarr`` of every zarr_path in a volumes table."""
    out: set[str] = set()
    for path in volumes.column("zarr_path").to_pylist():
        if path:
            parts = str(path).split("/")
            if len(parts) >= 3:
                out.add("/".join(parts[:3]))
    return out


def _named_by(manifest: CatalogManifest, read: Any) -> tuple[set[str], set[str]]:
    """(table paths, generation prefixes) that a manifest names; ``read(path) -> bytes|None``."""
    tables = {ref.path for ref in manifest.tables.values()}
    gens: set[str] = set()
    ref = manifest.tables.get("volumes")
    if ref is not None:
        data = read(ref.path)
        if data is None:
            raise FileNotFoundError(f"the volumes table {ref.path} is missing")
        gens = generations_of(pq.read_table(pa.py_buffer(data), columns=["zarr_path"]))
    return tables, gens


def _local_files(root: Path, prefixes: Iterable[str]) -> list[str]:
    files: list[str] = []
    for prefix in sorted(prefixes):
        folder = root / prefix
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                if ".partial-" in name or ".tmp-" in name:
                    continue
                files.append(str((Path(dirpath) / name).relative_to(root)))
    return files


def publish(
    catalog_dir: str | os.PathLike[str], store: str | ObjectStore, *, delete_unnamed: bool = True
) -> PublishReport:
    """Upload the local catalog folder's current version to ``store`` (an ``s3://`` URL or an
    open store), in the order the module docstring gives; ``delete_unnamed=False`` keeps the
    objects no manifest names."""
    staging = Path(catalog_dir)
    if isinstance(store, str):
        store = ObjectStore(store)
    report = PublishReport()
    text = (staging / "catalog.json").read_bytes()
    manifest = parse_manifest(text, str(staging))

    def read_local(path: str) -> bytes | None:
        target = staging / path
        return target.read_bytes() if target.is_file() else None

    tables, gens = _named_by(manifest, read_local)
    previous: CatalogManifest | None = None
    if store.get("catalog.json") is not None:
        previous = read_store_manifest(store)
    existing = dict(store.list("volumes/")) | dict(store.list("tables/"))

    def upload(paths: list[str]) -> None:
        todo = [p for p in paths if p not in existing]
        report.skipped += len(paths) - len(todo)

        def put(path: str) -> int:
            data = (staging / path).read_bytes()
            store.put(path, data)
            return len(data)

        with ThreadPoolExecutor(max_workers=_UPLOAD_THREADS) as pool:
            for size in pool.map(put, todo):
                report.uploaded += 1
                report.uploaded_bytes += size

    upload(_local_files(staging, gens))
    upload(sorted(tables))
    current = store.get("catalog.json")
    if current != text:
        store.put("catalog.json", text)
        report.manifest_written = True

    if delete_unnamed:
        keep_tables, keep_gens = set(tables), set(gens)
        if previous is not None:
            old_tables, old_gens = _named_by(previous, store.get)
            keep_tables |= old_tables
            keep_gens |= old_gens
        for path in sorted(existing):
            if path.startswith("tables/"):
                # tables/<name>.parquet (the "current" copies) are never uploaded, so only
                # content-addressed files unnamed by either manifest are removed.
                if path not in keep_tables:
                    store.delete(path)
                    report.deleted += 1
            elif "/".join(path.split("/")[:3]) not in keep_gens:
                store.delete(path)
                report.deleted += 1
    return report
