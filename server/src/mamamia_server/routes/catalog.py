"""``/v1/catalog``, ``/v1/tables`` and ``/v1/tables/{name}/schema``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, Response

from mamamia_server._deps import StateDep
from mamamia_server._problem_responses import ApiError, problem_responses

__all__ = ["router"]

router = APIRouter(tags=["catalog"])

_ERRORS = problem_responses(400, 401, 404, 409, 422)


class CatalogInfo(BaseModel):
    catalog_version: str
    format_version: int
    manifest: dict[str, Any] = Field(description="catalog.json, without server file paths.")
    counts: dict[str, int | None] = Field(description="Rows per table.")
    licence: str
    citations: list[dict[str, Any]]


class TableInfo(BaseModel):
    name: str
    rows: int | None
    columns: int


class TableList(BaseModel):
    catalog_version: str
    tables: list[TableInfo]


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="The Arrow type, e.g. int64, double, list<item: double>.")
    logical_type: str | None = Field(
        default=None, description="boolean | integer | float | string | enum | list[float] | date"
    )
    nullable: bool
    unit: str | None = None
    description: str | None = None
    values: list[str] | None = Field(default=None, description="The closed value set, if any.")
    derived: bool | None = Field(default=None, description="Computed by mamamia.")
    minimum: float | None = Field(default=None, description="The smallest possible value.")
    maximum: float | None = Field(default=None, description="The largest possible value.")


class TableSchema(BaseModel):
    catalog_version: str
    table: str
    columns: list[ColumnInfo]


def _without_paths(value: Any) -> Any:
    """The manifest minus strings that are absolute server paths (e.g. an ingest's source)."""
    if isinstance(value, Mapping):
        return {str(k): _without_paths(v) for k, v in value.items() if not _is_abs_path(v)}
    if isinstance(value, list):
        return [_without_paths(v) for v in value if not _is_abs_path(v)]
    return value


def _is_abs_path(value: Any) -> bool:
    return isinstance(value, str) and (
        value.startswith(("/", "~", "\\\\")) or (len(value) > 2 and value[1:3] in (":\\", ":/"))
    )


@router.get("/v1/catalog", response_model=CatalogInfo, responses=_ERRORS)
def catalog(state: StateDep) -> CatalogInfo:
    """The manifest of the served catalog version, row counts, licence and citations."""
    citation = state.catalog.citation()
    manifest = _without_paths(state.catalog.manifest)
    return CatalogInfo(
        catalog_version=state.version,
        format_version=state.manifest.format_version,
        manifest=manifest,
        counts=state.table_rows(),
        licence=citation.licence,
        citations=[_without_paths(dict(c)) for c in citation.citations],
    )


@router.get("/v1/tables", response_model=TableList, responses=_ERRORS)
def tables(state: StateDep) -> TableList:
    """The tables of the catalog (what SQL can select from)."""
    rows = state.table_rows()
    return TableList(
        catalog_version=state.version,
        tables=[
            TableInfo(name=name, rows=rows.get(name), columns=len(state.schema(name)))
            for name in state.catalog.tables()
        ],
    )


def _meta(field_: pa.Field, key: str) -> str | None:
    raw = (field_.metadata or {}).get(key.encode())
    return None if raw is None else raw.decode("utf-8", "replace")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _column(field_: pa.Field, docs: Mapping[str, Any]) -> ColumnInfo:
    doc = docs.get(field_.name)
    values_text = _meta(field_, "values")
    values: list[str] | None = None
    if values_text is not None:
        try:
            loaded = json.loads(values_text)
            values = [str(v) for v in loaded] if isinstance(loaded, list) else None
        except ValueError:
            values = None
    derived_text = _meta(field_, "derived")
    info = ColumnInfo(
        name=field_.name,
        type=str(field_.type),
        logical_type=_meta(field_, "type"),
        nullable=field_.nullable,
        unit=_meta(field_, "unit"),
        description=_meta(field_, "description"),
        values=values,
        derived=None if derived_text is None else derived_text == "true",
        minimum=_number(_meta(field_, "minimum")),
        maximum=_number(_meta(field_, "maximum")),
    )
    if doc is not None:  # the schema package's docs fill what the file's metadata lacks
        info.logical_type = info.logical_type or doc.type
        info.unit = info.unit or doc.unit
        info.description = info.description or doc.description
        info.values = info.values if info.values is not None else doc.values
        info.derived = info.derived if info.derived is not None else doc.derived
    return info


def _column_docs(table: str) -> Mapping[str, Any]:
    if table != "cases":
        return {}
    try:
        from mamamia_schema import COLUMN_DOCS
    except ImportError:  # an older schema package without docs
        return {}
    return COLUMN_DOCS


@router.get("/v1/tables/{name}/schema", response_model=TableSchema, responses=_ERRORS)
def table_schema(
    state: StateDep,
    name: str = Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="A table name."),
) -> TableSchema:
    """Columns of one table: types, units, descriptions and value sets."""
    if name not in state.catalog.tables():
        raise ApiError(
            404,
            f"no table {name!r} in catalog {state.version}; tables: "
            + ", ".join(state.catalog.tables()),
            slug="unknown-table",
        )
    docs = _column_docs(name)
    return TableSchema(
        catalog_version=state.version,
        table=name,
        columns=[_column(f, docs) for f in state.schema(name)],
    )


@router.get(
    "/v1/tables/{name}/parquet",
    response_class=Response,
    responses={
        200: {
            "description": "The table's Parquet file, exactly as the manifest names it.",
            "content": {
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **_ERRORS,
    },
)
def table_file(
    state: StateDep,
    name: str = Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="A table name."),
) -> Response:
    """The whole table as the catalog stores it (what the SDK mirrors into its cache)."""
    ref = state.manifest.tables.get(name)
    if ref is None:
        raise ApiError(404, f"no table {name!r} in catalog {state.version}", slug="unknown-table")
    path = (state.root / ref.path).resolve()
    if not path.is_relative_to(state.root.resolve()) or not path.is_file():
        raise ApiError(404, f"table {name!r} has no file in this catalog", slug="unknown-table")
    return FileResponse(
        path,
        media_type="application/vnd.apache.parquet",
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Table-Path": ref.path,
        },
    )
