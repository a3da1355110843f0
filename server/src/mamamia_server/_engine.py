"""The query engine: the catalog's tables in a locked-down, read-only DuckDB, queried safely.

Layers (docs/query-safety.md):

1. every query passes :func:`check_query` first (one SELECT, allowed tables and functions,
   size caps), and its ``$name`` parameters pass :func:`check_params`;
2. the tables are copied *into* a DuckDB file in a private temporary directory, which is then
   reopened ``read_only=True`` with external access off, no allowed directories, extension
   autoload/autoinstall and community extensions off, Python replacement scans off,
   ``temp_directory=''``, ``memory_limit``, ``threads``, ``SET GLOBAL max_execution_time``
   and finally ``lock_configuration=true`` (profile T of notes/reliability.md);
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
from typing import Any, Final

import duckdb
import pyarrow as pa

from ._errors import (
    QueryError,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
    QueryTooLarge,
    UnknownTable,
)
from ._limits import QueryLimits
from ._sql_guard import CheckedQuery, ParamValue, check_params, check_query, same_tree

__all__ = ["Column", "QueryEngine", "QueryResult"]

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


def _cleanup(con: duckdb.DuckDBPyConnection, directory: str) -> None:
    try:
        con.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class QueryEngine:
    """Safe SQL over ``{table_name: parquet_path}``.

    The Parquet files are read once, at construction, into a DuckDB database in a new
    temporary directory (``workdir`` or the system default); the engine then never touches a
    file again. Thread-safe: every call takes its own cursor. Call :meth:`close` (or use it as
    a context manager) to delete the temporary database.
    """

    def __init__(
        self,
        tables: Mapping[str, str | os.PathLike[str]],
        limits: QueryLimits | None = None,
        *,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.limits = limits if limits is not None else QueryLimits()
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
        try:
            self._copy_in(sources)
            self._con = self._open_locked()
            self._schemas = {name: self._describe(name) for name in sorted(sources)}
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _cleanup, self._con, self._dir)

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

    def _open_locked(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(
            self._path,
            read_only=True,
            config={
                # allowed_directories / allowed_paths stay empty: nothing outside this database
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "allow_community_extensions": False,
                "allow_persistent_secrets": False,
                "python_enable_replacements": False,
                "temp_directory": "",
                "memory_limit": self.limits.memory_limit,
                "threads": self.limits.threads,
                "max_execution_time": self.limits.time_limit_ms,
            },
        )
        try:
            # max_execution_time is a LOCAL default: only SET GLOBAL reaches the cursors.
            con.execute(f"SET GLOBAL max_execution_time = {int(self.limits.time_limit_ms)}")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

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
        with self._cursor() as cur:
            table, columns = self._fetch(cur, checked.sql, values, lim + 1)
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
        with self._cursor() as cur:
            table, _ = self._fetch(cur, wrapped, values, 2)
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
        with self._cursor() as cur:
            names = self._columns(cur, checked.sql, values)
            order = self._order_keys(names)
            page_sql = self._wrap(
                checked,
                "SELECT * FROM ({}) AS "
                + _SUBQUERY_ALIAS
                + " ORDER BY "
                + ", ".join(str(i) for i in order)
                + f" LIMIT {lim + 1} OFFSET {offset}",
            )
            count_sql = self._wrap(checked, "SELECT count(*) AS n FROM ({}) AS " + _SUBQUERY_ALIAS)
            total_table, _ = self._fetch(cur, count_sql, values, 2)
            table, columns = self._fetch(cur, page_sql, values, lim + 1)
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
        body = _strip_tail(checked.sql)
        # The guard's limits apply to what we add too, with room for the wrapper.
        room = dataclasses.replace(
            self.limits,
            max_query_chars=self.limits.max_query_chars + 512,
            max_ast_nodes=self.limits.max_ast_nodes + 64,
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

    def _columns(
        self, cur: duckdb.DuckDBPyConnection, sql: str, params: dict[str, ParamValue]
    ) -> list[str]:
        try:
            rel = cur.sql(sql, params=params or None)
            if rel is None:  # only for statements that are not SELECT; the guard stops those
                raise QueryRejected("only SELECT queries are allowed", rule="statement")
            return list(rel.columns)
        except duckdb.Error as exc:
            raise self._translate(exc) from None

    def _fetch(
        self,
        cur: duckdb.DuckDBPyConnection,
        sql: str,
        params: dict[str, ParamValue],
        max_rows: int,
    ) -> tuple[pa.Table, tuple[Column, ...]]:
        """Run ``sql`` and read at most ``max_rows`` rows as Arrow, streaming."""
        try:
            rel = cur.sql(sql, params=params or None)
            if rel is None:
                raise QueryRejected("only SELECT queries are allowed", rule="statement")
            columns = tuple(
                Column(str(n), str(t)) for n, t in zip(rel.columns, rel.types, strict=True)
            )
            reader = rel.to_arrow_reader(max(1, min(max_rows, 2048)))
            try:
                batches: list[pa.RecordBatch] = []
                n = 0
                while n < max_rows:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    batches.append(batch)
                    n += batch.num_rows
                schema = reader.schema
            finally:
                reader.close()  # frees the pending result: the rest of the query never runs
        except duckdb.Error as exc:
            raise self._translate(exc) from None
        table = pa.Table.from_batches(batches, schema=schema).slice(0, max_rows)
        return table, columns

    def _translate(self, exc: duckdb.Error) -> QueryError:
        if isinstance(exc, duckdb.InterruptException):
            return QueryTimeout(
                f"the query ran past the time limit of {self.limits.time_limit_ms} ms and was stopped",
                rule="timeout",
            )
        if isinstance(exc, duckdb.OutOfMemoryException):
            return QueryTooLarge(
                f"the query needs more memory than the server allows ({self.limits.memory_limit})",
                rule="memory",
            )
        if isinstance(exc, duckdb.PermissionException):
            # The guard should have refused it already; say nothing about what was touched.
            return QueryRejected("the query tried something that is not allowed", rule="permission")
        return QueryFailed(f"the query failed: {self._scrub(str(exc))}", rule="duckdb")

    def _scrub(self, message: str) -> str:
        """DuckDB's message, made safe to show: no server path, first lines only, bounded."""
        text = message.replace(self._path, "<database>").replace(self._dir, "<dir>")
        text = re.sub(r"(?:[A-Za-z]:)?[/\\][^\s'\"]*[/\\][^\s'\"]*", "<path>", text)
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        # Keep the error line and DuckDB's "LINE 1:" excerpt of the user's own query.
        return " ".join(ln.strip() for ln in lines[:3])[:500] or "unknown error"


def _strip_tail(sql: str) -> str:
    """``sql`` without trailing comments and semicolons (found by DuckDB's own tokenizer)."""
    cut = len(sql)
    try:
        tokens = list(duckdb.tokenize(sql))
    except duckdb.Error:
        return sql.rstrip()
    for pos, kind in reversed(tokens):
        if kind == duckdb.token_type.comment or (
            kind == duckdb.token_type.operator and sql[pos : pos + 1] == ";"
        ):
            cut = pos
            continue
        break
    return sql[:cut].rstrip()


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
