"""The local backend: a catalog folder, queried with an embedded DuckDB, arrays read with zarr."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import zarr

from mamamia._chunks import open_chunk_array
from mamamia._errors import (
    CatalogFormatError,
    CatalogNotFound,
    ChunkMissingError,
    InvalidRequest,
    NotFoundError,
    QueryRejected,
)
from mamamia._manifest import read_manifest
from mamamia._store import StrictLocalStore
from mamamia._volume import ArrayLike
from mamamia.sqlguard import QueryLimits, check_params, check_query, check_select, translate
from mamamia_schema import CatalogManifest

__all__ = ["LocalBackend", "to_arrow"]

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class LocalBackend:
    """One catalog version in a local folder: the manifest read once, at open time."""

    def __init__(
        self, root: str | Path, *, guard: bool = True, limits: QueryLimits | None = None
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        #: whether queries pass the server's guard (``guard=False``: any one SELECT, trusted)
        self.guard = guard
        self.limits = limits or QueryLimits()
        if not (self.root / "catalog.json").is_file() and _is_raw_folder(self.root):
            raise CatalogNotFound(
                f"{self.root} is a raw folder; ingest it with: mamamia ingest {self.root} "
                f"{self.root.parent / 'catalog'}"
            )
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
        self._registered: set[str] = set()
        self._arrays: dict[str, ArrayLike] = {}
        self._lock = threading.Lock()

    @property
    def manifest(self) -> CatalogManifest:
        return self._manifest

    @property
    def location(self) -> str:
        return str(self.root)

    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table:
        # One SELECT always (even trusted), so no query can drop or replace the views.
        if self.guard:
            checked = check_query(query, [*self._tables, *self._registered], self.limits)
        else:
            checked = check_select(query, self.limits)
        values = check_params(checked, params, self.limits)
        cursor = self._connection.cursor()
        try:
            # A relation (not a DB-API result) hands Arrow over without an extra copy.
            relation = cursor.sql(checked.sql, params=values or None)
            if relation is None:
                raise QueryRejected("only SELECT queries are allowed", rule="statement")
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            raise translate(exc, query, self.limits) from None
        finally:
            cursor.close()

    def register(self, name: str, data: object) -> None:
        """Make ``data`` a table ``name`` that queries can join with the catalog's tables."""
        if not isinstance(name, str) or not _TABLE_NAME.match(name):
            raise InvalidRequest(
                f"table name {name!r} is not a plain identifier (letters, digits, _)"
            )
        if name.lower() in {t.lower() for t in self._tables}:
            raise InvalidRequest(f"table name {name!r} is a catalog table; choose another name")
        table = to_arrow(data, name)
        with self._lock:
            # A table of this connection, not a registered view: cursors see only tables.
            self._connection.register("_mamamia_upload", table)
            try:
                self._connection.execute(
                    f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _mamamia_upload'
                )
            finally:
                self._connection.unregister("_mamamia_upload")
            self._registered.add(name)

    def table_names(self) -> list[str]:
        return sorted({*self._tables, *self._registered})

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
        # Registered tables stay in this process: they are the user's data, not the catalog's.
        return partial(LocalBackend, str(self.root), guard=self.guard, limits=self.limits)

    def close(self) -> None:
        self._connection.close()


def _is_raw_folder(root: Path) -> bool:
    """Whether ``root`` holds a raw MAMA-MIA release (what ``mamamia ingest`` reads)."""
    if not root.is_dir():
        return False
    names = {p.name.lower() for p in root.iterdir()}
    return "clinical_and_imaging_info.xlsx" in names or {"images", "segmentations"} <= names


def to_arrow(data: object, name: str) -> pa.Table:
    """A pandas or polars DataFrame, an Arrow table, or a .csv/.parquet path, as Arrow."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, str | Path):
        path = Path(data).expanduser()
        if not path.is_file():
            raise InvalidRequest(f"register({name!r}): no file {path}")
        suffix = "".join(path.suffixes[-2:]).lower()
        try:
            if suffix.endswith(".parquet"):
                return pq.read_table(path)
            if suffix.endswith((".csv", ".csv.gz")):
                return pacsv.read_csv(path)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidRequest(f"register({name!r}): {path} could not be read: {exc}") from None
        raise InvalidRequest(f"register({name!r}): {path} is not a .csv or .parquet file")
    to_arrow_method = getattr(data, "to_arrow", None)  # polars
    if callable(to_arrow_method) and type(data).__module__.startswith("polars"):
        result = to_arrow_method()
        if isinstance(result, pa.Table):
            return result
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InvalidRequest(
        f"register({name!r}): expected a pandas or polars DataFrame, an Arrow table or a "
        f".csv/.parquet path, got {type(data).__name__}"
    )


def _sql_string(path: Path) -> str:
    return str(path).replace("'", "''")
