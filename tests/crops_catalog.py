"""A small catalog written by hand in the format of docs/design.md, for the crop tests.

The crop tests need volumes they know voxel for voxel (tumours of known shape, a multifocal case,
a case without tumour, anisotropic spacing), so they build their own catalog: Parquet tables,
content-addressed copies named by catalog.json, and Zarr v3 arrays laid out as ingest writes them
(``volumes/<CASE>/<GEN>.zarr/0`` and ``labels/<kind>/0`` stored ``(1, z, y, x)``), under ingest's
codec chain (``bytes`` -> ``blosc`` -> ``crc32c``), so the SDK's direct reader reads them: as
format 1 (a file per chunk) or, with ``catalog_format=2``, as format 2 (one shard per array).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from mamamia.manifest import manifest_text
from mamamia_ingest._tables_out import FEATURE_SCHEMA
from mamamia_schema import (
    CatalogManifest,
    TableRef,
    clinical_arrow_schema,
    volumes_arrow_schema,
)


@dataclass
class PhantomCase:
    patient_id: str
    shape: tuple[int, int, int]  # (z, y, x)
    spacing_xyz: tuple[float, float, float]
    phases: int
    blobs: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = field(default_factory=list)
    # each blob: (first voxel, size) of a box of tumour, z-y-x
    image: np.ndarray = field(init=False, repr=False)
    expert: np.ndarray = field(init=False, repr=False)
    automatic: np.ndarray = field(init=False, repr=False)


CASES = [
    PhantomCase("CROP_001", (20, 48, 40), (0.8, 0.7, 2.0), 3, [((9, 20, 17), (3, 4, 3))]),
    # Multifocal: two foci far apart.
    PhantomCase(
        "CROP_002",
        (24, 36, 52),
        (0.9, 0.9, 1.5),
        3,
        [((3, 4, 5), (2, 3, 3)), ((18, 28, 44), (3, 3, 4))],
    ),
    PhantomCase("CROP_003", (16, 30, 30), (1.0, 1.0, 1.0), 2, [((7, 14, 14), (2, 2, 2))]),
    # No tumour: tumour draws fall back to uniform crops.
    PhantomCase("CROP_004", (18, 40, 36), (0.7, 0.7, 2.5), 3, []),
    PhantomCase("CROP_005", (22, 32, 44), (0.75, 0.75, 1.8), 4, [((10, 15, 20), (3, 3, 3))]),
    PhantomCase("CROP_006", (12, 26, 34), (1.1, 1.1, 3.0), 3, [((5, 10, 15), (2, 4, 4))]),
    PhantomCase("CROP_007", (20, 44, 28), (0.6, 0.6, 2.2), 3, [((2, 30, 3), (4, 4, 4))]),
]

CHUNKS = (1, 8, 16, 16)


def _fill(case: PhantomCase) -> None:
    rng = np.random.default_rng(int(case.patient_id[-3:]))
    z, y, x = case.shape
    base = rng.integers(0, 400, size=(z, y, x)).astype(np.int16)
    case.image = np.stack(
        [
            base + np.int16(150 * p) + rng.integers(0, 50, size=(z, y, x)).astype(np.int16)
            for p in range(case.phases)
        ]
    )
    case.expert = np.zeros(case.shape, dtype=np.uint8)
    for start, size in case.blobs:
        box = tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))
        case.expert[box] = 1
    case.automatic = np.zeros(case.shape, dtype=np.uint8)
    if case.blobs:
        start, size = case.blobs[0]
        case.automatic[tuple(slice(s, s + n + 1) for s, n in zip(start, size, strict=True))] = 1


def _array(
    group: Any, name: str, data: np.ndarray, chunks: tuple[int, ...], catalog_format: int
) -> None:
    # Format 2: one shard covering the array (rounded up to whole inner chunks, as ingest does).
    shard = tuple(-(-n // c) * c for n, c in zip(data.shape, chunks, strict=True))
    array = group.create_array(
        name,
        shape=data.shape,
        chunks=chunks,
        shards=shard if catalog_format == 2 else None,
        dtype=data.dtype,
        compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"), Crc32cCodec()],
        fill_value=0,
        # Ingest writes every chunk; the SDK treats a missing one as damage.
        config={"write_empty_chunks": True},
    )
    array[...] = data


def _table(root: Path, name: str, table: pa.Table) -> dict[str, Any]:
    tables = root / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    plain = tables / f"{name}.parquet"
    pq.write_table(table, plain)
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    named = tables / f"{name}-{digest[:12]}.parquet"
    named.write_bytes(plain.read_bytes())
    return {
        "path": f"tables/{name}-{digest[:12]}.parquet",
        "sha256": digest,
        "rows": table.num_rows,
    }


def build_catalog(
    root: Path, cases: list[PhantomCase] = CASES, catalog_format: int = 2
) -> dict[str, PhantomCase]:
    """Write the catalog under ``root`` in ``catalog_format``; return the cases with voxels."""
    case_rows: list[dict[str, Any]] = []
    volume_rows: list[dict[str, Any]] = []
    direction = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    for case in cases:
        _fill(case)
        generation = hashlib.sha256(case.patient_id.encode()).hexdigest()[:16]
        rel = f"volumes/{case.patient_id}/{generation}.zarr"
        group = zarr.open_group(str(root / rel), mode="w")
        _array(group, "0", case.image, CHUNKS, catalog_format)
        for kind in ("expert", "automatic"):
            _array(group, f"labels/{kind}/0", getattr(case, kind)[None], CHUNKS, catalog_format)
        nonzero = np.argwhere(case.expert)
        has = len(nonzero) > 0
        case_rows.append(
            {
                "patient_id": case.patient_id,
                "dataset": "DUKE",
                "tumor_voxels": len(nonzero),
                "tumor_bbox_min_zyx": nonzero.min(axis=0).tolist() if has else None,
                "tumor_bbox_max_zyx": (nonzero.max(axis=0) + 1).tolist() if has else None,
            }
        )
        common = {
            "patient_id": case.patient_id,
            "shape": list(case.shape),
            "spacing_xyz": list(case.spacing_xyz),
            "origin_xyz": [0.0, 0.0, 0.0],
            "direction": direction,
            "orientation": "LPS",
            "checksum": "0" * 16,
        }
        for p in range(case.phases):
            phase = case.image[p].astype(np.float64)
            volume_rows.append(
                {
                    **common,
                    "kind": "image",
                    "phase": p,
                    "zarr_path": f"{rel}/0",
                    "dtype": "int16",
                    "acquisition_time_s": float(90 * p),
                    "mean": float(phase.mean()),
                    "std": float(phase.std()),
                    "p1": float(np.percentile(phase, 1)),
                    "p99": float(np.percentile(phase, 99)),
                }
            )
        for kind in ("expert", "automatic"):
            volume_rows.append(
                {
                    **common,
                    "kind": kind,
                    "phase": None,
                    "zarr_path": f"{rel}/labels/{kind}/0",
                    "dtype": "uint8",
                    "acquisition_time_s": None,
                    "mean": None,
                    "std": None,
                    "p1": None,
                    "p99": None,
                }
            )
    clinical = clinical_arrow_schema(2, [])
    cases_schema = pa.schema(
        [clinical.field("patient_id"), clinical.field("dataset")]
        + [
            FEATURE_SCHEMA.field(n)
            for n in ("tumor_voxels", "tumor_bbox_min_zyx", "tumor_bbox_max_zyx")
        ]
    )
    volumes_schema = volumes_arrow_schema()
    tables = {
        "cases": _table(root, "cases", pa.Table.from_pylist(case_rows, schema=cases_schema)),
        "volumes": _table(
            root, "volumes", pa.Table.from_pylist(volume_rows, schema=volumes_schema)
        ),
    }
    manifest = CatalogManifest(
        format_version=catalog_format,
        catalog_version=hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()[
            :16
        ],
        dataset_release=2,
        created_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        tables={name: TableRef(**ref) for name, ref in tables.items()},
    )
    (root / "catalog.json").write_text(manifest_text(manifest), encoding="utf-8")
    return {case.patient_id: case for case in cases}
