"""The query engine's errors: the SDK's own classes, so one tree serves both sides.

Each class carries the HTTP status and problem kind the routes answer with (see
``mamamia._errors``). Messages are written for the person who sent the query. They never carry
DuckDB text that could name a server path (``_query_engine`` scrubs what it passes on), so the routes
may put ``str(exc)`` straight into a problem+json ``detail``.
"""

from __future__ import annotations

from mamamia import (
    QueryError,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
    QueryTooLarge,
    UnknownTable,
)

__all__ = [
    "QueryError",
    "QueryFailed",
    "QueryRejected",
    "QueryTimeout",
    "QueryTooLarge",
    "UnknownTable",
]
