"""Serving a catalog on object storage: ``mamamia serve s3://bucket/prefix``.

The server keeps no state of its own: each process mirrors the (small) tables of the version
``catalog.json`` names into a local cache (per-version folders, so processes may share one
cache), queries them with its engine as for a local catalog, and fetches Zarr files from the
store into the chunk cache as requests ask for them. ``catalog.json`` is re-read from the store
at most once per poll interval; a new version is built whole and swapped in, so one answer never
mixes versions, and every process switches without a restart.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mamamia
from mamamia.objstore import ObjectStore, ObjectStoreBackend, is_store_url
from mamamia_server._engine import QueryEngine
from mamamia_server._limits import QueryLimits
from mamamia_server._state import CatalogHolder, CatalogState, level_path, table_paths

__all__ = ["StoreCatalogHolder", "StoreCatalogState", "store_url"]


def store_url(catalog: Any) -> str | None:
    """The object-store URL a catalog setting names, or None for a local folder.

    ``Path("s3://b/p")`` folds the double slash (``s3:/b/p``), so that form is accepted too.
    """
    text = str(catalog)
    if text.startswith("s3:/") and not text.startswith("s3://"):
        text = "s3://" + text[len("s3:/") :]
    return text if is_store_url(text) else None


@dataclass(eq=False)
class StoreCatalogState(CatalogState):
    """A CatalogState whose volumes live on the store; ``root`` is the local chunk cache."""

    backend: ObjectStoreBackend | None = None

    def ensure_file(self, relative: str) -> None:
        """Make sure ``relative`` (``volumes/...``) is in the cache, fetching it if needed
        (absent on the store: nothing is written, the route answers 404)."""
        assert self.backend is not None
        cache = self.backend.cache
        target = cache.path(relative)
        if target.is_file() or cache.is_known_empty(relative):
            return
        data = self.backend.store.get(relative)
        if data is not None:
            cache.write(relative, data)

    def level_array(self, zarr_path: str, level: int) -> Any | None:
        relative = level_path(zarr_path, level)
        if relative is None:
            return None
        with self._lock:
            if relative in self._levels:
                return self._levels[relative]
        assert self.backend is not None
        array: Any | None
        try:
            array = self.backend.open_array(relative)
        except mamamia.NotFoundError:
            array = None
        with self._lock:
            self._levels[relative] = array
        return array


def _digest(data: bytes) -> tuple[int, int, int]:
    head = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    return (head, len(data), 0)


def load_store_state(
    url: str, limits: QueryLimits, cache_dir: Path | None = None
) -> StoreCatalogState:
    """The state of the version the store's catalog.json names now."""
    store = ObjectStore(url)
    text = store.get("catalog.json") or b""
    backend = ObjectStoreBackend(url, cache_dir=cache_dir, store=store)
    view = backend.table_folder
    manifest = backend.manifest
    engine = QueryEngine(table_paths(view, manifest), limits)
    return StoreCatalogState(
        root=backend.cache.root,
        version=backend.version,
        manifest=manifest,
        engine=engine,
        catalog=mamamia.Catalog(backend),
        stamp=_digest(text),
        backend=backend,
    )


class StoreCatalogHolder(CatalogHolder):
    """The current state of a catalog on object storage, refreshed when catalog.json changes."""

    def __init__(
        self, url: str, limits: QueryLimits, poll_s: float = 1.0, cache_dir: Path | None = None
    ) -> None:
        self.url = url
        self.limits = limits
        self.poll_s = poll_s
        self.cache_dir = cache_dir
        self._state = load_store_state(url, limits, cache_dir)
        self.root = self._state.root
        self._store = ObjectStore(url)
        self._checked = time.monotonic()
        self._reload_lock = threading.Lock()
        self.last_error: str | None = None

    def _maybe_reload(self, force: bool) -> None:
        if not self._reload_lock.acquire(blocking=force):
            return
        try:
            self._checked = time.monotonic()
            try:
                text = self._store.get("catalog.json")
                if text is None or _digest(text) == self._state.stamp:
                    return
                self._state = load_store_state(self.url, self.limits, self.cache_dir)
                self.last_error = None
            except (mamamia.MamamiaError, OSError, ValueError) as exc:
                # The store unreachable or a broken catalog.json: keep serving what we have.
                self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._reload_lock.release()
