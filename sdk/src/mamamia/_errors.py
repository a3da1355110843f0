"""The one exception tree of the project. Every error raised on purpose is a ``MamamiaError``::

    MamamiaError                     (500 internal: the text stays on the server)
    ├── CatalogError                 503 catalog-unavailable: the catalog is unusable
    │   ├── CatalogNotFound          no catalog.json at the path / URL
    │   ├── CatalogFormatError       a catalog newer than this SDK, or a damaged manifest
    │   ├── ChunkMissingError        503 catalog-damaged: a chunk is not where the catalog says
    │   ├── ChunkCorruptError        503 catalog-damaged: a chunk fails its crc32c or decode
    │   └── CatalogVersionMismatch   409 catalog-version: a pinned version is no longer served
    ├── QueryError                   400 query-failed: a query could not run
    │   ├── QueryRejected            400 query-rejected: not one safe SELECT, bad parameters
    │   │   └── QueryFailed          400 query-failed: allowed, but DuckDB could not answer it
    │   ├── QueryTimeout             504 query-timeout: over the time limit
    │   ├── QueryTooLarge            413 query-too-large: over a size limit
    │   └── UnknownTable             404 unknown-table (also a NotFoundError)
    ├── NotFoundError                404 not-found: an unknown case, volume or table
    ├── InvalidRequest               422 invalid-parameter: a bad range or parameter
    │   ├── BoxOutOfRange            422 invalid-range: a box leaves the volume (also IndexError)
    │   └── InvalidIndex             422 invalid-index: a key a volume cannot take (also ValueError)
    ├── AuthenticationError          401 unauthorized: missing or wrong token
    ├── TransportError               the server could not be reached, after retries
    ├── TableReadError               a raw table file cannot be read at all
    ├── ObjectStoreError             the object store refused or failed a request
    ├── SyncError                    a sync cannot start or go on (mamamia sync)
    │   ├── RemoteError              a Synapse call failed after its retries
    │   └── DownloadFailed           one file could not be downloaded
    ├── EvaluationError              predictions or options that cannot be scored
    ├── IngestError                  an ingest cannot run at all (mamamia ingest)
    │   └── CatalogLocked            another ingest holds the catalog
    ├── NiftiError                   one volume cannot be ingested
    └── PhantomError                 a phantom cannot be written (mamamia phantom)
        └── MissingValueError        a table row lacks a value the phantom needs

The classes above ``ObjectStoreError`` live here. The others live beside the code that raises
them: ``ObjectStoreError`` in ``mamamia._objstore`` (public as ``mamamia.objstore``),
``SyncError`` in ``mamamia._sync._report`` (public as ``mamamia.SyncError``), ``RemoteError``
in ``mamamia._sync._listing``, ``DownloadFailed`` in ``mamamia._sync._download``,
``EvaluationError`` in ``mamamia.evaluate._evaluation_error`` (public as ``mamamia.evaluate``),
``IngestError`` in ``mamamia_ingest._ingest_report``, ``CatalogLocked`` in
``mamamia_ingest._catalog_writer``, ``NiftiError`` in ``mamamia_ingest._nifti``, and
``PhantomError`` with ``MissingValueError`` in ``mamamia_ingest.phantom._spec`` (also a
``ValueError``, as it always was).

Each class carries its HTTP answer: ``status``, the problem ``slug`` (the problem+json ``type`` is
``urn:mamamia:problem:<slug>``) and ``title``. The server writes a Problem from these attributes;
the client reads a Problem back with :func:`error_class`, from the same attributes. A class
without a problem of its own answers 500 "internal server error", and its text is not sent.
Third-party errors (DuckDB, httpx, zarr) are translated at one boundary per backend; callers
only need to catch these.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar

__all__ = [
    "PROBLEM_TYPE_BASE",
    "AuthenticationError",
    "BoxOutOfRange",
    "CatalogError",
    "CatalogFormatError",
    "CatalogNotFound",
    "CatalogVersionMismatch",
    "ChunkCorruptError",
    "ChunkMissingError",
    "InvalidIndex",
    "InvalidRequest",
    "MamamiaError",
    "NotFoundError",
    "QueryError",
    "QueryFailed",
    "QueryRejected",
    "QueryTimeout",
    "QueryTooLarge",
    "TableReadError",
    "TransportError",
    "UnknownTable",
    "error_class",
]

#: The problem+json ``type`` of an error is this prefix and the class's ``slug``.
PROBLEM_TYPE_BASE = "urn:mamamia:problem:"
INTERNAL_SLUG = "internal"

# slug -> the class a client raises for it; HTTP status -> the class a client falls back on.
_BY_SLUG: dict[str, type[MamamiaError]] = {}
_BY_STATUS: dict[int, type[MamamiaError]] = {}


class MamamiaError(Exception):
    """Base of every error raised on purpose."""

    #: The HTTP status the server answers with.
    status: ClassVar[int] = 500
    #: The problem's kind, the last part of its ``type`` URN.
    slug: ClassVar[str] = INTERNAL_SLUG
    #: The problem's ``title``: the status's phrase.
    title: ClassVar[str] = "Internal Server Error"
    #: HTTP statuses a client reads as this class when the problem names no narrower one.
    read_from: ClassVar[tuple[int, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "status" in cls.__dict__ and "title" not in cls.__dict__:
            cls.title = HTTPStatus(cls.status).phrase
        if "slug" in cls.__dict__:
            # A later, narrower class claims a shared slug (QueryFailed after QueryError).
            _BY_SLUG[cls.slug] = cls
        for status in cls.__dict__.get("read_from", ()):
            if status in _BY_STATUS:
                raise TypeError(f"HTTP {status} is already read as {_BY_STATUS[status].__name__}")
            _BY_STATUS[status] = cls

    @classmethod
    def exposed(cls) -> bool:
        """Whether the server sends this error's text (False: it answers 'internal')."""
        return cls.slug != INTERNAL_SLUG


