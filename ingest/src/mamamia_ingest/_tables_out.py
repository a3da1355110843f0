"""The catalog tables as Arrow: ``cases`` (one row per case), ``volumes`` (one row per case, kind
and phase) and ``sources`` (one row per source volume file: provenance and content hashes).

Column order and types are fixed here and documented in docs/ingest.md. NaN never appears:
undefined values are null.
"""

from __future__ import annotations

import json
import math
import re
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from mamamia.raw import RawLayout
from mamamia_ingest._volumes import CaseResult
from mamamia_schema import (
    PatientInfo,
    arrow_type_for,
    feature_arrow_schema,
    volumes_arrow_schema,
)

__all__ = [
    "FEATURE_SCHEMA",
    "SOURCES_SCHEMA",
    "VOLUMES_SCHEMA",
    "build_tables",
    "flatten_info",
    "known_info_fields",
]

_F64 = pa.float64()
_LIST_F64 = pa.list_(pa.float64())
_LIST_I64 = pa.list_(pa.int64())

#: The schema package's ``volumes`` schema (from ``VolumeInfo``), the one readers expect.
VOLUMES_SCHEMA = volumes_arrow_schema()

SOURCES_SCHEMA = pa.schema(
    [
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("sha256", pa.string()),
    ]
)

#: The derived feature columns, with their docs as field metadata (``mamamia_schema``).
FEATURE_SCHEMA = feature_arrow_schema()


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column_name(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.strip().lower()).strip("_") or "column"


