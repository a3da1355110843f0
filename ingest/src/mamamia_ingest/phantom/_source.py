"""The phantom's clinical table: read raw cells, choose cases, convert between releases.

Rows are kept as the raw cell values openpyxl gives, so the phantom's
clinical_and_imaging_info.xlsx holds exactly the source's cells for the chosen cases and reads
back identically with the sdk's table reader.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import functools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import openpyxl

from mamamia.raw import DATA_SHEET, LEGEND_SHEET

from ._phantom_columns import BREAST_DENSITY_LEGEND, COLUMNS_R2, RELEASE2_MAX_PHASES, builtin_legend
from ._spec import PhantomError
from ._synthetic import synthetic_order, synthetic_row

__all__ = ["SourceTable", "builtin_table", "convert_release", "read_source_table", "select_rows"]

Cell = object
Row = tuple[Cell, ...]


@dataclass(frozen=True)
class SourceTable:
    """Raw ``dataset_info`` header and rows, and the ``legend`` sheet's rows (header first)."""

    name: str
    header: tuple[str, ...]
    rows: tuple[Row, ...]
    legend: tuple[Row, ...]

    @property
    def release(self) -> int:
        return 2 if "breast_density" in self.header else 1

    def column(self, name: str) -> int:
        try:
            return self.header.index(name)
        except ValueError:
            raise PhantomError(f"table {self.name}: no column {name!r}") from None

    def patient_id(self, row: Row) -> str:
        value = row[self.column("patient_id")]
        return str(value).strip().upper() if value is not None else ""


def builtin_table(seed: int, cases: int | None, ids: Sequence[str] | None) -> SourceTable:
    """The built-in synthetic table's rows matching ``ids``, then the first ``cases``."""
    order = synthetic_order(seed)
    # Choose on the ids alone, then make only the chosen rows' values.
    stub = SourceTable(_BUILTIN, ("patient_id",), tuple((pid,) for pid, _ in order), ())
    chosen = select_rows(stub, cases, ids)
    dataset = dict(order)
    rows = tuple(synthetic_row(seed, str(r[0]), dataset[str(r[0])]) for r in chosen.rows)
    return SourceTable(_BUILTIN, COLUMNS_R2, rows, tuple(builtin_legend(2)))


_BUILTIN = "(built-in synthetic table)"


def _csv_cell(text: str) -> Cell:
    """A CSV cell as a spreadsheet would hold it: empty -> None, numbers -> int/float."""
    if text == "":
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _clean_rows(
    name: str, header: Sequence[Cell], raw: list[Row]
) -> tuple[tuple[str, ...], list[Row]]:
    columns = tuple("" if h is None else str(h) for h in header)
    while columns and columns[-1] == "":
        columns = columns[:-1]
    if "patient_id" not in columns:
        raise PhantomError(f"table {name}: the first row has no patient_id column")
    width = len(columns)
    pid = columns.index("patient_id")
    rows: list[Row] = []
    for row in raw:
        cells = tuple(row[:width]) + (None,) * (width - len(row))
        # Stray rows without a patient_id (real copies have some) cannot be chosen: skip them.
        if cells[pid] is None or str(cells[pid]).strip() == "":
            continue
        rows.append(cells)
    return columns, rows


def read_source_table(path: Path) -> SourceTable:
    """Read a clinical table (xlsx with ``dataset_info``/``legend`` sheets, or CSV) as raw cells."""
    if not path.is_file():
        raise PhantomError(f"--table {path}: no such file")
    stat = path.stat()
    return _read_source_table(path.resolve(), stat.st_mtime_ns, stat.st_size)