class CatalogError(MamamiaError):
    """The catalog cannot be used."""

    status = 503
    slug = "catalog-unavailable"


class CatalogNotFound(CatalogError):
    """No catalog at the given path or URL."""


class CatalogFormatError(CatalogError):
    """The manifest is damaged or written by a newer format than this SDK reads."""


class ChunkMissingError(CatalogError):
    """A chunk is not where the catalog says (an offline cache lacks it, or a file is gone)."""

    slug = "catalog-damaged"


class ChunkCorruptError(CatalogError):
    """A chunk's bytes fail their crc32c check, or do not decode to the chunk's shape."""

    # A damaged chunk is a data condition, never a server bug: missing and corrupt chunks
    # answer the same 503 problem, which a client reads back as this class.
    slug = "catalog-damaged"


class CatalogVersionMismatch(CatalogError):
    """A request pinned to a catalog version that is no longer served."""

    status = 409
    slug = "catalog-version"
    read_from = (409,)


class QueryError(MamamiaError):
    """A query could not run. ``rule`` names the check that failed (``function``, ``size``...)."""

    status = 400
    slug = "query-failed"

    def __init__(self, message: str, *, rule: str = "query") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


class QueryRejected(QueryError):
    """The query is not allowed (not one safe SELECT, unknown table, bad parameter)."""

    status = 400
    slug = "query-rejected"


class QueryFailed(QueryRejected):
    """The query was allowed but DuckDB could not answer it (unknown column, bad cast, ...)."""

    status = 400
    slug = "query-failed"


class QueryTimeout(QueryError):
    """The query ran past the time limit."""

    status = 504
    slug = "query-timeout"
    read_from = (504,)


class QueryTooLarge(QueryError):
    """The query, its answer or a requested box is over a size limit."""

    status = 413
    slug = "query-too-large"
    read_from = (413,)


class NotFoundError(MamamiaError):
    """An unknown case, volume or table."""

    status = 404
    slug = "not-found"
    read_from = (404,)


class UnknownTable(QueryError, NotFoundError, LookupError):
    """A table name that the catalog does not hold."""

    status = 404
    slug = "unknown-table"


class InvalidRequest(MamamiaError):
    """A parameter or range is invalid."""

    status = 422
    slug = "invalid-parameter"
    read_from = (400, 416, 422)


class BoxOutOfRange(InvalidRequest, IndexError):
    """An index or range leaves the volume (wholly or partly), or is empty; names the axis."""

    slug = "invalid-range"


class InvalidIndex(InvalidRequest, ValueError):
    """An index a Volume cannot take (too many indices, two ellipses, a step other than 1)."""

    slug = "invalid-index"


class AuthenticationError(MamamiaError):
    """The server wants a (valid) bearer token."""

    status = 401
    slug = "unauthorized"
    read_from = (401, 403)


class TransportError(MamamiaError):
    """The server could not be reached or kept failing, after retries."""


class TableReadError(MamamiaError):
    """A raw table file (xlsx, CSV, JSON) cannot be read at all."""


def error_class(status: int, type_: object, *, query_route: bool = False) -> type[MamamiaError]:
    """The class a client raises for a Problem with this status and ``type``.

    The status picks the family (on a query route a 400 is a ``QueryRejected``); a ``type``
    naming a narrower class of that family refines it. Any other status is a ``TransportError``.
    """
    family: type[MamamiaError] = _BY_STATUS.get(status, TransportError)
    if query_route and status == QueryRejected.status:
        family = QueryRejected
    named = None
    if isinstance(type_, str) and type_.startswith(PROBLEM_TYPE_BASE):
        named = _BY_SLUG.get(type_[len(PROBLEM_TYPE_BASE) :])
    if named is not None and issubclass(named, family) and named.status == status:
        return named
    return family
