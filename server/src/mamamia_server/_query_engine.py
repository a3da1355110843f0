"""The query engine: the catalog's tables in a locked-down, read-only DuckDB, queried safely.

Layers (docs/query-safety.md):

1. every query passes :func:`check_query` first (one SELECT, allowed tables and functions,
   size caps), and its ``$name`` parameters pass :func:`check_params`;
2. the tables are copied *into* a DuckDB file in a private temporary directory, which is then
   reopened ``read_only=True`` with external access off, no allowed directories, extension
   autoload/autoinstall and community extensions off, Python replacement scans off,
   ``temp_directory=''``, ``memory_limit``, ``threads``, ``SET GLOBAL max_execution_time``
   and finally ``lock_configuration=true`` (the locked-down profile of docs/query-safety.md);
3. each request runs on its own cursor, and reads at most ``limit + 1`` rows, so a huge
   result is never materialised and ``truncated`` is exact.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import duckdb
import pyarrow as pa

from mamamia import QueryError, QueryFailed, QueryRejected, UnknownTable
from mamamia.sqlguard import (
    CheckedQuery,
    ParamValue,
    QueryLimits,
    check_params,
    check_query,
    same_tree,
    strip_statement,
)

from ._runner import columns, fetch, open_locked
from ._worker import WorkerPool

__all__ = ["Column", "QueryEngine", "QueryResult", "memory_bytes", "strip_statement"]

_TABLE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_DB_FILE: Final = "mamamia_catalog.duckdb"
_PATIENT_ID: Final = "patient_id"
_SUBQUERY_ALIAS: Final = "_mamamia_q"


@dataclass(frozen=True, slots=True)
class Column:
    """One result column: its name and DuckDB type (``VARCHAR``, ``INTEGER[]``, ...)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of one answer, as Arrow, with what the routes need around them."""

    #: the rows (at most ``limit``)
    table: pa.Table
    #: whether the query had more rows than ``limit``
    truncated: bool
    #: name and DuckDB type of each column
    columns: tuple[Column, ...]
    #: the limit the rows were cut at
    limit: int
    #: rows skipped before this page (0 for :meth:`QueryEngine.execute`)
    offset: int = 0
    #: row count of the whole query, for :meth:`QueryEngine.execute_page`; else None
    total: int | None = None
    #: the ORDER BY that makes pages stable (1-based column positions), for pages; else None
    order_by: tuple[int, ...] | None = None


def _cleanup(con: duckdb.DuckDBPyConnection, pool: WorkerPool | None, directory: str) -> None:
    try:
        if pool is not None:
            pool.close()
        con.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_UNITS: Final = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip


def memory_bytes(text: str) -> int:
    """Bytes of a DuckDB memory size such as ``"1GB"`` (10^9) or ``"512MiB"`` (2^29)."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a memory size: {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


