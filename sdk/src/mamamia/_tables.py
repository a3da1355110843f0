"""Readers of the raw MAMA-MIA tables: xlsx/CSV -> validated records, an Arrow table, problems.

Readers report every problem with a value at once and never raise for one (the value becomes
null, the row is kept); they raise `TableReadError`, naming the file, only when a file cannot be
read at all (missing, not a spreadsheet, a zip bomb, no patient_id column).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mamamia._errors import TableReadError
from mamamia_schema import (
    COLUMN_DOCS,
    ClinicalRecord,
    ColumnDoc,
    Problem,
    Severity,
    check_clinical_header,
    clinical_arrow_schema,
    normalise_column_name,
    records_to_arrow,
    validate_clinical_row,
)

__all__ = [
    "MAX_CSV_BYTES",
    "MAX_ROWS",
    "MAX_XLSX_RATIO",
    "MAX_XLSX_UNCOMPRESSED",
    "ClinicalTable",
    "read_clinical_table",
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


@dataclass(frozen=True)
class ClinicalTable:
    """clinical_and_imaging_info read and validated.

    `records` are in sheet order, one per case; `table` holds the same rows in the Arrow schema
    `clinical_arrow_schema(release, extra_columns)`; `legend` documents every column of the
    table (the corrected built-in docs, and the sheet's legend text for unknown columns).
    """

    path: Path
    records: list[ClinicalRecord]
    table: pa.Table
    problems: list[Problem]
    release: int
    extra_columns: list[str]
    legend: dict[str, ColumnDoc]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    def by_id(self) -> dict[str, ClinicalRecord]:
        return {r.patient_id: r for r in self.records}


# ---------------------------------------------------------------------------------------------
# Raw rows out of xlsx and CSV files.


def _label(path: Path, relpath: str | None) -> str:
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
                top = list(workbook[name].iter_rows(max_row=_HEADER_SEARCH_ROWS, values_only=True))
                if any(_has_patient_id(r) for r in top):
                    sheet_name = name
                    break
            if sheet_name is None:
                raise TableReadError(
                    f"{path}: no sheet {data_sheet!r} and no sheet with a patient_id column "
                    f"(sheets: {', '.join(workbook.sheetnames)})"
                )
            problems.append(
                _file_problem(
                    Severity.WARNING,
                    label,
                    "sheet",
                    f"no sheet {data_sheet!r}; read sheet {sheet_name!r}",
                )
            )
        data = _bounded(workbook[sheet_name].iter_rows(values_only=True), path)
        legend_name = names.get("legend")
        legend = (
            _bounded(workbook[legend_name].iter_rows(values_only=True), path)
            if legend_name is not None
            else None
        )
        for name in workbook.sheetnames:
            if name not in (sheet_name, legend_name):
                problems.append(
                    _file_problem(Severity.NOTE, label, "extra_sheet", f"sheet {name!r} ignored")
                )
    finally:
        workbook.close()
    return _Sheets(data, legend, problems)


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
    path: str | Path, *, data_sheet: str = "dataset_info", relpath: str | None = None
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]] | None, list[Problem]]:
    """Raw rows of a table file (xlsx: the data sheet and the legend sheet; CSV: legend None)."""
    path = Path(path)
    if not path.is_file():
        raise TableReadError(f"{path}: no such file")
    if path.suffix.lower() == ".xls":
        raise TableReadError(f"{path}: old .xls workbooks are not supported; save it as .xlsx")
    label = _label(path, relpath)
    if _is_xlsx(path):
        sheets = _read_xlsx(path, label, data_sheet)
        return sheets.data, sheets.legend, sheets.problems
    return _read_csv_rows(path), None, []


def _has_patient_id(row: Sequence[object]) -> bool:
    return any(isinstance(c, str) and normalise_column_name(c) == "patient_id" for c in row)


def _is_blank(row: Sequence[object]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in row)


def _file_problem(
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


def _split_header(
    rows: list[tuple[object, ...]], path: Path, label: str, problems: list[Problem]
) -> tuple[int, tuple[object, ...]]:
    """Index and cells of the header row: the first row naming patient_id near the top."""
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        if _has_patient_id(row):
            skipped = sum(1 for r in rows[:index] if not _is_blank(r))
            if skipped:
                problems.append(
                    _file_problem(
                        Severity.NOTE,
                        label,
                        "skipped_rows",
                        f"{skipped} non-empty rows above the header (row {index + 1}) ignored",
                    )
                )
            return index, row
    raise TableReadError(f"{path}: no header row with a patient_id column in the first rows")


# ---------------------------------------------------------------------------------------------
# clinical_and_imaging_info


def _parse_legend(rows: list[tuple[object, ...]] | None) -> dict[str, tuple[str, list[str]]]:
    """The legend sheet as {column: (description, options)}; option rows continue on rows
    whose Field cell is empty."""
    out: dict[str, tuple[str, list[str]]] = {}
    if not rows:
        return out
    current: str | None = None
    for row in rows[1:]:
        cells = [*row, None, None, None][:3]
        field_cell, description, option = cells
        if isinstance(field_cell, str) and field_cell.strip():
            current = normalise_column_name(field_cell)
            text = str(description).strip() if description is not None else ""
            out[current] = (text, [])
        if current is not None and option is not None and str(option).strip():
            out[current][1].append(" ".join(str(option).replace("\xa0", " ").split()))
    return out


def read_clinical_table(path: str | Path, *, relpath: str | None = None) -> ClinicalTable:
    """Read clinical_and_imaging_info (xlsx with `dataset_info`/`legend` sheets, or CSV).

    Every problem comes back in `.problems` (each names case, column, value and rule); bad
    values become null, rows without patient_id are reported and skipped, duplicate ids keep
    the first row. `relpath` is the file name problems use (default: the file's name).
    Raises `TableReadError` only when the file cannot be read as a table at all.
    """
    path = Path(path)
    label = _label(path, relpath)
    rows, legend_rows, problems = read_rows(path, relpath=relpath)
    header_index, header_cells = _split_header(rows, path, label, problems)
    body = rows[header_index + 1 :]
    if len(body) > MAX_ROWS:
        raise TableReadError(f"{path}: more than {MAX_ROWS} rows; not a MAMA-MIA table")

    # Cells under an empty header that hold data become extra columns named by position.
    header = list(header_cells)
    width = max([len(header), *(len(r) for r in body)]) if body else len(header)
    header += [None] * (width - len(header))
    for index in range(width):
        if _is_blank([header[index]]) and any(
            index < len(r) and not _is_blank([r[index]]) for r in body
        ):
            header[index] = f"column_{index + 1}"
    mapping = check_clinical_header(header, file=label)
    problems.extend(mapping.problems)

    records: list[ClinicalRecord] = []
    seen: dict[str, int] = {}
    for offset, row in enumerate(body):
        row_number = header_index + offset + 2  # 1-based, the header is row header_index + 1
        if _is_blank(row):
            continue  # empty rows are sheet formatting, not content
        raw = {
            name: (row[i] if i < len(row) else None)
            for i, name in enumerate(mapping.columns)
            if name is not None
        }
        record, row_problems = validate_clinical_row(raw, row_number, file=label)
        problems.extend(row_problems)
        if record is None:
            continue
        if record.patient_id in seen:
            problems.append(
                _file_problem(
                    Severity.ERROR,
                    label,
                    "duplicate_id",
                    f"{record.patient_id} (row {row_number}) repeats row "
                    f"{seen[record.patient_id]}; the later row is skipped",
                    column="patient_id",
                    row=row_number,
                    case=record.patient_id,
                    value=f'"{record.patient_id}"',
                )
            )
            continue
        seen[record.patient_id] = row_number
        records.append(record)

    schema = clinical_arrow_schema(mapping.release, mapping.extra_columns)
    table = records_to_arrow(records, schema)
    legend = _legend(legend_rows, mapping.release, mapping.extra_columns)
    return ClinicalTable(
        path=path,
        records=records,
        table=table,
        problems=problems,
        release=mapping.release,
        extra_columns=list(mapping.extra_columns),
        legend=legend,
    )


def _legend(
    rows: list[tuple[object, ...]] | None, release: int, extra_columns: list[str]
) -> dict[str, ColumnDoc]:
    sheet = _parse_legend(rows)
    docs = {
        name: doc for name, doc in COLUMN_DOCS.items() if release in doc.releases or doc.derived
    }
    for source in extra_columns:
        description, options = sheet.get(normalise_column_name(source), ("", []))
        docs[source] = ColumnDoc(
            name=source,
            type="string",
            description=description or f"Unknown source column {source!r}, kept as text.",
            values=options or None,
            releases=[release],
            legend_field=source,
        )
    return docs
