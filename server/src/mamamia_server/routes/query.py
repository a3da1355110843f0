"""``POST /v1/query``, ``GET /v1/cohort`` and ``GET /v1/facets``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from mamamia import MamamiaError
from mamamia.sqlguard import check_select, value_sets, value_warnings
from mamamia_server._catalog_state import CatalogState
from mamamia_server._cursor import decode_cursor, encode_cursor
from mamamia_server._deps import VERSION_PATTERN, SettingsDep, StateDep, take_state
from mamamia_server._formats import (
    MEDIA_TYPES,
    choose_format,
    columns_of,
    json_bytes,
    jsonable,
    table_bytes,
    table_rows,
)
from mamamia_server._problem_responses import ApiError, problem_responses
from mamamia_server._query import QuerySpec, facet_counts, run_page
from mamamia_server._settings import ServerSettings

__all__ = ["router"]

router = APIRouter(tags=["query"])

_ERRORS = problem_responses(400, 401, 404, 409, 413, 422, 504)
_FORMAT_QUERY = Query(
    pattern="^(json|arrow|parquet|csv)$",
    description="json (default), arrow (IPC stream), parquet or csv; overrides Accept.",
)
_VERSION_QUERY = Query(
    description="Answer only from this catalog version (409 otherwise).",
    pattern=VERSION_PATTERN,
)


def _check_pin(version: str | None, pinned: str) -> None:
    """A request pinned to another version than its cursor's is a conflict (409)."""
    if version is not None and version != pinned:
        raise ApiError(
            409, f"the cursor is of catalog version {pinned}, not {version}", slug="catalog-version"
        )


class QueryRequest(BaseModel):
    """One page of a query: a SELECT or a WHERE over cases, or the cursor of the next page."""

    model_config = ConfigDict(extra="forbid")

    sql: str | None = Field(
        default=None,
        max_length=1_000_000,
        description="One SELECT over the catalog's tables (DuckDB dialect, $name parameters).",
    )
    where: str | None = Field(
        default=None,
        max_length=1_000_000,
        description='A WHERE expression over cases, e.g. "pcr AND age < 50".',
    )
    params: dict[str, Any] | None = Field(
        default=None, description="Values of the $name parameters."
    )
    limit: int | None = Field(
        default=None, ge=1, description="Rows per page (default and maximum: server settings)."
    )
    cursor: str | None = Field(
        default=None,
        max_length=200_000,
        description="next_cursor of the previous page; the query may then be left out.",
    )


class Column(BaseModel):
    name: str
    type: str


class QueryResult(BaseModel):
    catalog_version: str
    columns: list[Column]
    rows: list[list[Any]]
    total: int = Field(description="Rows of the whole result (all pages).")
    truncated: bool = Field(description="True when more rows follow (see next_cursor).")
    next_cursor: str | None
    offset: int = Field(description="Index of this page's first row in the whole result.")
    link: str | None = Field(
        default=None, description="A link that repeats this cohort at this catalog version."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Comparisons with a value outside a column's value set (they match no row), "
        "each with the nearest valid values.",
    )


def _query_responses() -> dict[int | str, dict[str, Any]]:
    content: dict[str, Any] = {
        MEDIA_TYPES["arrow"]: {"schema": {"type": "string", "format": "binary"}},
        MEDIA_TYPES["parquet"]: {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}},
    }
    return {200: {"model": QueryResult, "content": content}, **_ERRORS}


def _limit(settings: ServerSettings, asked: int | None) -> int:
    if asked is None:
        return settings.default_row_limit
    if asked > settings.max_row_limit:
        raise ApiError(
            413,
            f"limit {asked} is over this server's maximum page of {settings.max_row_limit} rows; "
            "ask for fewer and follow next_cursor",
            slug="limit-too-large",
        )
    return asked


def _answer(
    request: Request,
    state: CatalogState,
    settings: ServerSettings,
    spec: QuerySpec,
    offset: int,
    limit: int,
    fmt: str,
    link: str | None = None,
) -> Response:
    if len(spec.text) > settings.max_query_chars:
        raise ApiError(
            413,
            f"the query has {len(spec.text)} characters; the limit is {settings.max_query_chars}",
            slug="query-too-large",
            rule="size",
        )
    page = run_page(state, spec, offset, limit)
    next_cursor = None
    if page.truncated:
        next_cursor = encode_cursor(
            {
                **spec.to_payload(),
                "v": state.version,
                "o": offset + page.table.num_rows,
                "l": limit,
            },
            request.app.state.signing_key,
        )
    headers = {
        "X-Total-Rows": str(page.total),
        "X-Truncated": "true" if page.truncated else "false",
    }
    if next_cursor is not None:
        headers["X-Next-Cursor"] = next_cursor
    if fmt != "json":
        return Response(table_bytes(page.table, fmt), media_type=MEDIA_TYPES[fmt], headers=headers)
    body = {
        "catalog_version": state.version,
        "columns": columns_of(page.table.schema),
        "rows": table_rows(page.table),
        "total": page.total,
        "truncated": page.truncated,
        "next_cursor": next_cursor,
        "offset": offset,
        "link": link,
        "warnings": _value_warnings(state, spec),
    }
    return Response(json_bytes(body), media_type="application/json", headers=headers)


def _value_warnings(state: CatalogState, spec: QuerySpec) -> list[str]:
    """The SDK's value-set warnings (``mamamia.ValueSetWarning``) of this query, as texts."""
    text = spec.sql if spec.sql is not None else f"SELECT * FROM cases WHERE (\n{spec.where}\n)"
    try:
        node = check_select(text).node
    except MamamiaError:
        return []  # the query ran, so it parses; a hint never fails an answer
    sets = value_sets(state.schema(t) for t in ("cases", "volumes"))
    return value_warnings(node, sets, spec.params)