class QueryEngine:
    """Safe SQL over ``{table_name: parquet_path}``.

    The Parquet files are read once, at construction, into a DuckDB database in a new
    temporary directory (``workdir`` or the system default); the engine then never touches a
    file again. Thread-safe: every call takes its own cursor. Call :meth:`close` (or use it as
    a context manager) to delete the temporary database.

    ``isolation="thread"`` (the default) runs queries in this process, on a cursor per call.
    ``isolation="process"`` runs them in ``workers`` spawned processes that open the same
    database read-only with the same locked settings under ``RLIMIT_AS = address_space``
    bytes (default ``memory_limit`` + 2 GiB); a worker that overruns the deadline by
    ``grace_s`` is killed and replaced (see ``_worker``). Each worker is its own DuckDB
    instance, so memory use is up to ``workers * memory_limit``.
    """

    def __init__(
        self,
        tables: Mapping[str, str | os.PathLike[str]],
        limits: QueryLimits | None = None,
        *,
        workdir: str | os.PathLike[str] | None = None,
        isolation: Literal["thread", "process"] = "thread",
        workers: int = 2,
        address_space: int | None = None,
        grace_s: float = 2.0,
    ) -> None:
        self.limits = limits if limits is not None else QueryLimits()
        if isolation not in ("thread", "process"):
            raise ValueError(f"isolation must be 'thread' or 'process', got {isolation!r}")
        self.isolation = isolation
        if not tables:
            raise ValueError("QueryEngine needs at least one table")
        sources: dict[str, Path] = {}
        for name, path in tables.items():
            if not isinstance(name, str) or not _TABLE_NAME.match(name):
                raise ValueError(
                    f"table name {name!r} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"
                )
            if name.lower() in sources:
                raise ValueError(f"table {name!r} is given twice (names are case-insensitive)")
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"table {name!r}: Parquet file {str(p)!r} does not exist")
            sources[name.lower()] = p
        self._dir = tempfile.mkdtemp(prefix="mamamia-query-", dir=workdir)
        self._path = os.path.join(self._dir, _DB_FILE)
        self._pool: WorkerPool | None = None
        con: duckdb.DuckDBPyConnection | None = None
        try:
            self._copy_in(sources)
            self._con = con = open_locked(self._path, self.limits)
            self._schemas = {name: self._describe(name) for name in sorted(sources)}
            if isolation == "process":
                space = address_space
                if space is None:
                    space = memory_bytes(self.limits.memory_limit) + 2 * 1024**3
                self._pool = WorkerPool(
                    self._path, self.limits, size=workers, address_space=space, grace_s=grace_s
                )
        except BaseException:
            if con is not None:
                con.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _cleanup, self._con, self._pool, self._dir)

    # -- set-up -----------------------------------------------------------------------------
    def _copy_in(self, sources: Mapping[str, Path]) -> None:
        """Write the tables into a fresh database file (the only time external access is on)."""
        con = duckdb.connect(
            self._path,
            config={
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "python_enable_replacements": False,
                "threads": self.limits.threads,
                "memory_limit": self.limits.memory_limit,
            },
        )
        try:
            for name, path in sources.items():
                literal = "'" + str(path).replace("'", "''") + "'"
                try:
                    con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM read_parquet({literal})')
                except duckdb.Error as exc:
                    raise ValueError(
                        f"table {name!r}: cannot read Parquet file {str(path)!r}: {exc}"
                    ) from None
            con.execute("CHECKPOINT")
        finally:
            con.close()

    def _describe(self, name: str) -> pa.Schema:
        cur = self._con.cursor()
        try:
            reader = cur.sql(f'SELECT * FROM "{name}" LIMIT 0').to_arrow_reader(1)
            try:
                schema: pa.Schema = reader.schema
            finally:
                reader.close()
            return schema
        finally:
            cur.close()

    # -- info -------------------------------------------------------------------------------
    @property
    def database_path(self) -> str:
        """Path of the temporary database file (for tests and diagnostics; never sent to clients)."""
        return self._path

    def tables(self) -> list[str]:
        """Names of the tables a query may read, sorted."""
        return list(self._schemas)

    def table_schema(self, name: str) -> pa.Schema:
        """Arrow schema of one table, as queries return it. Raises :class:`UnknownTable`."""
        schema = self._schemas.get(name.lower()) if isinstance(name, str) else None
        if schema is None:
            raise UnknownTable(
                f"unknown table {str(name)[:64]!r}; the tables are: {', '.join(self._schemas)}",
                rule="table",
            )
        return schema

    def check(self, sql: str) -> CheckedQuery:
        """Run the guard only (no execution): raises QueryRejected / QueryTooLarge."""
        return check_query(sql, self._schemas, self.limits)

    # -- queries ----------------------------------------------------------------------------
    def execute(
        self,
        sql: str,
        params: Mapping[str, object] | None = None,
        limit: int | None = None,
    ) -> QueryResult:
        """Run one checked SELECT; return at most ``limit`` rows (default ``max_rows``).

        The rows come in the order the query gives (its own ORDER BY, else DuckDB's). For
        stable pages use :meth:`execute_page`.
        """
        lim = self._limit(limit)
        checked = self.check(sql)
        values = check_params(checked, params, self.limits)
        table, columns = self._fetch(checked.sql, values, lim + 1)
        return QueryResult(
            table=table.slice(0, lim),
            truncated=table.num_rows > lim,
            columns=columns,
            limit=lim,
        )

    def count(self, sql: str, params: Mapping[str, object] | None = None) -> int:
        """Number of rows ``sql`` returns (``SELECT count(*) FROM (<sql>)``)."""
        checked = self.check(sql)
        values = check_params(checked, params, self.limits)
        wrapped = self._wrap(checked, "SELECT count(*) AS n FROM ({}) AS " + _SUBQUERY_ALIAS)
        table, _ = self._fetch(wrapped, values, 2)
        return int(table.column(0)[0].as_py())

    def execute_page(
        self,
        sql: str,
        params: Mapping[str, object] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> QueryResult:
        """One stable page of ``sql``: rows ``offset .. offset+limit`` in a deterministic order.

        The query is wrapped as ``SELECT * FROM (<sql>) ORDER BY <keys> LIMIT n OFFSET m``.
        The keys are 1-based column positions: ``patient_id``'s first (if the result has such
        a column), then every column left to right, so the order is total over distinct rows
        and the same on every call against the same catalog (rows that are equal in every
        column are interchangeable, so the pages hold the same values). The query's own ORDER
        BY still picks rows under its own LIMIT, but the page order is this one. ``total``
        is the row count of the whole query.
        """
        lim = self._limit(limit)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise QueryRejected(
                f"offset must be a non-negative integer, got {offset!r}", rule="offset"
            )
        if offset > 2**62:
            raise QueryRejected("offset is too large", rule="offset")
        checked = self.check(sql)
        values = check_params(checked, params, self.limits)
        order = self._order_keys(self._columns(checked.sql, values))
        page_sql = self._wrap(
            checked,
            "SELECT * FROM ({}) AS "
            + _SUBQUERY_ALIAS
            + " ORDER BY "
            + ", ".join(str(i) for i in order)
            + f" LIMIT {lim + 1} OFFSET {offset}",
        )
        count_sql = self._wrap(checked, "SELECT count(*) AS n FROM ({}) AS " + _SUBQUERY_ALIAS)
        total_table, _ = self._fetch(count_sql, values, 2)
        table, columns = self._fetch(page_sql, values, lim + 1)
        return QueryResult(
            table=table.slice(0, lim),
            truncated=table.num_rows > lim,
            columns=columns,
            limit=lim,
            offset=offset,
            total=int(total_table.column(0)[0].as_py()),
            order_by=order,
        )

    def close(self) -> None:
        """Close the database and delete its temporary directory. Idempotent."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> QueryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _limit(self, limit: int | None) -> int:
        if limit is None:
            return self.limits.max_rows
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 0 <= limit <= self.limits.max_rows
        ):
            raise QueryRejected(
                f"limit must be an integer from 0 to {self.limits.max_rows}, got {limit!r}",
                rule="limit",
            )
        return limit

    @staticmethod
    def _order_keys(names: list[str]) -> tuple[int, ...]:
        positions = list(range(1, len(names) + 1))
        for i, n in enumerate(names, start=1):
            if n.lower() == _PATIENT_ID:
                positions.remove(i)
                return (i, *positions)
        return tuple(positions)

    def _wrap(self, checked: CheckedQuery, template: str) -> str:
        """Put the checked query inside ``template`` and prove the result wraps exactly it.

        The user's text goes on its own lines (a trailing ``--`` comment ends at the newline)
        without trailing semicolons; the composed text is parsed again and its subquery must
        be the very tree that was checked, so no text trick can change what runs.
        """
        body = strip_statement(checked.sql)
        # The guard's limits apply to what we add too, with room for the wrapper.
        # The guard's limits still apply to the user's part; the wrapper adds a few characters
        # and nodes per ORDER BY key, so the room grows with the template.
        room = dataclasses.replace(
            self.limits,
            max_query_chars=self.limits.max_query_chars + len(template) + 16,
            max_ast_nodes=self.limits.max_ast_nodes + 32 + 4 * template.count(","),
            max_depth=self.limits.max_depth + 4,
            max_table_refs=self.limits.max_table_refs + 1,
        )
        composed = template.format("\n" + body + "\n")
        try:
            outer = check_query(composed, self._schemas, room)
        except QueryError:
            outer = None
        if outer is None or not same_tree(_inner(outer.node), checked.node):
            raise QueryRejected(
                "the query cannot be paged or counted as written; remove trailing comments "
                "or semicolons",
                rule="wrap",
            )
        return composed

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise QueryFailed("the query engine is closed", rule="closed")
        with self._lock:  # cursor() on the shared connection is not safe to call concurrently
            cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def _fetch(
        self, sql: str, params: dict[str, ParamValue], max_rows: int
    ) -> tuple[pa.Table, tuple[Column, ...]]:
        if self._pool is not None:
            if self._closed:
                raise QueryFailed("the query engine is closed", rule="closed")
            table, specs = self._pool.fetch(sql, params, max_rows)
        else:
            with self._cursor() as cur:
                table, specs = fetch(cur, sql, params, max_rows, self.limits, self._path)
        return table, tuple(Column(n, t) for n, t in specs)

    def _columns(self, sql: str, params: dict[str, ParamValue]) -> list[str]:
        if self._pool is not None:
            if self._closed:
                raise QueryFailed("the query engine is closed", rule="closed")
            return self._pool.columns(sql, params)
        with self._cursor() as cur:
            return columns(cur, sql, params, self.limits, self._path)


def _inner(node: dict[str, Any]) -> object:
    """The subquery tree inside ``SELECT ... FROM (<q>) AS alias ...``."""
    ref = node.get("from_table")
    if (
        not isinstance(ref, dict)
        or ref.get("type") != "SUBQUERY"
        or ref.get("alias") != _SUBQUERY_ALIAS
    ):
        return None
    sub = ref.get("subquery")
    return sub.get("node") if isinstance(sub, dict) else None
