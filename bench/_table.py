"""The markdown table every benchmark prints: our figure, the baseline's, and their ratio."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

COLUMNS = ("benchmark", "metric", "ours", "baseline_name", "baseline", "ratio", "target", "unit")


def cell(value: Any) -> str:
    """One table cell: floats to 3 significant digits, None as empty."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """The rows (one measurement each) as a markdown table of ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
