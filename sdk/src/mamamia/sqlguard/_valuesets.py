"""Value-set warnings: a comparison with a value outside a column's closed set matches nothing.

``dataset = 'Duke'`` (the set is DUKE, ISPY1, ISPY2, NACT) is valid SQL that silently selects no
case. The catalog's Arrow schema carries each categorical column's set (field metadata
``values``); this module finds ``column = 'text'``, ``<>`` and ``IN (...)`` comparisons in
DuckDB's parse tree (constants and ``$name`` parameters) and names the nearest valid values.
The SDK warns with :class:`ValueSetWarning`, the server lists the same texts in ``warnings``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

__all__ = ["ValueSetWarning", "value_sets", "value_warnings"]

_EQUALITY = {"COMPARE_EQUAL", "COMPARE_NOTEQUAL"}
_MEMBERSHIP = {"COMPARE_IN", "COMPARE_NOT_IN"}


class ValueSetWarning(UserWarning):
    """A query compares a categorical column with a value outside its set (it matches no row)."""


def value_sets(schemas: Iterable[pa.Schema]) -> dict[str, tuple[str, ...]]:
    """Column name -> its closed value set, for the text columns of ``schemas`` that have one."""
    out: dict[str, tuple[str, ...]] = {}
    for schema in schemas:
        for field in schema:
            raw = (field.metadata or {}).get(b"values")
            if raw is None or not (
                pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
            ):
                continue
            try:
                loaded = json.loads(raw)
            except ValueError:
                continue
            if isinstance(loaded, list) and loaded:
                out[field.name.lower()] = tuple(str(v) for v in loaded)
    return out


def _column(node: Any) -> str | None:
    if isinstance(node, dict) and node.get("class") == "COLUMN_REF":
        names = node.get("column_names") or []
        return str(names[-1]).lower() if names else None
    return None


def _text(node: Any, params: Mapping[str, Any]) -> str | None:
    if not isinstance(node, dict):
        return None
    if node.get("class") == "CONSTANT":
        literal = node.get("literal")
        if isinstance(literal, dict) and literal.get("kind") == "STRING":
            return str(literal.get("text"))
        value = node.get("value")  # other DuckDB versions: a typed value
        if isinstance(value, dict) and (value.get("type") or {}).get("id") == "VARCHAR":
            return None if value.get("is_null") else str(value.get("value"))
    if node.get("class") == "PARAMETER":
        given = params.get(str(node.get("identifier")))
        return given if isinstance(given, str) else None
    return None


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _nearest(value: str, allowed: tuple[str, ...]) -> list[str]:
    same = [v for v in allowed if v.lower() == value.lower()]
    if same:
        return same
    lowered = {v.lower(): v for v in allowed}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=3, cutoff=0.5)
    return [lowered[c] for c in close]


def value_warnings(
    node: object, sets: Mapping[str, tuple[str, ...]], params: Mapping[str, Any] | None = None
) -> list[str]:
    """One text per comparison in the parse tree ``node`` with a value outside its column's set."""
    given = params or {}
    found: list[str] = []
    for item in _nodes(node):
        kind = item.get("type")
        pairs: list[tuple[Any, Any]] = []
        if kind in _EQUALITY:
            left, right = item.get("left"), item.get("right")
            pairs = [(left, right), (right, left)]
        elif kind in _MEMBERSHIP and isinstance(item.get("children"), list) and item["children"]:
            first, *rest = item["children"]
            pairs = [(first, other) for other in rest]
        for column_node, value_node in pairs:
            column = _column(column_node)
            value = _text(value_node, given)
            if column is None or value is None or column not in sets:
                continue
            allowed = sets[column]
            if value in allowed:
                continue
            text = f"{column} = '{value}' matches no row: {column} is one of " + ", ".join(
                f"'{v}'" for v in allowed
            )
            nearest = _nearest(value, allowed)
            if nearest:
                text += "; did you mean " + " or ".join(f"'{v}'" for v in nearest) + "?"
            if text not in found:
                found.append(text)
    return found
