"""What the ingest report says about the tables, and how it stays reproducible.

- A splits or quality row naming a case that is neither in the clinical table nor in the
  images would vanish without a trace (its values join nothing): it becomes a warning naming
  the case and the file.
- A fatal error (no clinical table, no ``patient_id`` column, an unreadable table) still
  replaces ``ingest-report.json`` with a report of the failed run, so the previous run's report
  never stays behind looking current.
- Messages never carry a pointer address (``NiftiImageIO(0x55d...)``) or the machine's
  absolute paths to the raw folder and catalog, so two runs over the same input give the
  same report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mamamia_schema import Problem, Severity

__all__ = ["clean_message", "clean_problems", "unknown_case_problems"]

_POINTER = re.compile(r"\(0x[0-9a-fA-F]+\)|\b0x[0-9a-fA-F]{8,}\b")


def clean_message(text: str, roots: Mapping[str, str]) -> str:
    """``text`` without pointer addresses, and with each absolute root path replaced by its
    label (``{"/abs/raw": "RAW"}``), longest root first."""
    for root in sorted(roots, key=len, reverse=True):
        if root:
            text = text.replace(root.rstrip("/") + "/", "").replace(root, roots[root])
    return _POINTER.sub("", text)


def clean_problems(problems: list[Problem], raw: Path, catalog: Path) -> None:
    """Every message and value of ``problems`` through ``clean_message``, in place."""
    roots = {str(raw.resolve()): "RAW", str(catalog.resolve()): "CATALOG"}
    for i, p in enumerate(problems):
        message = clean_message(p.message, roots)
        value = None if p.value is None else clean_message(p.value, roots)
        if message != p.message or value != p.value:
            problems[i] = p.model_copy(update={"message": message, "value": value})


def unknown_case_problems(
    extras: Mapping[str, Any], known: Iterable[str], files: Mapping[str, str | None]
) -> list[Problem]:
    """One warning per splits / quality row whose case is nowhere else in the dataset."""
    known_ids = {k.upper() for k in known}
    out: list[Problem] = []
    for table, what in (("splits", "split"), ("quality", "quality scores")):
        rows = extras.get(table) or {}
        for case in sorted(str(c) for c in rows):
            if case.upper() in known_ids:
                continue
            name = files.get(table) or table
            out.append(
                Problem(
                    severity=Severity.WARNING,
                    case=case,
                    file=name,
                    rule="unknown_case",
                    value=case,
                    message=f"{name}: case {case} is in neither the clinical table nor the "
                    f"images; its {what} row is ignored",
                )
            )
    return out
