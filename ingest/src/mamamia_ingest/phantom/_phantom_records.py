"""Typed records of the phantom's own table, read back with the sdk's table reader."""

from __future__ import annotations

from pathlib import Path

from mamamia import read_clinical_table
from mamamia_schema import ClinicalRecord

from ._source import SourceTable
from ._spec import PhantomError

__all__ = ["read_records"]


def read_records(xlsx: Path, table: SourceTable) -> dict[str, ClinicalRecord]:
    """``{patient_id: ClinicalRecord}`` of the xlsx the phantom wrote, via the sdk reader."""
    result = read_clinical_table(xlsx, relpath=table.name)
    out = {record.patient_id: record for record in result.records}
    missing = [table.patient_id(r) for r in table.rows if table.patient_id(r) not in out]
    if missing:
        reasons = "; ".join(p.message for p in result.errors if p.case in missing or p.case is None)
        raise PhantomError(
            f"table {table.name}: the table reader dropped case(s) {', '.join(missing)}"
            + (f" ({reasons})" if reasons else "")
        )
    return out