def _from_cursor(request: Request, cursor: str) -> tuple[QuerySpec, str, int, int]:
    payload = decode_cursor(cursor, request.app.state.signing_key)
    try:
        spec = QuerySpec.from_payload(payload)
        version = str(payload["v"])
        offset = int(payload["o"])
        limit = int(payload["l"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, "the cursor is damaged", slug="bad-cursor") from exc
    return spec, version, offset, limit


@router.post("/v1/query", responses=_query_responses(), response_model=None)
def query(
    request: Request,
    settings: SettingsDep,
    body: Annotated[QueryRequest, Body()],
    format: Annotated[str | None, _FORMAT_QUERY] = None,
    version: Annotated[str | None, _VERSION_QUERY] = None,
) -> Response:
    """Run one page of a SELECT (or a WHERE over cases); follow next_cursor for the rest."""
    fmt = choose_format(request, format)
    pinned: str | None
    if body.cursor is not None:
        spec, pinned, offset, limit = _from_cursor(request, body.cursor)
        given = QuerySpec.from_request(body.sql, body.where, body.params, required=False)
        if given is not None and given != spec:
            raise ApiError(400, "the cursor belongs to another query", slug="bad-cursor")
        if body.limit is not None and body.limit != limit:
            raise ApiError(
                400, "a cursor's page size cannot change; leave limit out", slug="bad-cursor"
            )
        _check_pin(version, pinned)
    else:
        spec_or_none = QuerySpec.from_request(body.sql, body.where, body.params, required=True)
        assert spec_or_none is not None
        spec, pinned, offset, limit = spec_or_none, version, 0, _limit(settings, body.limit)
    state = take_state(request, pinned)
    return _answer(request, state, settings, spec, offset, limit, fmt)


@router.get("/v1/cohort", responses=_query_responses(), response_model=None)
def cohort(
    request: Request,
    settings: SettingsDep,
    where: Annotated[
        str | None,
        Query(
            max_length=1_000_000,
            description="A WHERE expression over cases (all cases if left out).",
        ),
    ] = None,
    limit: Annotated[int | None, Query(ge=1, description="Rows per page.")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200_000, description="next_cursor of the previous page.")
    ] = None,
    format: Annotated[str | None, _FORMAT_QUERY] = None,
    version: Annotated[str | None, _VERSION_QUERY] = None,
) -> Response:
    """The cases a WHERE expression selects, as a link: ``/v1/cohort?where=pcr%20AND%20age<50``."""
    fmt = choose_format(request, format)
    pinned: str | None
    if cursor is not None:
        spec, pinned, offset, page_limit = _from_cursor(request, cursor)
        if spec.sql is not None or (where is not None and spec.where != where):
            raise ApiError(400, "the cursor belongs to another query", slug="bad-cursor")
        _check_pin(version, pinned)
    else:
        spec = QuerySpec(
            sql=None, where=where if where is not None and where.strip() else "TRUE", params={}
        )
        pinned, offset, page_limit = version, 0, _limit(settings, limit)
    state = take_state(request, pinned)
    link_query: dict[str, str] = {"version": state.version}
    if spec.where is not None and spec.where != "TRUE":
        link_query = {"where": spec.where, **link_query}
    link = "/v1/cohort?" + urlencode(link_query)
    return _answer(request, state, settings, spec, offset, page_limit, fmt, link=link)


class FacetValue(BaseModel):
    value: Any = Field(description="A value of the column (null counts the nulls).")
    count: int


class Facets(BaseModel):
    catalog_version: str
    where: str | None
    total: int = Field(description="Cases in the cohort.")
    facets: dict[str, list[FacetValue]]


_MAX_FACET_COLUMNS = 32


@router.get("/v1/facets", response_model=Facets, responses=_ERRORS)
def facets(
    request: Request,
    state: StateDep,
    settings: SettingsDep,
    columns: Annotated[
        str,
        Query(
            min_length=1,
            max_length=4000,
            description="Comma-separated columns of cases, e.g. dataset,tumor_subtype_group.",
        ),
    ],
    where: Annotated[
        str | None, Query(max_length=1_000_000, description="A WHERE expression over cases.")
    ] = None,
) -> Facets:
    """Counts per value of each column over a cohort (nulls counted as null)."""
    names = [name.strip() for name in columns.split(",") if name.strip()]
    if not names:
        raise ApiError(422, "columns names no column", slug="invalid-parameter")
    if len(names) > _MAX_FACET_COLUMNS:
        raise ApiError(413, f"at most {_MAX_FACET_COLUMNS} facet columns per request")
    schema = state.schema("cases")
    for name in names:
        if name not in schema.names:
            raise ApiError(
                422,
                f"columns: {name[:64]!r} is not a column of cases (see /v1/tables/cases/schema)",
                slug="invalid-parameter",
            )
    where_text = where if where is not None and where.strip() else None
    if where_text is not None and len(where_text) > settings.max_query_chars:
        raise ApiError(413, f"the where expression is over {settings.max_query_chars} characters")
    spec = QuerySpec(sql=None, where=where_text or "TRUE", params={})
    total, counts = facet_counts(state, spec, names)
    return Facets(
        catalog_version=state.version,
        where=where_text,
        total=total,
        facets={
            name: [FacetValue(value=jsonable(v), count=int(n)) for v, n in pairs]
            for name, pairs in counts.items()
        },
    )
