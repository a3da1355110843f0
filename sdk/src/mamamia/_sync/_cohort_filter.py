"""``--cohort WHERE``: which cases a WHERE clause on the clinical table selects, and their files.

The clinical table is read with the SDK's own reader and queried with DuckDB in memory; the
WHERE text is the user's own (it runs on their machine, on their copy), but the connection is
still closed to files and extensions so a clause cannot read or write anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from mamamia._sync._report import SyncError

__all__ = [
    "CASE_FOLDERS",
    "case_of",
    "check_case_ids",
    "cohort_file_ids",
    "is_table_file",
    "select_cases",
]

#: Top-level folders whose files belong to one case (compared lowercased).
CASE_FOLDERS = ("images", "segmentations", "patient_info_files")
CLINICAL_TABLE = "clinical_and_imaging_info.xlsx"


def _strip_suffixes(name: str) -> str:
    lowered = name.lower()
    for suffix in (".nii.gz", ".nii", ".json", ".nrrd", ".mha"):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name.split(".")[0]


def case_of(segments: tuple[str, ...]) -> str | None:
    """The uppercase patient id a case file belongs to, or None for any other file.

    ``images/<CASE>/<case>_000N.nii.gz``, ``segmentations/<kind>/<case>.nii.gz`` and
    ``patient_info_files/<case>.json``, names matched case-insensitively.
    """
    if len(segments) < 2:
        return None
    top = segments[0].lower()
    if top == "images" and len(segments) >= 3:
        return segments[1].upper()
    if top == "segmentations" and len(segments) >= 3:
        return _strip_suffixes(segments[-1]).upper()
    if top == "patient_info_files" and len(segments) == 2:
        return _strip_suffixes(segments[-1]).upper()
    return None


def is_table_file(segments: tuple[str, ...]) -> bool:
    """A file at the root of the release (the clinical xlsx, the splits and quality CSVs)."""
    return len(segments) == 1


def find_clinical_table(dest: Path) -> Path:
    matches = [p for p in dest.iterdir() if p.is_file() and p.name.lower() == CLINICAL_TABLE]
    if not matches:
        raise SyncError(
            f"--cohort needs {CLINICAL_TABLE} at the root of the release, and it is not in "
            f"{dest} after fetching the tables"
        )
    return matches[0]


def select_cases(clinical_path: Path, where: str) -> list[str]:
    """Uppercase patient ids of the rows where ``where`` holds, sorted."""
    if not where.strip():
        raise SyncError("--cohort: the WHERE clause is empty")
    import duckdb

    from mamamia import read_clinical_table
    from mamamia._errors import MamamiaError

    try:
        table = read_clinical_table(clinical_path).table
    except MamamiaError as exc:
        raise SyncError(f"--cohort: cannot read {clinical_path.name}: {exc}") from exc
    if "patient_id" not in table.column_names:
        raise SyncError(f"{clinical_path}: the clinical table has no patient_id column")
    con = duckdb.connect(":memory:")
    try:
        con.register("cases", table)
        # The clause must not reach files, extensions or settings.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        sql = f"SELECT patient_id FROM cases WHERE ({where})"
        try:
            rows = con.execute(sql).fetchall()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SyncError(f"--cohort {where!r}: {first}") from exc
    finally:
        con.close()
    return sorted({str(row[0]).upper() for row in rows if row[0] is not None})


_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_case_ids(ids: Iterable[object]) -> list[str]:
    """Uppercase, sorted, unique patient ids; a value that is not one is named."""
    if isinstance(ids, str):
        raise SyncError("cohort: pass a WHERE clause as text, or a list of patient ids")
    checked: set[str] = set()
    for value in ids:
        if not isinstance(value, str) or not _CASE_ID.match(value):
            raise SyncError(f"cohort: {value!r} is not a patient id like DUKE_001")
        checked.add(value.upper())
    if not checked:
        raise SyncError("cohort: the list of patient ids is empty")
    return sorted(checked)


def cohort_file_ids(path: Path) -> list[str]:
    """The case ids of a cohort file (``Cohort.save``): what ``--cohort-file`` mirrors."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SyncError(f"--cohort-file {path}: cannot read it: {exc}") from exc
    if not isinstance(body, dict) or body.get("mamamia_cohort") != 1:
        raise SyncError(f"--cohort-file {path}: not a mamamia cohort file (version 1)")
    ids = body.get("case_ids")
    if not isinstance(ids, list):
        raise SyncError(f"--cohort-file {path}: it has no case_ids list")
    return check_case_ids(ids)
