"""Catalogs on S3-compatible object storage: ``mamamia.open("s3://bucket/prefix")``.

The store holds the same layout as a catalog folder. Reading one: ``catalog.json`` is fetched,
the (small) Parquet tables it names are mirrored into a local cache folder and queried there
with the embedded DuckDB (a ``LocalBackend`` over a per-version folder of the cache: no DuckDB
extension is needed), and Zarr chunks are fetched on demand through the chunk cache. The cache
has the catalog layout, so ``mamamia.open(cache_dir)`` reads what was fetched offline.

Credentials, region and endpoint come from the usual AWS environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for S3-compatible stores such as MinIO or Ceph).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa
import zarr

from mamamia._chunks import open_chunk_array
from mamamia._errors import CatalogFormatError, CatalogNotFound, MamamiaError, NotFoundError
from mamamia._local import LocalBackend
from mamamia._manifest import check_manifest
from mamamia._remote import _atomic_write, cache_root
from mamamia._store import ChunkCache, HttpCachedStore, prefetch_arrays
from mamamia._volume import ArrayLike

if TYPE_CHECKING:
    from obstore.store import ClientConfig

    from mamamia._catalog import Catalog

__all__ = [
    "ObjectStore",
    "ObjectStoreBackend",
    "ObjectStoreError",
    "is_store_url",
    "store_cache_dir",
]

_SCHEMES = ("s3://",)


class ObjectStoreError(MamamiaError):
    """The object store cannot be reached or refused a request (credentials, bucket, network)."""


def is_store_url(location: object) -> bool:
    """True for an object-store URL (``s3://bucket/prefix``) rather than a local path."""
    return isinstance(location, str) and location.lower().startswith(_SCHEMES)


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ValueError(f"not an object-store URL (expected s3://bucket/prefix): {url!r}")
    return parts.netloc, parts.path.strip("/")


def store_cache_dir(url: str, purpose: str = "") -> Path:
    """One cache folder per bucket/prefix: ``<cache root>/s3_<bucket>_<prefix>``."""
    root = cache_root()
    bucket, prefix = _split(url)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"s3_{bucket}_{prefix}").strip("_")
    return root / (f"{purpose}-{name}" if purpose else name)


