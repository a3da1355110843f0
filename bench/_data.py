"""Benchmark data made once under bench/out/ (git-ignored) and reused by later runs."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TABLE = ROOT / "tests" / "data" / "clinical_and_imaging_info.xlsx"


def phantom_raw(folder: Path, ids: tuple[str, ...], scale: float, seed: int) -> Path:
    """A phantom raw folder of the real table's ``ids``, written unless a finished one is there
    (the table is written last, so its presence marks a complete folder)."""
    from mamamia_ingest import write_phantom

    if not (folder / "clinical_and_imaging_info.xlsx").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        write_phantom(folder, ids=list(ids), scale=scale, seed=seed, table=TABLE, progress=False)
    return folder
