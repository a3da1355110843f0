"""The local backend: a catalog folder, queried with an embedded DuckDB, arrays read with zarr."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from mamamia._chunks import open_chunk_array
from mamamia._errors import (
    CatalogFormatError,
    ChunkMissingError,
    NotFoundError,
    QueryError,
    QueryRejected,
    QueryTimeout,
)
from mamamia._manifest import read_manifest
from mamamia._store import StrictLocalStore
from mamamia._volume import ArrayLike
from mamamia_schema import CatalogManifest

__all__ = ["LocalBackend", "translate_duckdb_error"]


def translate_duckdb_error(exc: duckdb.Error, query: str) -> QueryError:
    """The one place DuckDB's exceptions become the SDK's."""
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, duckdb.InterruptException):
        return QueryTimeout(f"the query was stopped: {first_line}")
    if isinstance(
        exc,
        duckdb.ParserException
        | duckdb.BinderException
        | duckdb.CatalogException
        | duckdb.InvalidInputException,
    ):
        return QueryRejected(f"{first_line} (in: {query[:200]})")
    return QueryError(f"{first_line} (in: {query[:200]})")


class LocalBackend:
    """One catalog version in a local folder: the manifest read once, at open time."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self._manifest = read_manifest(self.root)
        self._tables: dict[str, Path] = {}
        for name, ref in self._manifest.tables.items():
            path = (self.root / ref.path).resolve()
            if not path.is_relative_to(self.root):
                raise CatalogFormatError(f"{self.root}: table {name!r} points outside the catalog")
            if not path.is_file():
                raise CatalogFormatError(f"{self.root}: table file {ref.path} is missing")
            self._tables[str(name)] = path
        self._connection = duckdb.connect(":memory:", config={"python_enable_replacements": False})
        for name, path in self._tables.items():
            self._connection.execute(
                f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{_sql_string(path)}')"
            )
        self._arrays: dict[str, ArrayLike] = {}
        self._lock = threading.Lock()

    @property
    def manifest(self) -> CatalogManifest:
        return self._manifest

    @property
    def location(self) -> str:
        return str(self.root)

    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table:
        cursor = self._connection.cursor()
        try:
            # A relation (not a DB-API result) hands Arrow over without an extra copy.
            relation = cursor.sql(query, params=dict(params) if params else None)
            if relation is None:
                raise QueryRejected(f"not a query that returns rows: {query[:200]}")
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            raise translate_duckdb_error(exc, query) from exc
        finally:
            cursor.close()

    def table_names(self) -> list[str]:
        return sorted(self._tables)

    def table_schema(self, name: str) -> pa.Schema:
        if name not in self._tables:
            raise NotFoundError(f"no table {name!r}; the catalog has {self.table_names()}")
        return pq.read_schema(self._tables[name])

    def open_array(self, zarr_path: str) -> ArrayLike:
        with self._lock:
            cached = self._arrays.get(zarr_path)
            if cached is not None:
                return cached
            path = (self.root / zarr_path).resolve()
            if not path.is_relative_to(self.root):
                raise NotFoundError(f"{self.root}: no array at {zarr_path}")
            if not (path / "zarr.json").is_file():
                source = (self._manifest.model_extra or {}).get("mirrored_from")
                if source:
                    raise ChunkMissingError(
                        f"{zarr_path} was never fetched into this cache of {source}: "
                        "read it once online, or cohort.prefetch() before going offline"
                    )
                raise NotFoundError(
                    f"{self.root}: no array at {zarr_path} (the catalog is damaged: run "
                    "mamamia verify)"
                )
            store = StrictLocalStore(path)
            array = open_chunk_array(
                store,
                where=zarr_path,
                fallback=lambda: zarr.open_array(store=store, mode="r", zarr_format=3),
            )
            self._arrays[zarr_path] = array
            return array

    def reopener(self) -> Callable[[], LocalBackend]:
        """A picklable callable that opens this folder again (in a DataLoader worker)."""
        return partial(LocalBackend, str(self.root))

    def close(self) -> None:
        self._connection.close()


def _sql_string(path: Path) -> str:
    return str(path).replace("'", "''")
