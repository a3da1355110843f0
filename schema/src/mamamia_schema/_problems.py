"""Problems found while reading raw files: errors, warnings and notes."""

from __future__ import annotations

import json
import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = ["Problem", "Severity", "show_value"]


class Severity(StrEnum):
    """How bad a problem is: errors lose a value, warnings and notes lose nothing."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


class Problem(BaseModel):
    """One finding about one value, row, column or file (see docs/design.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: Severity
    case: str | None = None
    file: str | None = None
    column: str | None = None
    value: str | None = None
    rule: str
    message: str
    row: int | None = None  # 1-based row in the source sheet/CSV, header = row 1

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.message}"


def show_value(value: object) -> str:
    """The value as a problem message shows it: strings in double quotes, numbers bare."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
