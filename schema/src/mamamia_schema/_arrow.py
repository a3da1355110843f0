"""Arrow schemas derived from the models: the single source of truth for Parquet and the server."""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum, StrEnum
from typing import Any, TypeVar

import pyarrow as pa
from pydantic import BaseModel

from ._clinical_record import DERIVED_COLUMNS, ClinicalRecord, clinical_columns
from ._columns import COLUMN_DOCS, ColumnDoc, logical_type

__all__ = [
    "FORMAT_VERSION",
    "arrow_type_for",
    "clinical_arrow_schema",
    "field_metadata",
    "model_arrow_schema",
    "records_from_arrow",
    "records_to_arrow",
    "schema_docs",
]

FORMAT_VERSION = 1

M = TypeVar("M", bound=BaseModel)

# Field-metadata keys (bytes, as Arrow stores them).
_UNIT = b"unit"
_DESCRIPTION = b"description"
_TYPE = b"type"
_VALUES = b"values"
_DERIVED = b"derived"
_EXTRA = b"mamamia.extra"  # the source column name of an unknown column kept as text
_TABLE = b"mamamia.table"


def arrow_type_for(annotation: Any) -> pa.DataType:
    """The Arrow type of a pydantic field annotation (None in a union means nullable)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return arrow_type_for(args[0])
        if all(a in (int, float) for a in args):
            return pa.float64()
        return pa.string()  # a mixed union is stored as text
    if origin is typing.Literal:
        return pa.string()
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return pa.string()
        if annotation is bool:
            return pa.bool_()
        if annotation is int:
            return pa.int64()
        if annotation is float:
            return pa.float64()
        if annotation is str:
            return pa.string()
        if annotation is dt.datetime:
            return pa.timestamp("us", tz="UTC")
        if annotation is dt.date:
            return pa.date32()
        if issubclass(annotation, BaseModel):
            return pa.struct(
                [
                    pa.field(n, arrow_type_for(f.annotation))
                    for n, f in annotation.model_fields.items()
                ]
            )
    if origin in (list, tuple, Sequence):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = args[0] if args else str
        return pa.list_(arrow_type_for(item))
    if origin in (dict, Mapping):
        key, value = typing.get_args(annotation)
        return pa.map_(arrow_type_for(key), arrow_type_for(value))
    raise TypeError(f"no Arrow type for {annotation!r}")


def field_metadata(
    *, unit: str | None, description: str | None, kind: str, values: list[str] | None, derived: bool
) -> dict[bytes, bytes]:
    meta = {_TYPE: kind.encode(), _DERIVED: b"true" if derived else b"false"}
    if unit:
        meta[_UNIT] = unit.encode()
    if description:
        meta[_DESCRIPTION] = description.encode()
    if values is not None:
        meta[_VALUES] = json.dumps(values).encode()
    return meta


def _annotations(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {n: f.annotation for n, f in model.model_fields.items()}
    out.update({n: f.return_type for n, f in model.model_computed_fields.items()})
    return out


def model_arrow_schema(
    model: type[BaseModel],
    *,
    table: str,
    exclude: Iterable[str] = (),
    extra_columns: Mapping[str, pa.DataType] | Iterable[str] = (),
) -> pa.Schema:
    """An Arrow schema from a model's fields (then computed fields), with docs as metadata.

    Descriptions come from `Field(description=...)`, units from `json_schema_extra={"unit": ..}`.
    `extra_columns` (source names; text unless a type is given) are appended for unknown
    columns kept in the model's `extra` dict.
    """
    skip = {"extra", *exclude}
    fields: list[pa.Field] = []
    for name, annotation in _annotations(model).items():
        if name in skip:
            continue
        info = model.model_fields.get(name)
        computed = model.model_computed_fields.get(name)
        description = info.description if info else computed.description if computed else None
        unit = None
        if info is not None and isinstance(info.json_schema_extra, dict):
            raw_unit = info.json_schema_extra.get("unit")
            unit = raw_unit if isinstance(raw_unit, str) else None
        kind, values = logical_type(annotation)
        nullable = info is None or not info.is_required() or _optional(annotation)
        fields.append(
            pa.field(
                name,
                arrow_type_for(annotation),
                nullable=nullable,
                metadata=field_metadata(
                    unit=unit,
                    description=description,
                    kind=kind,
                    values=values,
                    derived=computed is not None,
                ),
            )
        )
    return _with_extra(pa.schema(fields), extra_columns, table)


def _optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)


def _with_extra(
    schema: pa.Schema, extra_columns: Mapping[str, pa.DataType] | Iterable[str], table: str
) -> pa.Schema:
    items = (
        list(extra_columns.items())
        if isinstance(extra_columns, Mapping)
        else [(n, pa.string()) for n in extra_columns]
    )
    fields = list(schema)
    taken = set(schema.names)
    for source, type_ in items:
        name = source
        while name in taken:  # an unknown column must never shadow a known one
            name = f"extra_{name}"
        taken.add(name)
        fields.append(
            pa.field(
                name,
                type_,
                nullable=True,
                metadata={
                    _EXTRA: source.encode(),
                    _TYPE: b"float" if type_ == pa.float64() else b"string",
                    _DERIVED: b"false",
                    _DESCRIPTION: f"Unknown source column {source!r}, kept as given.".encode(),
                },
            )
        )
    return pa.schema(
        fields,
        metadata={_TABLE: table.encode(), b"mamamia.format_version": str(FORMAT_VERSION).encode()},
    )


def clinical_arrow_schema(release: int = 2, extra_columns: Iterable[str] = ()) -> pa.Schema:
    """The `cases` clinical columns: the release's source columns, then the derived ones.

    Field metadata carries `unit`, `description`, `type`, `values` (JSON) and `derived`; unknown
    source columns (`extra_columns`) are appended as text and name their source in
    `mamamia.extra`.
    """
    names = (*clinical_columns(release), *DERIVED_COLUMNS)
    annotations = _annotations(ClinicalRecord)
    fields: list[pa.Field] = []
    for name in names:
        doc = COLUMN_DOCS[name]
        fields.append(
            pa.field(
                name,
                arrow_type_for(annotations[name]),
                nullable=name != "patient_id",
                metadata=field_metadata(
                    unit=doc.unit,
                    description=doc.description,
                    kind=doc.type,
                    values=doc.values,
                    derived=doc.derived,
                ),
            )
        )
    schema = _with_extra(pa.schema(fields), extra_columns, "cases")
    return schema.with_metadata(
        {**(schema.metadata or {}), b"mamamia.release": str(release).encode()}
    )


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return [(k, _plain(v)) for k, v in value.items()]  # Arrow maps take pairs
    return value


def records_to_arrow(records: Iterable[BaseModel], schema: pa.Schema) -> pa.Table:
    """Models to a table of exactly `schema` (fields by name; unknown columns from `extra`)."""
    sources: list[tuple[str, str | None]] = []
    for field in schema:
        meta = field.metadata or {}
        sources.append((field.name, meta[_EXTRA].decode() if _EXTRA in meta else None))
    columns: dict[str, list[Any]] = {name: [] for name, _ in sources}
    for record in records:
        extra = getattr(record, "extra", None) or {}
        for name, source in sources:
            if source is not None:
                columns[name].append(extra.get(source))
            else:
                columns[name].append(_plain(getattr(record, name)))
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def records_from_arrow(table: pa.Table, model: type[M]) -> list[M]:
    """Rows of a table back to models (derived columns are recomputed; unknown go to `extra`)."""
    computed = set(model.model_computed_fields)
    sources: dict[str, str] = {}
    for field in table.schema:
        meta = field.metadata or {}
        if _EXTRA in meta:
            sources[field.name] = meta[_EXTRA].decode()
    has_extra = "extra" in model.model_fields
    out: list[M] = []
    for row in table.to_pylist():
        data: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in row.items():
            if name in sources:
                extra[sources[name]] = value
            elif name in computed:
                continue
            elif isinstance(value, list) and value and isinstance(value[0], tuple):
                data[name] = dict(value)  # an Arrow map comes back as pairs
            else:
                data[name] = value
        if has_extra:
            data["extra"] = {**(data.get("extra") or {}), **extra}
        out.append(model.model_validate(data))
    return out


def schema_docs(schema: pa.Schema) -> dict[str, ColumnDoc]:
    """Column docs of any table from its Arrow field metadata (what the schema endpoint serves)."""
    release = (schema.metadata or {}).get(b"mamamia.release")
    docs: dict[str, ColumnDoc] = {}
    for field in schema:
        meta = field.metadata or {}
        values = json.loads(meta[_VALUES]) if _VALUES in meta else None
        docs[field.name] = ColumnDoc(
            name=field.name,
            type=meta.get(_TYPE, b"string").decode(),
            unit=meta[_UNIT].decode() if _UNIT in meta else None,
            description=meta.get(_DESCRIPTION, b"").decode(),
            values=values,
            derived=meta.get(_DERIVED) == b"true",
            releases=[int(release)] if release else [1, 2],
            legend_field=meta[_EXTRA].decode() if _EXTRA in meta else None,
            minimum=float(meta[b"minimum"]) if b"minimum" in meta else None,
            maximum=float(meta[b"maximum"]) if b"maximum" in meta else None,
        )
    return docs
