"""Readers of the raw MAMA-MIA tables: xlsx/CSV -> validated records, an Arrow table, problems.

Readers report every problem with a value at once and never raise for one (the value becomes
null, the row is kept); they raise `TableReadError`, naming the file, only when a file cannot be
read at all (missing, not a spreadsheet, a zip bomb, no patient_id column).

The raw rows come from `mamamia._table_rows`; finding the files in a raw folder is
`mamamia.raw`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from mamamia._errors import TableReadError
from mamamia._table_rows import (
    MAX_ROWS,
    file_problem,
    is_blank,
    read_rows,
    source_label,
    split_header,
)
from mamamia.raw import case_of_name
from mamamia_schema import (
    COLUMN_DOCS,
    ClinicalRecord,
    ColumnDoc,
    PatientInfo,
    Problem,
    QualityScore,
    Severity,
    Split,
    SplitAssignment,
    check_clinical_header,
    clinical_arrow_schema,
    normalise_column_name,
    quality_arrow_schema,
    records_to_arrow,
    splits_arrow_schema,
    validate_clinical_row,
    validate_patient_info,
    validate_quality_row,
)

__all__ = [
    "MAX_JSON_BYTES",
    "ClinicalTable",
    "QualityTable",
    "SplitsTable",
    "read_clinical_table",
    "read_patient_info",
    "read_quality_scores",
    "read_splits",
]

#: Largest per-case JSON file a reader accepts.
MAX_JSON_BYTES = 4 * 1024 * 1024


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
    label = source_label(path, relpath)
    rows, legend_rows, problems = read_rows(path, relpath=relpath)
    header_index, header_cells = split_header(rows, path, label, problems)
    body = rows[header_index + 1 :]
    if len(body) > MAX_ROWS:
        raise TableReadError(f"{path}: more than {MAX_ROWS} rows; not a MAMA-MIA table")

    # Cells under an empty header that hold data become extra columns named by position.
    header = list(header_cells)
    width = max([len(header), *(len(r) for r in body)]) if body else len(header)
    header += [None] * (width - len(header))
    for index in range(width):
        if is_blank([header[index]]) and any(
            index < len(r) and not is_blank([r[index]]) for r in body
        ):
            header[index] = f"column_{index + 1}"
    mapping = check_clinical_header(header, file=label)
    problems.extend(mapping.problems)

    records: list[ClinicalRecord] = []
    seen: dict[str, int] = {}
    for offset, row in enumerate(body):
        row_number = header_index + offset + 2  # 1-based, the header is row header_index + 1
        if is_blank(row):
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
                file_problem(
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


# ---------------------------------------------------------------------------------------------
# train_test_splits.csv


@dataclass(frozen=True)
class SplitsTable:
    """train_test_splits read: `splits` maps uppercase patient_id to its split."""

    path: Path
    splits: dict[str, Split]
    problems: list[Problem]
    table: pa.Table

    def ids(self, split: Split | str) -> list[str]:
        wanted = Split(split)
        return [case for case, s in self.splits.items() if s is wanted]


def _header_names(cells: Sequence[object]) -> list[str | None]:
    return [None if is_blank([c]) else normalise_column_name(_cell_text(c)) for c in cells]


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_splits(path: str | Path, *, relpath: str | None = None) -> SplitsTable:
    """Read train_test_splits: two padded columns `train_split`, `test_split` of patient ids
    (a long `patient_id, split` layout is read too). A case listed in both is an error and left
    out; a case listed twice in one column is a note."""
    path = Path(path)
    label = source_label(path, relpath)
    rows, _, problems = read_rows(path, relpath=relpath)
    rows = [r for r in rows if not is_blank(r)]
    if not rows:
        raise TableReadError(f"{path}: empty file, expected columns train_split and test_split")
    names = _header_names(rows[0])
    columns: dict[int, Split] = {}
    long_id = long_split = None
    for index, name in enumerate(names):
        if name is None:
            continue
        if name in ("patient_id", "case", "case_id"):
            long_id = index
        elif name == "split":
            long_split = index
        elif name.startswith("train"):
            columns[index] = Split.TRAIN
        elif name.startswith("test"):
            columns[index] = Split.TEST
        else:
            problems.append(
                file_problem(
                    Severity.NOTE,
                    label,
                    "extra_column",
                    f"unknown column {name!r} ignored",
                    column=name,
                )
            )
    entries: list[tuple[int, object, object]] = []  # (row, id cell, split cell or Split)
    if long_id is not None and long_split is not None:
        for number, row in enumerate(rows[1:], start=2):
            cell = row[long_id] if long_id < len(row) else None
            split = row[long_split] if long_split < len(row) else None
            entries.append((number, cell, split))
    elif columns:
        for number, row in enumerate(rows[1:], start=2):
            for index, split_value in columns.items():
                cell = row[index] if index < len(row) else None
                if not is_blank([cell]):  # the shorter column is padded with blanks
                    entries.append((number, cell, split_value))
    else:
        raise TableReadError(
            f"{path}: no train_split/test_split columns (header: {', '.join(map(str, rows[0]))})"
        )
    found: dict[str, Split] = {}
    conflicts: set[str] = set()
    for number, cell, split_cell in entries:
        if is_blank([cell]):
            problems.append(
                file_problem(
                    Severity.WARNING,
                    label,
                    "missing_id",
                    f"row {number} has no patient_id",
                    column="patient_id",
                    row=number,
                )
            )
            continue
        case = _cell_text(cell).upper()
        try:
            split = (
                split_cell
                if isinstance(split_cell, Split)
                else Split(_cell_text(split_cell).lower())
            )
        except ValueError:
            problems.append(
                file_problem(
                    Severity.ERROR,
                    label,
                    "enum",
                    f"{case} (row {number}): split = {_cell_text(split_cell)!r}: expected train "
                    "or test; case left out",
                    column="split",
                    row=number,
                    case=case,
                    value=repr(split_cell),
                )
            )
            continue
        try:
            SplitAssignment(patient_id=case, split=split)
        except ValueError:
            problems.append(
                file_problem(
                    Severity.ERROR,
                    label,
                    "pattern",
                    f"row {number}: {case!r} is not a case id like DUKE_001; left out",
                    column=split.value + "_split",
                    row=number,
                    value=repr(cell),
                )
            )
            continue
        if case in found and found[case] is not split:
            conflicts.add(case)
        elif case in found:
            problems.append(
                file_problem(
                    Severity.NOTE,
                    label,
                    "duplicate_id",
                    f"{case} is listed twice in {split.value}",
                    row=number,
                    case=case,
                )
            )
        else:
            found[case] = split
    for case in sorted(conflicts):
        del found[case]
        problems.append(
            file_problem(
                Severity.ERROR,
                label,
                "conflict",
                f"{case} is listed in both train and test; left out",
                case=case,
            )
        )
    assignments = [SplitAssignment(patient_id=c, split=s) for c, s in found.items()]
    table = records_to_arrow(assignments, splits_arrow_schema())
    return SplitsTable(path=path, splits=found, problems=problems, table=table)


# ---------------------------------------------------------------------------------------------
# (preliminary_)automatic_segmentations_quality_scores.csv


@dataclass(frozen=True)
class QualityTable:
    """The quality-scores CSV read: `rows` maps uppercase patient_id to its scores; unknown
    metric columns are kept (`extra_columns`: name -> 'float' or 'string')."""

    path: Path
    rows: dict[str, QualityScore]
    problems: list[Problem]
    table: pa.Table
    extra_columns: dict[str, str]


def read_quality_scores(path: str | Path, *, relpath: str | None = None) -> QualityTable:
    """Read the segmentation quality scores (patient_id, expert_1_qs, expert_2_qs, metrics)."""
    path = Path(path)
    label = source_label(path, relpath)
    rows, _, problems = read_rows(path, relpath=relpath)
    header_index, header_cells = split_header(rows, path, label, problems)
    names: list[str | None] = []
    for cell in header_cells:
        if is_blank([cell]):
            names.append(None)
            continue
        name = normalise_column_name(_cell_text(cell))
        names.append(
            name if name in ("patient_id", "expert_1_qs", "expert_2_qs") else _cell_text(cell)
        )
    for needed in ("expert_1_qs", "expert_2_qs"):
        if needed not in names:
            problems.append(
                file_problem(
                    Severity.WARNING,
                    label,
                    "missing_column",
                    f"column {needed!r} is missing; its values are null",
                    column=needed,
                )
            )
    extra_names = [n for n in names if n and n not in ("patient_id", "expert_1_qs", "expert_2_qs")]
    found: dict[str, QualityScore] = {}
    for offset, row in enumerate(rows[header_index + 1 :]):
        number = header_index + offset + 2
        if is_blank(row):
            continue
        raw = {n: (row[i] if i < len(row) else None) for i, n in enumerate(names) if n}
        score, row_problems = validate_quality_row(raw, number, file=label)
        problems.extend(row_problems)
        if score is None:
            continue
        if score.patient_id in found:
            problems.append(
                file_problem(
                    Severity.ERROR,
                    label,
                    "duplicate_id",
                    f"{score.patient_id} (row {number}) is listed again; the later row is skipped",
                    row=number,
                    case=score.patient_id,
                    column="patient_id",
                )
            )
            continue
        found[score.patient_id] = score
    # One Arrow type per unknown column: float when every value parses, else text.
    kinds: dict[str, str] = {}
    for name in extra_names:
        values = [q.extra.get(name) for q in found.values()]
        kinds[name] = "string" if any(isinstance(v, str) for v in values) else "float"
        if kinds[name] == "string":
            for q in found.values():
                value = q.extra.get(name)
                if isinstance(value, float):
                    q.extra[name] = _cell_text(value)
    if extra_names:
        problems.append(
            file_problem(
                Severity.NOTE,
                label,
                "extra_column",
                "unknown columns kept: " + ", ".join(f"{n} ({kinds[n]})" for n in extra_names),
            )
        )
    table = records_to_arrow(found.values(), quality_arrow_schema(kinds))
    return QualityTable(path=path, rows=found, problems=problems, table=table, extra_columns=kinds)


# ---------------------------------------------------------------------------------------------
# patient_info_files/<case>.json


def read_patient_info(
    path: str | Path, *, relpath: str | None = None
) -> tuple[PatientInfo | None, list[Problem]]:
    """Read one per-case JSON. A file that is not a JSON object comes back as (None, [error]);
    bad values become null; unknown keys are kept. Raises TableReadError if the file is missing."""
    path = Path(path)
    label = source_label(path, relpath)
    if not path.is_file():
        raise TableReadError(f"{path}: no such file")
    case = case_of_name(path.name)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        return None, [
            file_problem(
                Severity.ERROR,
                label,
                "size",
                f"{size} bytes (limit {MAX_JSON_BYTES}); file skipped",
                case=case,
            )
        ]
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"), parse_constant=_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [
            file_problem(
                Severity.ERROR, label, "json", f"not valid JSON ({exc}); file skipped", case=case
            )
        ]
    data, constants = _drop_constants(data)
    info, problems = validate_patient_info(data, file=label, expected_id=case)
    if constants:
        # Python's json writes NaN for missing values; not JSON, but meant as "no value".
        problems.insert(
            0,
            file_problem(
                Severity.NOTE,
                label,
                "json_constant",
                f"{constants} NaN/Infinity values read as null",
                case=case,
            ),
        )
    return info, problems


class _Constant:
    """A NaN/Infinity literal in a JSON file."""


_CONSTANT = _Constant()


def _constant(name: str) -> _Constant:
    return _CONSTANT


def _drop_constants(data: Any) -> tuple[Any, int]:
    if data is _CONSTANT:
        return None, 1
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        total = 0
        for key, value in data.items():
            out[key], count = _drop_constants(value)
            total += count
        return out, total
    if isinstance(data, list):
        items = [_drop_constants(v) for v in data]
        return [v for v, _ in items], sum(c for _, c in items)
    return data, 0