# The real table takes seconds to parse; tests and benchmarks write many phantoms from it.
@functools.lru_cache(maxsize=2)
def _read_source_table(path: Path, _mtime_ns: int, _size: int) -> SourceTable:
    name = str(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
        if not lines:
            raise PhantomError(f"table {name}: the file is empty")
        header, rows = _clean_rows(
            name, lines[0], [tuple(_csv_cell(c) for c in line) for line in lines[1:]]
        )
        return SourceTable(name, header, tuple(rows), ())
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a file that is not xlsx
        raise PhantomError(f"table {name}: cannot be read as xlsx ({exc})") from exc
    try:
        sheet = wb[DATA_SHEET] if DATA_SHEET in wb.sheetnames else wb.worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        legend: tuple[Row, ...] = ()
        if LEGEND_SHEET in wb.sheetnames:
            legend = tuple(
                tuple(r)
                for r in wb[LEGEND_SHEET].iter_rows(values_only=True)
                if any(c is not None for c in r)
            )
    finally:
        wb.close()
    if not values:
        raise PhantomError(f"table {name}: sheet dataset_info is empty")
    header, rows = _clean_rows(name, values[0], [tuple(r) for r in values[1:]])
    return SourceTable(name, header, tuple(rows), legend)


def select_rows(table: SourceTable, cases: int | None, ids: Sequence[str] | None) -> SourceTable:
    """The rows matching ``ids`` (glob patterns on patient_id), then at most the first ``cases``."""
    rows = list(table.rows)
    seen: set[str] = set()
    unique: list[Row] = []
    for row in rows:
        pid = table.patient_id(row)
        if pid not in seen:
            seen.add(pid)
            unique.append(row)
    rows = unique
    if ids is not None:
        patterns = [p.strip().upper() for p in ids if p.strip()]
        if not patterns:
            raise PhantomError("--ids: give at least one pattern, e.g. DUKE_00*,ISPY1_1*")
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(table.patient_id(r), pattern) for r in rows):
                raise PhantomError(
                    f"--ids pattern {pattern!r} matches no patient_id in {table.name}"
                )
        rows = [
            r for r in rows if any(fnmatch.fnmatchcase(table.patient_id(r), p) for p in patterns)
        ]
    if cases is not None:
        if cases < 1:
            raise PhantomError(f"--cases {cases}: must be at least 1")
        if cases > len(rows):
            raise PhantomError(f"--cases {cases}: {table.name} has only {len(rows)} matching rows")
        rows = rows[:cases]
    return replace(table, rows=tuple(rows))


def _cap_times(value: Cell, limit: int) -> Cell:
    """Keep the first ``limit`` entries of a text list such as ``"[0, 584, 714]"``."""
    if not isinstance(value, str):
        return value
    inner = value.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        return value
    items = [item.strip() for item in inner[1:-1].split(",") if item.strip()]
    if len(items) <= limit:
        return value
    return "[" + ", ".join(items[:limit]) + "]"


def _legend_without(legend: tuple[Row, ...], field: str) -> tuple[Row, ...]:
    out: list[Row] = []
    skipping = False
    for row in legend:
        head = row[0] if row else None
        if head is not None:
            skipping = str(head).strip() == field
        if not skipping:
            out.append(row)
    return tuple(out)


def convert_release(table: SourceTable, release: int, seed: int) -> SourceTable:
    """The rows as release ``release`` holds them.

    Release 2 has a ``breast_density`` column after ``bmi_group`` (filled with plausible a-d
    values when the source lacks it), a stripped ``site`` and at most 6 phases (``num_phases``
    capped, ``acquisition_times`` cut to match). Release 1 has no ``breast_density``. A source
    already in the target release comes through unchanged.
    """
    if release not in (1, 2):
        raise PhantomError(f"--release {release}: must be 1 or 2")
    header = list(table.header)
    rows = [list(r) for r in table.rows]
    legend = table.legend
    if release == 1:
        if "breast_density" in header:
            at = header.index("breast_density")
            del header[at]
            for r in rows:
                del r[at]
            legend = _legend_without(legend, "breast_density")
        return replace(
            table, header=tuple(header), rows=tuple(tuple(r) for r in rows), legend=legend
        )
    if "breast_density" not in header:
        at = header.index("bmi_group") + 1 if "bmi_group" in header else len(header)
        header.insert(at, "breast_density")
        for r in rows:
            pid = str(r[header.index("patient_id")]).strip().upper()
            rng = random.Random(f"mamamia-phantom-density-{seed}-{pid}")
            r.insert(at, None if rng.random() < 0.1 else rng.choice("abcd"))
        if legend:
            legend = _insert_density_legend(legend)
    col = {name: i for i, name in enumerate(header)}
    for r in rows:
        site = r[col["site"]] if "site" in col else None
        if isinstance(site, str):
            r[col["site"]] = site.strip() or None
        if "num_phases" in col:
            phases = r[col["num_phases"]]
            numeric = isinstance(phases, int | float) and not isinstance(phases, bool)
            if numeric and float(phases) > RELEASE2_MAX_PHASES:  # type: ignore[arg-type]
                r[col["num_phases"]] = RELEASE2_MAX_PHASES
        if "acquisition_times" in col:
            r[col["acquisition_times"]] = _cap_times(
                r[col["acquisition_times"]], RELEASE2_MAX_PHASES
            )
    return replace(table, header=tuple(header), rows=tuple(tuple(r) for r in rows), legend=legend)


def _insert_density_legend(legend: tuple[Row, ...]) -> tuple[Row, ...]:
    rows = list(legend)
    at = next((i for i, r in enumerate(rows) if r and r[0] == "view"), len(rows))
    width = max((len(r) for r in rows), default=4)
    rows[at:at] = [tuple(r[:width]) + (None,) * (width - len(r)) for r in BREAST_DENSITY_LEGEND]
    return tuple(rows)


def to_cell(value: Cell) -> Cell:
    """A value openpyxl can write back unchanged."""
    if isinstance(value, dt.time | dt.datetime | dt.date | int | float | str) or value is None:
        return value
    return str(value)
