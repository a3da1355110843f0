"""Raw rows out of the MAMA-MIA table files: xlsx sheets and CSV text -> tuples of cells.

The layer under the validated readers in `mamamia._tables`: the size caps, the zip-bomb check,
sheet and CSV dialect choice, the patient_id header search, and the file-level `Problem` builder
every reader shares. It is separate so that the readers' module holds the per-table rules only;
nothing here validates a value.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mamamia._errors import TableReadError
from mamamia.raw import DATA_SHEET, LEGEND_SHEET
from mamamia_schema import Problem, Severity, normalise_column_name

__all__ = [
    "MAX_CSV_BYTES",
    "MAX_ROWS",
    "MAX_XLSX_RATIO",
    "MAX_XLSX_UNCOMPRESSED",
    "read_rows",
]

#: Sum of the uncompressed member sizes an xlsx may have (the real table: 2 MB).
MAX_XLSX_UNCOMPRESSED = 512 * 1024 * 1024
#: Largest compression ratio of one xlsx member over 1 MiB (the real sheet: about 6).
MAX_XLSX_RATIO = 200
_MAX_XLSX_MEMBERS = 10_000
#: Largest CSV a reader accepts (the real tables are well under 1 MB).
MAX_CSV_BYTES = 256 * 1024 * 1024
#: Most data rows a table may hold (the dataset has 1506 cases).
MAX_ROWS = 200_000
_HEADER_SEARCH_ROWS = 20


def source_label(path: Path, relpath: str | None) -> str:
    return relpath if relpath is not None else path.name


def _check_zip(path: Path) -> None:
    """Refuse an xlsx whose members would inflate past the caps, before openpyxl opens it."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise TableReadError(f"{path}: not an xlsx file (not a zip archive)") from None
    if len(members) > _MAX_XLSX_MEMBERS:
        raise TableReadError(f"{path}: xlsx has {len(members)} members (limit {_MAX_XLSX_MEMBERS})")
    total = 0
    for member in members:
        total += member.file_size
        if member.file_size > 1024 * 1024 and member.file_size > MAX_XLSX_RATIO * max(
            member.compress_size, 1
        ):
            raise TableReadError(
                f"{path}: xlsx member {member.filename} inflates {member.compress_size} -> "
                f"{member.file_size} bytes (ratio over {MAX_XLSX_RATIO}); refusing a possible "
                "zip bomb"
            )
    if total > MAX_XLSX_UNCOMPRESSED:
        raise TableReadError(
            f"{path}: xlsx inflates to {total} bytes (limit {MAX_XLSX_UNCOMPRESSED}); refusing a "
            "possible zip bomb"
        )


@dataclass
class _Sheets:
    data: list[tuple[object, ...]]
    legend: list[tuple[object, ...]] | None
    problems: list[Problem] = field(default_factory=list)


def _bounded(rows: Iterator[tuple[object, ...]], path: Path) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for row in rows:
        out.append(row)
        if len(out) > MAX_ROWS + _HEADER_SEARCH_ROWS:
            raise TableReadError(f"{path}: more than {MAX_ROWS} rows; not a MAMA-MIA table")
    return out


def _read_xlsx(path: Path, label: str, data_sheet: str) -> _Sheets:
    import openpyxl  # deferred: only xlsx readers need it

    _check_zip(path)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged files
        raise TableReadError(f"{path}: cannot open as xlsx: {exc}") from exc
    problems: list[Problem] = []
    try:
        names = {name.strip().lower(): name for name in workbook.sheetnames}
        sheet_name = names.get(data_sheet.lower())
        if sheet_name is None:
            # Fall back to the first sheet whose top rows name patient_id.
            for name in workbook.sheetnames:
                candidate = workbook[name]
                if hasattr(candidate, "reset_dimensions"):
                    candidate.reset_dimensions()
                top = list(candidate.iter_rows(max_row=_HEADER_SEARCH_ROWS, values_only=True))
                if any(_has_patient_id(r) for r in top):
                    sheet_name = name
                    break
            if sheet_name is None:
                raise TableReadError(
                    f"{path}: no sheet {data_sheet!r} and no sheet with a patient_id column "
                    f"(sheets: {', '.join(workbook.sheetnames)})"
                )
            problems.append(
                file_problem(
                    Severity.WARNING,
                    label,
                    "sheet",
                    f"no sheet {data_sheet!r}; read sheet {sheet_name!r}",
                )
            )
        data = _sheet_rows(workbook, sheet_name, path)
        legend_name = names.get(LEGEND_SHEET)
        legend = _sheet_rows(workbook, legend_name, path) if legend_name is not None else None
        for name in workbook.sheetnames:
            if name not in (sheet_name, legend_name):
                problems.append(
                    file_problem(Severity.NOTE, label, "extra_sheet", f"sheet {name!r} ignored")
                )
    finally:
        workbook.close()
    return _Sheets(data, legend, problems)


