"""Small Parquet tables for the query engine tests (test_engine.py, test_sql_security.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DATASETS = ("DUKE", "ISPY1", "ISPY2", "NACT")
N_CASES = 120


def cases_table() -> pa.Table:
    """A ``cases`` table: ids, dataset, age (some null), pcr (some null), a list column, a date."""
    ids = [f"{DATASETS[i % 4]}_{i:03d}" for i in range(N_CASES)]
    return pa.table(
        {
            "patient_id": pa.array(ids, pa.string()),
            "dataset": pa.array([DATASETS[i % 4] for i in range(N_CASES)], pa.string()),
            "age": pa.array(
                [None if i % 17 == 0 else 25 + (i * 7) % 50 for i in range(N_CASES)], pa.int32()
            ),
            "pcr": pa.array(
                [None if i % 11 == 0 else i % 3 == 0 for i in range(N_CASES)], pa.bool_()
            ),
            "tags": pa.array(
                [
                    [t for t, on in (("bilateral", i % 5 == 0), ("implant", i % 7 == 0)) if on]
                    for i in range(N_CASES)
                ],
                pa.list_(pa.string()),
            ),
            "scan_date": pa.array(
                [dt.date(2015, 1, 1) + dt.timedelta(days=13 * i) for i in range(N_CASES)],
                pa.date32(),
            ),
            "Tumor Size mm": pa.array([float(5 + i % 40) for i in range(N_CASES)], pa.float64()),
        }
    )


def volumes_table() -> pa.Table:
    """A ``volumes`` table: several rows per case (so patient_id is not unique there)."""
    rows = [
        (pid, kind, phase)
        for pid in cases_table().column("patient_id").to_pylist()[:40]
        for kind, phase in (("image", 0), ("image", 1), ("expert", None))
    ]
    return pa.table(
        {
            "patient_id": pa.array([r[0] for r in rows], pa.string()),
            "kind": pa.array([r[1] for r in rows], pa.string()),
            "phase": pa.array([r[2] for r in rows], pa.int32()),
            "shape": pa.array([[64, 128, 128] for _ in rows], pa.list_(pa.int32())),
        }
    )


def write_tables(folder: Path) -> dict[str, Path]:
    """Write both tables as Parquet under ``folder``; return ``{name: path}`` for QueryEngine."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"cases": folder / "cases.parquet", "volumes": folder / "volumes.parquet"}
    pq.write_table(cases_table(), paths["cases"])
    pq.write_table(volumes_table(), paths["volumes"])
    return paths
