"""``--cohort WHERE``: which cases a WHERE clause on the clinical table selects, and their files.

The clinical table is read with the SDK's own reader and queried with DuckDB in memory; the
WHERE text is the user's own (it runs on their machine, on their copy), but the connection is
still closed to files and extensions so a clause cannot read or write anything else.
"""

from __future__ import annotations

from pathlib import Path

from mamamia._sync._report import SyncError

__all__ = ["CASE_FOLDERS", "case_of", "is_table_file", "select_cases"]

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