def _sheet_rows(workbook: Any, name: str, path: Path) -> list[tuple[object, ...]]:
    sheet = workbook[name]
    # Read-only sheets trust the file's <dimension> and silently drop rows and columns past it;
    # some writers get it wrong, so read every row the XML holds.
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()
    try:
        return _bounded(sheet.iter_rows(values_only=True), path)
    except TableReadError:
        raise
    except Exception as exc:  # read-only sheets parse lazily: damaged XML surfaces here
        raise TableReadError(f"{path}: cannot read sheet {name!r}: {exc}") from exc


def _read_csv_rows(path: Path) -> list[tuple[object, ...]]:
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise TableReadError(f"{path}: {size} bytes (limit {MAX_CSV_BYTES}); not a MAMA-MIA table")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # old spreadsheet exports; every byte decodes
    if "\x00" in text[:4096]:
        raise TableReadError(f"{path}: binary data, not a CSV file")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows: list[tuple[object, ...]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), dialect):
            rows.append(tuple(cell if cell.strip() else None for cell in row))
            if len(rows) > MAX_ROWS + _HEADER_SEARCH_ROWS:
                raise TableReadError(f"{path}: more than {MAX_ROWS} rows; not a MAMA-MIA table")
    except csv.Error as exc:
        raise TableReadError(f"{path}: malformed CSV: {exc}") from exc
    return rows


def _is_xlsx(path: Path) -> bool:
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return True
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return False
    with path.open("rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def read_rows(
    path: str | Path, *, data_sheet: str = DATA_SHEET, relpath: str | None = None
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]] | None, list[Problem]]:
    """Raw rows of a table file (xlsx: the data sheet and the legend sheet; CSV: legend None)."""
    path = Path(path)
    if not path.is_file():
        raise TableReadError(f"{path}: no such file")
    if path.suffix.lower() == ".xls":
        raise TableReadError(f"{path}: old .xls workbooks are not supported; save it as .xlsx")
    label = source_label(path, relpath)
    if _is_xlsx(path):
        sheets = _read_xlsx(path, label, data_sheet)
        return sheets.data, sheets.legend, sheets.problems
    return _read_csv_rows(path), None, []


def _has_patient_id(row: Sequence[object]) -> bool:
    return any(isinstance(c, str) and normalise_column_name(c) == "patient_id" for c in row)


def is_blank(row: Sequence[object]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in row)


def file_problem(
    severity: Severity,
    label: str,
    rule: str,
    text: str,
    *,
    column: str | None = None,
    row: int | None = None,
    case: str | None = None,
    value: str | None = None,
) -> Problem:
    return Problem(
        severity=severity,
        case=case,
        file=label,
        column=column,
        value=value,
        rule=rule,
        message=f"{label}: {text} (rule {rule}).",
        row=row,
    )


def split_header(
    rows: list[tuple[object, ...]], path: Path, label: str, problems: list[Problem]
) -> tuple[int, tuple[object, ...]]:
    """Index and cells of the header row: the first row naming patient_id near the top."""
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        if _has_patient_id(row):
            skipped = sum(1 for r in rows[:index] if not is_blank(r))
            if skipped:
                problems.append(
                    file_problem(
                        Severity.NOTE,
                        label,
                        "skipped_rows",
                        f"{skipped} non-empty rows above the header (row {index + 1}) ignored",
                    )
                )
            return index, row
    raise TableReadError(f"{path}: no header row with a patient_id column in the first rows")
