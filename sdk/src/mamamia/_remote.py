"""The remote backend: a mamamia server, with a local cache that mirrors the catalog layout.

Queries run on the server (paged through its cursors, never silently capped). Tables are mirrored
into the cache when a catalog version is first seen, and volumes' chunks as they are read, so
``mamamia.open(cache_dir)`` works offline on what was fetched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from mamamia._cached import CACHE_ENV, CachedBackend, cache_root
from mamamia._errors import CatalogFormatError, CatalogVersionMismatch, NotFoundError
from mamamia._http import ApiClient
from mamamia._manifest import check_manifest
from mamamia._pieces import RangeAnswer
from mamamia._store import DEFAULT_CACHE_MAX_BYTES, ChunkCache

__all__ = ["CACHE_ENV", "TOKEN_ENV", "RemoteBackend", "cache_root", "default_cache_dir"]

#: Environment variable for the bearer token of `mamamia.connect` when none is given.
TOKEN_ENV = "MAMAMIA_TOKEN"

_PAGE_ROWS = 50_000


def default_cache_dir(url: str) -> Path:
    """One cache folder per server: ``<cache root>/<host>_<port>``."""
    parts = urlsplit(url)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{parts.hostname}_{parts.port or ''}{parts.path}")
    return cache_root() / name.strip("_")


class RemoteBackend(CachedBackend):
    """One catalog version of a server, pinned at connect time (409 once it is replaced)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        cache_dir: str | Path | None = None,
        cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
        timeout: float = 60.0,
        retries: int = 4,
        version: str | None = None,
    ) -> None:
        url = url.rstrip("/")
        self._options: dict[str, Any] = {
            "token": token,
            "cache_max_bytes": cache_max_bytes,
            "timeout": timeout,
            "retries": retries,
        }
        self.api = ApiClient(
            url, token=token or os.environ.get(TOKEN_ENV), timeout=timeout, retries=retries
        )
        info = self.api.get_json("/v1/catalog")
        manifest = info.get("manifest") if isinstance(info, Mapping) else None
        if not isinstance(manifest, Mapping):
            raise CatalogFormatError(f"{url}: /v1/catalog has no manifest")
        checked = check_manifest(manifest, url)
        served = checked.catalog_version
        if version is not None and version != served:
            self.api.close()
            raise CatalogVersionMismatch(
                f"{url} now serves catalog {served}, not {version}: connect again "
                "without a version to use the new one"
            )
        cache = ChunkCache(cache_dir or default_cache_dir(url), cache_max_bytes)
        super().__init__(url, checked, cache)
        self._table_files = self.mirror_tables()

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

    # -- the source of the cache ---------------------------------------------------------

    def fetch_table(self, name: str, relative: str) -> bytes:
        response = self.api.request(
            "GET", f"/v1/tables/{name}/parquet", params={"version": self.version}
        )
        assert response is not None
        return response.content

    def fetch_object(self, relative: str) -> bytes | None:
        response = self.api.request(
            "GET", "/v1/zarr/" + relative[len("volumes/") :], allow_404=True
        )
        return None if response is None else response.content

    def fetch_object_ranges(
        self, relative: str, ranges: Sequence[tuple[int, int]]
    ) -> RangeAnswer | None:
        # One request: several ranges come back as multipart/byteranges.
        return self.api.get_ranges("/v1/zarr/" + relative[len("volumes/") :], ranges)

    def reopen_options(self) -> dict[str, Any]:
        # Pinned: a worker reads exactly this version (CatalogVersionMismatch once replaced).
        return {**self._options, "cache_dir": str(self.cache.root), "version": self.version}

    def close(self) -> None:
        self.api.close()
