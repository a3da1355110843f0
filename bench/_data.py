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


def format_catalogs(scale: float = 1.0, cases: int = 8) -> tuple[Path, Path, Path]:
    """A phantom raw folder of the real table's first ``cases`` rows and two catalogs of it,
    ingested with ``format_version`` 1 and 2 explicitly (never the default, which may change).
    Made once under bench/out/; a catalog counts as made once its ``catalog.json`` is there."""
    from mamamia_ingest import ingest, write_phantom

    base = OUT / f"format2-scale{scale:g}-cases{cases}"
    raw = base / "raw"
    if not (base / "raw.done").is_file():
        shutil.rmtree(raw, ignore_errors=True)
        print(f"making {cases} phantom cases at scale {scale:g} in {raw} (once) ...", flush=True)
        write_phantom(raw, cases=cases, scale=scale, seed=0, table=TABLE, progress=False)
        (base / "raw.done").write_text("ok\n")
    catalogs = []
    for version in (1, 2):
        catalog = base / f"catalog-format{version}"
        if not (catalog / "catalog.json").is_file():
            shutil.rmtree(catalog, ignore_errors=True)
            print(f"ingesting them into {catalog} (once) ...", flush=True)
            report = ingest(raw, catalog, jobs=2, progress=False, format_version=version)
            if report.exit_code != 0:
                raise RuntimeError(report.summary())
        catalogs.append(catalog)
    return raw, catalogs[0], catalogs[1]
