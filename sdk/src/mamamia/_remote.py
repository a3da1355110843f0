"""The remote backend: a mamamia server, with a local cache that mirrors the catalog layout.

Queries run on the server (paged through its cursors, never silently capped). Tables are mirrored
into the cache when a catalog version is first seen, and volumes' chunks as they are read, so
``mamamia.open(cache_dir)`` works offline on what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import zarr

from mamamia._chunks import open_chunk_array
from mamamia._errors import CatalogFormatError, CatalogVersionMismatch, NotFoundError
from mamamia._http import ApiClient
from mamamia._manifest import check_manifest
from mamamia._store import ChunkCache, HttpCachedStore, prefetch_arrays
from mamamia._volume import ArrayLike

__all__ = ["CACHE_ENV", "TOKEN_ENV", "RemoteBackend", "cache_root", "default_cache_dir"]

#: Environment variable for the cache root (default: the user cache folder, see `cache_root`).
CACHE_ENV = "MAMAMIA_CACHE_DIR"
#: Environment variable for the bearer token of `mamamia.connect` when none is given.
TOKEN_ENV = "MAMAMIA_TOKEN"

_PAGE_ROWS = 50_000


def cache_root() -> Path:
    """``$MAMAMIA_CACHE_DIR``, else the platform's user cache folder for mamamia
    (``$XDG_CACHE_HOME/mamamia``, by default ``~/.cache/mamamia`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get(CACHE_ENV) or user_cache_dir("mamamia", appauthor=False))


def default_cache_dir(url: str) -> Path:
    """One cache folder per server: ``<cache root>/<host>_<port>``."""
    root = cache_root()
    parts = urlsplit(url)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{parts.hostname}_{parts.port or ''}{parts.path}")
    return root / name.strip("_")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    tmp.replace(path)


class RemoteBackend:
    """One catalog version of a server, pinned at connect time (409 once it is replaced)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        cache_dir: str | Path | None = None,
        cache_max_bytes: int = 20 * 2**30,
        timeout: float = 60.0,
        retries: int = 4,
        version: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._options: dict[str, Any] = {
            "token": token,
            "cache_dir": cache_dir,
            "cache_max_bytes": cache_max_bytes,
            "timeout": timeout,
            "retries": retries,
        }
        self.api = ApiClient(
            self.url, token=token or os.environ.get(TOKEN_ENV), timeout=timeout, retries=retries
        )
        info = self.api.get_json("/v1/catalog")
        manifest = info.get("manifest") if isinstance(info, Mapping) else None
        if not isinstance(manifest, Mapping):
            raise CatalogFormatError(f"{self.url}: /v1/catalog has no manifest")
        self._manifest = dict(check_manifest(manifest, self.url))
        self.version = str(self._manifest["catalog_version"])
        if version is not None and version != self.version:
            self.api.close()
            raise CatalogVersionMismatch(
                f"{self.url} now serves catalog {self.version}, not {version}: connect again "
                "without a version to use the new one"
            )
        self.cache = ChunkCache(cache_dir or default_cache_dir(self.url), cache_max_bytes)
        self._arrays: dict[str, ArrayLike] = {}
        self._lock = threading.Lock()
        self._table_files = self._mirror_tables()

    @property
    def manifest(self) -> Mapping[str, Any]:
        return self._manifest

    @property
    def location(self) -> str:
        return self.url

    # -- queries -------------------------------------------------------------------------

    def _page(self, body: Mapping[str, Any]) -> tuple[pa.Table, str | None]:
        response = self.api.request(
            "POST",
            "/v1/query",
            params={"format": "arrow", "version": self.version},
            json=body,
        )
        assert response is not None
        table = ipc.open_stream(pa.py_buffer(response.content)).read_all()
        return table, response.headers.get("x-next-cursor")

    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table:
        body: dict[str, Any] = {"sql": query, "params": dict(params), "limit": _PAGE_ROWS}
        pages: list[pa.Table] = []
        table, cursor = self._page(body)
        pages.append(table)
        while cursor:
            table, cursor = self._page({"cursor": cursor, "limit": _PAGE_ROWS})
            pages.append(table)
        if len(pages) == 1:
            return pages[0]
        return pa.concat_tables(pages)

    def table_names(self) -> list[str]:
        return sorted(self._table_files)

    def table_schema(self, name: str) -> pa.Schema:
        if name not in self._table_files:
            raise NotFoundError(f"no table {name!r}; the catalog has {self.table_names()}")
        return pq.read_schema(self._table_files[name])

    # -- the cache mirror ----------------------------------------------------------------

    def _mirror_tables(self) -> dict[str, Path]:
        """Tables of this version into the cache, then its catalog.json (last, atomically)."""
        root = self.cache.root
        files: dict[str, Path] = {}
        mirrored: dict[str, Any] = {}
        for name, ref in self._manifest["tables"].items():
            relative = str(ref["path"])
            target = self.cache.path(relative)
            if not target.is_file():
                response = self.api.request(
                    "GET", f"/v1/tables/{name}/parquet", params={"version": self.version}
                )
                assert response is not None
                expected = ref.get("sha256")
                if expected and hashlib.sha256(response.content).hexdigest() != expected:
                    raise CatalogFormatError(
                        f"{self.url}: table {name!r} does not match the manifest's sha256"
                    )
                _atomic_write(target, response.content)
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            files[str(name)] = target
            mirrored[str(name)] = {**dict(ref), "path": relative, "sha256": digest}
        manifest = {**self._manifest, "tables": mirrored, "mirrored_from": self.url}
        current = root / "catalog.json"
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        if not current.is_file() or current.read_text(encoding="utf-8") != text:
            _atomic_write(current, text.encode("utf-8"))
        return files

    # -- arrays --------------------------------------------------------------------------

    def _fetch(self, relative: str) -> bytes | None:
        if not relative.startswith("volumes/"):
            raise NotFoundError(f"{relative}: only volumes/ is served as Zarr")
        response = self.api.request(
            "GET", "/v1/zarr/" + relative[len("volumes/") :], allow_404=True
        )
        return None if response is None else response.content

    def open_array(self, zarr_path: str) -> ArrayLike:
        with self._lock:
            cached = self._arrays.get(zarr_path)
            if cached is not None:
                return cached
            store = HttpCachedStore(self.cache, zarr_path, self._fetch)
            array = open_chunk_array(
                store,
                where=zarr_path,
                fallback=lambda: zarr.open_array(store=store, mode="r", zarr_format=3),
            )
            self._arrays[zarr_path] = array
            return array

    def prefetch(
        self,
        zarr_paths: Iterable[str],
        *,
        threads: int = 8,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Fetch every chunk of these arrays into the cache; returns chunks fetched."""
        arrays = [(path, self.open_array(path)) for path in zarr_paths]
        return prefetch_arrays(self.cache, self._fetch, arrays, threads=threads, on_chunk=on_chunk)

    def reopener(self) -> Callable[[], Any]:
        """A picklable callable that reconnects to this server and this catalog version
        (DataLoader workers use it; it raises CatalogVersionMismatch once that is replaced)."""
        from functools import partial

        from mamamia._catalog import connect

        options = {**self._options, "cache_dir": str(self.cache.root)}
        return partial(connect, self.url, version=self.version, **options)

    def close(self) -> None:
        self.api.close()
