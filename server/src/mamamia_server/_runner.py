"""Low-level DuckDB steps of the engine, shared by the server process and its query workers.

Nothing here checks SQL: callers pass only text that ``mamamia.sqlguard`` accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import duckdb
import pyarrow as pa

from mamamia import QueryError, QueryRejected
from mamamia.sqlguard import QueryLimits
from mamamia.sqlguard import translate as sdk_translate

__all__ = ["ColumnSpec", "columns", "fetch", "open_locked", "translate"]

#: (name, DuckDB type) of one result column
ColumnSpec = tuple[str, str]
_READ_BATCH = 2048


def open_locked(path: str, limits: QueryLimits) -> duckdb.DuckDBPyConnection:
    """Open the engine's database read-only, with every setting of profile T, then lock it."""
    con = duckdb.connect(
        path,
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
            "memory_limit": limits.memory_limit,
            "threads": limits.threads,
            "max_execution_time": limits.time_limit_ms,
        },
    )
    try:
        # max_execution_time is a LOCAL default: only SET GLOBAL reaches the cursors.
        con.execute(f"SET GLOBAL max_execution_time = {int(limits.time_limit_ms)}")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def columns(
    cur: duckdb.DuckDBPyConnection,
    sql: str,
    params: Mapping[str, object],
    limits: QueryLimits,
    path: str,
) -> list[str]:
    """Result column names of ``sql`` (bound, not run)."""
    try:
        rel = cur.sql(sql, params=dict(params) or None)
        if rel is None:  # only for statements that are not SELECT; the guard stops those
            raise QueryRejected("only SELECT queries are allowed", rule="statement")
        return [str(n) for n in rel.columns]
    except duckdb.Error as exc:
        raise translate(exc, sql, limits, path) from None


def fetch(
    cur: duckdb.DuckDBPyConnection,
    sql: str,
    params: Mapping[str, object],
    max_rows: int,
    limits: QueryLimits,
    path: str,
) -> tuple[pa.Table, list[ColumnSpec]]:
    """Run ``sql`` and read at most ``max_rows`` rows as Arrow, streaming."""
    try:
        rel = cur.sql(sql, params=dict(params) or None)
        if rel is None:
            raise QueryRejected("only SELECT queries are allowed", rule="statement")
        specs = [(str(n), str(t)) for n, t in zip(rel.columns, rel.types, strict=True)]
        reader = rel.to_arrow_reader(max(1, min(max_rows, _READ_BATCH)))
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
        raise translate(exc, sql, limits, path) from None
    table = pa.Table.from_batches(batches, schema=schema).slice(0, max_rows)
    return table, specs


def translate(exc: duckdb.Error, sql: str, limits: QueryLimits, path: str) -> QueryError:
    """The engine error for a DuckDB exception: the SDK's text, without the server's paths."""
    return sdk_translate(exc, sql, limits, redact=lambda text: scrub(text, path))


def scrub(message: str, path: str) -> str:
    """DuckDB's message, made safe to show: no server path, first lines only, bounded."""
    text = message.replace(path, "<database>").replace(os.path.dirname(path), "<dir>")
    text = re.sub(r"(?:[A-Za-z]:)?[/\\][^\s'\"]*[/\\][^\s'\"]*", "<path>", text)
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    # Keep the error line and DuckDB's "LINE 1:" excerpt of the user's own query.
    return " ".join(ln.strip() for ln in lines[:3])[:500] or "unknown error"
