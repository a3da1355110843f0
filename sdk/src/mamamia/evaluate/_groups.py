"""The challenge's fairness groups, and the per-case rows (groups, true pCR) read from a catalog.

Age: ``pd.cut`` with bins [0, 40, 50, 60, 70, 100] (right edges included) labelled 0-40, 41-50,
51-60, 61-70, 71+; other ages drop out of the age variable. Menopausal status: missing ->
"unknown", then "peri" -> pre, "post" -> post, "pre" -> pre, tested in that order. Breast
density: a-d as given; missing values drop out of that variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import mamamia

from ._evaluation_error import EvaluationError

__all__ = [
    "AGE_GROUPS",
    "FAIRNESS_VARIABLES",
    "CaseInfo",
    "age_group",
    "case_infos",
    "group_order",
    "menopause_group",
    "open_catalog",
]

FAIRNESS_VARIABLES: tuple[str, ...] = ("age", "menopausal_status", "breast_density")
AGE_GROUPS: tuple[str, ...] = ("0-40", "41-50", "51-60", "61-70", "71+")
_AGE_EDGES: tuple[float, ...] = (0, 40, 50, 60, 70, 100)
_MENOPAUSE_ORDER: tuple[str, ...] = ("pre", "post", "unknown")
_DENSITY_ORDER: tuple[str, ...] = ("a", "b", "c", "d")


def age_group(age: float | None) -> str | None:
    """The challenge's age bin of ``age`` (``pd.cut``: (0, 40], (40, 50], ...), or None."""
    if age is None or math.isnan(age):
        return None
    for label, low, high in zip(AGE_GROUPS, _AGE_EDGES[:-1], _AGE_EDGES[1:], strict=True):
        if low < age <= high:
            return label
    return None


def menopause_group(status: str | None, *, lowercase: bool = False) -> str:
    """pre / post / unknown as the scoring scripts map it; other text comes through unchanged.

    The segmentation script tests the text as written, the pCR script lowercases it first
    (``lowercase=True``); the table's values are lowercase, so both agree on it.
    """
    if status is None:
        return "unknown"
    text = status.lower() if lowercase else status
    if "peri" in text:
        return "pre"
    if "post" in text:
        return "post"
    if "pre" in text:
        return "pre"
    return text


def group_order(variable: str, groups: set[str]) -> list[str]:
    """The groups of one variable in reading order (age bins, pre/post/unknown, a-d, then A-Z)."""
    known = {"age": AGE_GROUPS, "menopausal_status": _MENOPAUSE_ORDER}.get(variable, _DENSITY_ORDER)
    return [g for g in known if g in groups] + sorted(groups - set(known))


@dataclass(frozen=True)
class CaseInfo:
    """One case's group values and the columns the scores need."""

    patient_id: str
    age: float | None
    menopause: str | None
    breast_density: str | None
    pcr: bool | None
    has_expert: bool
    has_automatic: bool


@contextmanager
def open_catalog(
    catalog: mamamia.Catalog | str | os.PathLike[str] | None,
) -> Iterator[mamamia.Catalog]:
    """A Catalog as given (left open), or opened from a folder / s3 URL / http(s) URL
    ($MAMAMIA_CATALOG) and closed on exit."""
    if isinstance(catalog, mamamia.Catalog):
        yield catalog
        return
    with _open(catalog) as opened:
        yield opened


def _open(catalog: str | os.PathLike[str] | None) -> mamamia.Catalog:
    target = os.fspath(catalog) if catalog is not None else os.environ.get("MAMAMIA_CATALOG")
    if not target:
        raise EvaluationError("no catalog given: pass --catalog PATH|URL or set $MAMAMIA_CATALOG")
    if target.startswith(("http://", "https://")):
        return mamamia.connect(target)
    return mamamia.open(target if "://" in target else Path(target))


def _column(columns: set[str], *candidates: str) -> str:
    """The first of ``candidates`` the cases table has, as SQL; NULL when none is there."""
    for name in candidates:
        if name in columns:
            return f'"{name}"'
    return "NULL"


def case_infos(
    catalog: mamamia.Catalog, cohort: str | None, default: Literal["expert", "automatic", "all"]
) -> tuple[list[CaseInfo], dict[str, str]]:
    """The cohort's cases (``cohort`` WHERE, else those with the ``default`` mask) in id order,
    and every catalog id by its lowercase form (prediction file names are case-insensitive).

    Density comes from the table's ``breast_density`` where the table has that column (second
    release), else from the per-case JSON; menopause from ``menopause`` (``menopausal_status`` in
    the JSON).
    """
    columns = set(catalog.sql("SELECT * FROM cases LIMIT 0").column_names)
    where = cohort or ("TRUE" if default == "all" else f"has_{default}")
    try:
        ids = set(catalog.cohort(where).case_ids)
    except mamamia.MamamiaError as exc:
        raise EvaluationError(f"--cohort {where!r}: {exc}") from exc
    query = (
        "SELECT patient_id, "
        f"{_column(columns, 'age', 'info_clinical_data_age')} AS age, "
        f"{_column(columns, 'menopause', 'info_clinical_data_menopausal_status')} AS menopause, "
        f"{_column(columns, 'breast_density', 'info_clinical_data_breast_density')} AS density, "
        f"{_column(columns, 'pcr', 'info_primary_lesion_pcr')} AS pcr, "
        "has_expert, has_automatic FROM cases ORDER BY patient_id"
    )
    rows = catalog.sql(query).to_pylist()
    infos = [
        CaseInfo(
            patient_id=row["patient_id"],
            age=None if row["age"] is None else float(row["age"]),
            menopause=row["menopause"],
            breast_density=row["density"],
            pcr=None if row["pcr"] is None else bool(row["pcr"]),
            has_expert=bool(row["has_expert"]),
            has_automatic=bool(row["has_automatic"]),
        )
        for row in rows
        if row["patient_id"] in ids
    ]
    return infos, {row["patient_id"].lower(): row["patient_id"] for row in rows}
