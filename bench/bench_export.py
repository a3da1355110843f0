"""nnU-Net export throughput against the read+write floor, on the same phases in one run.

Ours: ``Cohort.export_nnunet`` (catalog Zarr chunks -> one ``.nii.gz`` per phase and mask,
atomic, resumable) at ``jobs=1`` and ``jobs=2``. The floor: SimpleITK reads each source phase's
``.nii.gz`` (the file the catalog was ingested from) and writes it with ``WriteImage`` (gzip),
one after the other: the least any exporter that rewrites compressed NIfTI has to do. Both write
the same phases (0 and 1) of the same cases; throughput is MB of voxels written per second.

    uv run python bench/bench_export.py [--cases 6] [--scale 0.5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import SimpleITK as sitk

import mamamia
from _data import OUT, phantom_raw

IDS = ("DUKE_001", "DUKE_002", "ISPY1_1001", "ISPY2_100899", "NACT_01", "NACT_02")
BASELINE = "SimpleITK ReadImage + WriteImage (gzip)"


def _catalog(cases: int, scale: float) -> tuple[Path, Path]:
    base = OUT / f"export_{cases}_{scale}"
    raw = phantom_raw(base / "raw", IDS[:cases], scale, seed=5)
    catalog = base / "catalog"
    if not (catalog / "catalog.json").exists():
        from mamamia_ingest import ingest

        ingest(raw, catalog, progress=False)
    return raw, catalog


def _floor(raw: Path, ids: list[str], out: Path) -> tuple[float, int]:
    started, nbytes = time.perf_counter(), 0
    for pid in ids:
        for phase in (0, 1):
            source = next((raw / "images" / pid).glob(f"*_{phase:04d}.nii.gz"))
            image = sitk.ReadImage(str(source))
            nbytes += sitk.GetArrayViewFromImage(image).nbytes
            sitk.WriteImage(image, str(out / f"{pid}_{phase:04d}.nii.gz"), True)
    return time.perf_counter() - started, nbytes


def run(cases: int = 6, scale: float = 0.5) -> list[dict[str, Any]]:
    raw, catalog = _catalog(cases, scale)
    cat = mamamia.open(catalog)
    cohort = cat.cohort("has_expert")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        floor_dir = Path(tmp) / "floor"
        floor_dir.mkdir()
        floor_s, floor_bytes = _floor(raw, cohort.case_ids, floor_dir)
        floor_mbs = floor_bytes / 1e6 / floor_s
        for jobs in (1, 2):
            options = mamamia.NnunetOptions(
                phases=(0, 1), test_split=None, jobs=jobs, progress=False
            )
            report = cohort.export_nnunet(Path(tmp) / f"ours{jobs}", options)
            ours = report.mb_per_s  # every voxel written, the masks' included
            rows.append(
                {
                    "benchmark": "export",
                    "metric": f"nnU-Net export of {len(cohort)} cases, phases 0+1 + masks, "
                    f"jobs={jobs} (voxel MB/s)",
                    "ours": round(ours, 1),
                    "baseline": round(floor_mbs, 1),
                    "baseline_name": BASELINE,
                    "ratio": round(ours / floor_mbs, 2),
                    "target": None,
                    "unit": "MB/s",
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--scale", type=float, default=0.5)
    args = parser.parse_args()
    print(json.dumps(run(args.cases, args.scale), indent=1))


if __name__ == "__main__":
    main()
