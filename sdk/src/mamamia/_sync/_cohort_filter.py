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
from mamamia.raw import CLINICAL_TABLE_NAMES, RawKind, classify, find_raw_file
from mamamia_schema import PATIENT_ID_PATTERN

__all__ = [
    "case_of",
    "check_case_ids",
    "cohort_file_ids",
    "find_clinical_table",
    "is_clinical_table",
    "is_table_file",
    "select_cases",
]


def case_of(segments: tuple[str, ...]) -> str | None:
    """The uppercase patient id a file under ``images/``, ``segmentations/`` or
    ``patient_info_files/`` belongs to (`mamamia.raw.classify`), or None for any other file."""
    return classify(segments).case


def is_table_file(segments: tuple[str, ...]) -> bool:
    """A file at the root of the release (the clinical table, the splits and quality CSVs):
    a cohort mirror always fetches these."""
    return len(segments) == 1


def is_clinical_table(path: str) -> bool:
    """The clinical table, in any of its accepted names."""
    return classify(path).kind is RawKind.CLINICAL_TABLE


def find_clinical_table(dest: Path) -> Path:
    found = find_raw_file(dest, CLINICAL_TABLE_NAMES)
    if found is None:
        raise SyncError(
            f"--cohort needs {CLINICAL_TABLE_NAMES[0]} at the root of the release, and it is not "
            f"in {dest} after fetching the tables"
        )
    return found


def select_cases(clinical_path: Path, where: str) -> list[str]:
    """Uppercase patient ids of the rows where ``where`` holds, sorted."""
    if not where.strip():
        raise SyncError("--cohort: the WHERE clause is empty")
    import duckdb

    from mamamia._errors import MamamiaError
    from mamamia._tables import read_clinical_table

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


_CASE_ID = re.compile(PATIENT_ID_PATTERN)


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
