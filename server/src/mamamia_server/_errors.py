"""Errors of the query engine, each with the HTTP status the routes map it to.

Messages are written for the person who sent the query. They never carry DuckDB text that
could name a server path (``_query_engine`` scrubs what it passes on), so the routes may put
``str(exc)`` straight into a problem+json ``detail``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "QueryError",
    "QueryFailed",
    "QueryRejected",
    "QueryTimeout",
    "QueryTooLarge",
    "UnknownTable",
]


class QueryError(Exception):
    """Base class: a query the engine did not answer. ``status`` is the HTTP status to send."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Query error"

    def __init__(self, message: str, *, rule: str = "query") -> None:
        super().__init__(message)
        self.message = message
        #: short machine name of the check that failed, e.g. ``function``, ``table``, ``size``
        self.rule = rule


class QueryRejected(QueryError):
    """The query was refused before it ran (not one SELECT, a forbidden table or function, a bad parameter)."""

    status = 400
    title = "Query rejected"


class QueryTooLarge(QueryError):
    """The query text, its syntax tree, a list or parameter, or the memory it needs is over a limit."""

    status = 413
    title = "Query too large"


class QueryTimeout(QueryError):
    """The query ran past the engine's time limit and was stopped."""

    status = 504
    title = "Query time limit exceeded"


class QueryFailed(QueryError):
    """The query was allowed but DuckDB could not answer it (unknown column, bad cast, ...)."""

    status = 400
    title = "Query failed"


class UnknownTable(QueryError, LookupError):
    """A table name that the catalog does not hold."""

    status = 404
    title = "Unknown table"