def flatten_info(value: Any, prefix: str = "info") -> dict[str, Any]:
    """Nested JSON fields as flat columns: ``info_`` + the key path joined by ``_``."""
    out: dict[str, Any] = {}
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
        data.update(value.model_extra or {})
        value = data
    if isinstance(value, Mapping):
        for key, item in value.items():
            if prefix == "info" and key == "patient_id":
                continue
            out.update(flatten_info(item, f"{prefix}_{_column_name(str(key))}"))
        return out
    out[prefix] = _plain(value)
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def known_info_fields() -> list[tuple[str, pa.DataType]]:
    """The ``info_*`` columns of the documented per-case JSON keys, with their Arrow types."""
    out: list[tuple[str, pa.DataType]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            if model is PatientInfo and name == "patient_id":
                continue
            sub = _model_of(f.annotation)
            if sub is not None:
                walk(sub, f"{prefix}_{name}")
            else:
                out.append((f"{prefix}_{name}", arrow_type_for(f.annotation)))

    walk(PatientInfo, "info")
    return out


def _breast_box(info: Any, end: str) -> list[int] | None:
    """The JSON's breast box in the project's (z, y, x) array order (see BreastCoordinates)."""
    box = getattr(info, "breast_coordinates", None)
    value = getattr(box, f"bbox_{end}_zyx", None) if box is not None else None
    return list(value) if value is not None else None


def _infer_array(values: list[Any]) -> pa.Array:
    """A typed column from JSON-ish values: bool, int64, float64, string, or JSON text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], _F64)
    if all(isinstance(v, str) for v in present):
        return pa.array(values, pa.string())
    return pa.array(
        [v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values],
        pa.string(),
    )


def _quality_fields(score: Any) -> dict[str, Any]:
    if score is None:
        return {}
    if isinstance(score, BaseModel):
        data = score.model_dump(mode="json")
        data.update(score.model_extra or {})
    elif isinstance(score, Mapping):
        data = dict(score)
    else:
        return {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "patient_id":
            continue
        if isinstance(value, Mapping):
            for k, v in value.items():
                flat[_column_name(str(k))] = _plain(v)
        else:
            flat[_column_name(str(key))] = _plain(value)
    return flat


def build_tables(
    order: Sequence[str],
    clinical: Any,
    extras: Mapping[str, Any],
    results: Mapping[str, CaseResult],
    layout: RawLayout,
    tables_only: bool,
) -> dict[str, pa.Table]:
    """The ``cases``, ``volumes`` and ``sources`` tables for the cases in ``order``."""
    # Clinical columns (typed by the schema's Arrow schema), reordered to ``order``; image-only
    # cases get a row of nulls.
    base: pa.Table = clinical.table
    position = {pid: i for i, pid in enumerate(base.column("patient_id").to_pylist())}
    take = pa.array([position.get(pid) for pid in order], pa.int64())
    cases = base.take(take)
    pid_index = cases.schema.get_field_index("patient_id")
    cases = cases.set_column(
        pid_index, cases.schema.field(pid_index), pa.array(list(order), pa.string())
    )
    columns: dict[str, pa.Array] = {}
    taken = set(cases.column_names)

    splits = extras.get("splits")
    columns["split"] = pa.array(
        [_plain(splits.get(pid)) if splits else None for pid in order], pa.string()
    )
    quality = extras.get("quality") or {}
    q_rows = [_quality_fields(quality.get(pid)) for pid in order]
    q_names: list[str] = ["expert_1_qs", "expert_2_qs"]
    for row in q_rows:
        q_names.extend(k for k in row if k not in q_names)
    for name in q_names:
        out_name = name if name not in taken and name not in columns else f"quality_{name}"
        values = [row.get(name) for row in q_rows]
        columns[out_name] = (
            pa.array(values, pa.string())
            if name in ("expert_1_qs", "expert_2_qs")
            else _infer_array(values)
        )
    infos = extras.get("patient_info") or {}
    i_rows = [flatten_info(infos[pid]) if pid in infos else {} for pid in order]
    # The documented JSON fields always exist, typed by the schema (null without a JSON);
    # unknown keys follow, typed by their values.
    known = known_info_fields()
    for name, typ in known:
        columns[name] = pa.array([row.get(name) for row in i_rows], typ)
    i_names: list[str] = []
    for row in i_rows:
        i_names.extend(k for k in row if k not in i_names and k not in columns)
    for name in i_names:
        columns[name] = _infer_array([row.get(name) for row in i_rows])
    for end in ("min", "max"):
        columns[f"info_breast_bbox_{end}_zyx"] = pa.array(
            [_breast_box(infos.get(pid), end) for pid in order], _LIST_I64
        )

    def kinds(pid: str) -> set[str]:
        r = results.get(pid)
        return {v["kind"] for v in r.volumes} if r is not None and r.generation else set()

    columns["has_images"] = pa.array(["image" in kinds(pid) for pid in order], pa.bool_())
    columns["has_expert"] = pa.array(["expert" in kinds(pid) for pid in order], pa.bool_())
    columns["has_automatic"] = pa.array(["automatic" in kinds(pid) for pid in order], pa.bool_())
    columns["num_phases_stored"] = pa.array(
        [sum(1 for k in _kinds_list(results.get(pid)) if k == "image") for pid in order],
        pa.int64(),
    )
    columns["generation"] = pa.array(
        [
            results[pid].generation if pid in results and results[pid].generation else None
            for pid in order
        ],
        pa.string(),
    )
    for name, array in columns.items():
        cases = cases.append_column(name, array)
    for f in FEATURE_SCHEMA:  # with their field metadata: units, descriptions, ranges
        values = [(results[pid].features.get(f.name) if pid in results else None) for pid in order]
        cases = cases.append_column(f, pa.array(values, f.type))
    cases = cases.replace_schema_metadata(
        {**(base.schema.metadata or {}), b"mamamia.table": b"cases"}
    )

    volume_rows = [
        {f.name: row.get(f.name) for f in VOLUMES_SCHEMA}
        for pid in order
        if pid in results and results[pid].generation
        for row in results[pid].volumes
    ]
    volumes = pa.Table.from_pylist(volume_rows, schema=VOLUMES_SCHEMA)
    source_rows = [
        {f.name: rec.get(f.name) for f in SOURCES_SCHEMA}
        for pid in order
        if pid in results
        for rec in results[pid].sources
    ]
    sources = pa.Table.from_pylist(source_rows, schema=SOURCES_SCHEMA)
    return {"cases": cases, "volumes": volumes, "sources": sources}


def _kinds_list(result: CaseResult | None) -> list[str]:
    if result is None or not result.generation:
        return []
    return [v["kind"] for v in result.volumes]
