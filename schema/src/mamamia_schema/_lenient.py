"""Validate a JSON-like object against a model, nulling each bad value and reporting it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._problems import Problem, Severity, show_value

__all__ = ["validate_lenient"]

M = TypeVar("M", bound=BaseModel)

_RULES = {
    "missing": "missing",
    "int_parsing": "type",
    "int_from_float": "type",
    "float_parsing": "type",
    "bool_parsing": "type",
    "string_type": "type",
    "int_type": "type",
    "float_type": "type",
    "bool_type": "type",
    "list_type": "type",
    "dict_type": "type",
    "model_type": "type",
    "enum": "enum",
    "literal_error": "enum",
    "greater_than": "range",
    "greater_than_equal": "range",
    "less_than": "range",
    "less_than_equal": "range",
    "too_short": "length",
    "too_long": "length",
}


def _step(data: Any, key: int | str) -> tuple[bool, Any]:
    if isinstance(data, Mapping):
        return (True, data[key]) if key in data else (False, None)
    if isinstance(data, list) and isinstance(key, int):
        return (True, data[key]) if 0 <= key < len(data) else (False, None)
    return False, None


def _get(data: Any, loc: tuple[int | str, ...]) -> Any:
    for key in loc:
        found, data = _step(data, key)
        if not found:
            return None
    return data


def _null(data: Any, loc: tuple[int | str, ...]) -> bool:
    """Set the value at `loc` to None in place; False when the path does not exist."""
    for key in loc[:-1]:
        found, data = _step(data, key)
        if not found:
            return False
    last = loc[-1]
    if isinstance(data, dict) and last in data:
        data[last] = None
        return True
    if isinstance(data, list) and isinstance(last, int) and last < len(data):
        data[last] = None
        return True
    return False


def _thaw(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {str(k): _thaw(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_thaw(v) for v in data]
    return data


def validate_lenient(
    model: type[M],
    data: Mapping[str, Any],
    *,
    case: str | None,
    file: str | None,
    row: int | None = None,
    required: tuple[str, ...] = (),
    max_rounds: int = 20,
) -> tuple[M | None, list[Problem]]:
    """`model.model_validate(data)`, but each bad value becomes null and is reported.

    Returns None (with an error) when a field in `required` is itself bad or missing.
    """
    work = _thaw(data)
    problems: list[Problem] = []
    where = case or "record"
    if row is not None:
        where += f" (row {row})"
    for _ in range(max_rounds):
        try:
            return model.model_validate(work), problems
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        fatal = False
        for error in errors:
            loc = tuple(error["loc"])
            column = ".".join(str(p) for p in loc) or None
            value = _get(work, loc)
            rule = _RULES.get(error["type"], error["type"])
            shown = None if value is None else show_value(value)
            nulled = bool(loc) and loc[0] not in required and _null(work, loc)
            fatal = fatal or not nulled
            outcome = "set to null" if nulled else "record skipped"
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    case=case,
                    file=file,
                    column=column,
                    value=shown,
                    rule=rule,
                    message=f"{where}: {column} = {shown}: {error['msg']}; {outcome} (rule {rule}).",
                    row=row,
                )
            )
        if fatal:
            return None, problems
    return None, problems
