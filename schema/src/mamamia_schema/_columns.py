"""Column documentation (`COLUMN_DOCS`): the corrected legend joined with the model's types."""

from __future__ import annotations

import datetime as dt
import types
import typing
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from ._clinical_record import CLINICAL_COLUMNS, DERIVED_COLUMNS, ClinicalRecord
from ._enums import BmiGroup
from ._legend import LEGEND_TEXT

__all__ = ["COLUMN_DOCS", "ColumnDoc", "logical_type"]


class ColumnDoc(BaseModel):
    """What one column holds: its type, unit, description and (closed) value set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str  # boolean | integer | float | string | enum | list[float] | list[integer] | date
    unit: str | None = None
    description: str
    values: list[str] | None = None  # closed value set (enums, 0/1 flags), None if open
    derived: bool = False  # computed by mamamia, not in the spreadsheet
    releases: list[int] = [1, 2]
    legend_field: str | None = None  # the legend sheet's name for it, where it differs
    correction: str | None = None  # what differs from the legend sheet
    minimum: float | None = None  # the smallest possible value, if bounded
    maximum: float | None = None  # the largest possible value, if bounded


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def logical_type(annotation: Any) -> tuple[str, list[str] | None]:
    """The documented type name and value set of a field annotation."""
    inner = _strip_optional(annotation)
    if isinstance(inner, type) and issubclass(inner, StrEnum):
        return "enum", [m.value for m in inner]
    if inner is bool:
        return "boolean", None
    if inner is int:
        return "integer", None
    if inner is float:
        return "float", None
    if inner is str:
        return "string", None
    if inner is dt.date:
        return "date", None
    if typing.get_origin(inner) is list and typing.get_args(inner) == (float,):
        return "list[float]", None
    return "string", None


def _build() -> dict[str, ColumnDoc]:
    docs: dict[str, ColumnDoc] = {}
    fields: dict[str, Any] = {n: f.annotation for n, f in ClinicalRecord.model_fields.items()}
    fields.update({n: f.return_type for n, f in ClinicalRecord.model_computed_fields.items()})
    for name in (*CLINICAL_COLUMNS, *DERIVED_COLUMNS):
        text = LEGEND_TEXT[name]
        kind, values = logical_type(fields[name])
        if kind == "boolean":
            values = ["0", "1"]
        if name == "breast_density":
            values = ["a", "b", "c", "d"]
        if name == "bmi_group":
            assert values == [m.value for m in BmiGroup]
        docs[name] = ColumnDoc(
            name=name,
            type=kind,
            unit=text.unit,
            description=text.description,
            values=values,
            derived=name in DERIVED_COLUMNS,
            releases=[2] if name == "breast_density" else [1, 2],
            legend_field=text.legend_field,
            correction=text.correction,
        )
    return docs


COLUMN_DOCS: dict[str, ColumnDoc] = _build()
