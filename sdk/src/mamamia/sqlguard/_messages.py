"""DuckDB's errors as the SDK's, with one text for the same mistake, local or remote.

The local catalog and the server both pass DuckDB's exceptions through :func:`translate`, so a
misspelt column reads the same wherever the query ran: the column named, DuckDB's candidates
as "did you mean", a hint when a string was written in double quotes, and never the SQL that
the SDK or the server wrapped around the user's query (DuckDB's ``LINE 1:`` excerpt shows it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import duckdb

from mamamia._errors import QueryError, QueryFailed, QueryRejected, QueryTimeout, QueryTooLarge

from ._query_limits import QueryLimits

__all__ = ["explain", "translate"]

_KIND: Final = re.compile(r"^[A-Za-z ]+ Error: ")
_COLUMN: Final = re.compile(r'Referenced column "(?P<name>[^"]+)" not found')
_CANDIDATES: Final = re.compile(r"^Candidate bindings: (?P<names>.*)$")
_DID_YOU_MEAN: Final = re.compile(r"^Did you mean (?P<names>.*?)\??$")
_MAX_CANDIDATES: Final = 5


def _names(text: str) -> list[str]:
    return re.findall(r'"([^"]+)"', text)[:_MAX_CANDIDATES]


def explain(message: str, sql: str) -> str:
    """DuckDB's ``message`` about ``sql`` as one line a user can act on."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    first = lines[0].rstrip("!")
    candidates: list[str] = []
    for line in lines[1:]:
        if line.startswith("LINE "):
            break  # the excerpt may show SQL wrapped around the user's query
        found = _CANDIDATES.match(line) or _DID_YOU_MEAN.match(line)
        if found:
            candidates = _names(found["names"])
    column = _COLUMN.search(_KIND.sub("", first))
    if column:
        name = column["name"]
        text = f'column "{name}" not found'
        if candidates:
            text += "; did you mean " + ", ".join(f'"{c}"' for c in candidates) + "?"
        if f'"{name}"' in sql:
            text += (
                f' (in SQL, "{name}" in double quotes is a column name; write a string in '
                f"single quotes: '{name}')"
            )
        return text
    if candidates:
        first += "; did you mean " + ", ".join(f'"{c}"' for c in candidates) + "?"
    return first[:500]


def translate(
    exc: duckdb.Error,
    sql: str,
    limits: QueryLimits,
    *,
    redact: Callable[[str], str] = lambda text: text,
) -> QueryError:
    """The SDK error for a DuckDB exception; ``redact`` removes what must not be shown."""
    if isinstance(exc, duckdb.InterruptException):
        return QueryTimeout(
            f"the query ran past the time limit of {limits.time_limit_ms} ms and was stopped",
            rule="timeout",
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryTooLarge(
            f"the query needs more memory than allowed ({limits.memory_limit})", rule="memory"
        )
    if isinstance(exc, duckdb.PermissionException):
        # The guard should have refused it already; say nothing about what was touched.
        return QueryRejected("the query tried something that is not allowed", rule="permission")
    return QueryFailed(f"the query failed: {redact(explain(str(exc), sql))}", rule="duckdb")