class ObjectStore:
    """A thin, typed wrapper over an obstore S3Store rooted at the URL's prefix."""

    def __init__(self, url: str) -> None:
        try:
            from obstore.store import S3Store
        except ImportError:
            raise ImportError(
                "reading or writing s3:// catalogs needs obstore: pip install 'mamamia[s3]'"
            ) from None
        self.url = url.rstrip("/")
        bucket, prefix = _split(self.url)
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT") or ""
        options: ClientConfig = {"timeout": "60s", "connect_timeout": "10s"}
        if endpoint.startswith("http://"):
            options["allow_http"] = True  # a local S3-compatible store (MinIO, moto) on plain HTTP
        kwargs: dict[str, Any] = {}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["region"] = region
        if endpoint:
            kwargs["endpoint"] = endpoint
        self._store = S3Store(bucket, prefix=prefix or None, client_options=options, **kwargs)

    def _fail(self, what: str, path: str, exc: Exception) -> ObjectStoreError:
        return ObjectStoreError(f"{self.url}/{path}: cannot {what} ({type(exc).__name__}: {exc})")

    def get(self, path: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        import obstore

        try:
            return obstore.get(self._store, path).bytes().to_bytes()
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail("read", path, exc) from exc

    def put(self, path: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._store, path, data)
        except Exception as exc:
            raise self._fail("write", path, exc) from exc

    def delete(self, path: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail("delete", path, exc) from exc

    def list(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """(path, size) of every object under ``prefix`` (relative to the store's prefix)."""
        import obstore

        try:
            for page in obstore.list(self._store, prefix=prefix or None):
                for meta in page:
                    yield str(meta["path"]), int(meta["size"])
        except Exception as exc:
            raise self._fail("list", prefix, exc) from exc


def read_store_manifest(store: ObjectStore) -> dict[str, Any]:
    """The catalog.json of a store, validated."""
    data = store.get("catalog.json")
    if data is None:
        raise CatalogNotFound(
            f"{store.url}: no catalog.json here; build one with: mamamia ingest RAW {store.url}"
        )
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise CatalogFormatError(f"{store.url}/catalog.json: not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise CatalogFormatError(f"{store.url}/catalog.json: not a JSON object")
    return dict(check_manifest(manifest, store.url))


def _link_or_copy(source: Path, target: Path) -> None:
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}-{threading.get_ident()}")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    tmp.replace(target)


class ObjectStoreBackend:
    """One catalog version on an object store, pinned at open time."""

    def __init__(
        self,
        url: str,
        *,
        cache_dir: str | Path | None = None,
        cache_max_bytes: int = 20 * 2**30,
        store: ObjectStore | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.store = store or ObjectStore(self.url)
        self._manifest = read_store_manifest(self.store)
        self.version = str(self._manifest["catalog_version"])
        self._cache_dir = cache_dir
        self._cache_max_bytes = cache_max_bytes
        self.cache = ChunkCache(cache_dir or store_cache_dir(self.url), cache_max_bytes)
        self._arrays: dict[str, ArrayLike] = {}
        self._lock = threading.Lock()
        self._tables = LocalBackend(self._mirror_tables())
        #: Chunk and metadata objects fetched from the store (not served by the cache).
        self.fetches = 0

    @property
    def manifest(self) -> Mapping[str, Any]:
        return self._manifest

    @property
    def location(self) -> str:
        return self.url

    @property
    def table_folder(self) -> Path:
        """This version's local folder: its catalog.json and mirrored tables (for SQL engines)."""
        return self._tables.root

    def _mirror_tables(self) -> Path:
        """Tables into the cache (content-addressed: fetched once), then this version's view.

        Each version gets its own folder ``.mamamia/versions/<version>`` (hard links to the
        tables and its catalog.json), so processes pinned to different versions can share one
        cache; the cache root's catalog.json (for offline ``mamamia.open``) is written last.
        """
        root = self.cache.root
        view = root / ".mamamia" / "versions" / self.version
        mirrored: dict[str, Any] = {}
        for name, ref in self._manifest["tables"].items():
            relative = str(ref["path"])
            target = self.cache.path(relative)
            expected = ref.get("sha256")
            if not target.is_file() or (
                expected and hashlib.sha256(target.read_bytes()).hexdigest() != expected
            ):
                data = self.store.get(relative)
                if data is None:
                    raise CatalogFormatError(
                        f"{self.url}: table {name!r} file {relative} is missing from the store"
                    )
                if expected and hashlib.sha256(data).hexdigest() != expected:
                    raise CatalogFormatError(
                        f"{self.url}: table {name!r} file {relative} does not match its sha256"
                    )
                _atomic_write(target, data)
            _link_or_copy(target, view / relative)
            mirrored[str(name)] = dict(ref)
        manifest = {**self._manifest, "tables": mirrored, "mirrored_from": self.url}
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        for folder in (view, root):
            current = folder / "catalog.json"
            if not current.is_file() or current.read_text(encoding="utf-8") != text:
                _atomic_write(current, text.encode("utf-8"))
        return view

    # -- queries: the mirrored tables, exactly as a local catalog -------------------------

    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table:
        return self._tables.sql(query, params)

    def table_names(self) -> list[str]:
        return self._tables.table_names()

    def table_schema(self, name: str) -> pa.Schema:
        return self._tables.table_schema(name)

    # -- arrays --------------------------------------------------------------------------

    def _fetch(self, relative: str) -> bytes | None:
        if not relative.startswith("volumes/"):
            raise NotFoundError(f"{relative}: only volumes/ holds Zarr arrays")
        with self._lock:
            self.fetches += 1
        return self.store.get(relative)

    def open_array(self, zarr_path: str) -> ArrayLike:
        with self._lock:
            cached = self._arrays.get(zarr_path)
        if cached is not None:
            return cached
        store = HttpCachedStore(self.cache, zarr_path, self._fetch)
        if store.get_sync("zarr.json") is None:
            raise NotFoundError(f"{self.url}: no array at {zarr_path} (run mamamia verify)")
        array = open_chunk_array(
            store,
            where=f"{self.url}/{zarr_path}",
            fallback=lambda: zarr.open_array(store=store, mode="r", zarr_format=3),
        )
        with self._lock:
            self._arrays.setdefault(zarr_path, array)
            return self._arrays[zarr_path]

    def prefetch(
        self,
        zarr_paths: Iterable[str],
        *,
        threads: int = 16,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Fetch every chunk of these arrays into the cache; returns chunks fetched."""
        arrays = [(path, self.open_array(path)) for path in zarr_paths]
        return prefetch_arrays(self.cache, self._fetch, arrays, threads=threads, on_chunk=on_chunk)

    def reopener(self) -> Callable[[], Catalog]:
        """A picklable callable that reopens this catalog (in DataLoader worker processes)."""
        return partial(
            open_store, self.url, cache_dir=self.cache.root, cache_max_bytes=self._cache_max_bytes
        )

    def close(self) -> None:
        self._tables.close()


def open_store(
    url: str, *, cache_dir: str | Path | None = None, cache_max_bytes: int = 20 * 2**30
) -> Catalog:
    """A Catalog over ``s3://bucket/prefix``, pinned to the version its catalog.json names."""
    from mamamia._catalog import Catalog

    return Catalog(ObjectStoreBackend(url, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes))
