"""The exception tree of the SDK. Every error the SDK raises on purpose is a ``MamamiaError``::

    MamamiaError
    ├── CatalogError                 the catalog folder or server is unusable
    │   ├── CatalogNotFound          no catalog.json at the path / URL
    │   ├── CatalogFormatError       a catalog newer than this SDK, or a damaged manifest
    │   ├── ChunkCorruptError        a chunk fails its crc32c check or does not decode
    │   └── CatalogVersionMismatch   a pinned catalog version is no longer served (HTTP 409)
    ├── QueryError                   a query could not run
    │   ├── QueryRejected            not a safe single SELECT, bad parameters (HTTP 400)
    │   ├── QueryTimeout             over the time limit (HTTP 504)
    │   └── QueryTooLarge            over a size limit (HTTP 413)
    ├── NotFoundError                an unknown case or volume (HTTP 404)
    ├── InvalidRequest               a bad range or parameter (HTTP 400 / 422)
    ├── AuthenticationError          missing or wrong token (HTTP 401 / 403)
    ├── TransportError               the server could not be reached, after retries
    ├── ChunkMissingError            an offline cache lacks a chunk (never silently filled)
    └── TableReadError               a raw table file cannot be read at all

Third-party errors (DuckDB, httpx, zarr) are translated at one boundary per backend; callers
only need to catch these.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CatalogError",
    "CatalogFormatError",
    "CatalogNotFound",
    "CatalogVersionMismatch",
    "ChunkCorruptError",
    "ChunkMissingError",
    "InvalidRequest",
    "MamamiaError",
    "NotFoundError",
    "QueryError",
    "QueryRejected",
    "QueryTimeout",
    "QueryTooLarge",
    "TableReadError",
    "TransportError",
]


class MamamiaError(Exception):
    """Base of every error the SDK raises on purpose."""


class CatalogError(MamamiaError):
    """The catalog cannot be used."""


class CatalogNotFound(CatalogError):
    """No catalog at the given path or URL."""


class CatalogFormatError(CatalogError):
    """The manifest is damaged or written by a newer format than this SDK reads."""


class ChunkCorruptError(CatalogError):
    """A chunk's bytes fail their crc32c check, or do not decode to the chunk's shape."""


class CatalogVersionMismatch(CatalogError):
    """A request pinned to a catalog version that is no longer served."""


class QueryError(MamamiaError):
    """A query could not run."""


class QueryRejected(QueryError):
    """The query is not allowed (not one safe SELECT, unknown table, bad parameter)."""


class QueryTimeout(QueryError):
    """The query ran past the time limit."""


class QueryTooLarge(QueryError):
    """The query or its answer is over a size limit."""


class NotFoundError(MamamiaError):
    """An unknown case, volume or table."""


class InvalidRequest(MamamiaError):
    """A parameter or range is invalid."""


class AuthenticationError(MamamiaError):
    """The server wants a (valid) bearer token."""


class TransportError(MamamiaError):
    """The server could not be reached or kept failing, after retries."""


class ChunkMissingError(MamamiaError):
    """A chunk needed offline is not in the local cache."""


class TableReadError(MamamiaError):
    """A raw table file (xlsx, CSV, JSON) cannot be read at all."""
