"""Where a served catalog lives: a folder (``FolderSource``) or object storage (``StoreSource``,
``mamamia serve s3://bucket/prefix``), each a ``CatalogSource`` for ``CatalogHolder``.

A folder's catalog.json is checked with one ``stat``; a new version is opened whole. On object
storage the server keeps no state of its own: each process mirrors the (small) tables of the
version ``catalog.json`` names into a local cache (per-version folders, so processes may share
one cache), queries them with its engine as for a local catalog, and fetches Zarr files from the
store into the chunk cache as requests ask for them. ``catalog.json`` is re-read from the store
at most once per poll interval; a new version is built whole and swapped in, so one answer never
mixes versions, and every process switches without a restart.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import mamamia
from mamamia.manifest import read_manifest
from mamamia.objstore import ObjectStore, ObjectStoreBackend, is_store_url
from mamamia.sqlguard import QueryLimits
from mamamia_server._catalog_state import CatalogSource, CatalogState, table_paths
from mamamia_server._query_engine import QueryEngine

__all__ = ["FolderSource", "StoreSource", "catalog_source", "store_url"]


def store_url(catalog: Any) -> str | None:
    """The object-store URL a catalog setting names, or None for a local folder.

    ``Path("s3://b/p")`` folds the double slash (``s3:/b/p``), so that form is accepted too.
    """
    text = str(catalog)
    if text.startswith("s3:/") and not text.startswith("s3://"):
        text = "s3://" + text[len("s3:/") :]
    return text if is_store_url(text) else None


def catalog_source(catalog: Path) -> CatalogSource:
    """The source a catalog setting names: an object store URL, else a catalog folder."""
    url = store_url(catalog)
    if url is not None:
        return StoreSource(url)
    root = catalog.expanduser()
    if not (root / "catalog.json").is_file():
        raise mamamia.CatalogNotFound(
            f"{root}: no catalog.json here; build one with: mamamia ingest RAW {root}"
        )
    return FolderSource(root.resolve())


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class FolderSource:
    """A catalog folder (what ``mamamia ingest`` writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def load(self, limits: QueryLimits) -> CatalogState:
        """Build the state of the version catalog.json names now (retrying a concurrent swap)."""
        last: Exception | None = None
        for _ in range(3):
            stamp = _stamp(self.root / "catalog.json")
            manifest = read_manifest(self.root)
            catalog = mamamia.open(self.root)
            if catalog.version != manifest.catalog_version:
                # catalog.json was replaced between the two reads; take the newer one whole.
                catalog.close()
                last = mamamia.CatalogError("catalog.json changed while it was being opened")
                continue
            manifest = catalog.manifest_model
            engine = QueryEngine(table_paths(self.root, manifest), limits)
            return CatalogState(
                root=self.root,
                version=manifest.catalog_version,
                manifest=manifest,
                engine=engine,
                catalog=catalog,
                stamp=stamp,
                source=self,
            )
        assert last is not None
        raise last

    def changed(self, state: CatalogState) -> bool:
        stamp = _stamp(self.root / "catalog.json")
        if stamp is None or stamp == state.stamp:
            return False
        if read_manifest(self.root).catalog_version == state.version:
            state.stamp = stamp  # rewritten, same version: nothing to reload
            return False
        return True

    def ensure_file(self, state: CatalogState, relative: str) -> None:
        pass  # the files are in the folder already, or nowhere


def _digest(data: bytes) -> tuple[int, int, int]:
    head = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    return (head, len(data), 0)


class StoreSource:
    """A catalog on object storage; the state's ``root`` is the local chunk cache."""

    def __init__(self, url: str, cache_dir: Path | None = None) -> None:
        self.url = url
        self.cache_dir = cache_dir
        self._store = ObjectStore(url)
        # The backend of the latest load: its cache is keyed by the URL, not by the version, so
        # it fetches files for the states of earlier loads too.
        self._backend: ObjectStoreBackend | None = None

    def load(self, limits: QueryLimits) -> CatalogState:
        """The state of the version the store's catalog.json names now."""
        store = ObjectStore(self.url)
        text = store.get("catalog.json") or b""
        backend = ObjectStoreBackend(self.url, cache_dir=self.cache_dir, store=store)
        self._backend = backend
        manifest = backend.manifest
        engine = QueryEngine(table_paths(backend.table_folder, manifest), limits)
        return CatalogState(
            root=backend.cache.root,
            version=backend.version,
            manifest=manifest,
            engine=engine,
            catalog=mamamia.Catalog(backend),
            stamp=_digest(text),
            source=self,
        )

    def changed(self, state: CatalogState) -> bool:
        text = self._store.get("catalog.json")
        return text is not None and _digest(text) != state.stamp

    def ensure_file(self, state: CatalogState, relative: str) -> None:
        """Fetch ``relative`` into the cache if it is not there (absent on the store: nothing
        is written, the route answers 404)."""
        backend = self._backend
        assert backend is not None  # StoreSource.load made this state
        cache = backend.cache
        if cache.path(relative).is_file() or cache.is_known_empty(relative):
            return
        data = backend.store.get(relative)
        if data is not None:
            cache.write(relative, data)
