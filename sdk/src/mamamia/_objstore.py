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

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from mamamia._cached import CachedBackend, cache_root
from mamamia._errors import CatalogFormatError, CatalogNotFound, MamamiaError
from mamamia._local import LocalBackend
from mamamia._manifest import parse_manifest
from mamamia._pieces import RangeAnswer
from mamamia._store import DEFAULT_CACHE_MAX_BYTES, ChunkCache
from mamamia_schema import CatalogManifest

if TYPE_CHECKING:
    from obstore.store import ClientConfig

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
    bucket, prefix = _split(url)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"s3_{bucket}_{prefix}").strip("_")
    return cache_root() / (f"{purpose}-{name}" if purpose else name)


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

    def get_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes] | None:
        """Byte ranges ``(start, length)`` of one object (a negative start: its last
        ``length`` bytes), None when there is no such object. The absolute ranges go to
        ``obstore.get_ranges`` uncoalesced (the caller coalesced them): one GET each, in
        parallel; a suffix is one GET of its own."""
        import obstore

        absolute = [(start, length) for start, length in ranges if start >= 0]
        try:
            got = (
                obstore.get_ranges(
                    self._store,
                    path,
                    starts=[start for start, _length in absolute],
                    lengths=[length for _start, length in absolute],
                    coalesce=0,
                )
                if absolute
                else []
            )
            found = iter([bytes(data) for data in got])
            return [
                obstore.get(self._store, path, options={"range": {"suffix": length}})
                .bytes()
                .to_bytes()
                if start < 0
                else next(found)
                for start, length in ranges
            ]
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail("read ranges of", path, exc) from exc

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


def read_store_manifest(store: ObjectStore) -> CatalogManifest:
    """The catalog.json of a store, validated."""
    data = store.get("catalog.json")
    if data is None:
        raise CatalogNotFound(
            f"{store.url}: no catalog.json here; build one with: mamamia ingest RAW {store.url}"
        )
    return parse_manifest(data, store.url)


class ObjectStoreBackend(CachedBackend):
    """One catalog version on an object store, pinned at open time."""

    prefetch_threads = 16
    # Every range is a GET of its own here (one multi-range request over HTTP): merging ranges
    # up to obstore's own default distance apart saves GETs for at most 1 MiB per gap.
    coalesce_gap = 1 << 20

    def __init__(
        self,
        url: str,
        *,
        cache_dir: str | Path | None = None,
        cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
        store: ObjectStore | None = None,
    ) -> None:
        url = url.rstrip("/")
        self.store = store or ObjectStore(url)
        cache = ChunkCache(cache_dir or store_cache_dir(url), cache_max_bytes)
        super().__init__(url, read_store_manifest(self.store), cache)
        self._cache_max_bytes = cache_max_bytes
        #: GET requests for chunks and metadata (not served by the cache), ranged ones included.
        self.fetches = 0
        # Each version gets its own folder (hard links to the tables and its catalog.json), so
        # processes pinned to different versions can share one cache.
        view = self.cache.root / ".mamamia" / "versions" / self.version
        self.mirror_tables(views=(view,))
        self._tables = LocalBackend(view)

    @property
    def table_folder(self) -> Path:
        """This version's local folder: its catalog.json and mirrored tables (for SQL engines)."""
        return self._tables.root

    # -- queries: the mirrored tables, exactly as a local catalog -------------------------

    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table:
        return self._tables.sql(query, params)

    def register(self, name: str, data: object) -> None:
        self._tables.register(name, data)

    def table_names(self) -> list[str]:
        return self._tables.table_names()

    def table_schema(self, name: str) -> pa.Schema:
        return self._tables.table_schema(name)

    # -- the source of the cache ---------------------------------------------------------

    def fetch_table(self, name: str, relative: str) -> bytes:
        data = self.store.get(relative)
        if data is None:
            raise CatalogFormatError(
                f"{self.url}: table {name!r} file {relative} is missing from the store"
            )
        return data

    def fetch_object(self, relative: str) -> bytes | None:
        with self._lock:
            self.fetches += 1
        return self.store.get(relative)

    def fetch_object_ranges(
        self, relative: str, ranges: Sequence[tuple[int, int]]
    ) -> RangeAnswer | None:
        with self._lock:
            self.fetches += len(ranges)  # one GET per range: the caller coalesced them
        parts = self.store.get_ranges(relative, ranges)
        return None if parts is None else RangeAnswer(parts=tuple(parts))

    def reopen_options(self) -> dict[str, Any]:
        return {"cache_dir": str(self.cache.root), "cache_max_bytes": self._cache_max_bytes}

    def close(self) -> None:
        self._tables.close()
