"""What the server and object-store backends share: a local cache in the catalog's layout.

Both mirror the (small) tables a manifest names into the cache, checked against its sha256, then
write the cache's ``catalog.json`` (last, atomically; ``mirrored_from`` names the source), so
``mamamia.open(cache_dir)`` reads what was fetched offline. Both fetch Zarr keys on demand into
the bounded chunk cache (a shard by the byte ranges a read needs), prefetch whole arrays (whole
shards, one request each) on a thread pool, and say how to reopen
themselves in another process. A subclass says only how one table and one object are fetched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import zarr
from platformdirs import user_cache_dir

from mamamia._atomic import atomic_write, write_atomic
from mamamia._backend import Backend
from mamamia._chunks import open_chunk_array
from mamamia._errors import CatalogFormatError, NotFoundError
from mamamia._manifest import manifest_text
from mamamia._pieces import COALESCE_GAP, RangeAnswer
from mamamia._store import ChunkCache, Fetcher, HttpCachedStore
from mamamia._volume import ArrayLike
from mamamia_schema import CatalogManifest

__all__ = [
    "CACHE_ENV",
    "CachedBackend",
    "cache_root",
    "chunk_keys",
    "link_or_copy",
    "prefetch_arrays",
]

#: Environment variable for the cache root (default: the user cache folder, see `cache_root`).
CACHE_ENV = "MAMAMIA_CACHE_DIR"


def cache_root() -> Path:
    """``$MAMAMIA_CACHE_DIR``, else the platform's user cache folder for mamamia
    (``$XDG_CACHE_HOME/mamamia``, by default ``~/.cache/mamamia`` on Linux)."""
    return Path(os.environ.get(CACHE_ENV) or user_cache_dir("mamamia", appauthor=False))


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy across file systems), atomically."""
    if target.is_file():
        return
    with atomic_write(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CachedBackend(ABC):
    """One catalog version read through a local cache; subclasses fetch tables and objects."""

    #: Threads ``prefetch`` uses by default (the network, not the CPU, is the limit).
    prefetch_threads: ClassVar[int] = 8
    #: Ranges of one read at most this many bytes apart are fetched as one range.
    coalesce_gap: ClassVar[int] = COALESCE_GAP

    def __init__(self, location: str, manifest: CatalogManifest, cache: ChunkCache) -> None:
        self.url = location
        self._manifest = manifest
        self.version = manifest.catalog_version
        self.cache = cache
        self._arrays: dict[str, ArrayLike] = {}
        self._lock = threading.Lock()

    # -- what a subclass says ------------------------------------------------------------

    @abstractmethod
    def fetch_table(self, name: str, relative: str) -> bytes:
        """The bytes of table ``name`` (file ``relative``) from the source."""

    @abstractmethod
    def fetch_object(self, relative: str) -> bytes | None:
        """The bytes of ``volumes/...`` from the source, None when it has no such object."""

    @abstractmethod
    def fetch_object_ranges(
        self, relative: str, ranges: Sequence[tuple[int, int]]
    ) -> RangeAnswer | None:
        """Byte ranges of ``volumes/...`` (``(start, length)``, a negative start is a suffix)
        in as few requests as the source allows, None when it has no such object."""

    @abstractmethod
    def reopen_options(self) -> dict[str, Any]:
        """Keyword arguments that open this backend again (in another process)."""

    @abstractmethod
    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table: ...

    @abstractmethod
    def table_names(self) -> list[str]: ...

    @abstractmethod
    def table_schema(self, name: str) -> pa.Schema: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- the Backend interface -----------------------------------------------------------

    @property
    def manifest(self) -> CatalogManifest:
        return self._manifest

    @property
    def location(self) -> str:
        return self.url

    def mirror_tables(self, views: Sequence[Path] = ()) -> dict[str, Path]:
        """Tables into the cache (fetched when missing or stale), linked into each of
        ``views``; then the manifest of the mirror into each view and the cache root, last."""
        files: dict[str, Path] = {}
        for name, ref in self._manifest.tables.items():
            relative = ref.path
            target = self.cache.path(relative)
            digest = _sha256(target.read_bytes()) if target.is_file() else None
            if digest != ref.sha256:
                data = self.fetch_table(name, relative)
                if _sha256(data) != ref.sha256:
                    raise CatalogFormatError(
                        f"{self.url}: table {name!r} file {relative} does not match the "
                        "manifest's sha256"
                    )
                write_atomic(target, data)
            for view in views:
                link_or_copy(target, view / relative)
            files[name] = target
        text = manifest_text(self._manifest.model_copy(update={"mirrored_from": self.url}))
        for folder in (*views, self.cache.root):
            current = folder / "catalog.json"
            if not current.is_file() or current.read_text(encoding="utf-8") != text:
                write_atomic(current, text)
        return files

    def fetch(self, relative: str) -> bytes | None:
        if not relative.startswith("volumes/"):
            raise NotFoundError(f"{relative}: only volumes/ holds Zarr arrays")
        return self.fetch_object(relative)

    def fetch_ranges(self, relative: str, ranges: Sequence[tuple[int, int]]) -> RangeAnswer | None:
        if not relative.startswith("volumes/"):
            raise NotFoundError(f"{relative}: only volumes/ holds Zarr arrays")
        return self.fetch_object_ranges(relative, ranges)

    def open_array(self, zarr_path: str) -> ArrayLike:
        with self._lock:
            cached = self._arrays.get(zarr_path)
        if cached is not None:
            return cached
        store = HttpCachedStore(
            self.cache, zarr_path, self.fetch, self.fetch_ranges, gap=self.coalesce_gap
        )
        if store.get_sync("zarr.json") is None:
            raise NotFoundError(f"{self.url}: no array at {zarr_path} (run mamamia verify)")
        array = open_chunk_array(
            store,
            where=zarr_path,
            fallback=lambda: zarr.open_array(store=store, mode="r", zarr_format=3),
        )
        with self._lock:
            return self._arrays.setdefault(zarr_path, array)

    def prefetch(
        self,
        zarr_paths: Iterable[str],
        *,
        threads: int | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Fetch every chunk of these arrays into the cache; returns chunks fetched."""
        arrays = [(path, self.open_array(path)) for path in zarr_paths]
        return prefetch_arrays(
            self.cache,
            self.fetch,
            arrays,
            threads=self.prefetch_threads if threads is None else threads,
            on_chunk=on_chunk,
        )

    def reopener(self) -> Callable[[], Backend]:
        """A picklable callable that opens this backend again (in a DataLoader worker)."""
        return partial(type(self), self.url, **self.reopen_options())


def chunk_keys(array: Any) -> list[str]:
    """Every stored object's key (default v3 encoding ``c/i/j/...``) of a zarr array: its
    chunks, or its shards where it has them."""
    import itertools

    shape = tuple(int(n) for n in array.shape)
    chunks = tuple(int(n) for n in (getattr(array, "shards", None) or array.chunks))
    counts = [max(1, -(-n // c)) for n, c in zip(shape, chunks, strict=True)]
    return [
        "c/" + "/".join(str(i) for i in index)
        for index in itertools.product(*(range(n) for n in counts))
    ]


def prefetch_arrays(
    cache: ChunkCache,
    fetch: Fetcher,
    arrays: list[tuple[str, Any]],
    *,
    threads: int,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Fetch every chunk of ``(zarr_path, array)`` into ``cache``; returns chunks fetched."""
    from concurrent.futures import ThreadPoolExecutor

    items = [
        (HttpCachedStore(cache, path, fetch), f"{path}/{key}", key, array)
        for path, array in arrays
        for key in chunk_keys(array)
    ]

    def load(item: tuple[HttpCachedStore, str, str, Any]) -> int:
        store, relative, key, array = item
        already = cache.path(relative).is_file() or cache.is_known_empty(relative)
        if not already:
            # A shard read before by ranges may be cached whole already, as pieces.
            spans = getattr(array, "shard_spans", None)
            already = callable(spans) and store.holds(key, lambda: spans(key))
        if not already:
            store.get_sync(key)
        if on_chunk is not None:
            on_chunk(1)
        return 0 if already else 1

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return sum(pool.map(load, items))
