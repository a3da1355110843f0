"""The clinical sheet's header row: mapping header cells to column names, detecting the release.

Separate from row validation (`_clinical_rows`): a header is checked once per table, before any
row, and its problems concern columns, not cases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ._clinical_record import CLINICAL_COLUMNS, DERIVED_COLUMNS, clinical_columns, norm_token
from ._clinical_rows import extra_text, is_empty
from ._legend import LEGEND_ALIASES
from ._problems import Problem, Severity, show_value

__all__ = [
    "ClinicalHeader",
    "check_clinical_header",
    "normalise_column_name",
]


def normalise_column_name(name: str) -> str:
    """A header cell as a column name: stripped, lowercase, spaces and hyphens as '_'."""
    text = " ".join(name.replace("\xa0", " ").split()).lower()
    if text in LEGEND_ALIASES:
        return LEGEND_ALIASES[text]
    token = norm_token(text)
    return LEGEND_ALIASES.get(token, token)


class ClinicalHeader(NamedTuple):
    """How a sheet's header maps to columns: `columns[i]` names cell i (None: ignored)."""

    columns: list[str | None]
    release: int
    extra_columns: list[str]
    problems: list[Problem]


def check_clinical_header(header: Iterable[object], *, file: str | None = None) -> ClinicalHeader:
    """Map a header row to column names; detect the release (breast_density -> 2).

    Renamed spellings are notes, unknown columns are notes (kept as text in `extra`), missing
    columns are warnings (their values are null), duplicates are errors (the later one ignored).
    """
    problems: list[Problem] = []
    names: list[str | None] = []
    seen: set[str] = set()
    extra: list[str] = []

    def report(severity: Severity, column: str | None, value: object, rule: str, text: str) -> None:
        problems.append(
            Problem(
                severity=severity,
                file=file,
                column=column,
                value=None if value is None else show_value(value),
                rule=rule,
                message=f"{file + ': ' if file else ''}header: {text} (rule {rule}).",
                row=None,
            )
        )

    for index, cell in enumerate(header):
        if is_empty(cell):
            names.append(None)
            continue
        source = extra_text(cell)
        name = normalise_column_name(source)
        if name in seen:
            report(
                Severity.ERROR,
                name,
                source,
                "duplicate_column",
                f"column {index + 1} repeats {name!r}; its values are ignored",
            )
            names.append(None)
            continue
        seen.add(name)
        if name in CLINICAL_COLUMNS:
            if name != source:
                report(
                    Severity.NOTE, name, source, "renamed", f"column {source!r} read as {name!r}"
                )
            names.append(name)
        elif name in DERIVED_COLUMNS:
            report(
                Severity.NOTE,
                name,
                source,
                "derived_column",
                f"column {source!r} is derived by mamamia; the sheet's values are ignored",
            )
            names.append(None)
        else:
            # Unknown columns keep their source spelling (stripped).
            report(
                Severity.NOTE,
                source,
                source,
                "extra_column",
                f"unknown column {source!r} kept as text",
            )
            names.append(source)
            extra.append(source)
    if "patient_id" not in seen:
        report(Severity.ERROR, "patient_id", None, "missing_column", "no patient_id column")
    release = 2 if "breast_density" in seen else 1
    for column in clinical_columns(release):
        if column not in seen and column != "patient_id":
            report(
                Severity.WARNING,
                column,
                None,
                "missing_column",
                f"column {column!r} is missing; its values are null",
            )
    return ClinicalHeader(names, release, extra, problems)
