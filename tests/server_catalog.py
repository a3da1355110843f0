"""A tiny catalog written by hand, following docs/design.md, for the server tests.

Each case gets source .nii.gz files written with SimpleITK (so a test can compare a crop with
SimpleITK's read of the source), an OME-Zarr generation with levels 0 and 1 and expert and
automatic masks, and rows in the cases and volumes tables. One case has a RAS direction, one
has no images at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import SimpleITK as sitk
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from mamamia.manifest import manifest_text
from mamamia_schema import CatalogManifest, TableRef, volumes_arrow_schema

LPS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class CaseSpec:
    patient_id: str
    dataset: str
    shape_zyx: tuple[int, int, int]
    phases: int
    direction: tuple[float, ...]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    age: int | None
    pcr: bool | None
    subtype: str | None
    images: bool = True


CASES = (
    CaseSpec(
        "DUKE_001",
        "DUKE",
        (12, 40, 48),
        2,
        LPS,
        (0.7, 0.75, 2.0),
        (-20.0, -30.0, 10.0),
        45,
        True,
        "luminal",
        True,
    ),
    CaseSpec(
        "ISPY1_1001",
        "ISPY1",
        (10, 36, 32),
        3,
        RAS,
        (0.8, 0.8, 2.5),
        (15.0, 20.0, -5.0),
        61,
        False,
        "triple_negative",
        True,
    ),
    CaseSpec(
        "NACT_01",
        "NACT",
        (8, 24, 24),
        2,
        LPS,
        (1.0, 1.0, 1.5),
        (0.0, 0.0, 0.0),
        38,
        None,
        None,
        True,
    ),
    CaseSpec(
        "ISPY2_100001",
        "ISPY2",
        (8, 16, 16),
        2,
        LPS,
        (1.0, 1.0, 1.0),
        (0.0, 0.0, 0.0),
        52,
        True,
        "her2_enriched",
        False,
    ),
)
CHUNKS = (1, 4, 16, 16)
_CODECS: list[Any] = [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"), Crc32cCodec()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _phantom(spec: CaseSpec, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    nz, ny, nx = spec.shape_zyx
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    centre = (nz / 2, ny / 2.5, nx / 1.7)
    r = np.sqrt(((zz - centre[0]) * 2) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    expert = (r < min(ny, nx) / 5).astype(np.uint8)
    automatic = (r < min(ny, nx) / 4.5).astype(np.uint8)
    phases = []
    for p in range(spec.phases):
        base = 100 + 3 * xx + 2 * yy + 5 * zz + rng.integers(0, 20, size=spec.shape_zyx)
        phases.append((base + expert.astype(np.int64) * 300 * p).astype(np.int16))
    return np.stack(phases), expert, automatic


def _image(array: np.ndarray, spec: CaseSpec) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spec.spacing_xyz)
    image.SetOrigin(spec.origin_xyz)
    image.SetDirection(spec.direction)
    return image


def _write_zarr(gen: Path, spec: CaseSpec, image: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    group = zarr.open_group(store=str(gen), mode="w", zarr_format=3)
    group.attrs["mamamia"] = {
        "space": "LPS",
        "spacing_xyz": list(spec.spacing_xyz),
        "origin_xyz": list(spec.origin_xyz),
        "direction": list(spec.direction),
        "orientation": "LPS" if spec.direction == LPS else "RAS",
        "shape_zyx": list(spec.shape_zyx),
    }
    for level, data in ((0, image), (1, image[:, ::2, ::2, ::2])):
        arr = group.create_array(
            str(level),
            shape=data.shape,
            chunks=CHUNKS,
            dtype=data.dtype,
            compressors=_CODECS,
            dimension_names=["t", "z", "y", "x"],
            fill_value=0,
            config={"write_empty_chunks": True},
        )
        arr[...] = data
    labels = group.require_group("labels")
    for kind, mask in masks.items():
        sub = labels.require_group(kind)
        for level, data in ((0, mask[None]), (1, mask[None, ::2, ::2, ::2])):
            arr = sub.create_array(
                str(level),
                shape=data.shape,
                chunks=CHUNKS,
                dtype=data.dtype,
                compressors=_CODECS,
                dimension_names=["t", "z", "y", "x"],
                fill_value=0,
                config={"write_empty_chunks": True},
            )
            arr[...] = data


def _write_table(root: Path, name: str, table: pa.Table) -> dict[str, Any]:
    tables = root / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    tmp = tables / f".{name}.tmp.parquet"
    pq.write_table(table, tmp)
    sha = _sha(tmp)
    final = tables / f"{name}-{sha[:12]}.parquet"
    os.replace(tmp, final)
    return {"path": f"tables/{final.name}", "sha256": sha, "rows": table.num_rows}


def write_manifest(root: Path, tables: dict[str, dict[str, Any]], note: str = "") -> str:
    digest = hashlib.sha256(
        json.dumps({k: v["sha256"] for k, v in sorted(tables.items())}).encode() + note.encode()
    ).hexdigest()[:16]
    # What ingest writes, plus an extra key holding a server path (which /v1/catalog must hide).
    manifest = CatalogManifest(
        catalog_version=digest,
        dataset_release=2,
        created_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        tables={name: TableRef(**ref) for name, ref in tables.items()},
        source={"raw_root": str(root.parent / "raw")},
    )
    tmp = root / "catalog.json.tmp"
    tmp.write_text(manifest_text(manifest))
    os.replace(tmp, root / "catalog.json")
    return digest


def cases_table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema(
        [
            pa.field(
                "patient_id",
                pa.string(),
                nullable=False,
                metadata={b"type": b"string", b"description": b"Patient id."},
            ),
            pa.field(
                "dataset",
                pa.string(),
                metadata={
                    b"type": b"enum",
                    b"values": b'["DUKE","ISPY1","ISPY2","NACT"]',
                    b"description": b"Collection.",
                },
            ),
            pa.field(
                "age",
                pa.int64(),
                metadata={
                    b"type": b"integer",
                    b"unit": b"years",
                    b"description": b"Age at diagnosis.",
                },
            ),
            pa.field(
                "pcr",
                pa.bool_(),
                metadata={b"type": b"boolean", b"description": b"Pathologic complete response."},
            ),
            pa.field("tumor_subtype_group", pa.string()),
            pa.field("has_images", pa.bool_()),
            pa.field("enhancement_ratio", pa.float64()),
            pa.field("tumor_bbox_min_zyx", pa.list_(pa.int64())),
            pa.field("acquisition_date", pa.date32()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def write_catalog(root: Path, raw: Path, cases: tuple[CaseSpec, ...] = CASES) -> str:
    """Write sources under ``raw`` and a catalog under ``root``; return its catalog_version."""
    import datetime as dt

    case_rows: list[dict[str, Any]] = []
    volume_rows: list[dict[str, Any]] = []
    for seed, spec in enumerate(cases):
        ratio: float | None = None
        bbox: list[int] | None = None
        if spec.images:
            image, expert, automatic = _phantom(spec, seed)
            src = raw / "images" / spec.patient_id.lower()
            src.mkdir(parents=True, exist_ok=True)
            reread = []
            for p in range(spec.phases):
                path = src / f"{spec.patient_id.lower()}_{p:04d}.nii.gz"
                sitk.WriteImage(_image(image[p], spec), str(path))
                reread.append(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))
            image = np.stack(reread)
            seg = raw / "segmentations" / "expert"
            seg.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(_image(expert, spec), str(seg / f"{spec.patient_id.lower()}.nii.gz"))
            gen_name = hashlib.sha256(image.tobytes() + expert.tobytes()).hexdigest()[:16]
            gen = root / "volumes" / spec.patient_id / f"{gen_name}.zarr"
            _write_zarr(gen, spec, image, {"expert": expert, "automatic": automatic})
            rel = f"volumes/{spec.patient_id}/{gen_name}.zarr"
            common = {
                "patient_id": spec.patient_id,
                "shape": list(spec.shape_zyx),
                "spacing_xyz": list(spec.spacing_xyz),
                "origin_xyz": list(spec.origin_xyz),
                "direction": list(spec.direction),
                "orientation": "LPS" if spec.direction == LPS else "RAS",
            }
            for p in range(spec.phases):
                data = image[p].astype(np.float64)
                volume_rows.append(
                    {
                        **common,
                        "kind": "image",
                        "phase": p,
                        "zarr_path": f"{rel}/0",
                        "dtype": "int16",
                        "acquisition_time_s": 90.0 * p,
                        "checksum": hashlib.sha256(image[p].tobytes()).hexdigest(),
                        "mean": float(data.mean()),
                        "std": float(data.std()),
                        "p1": float(np.percentile(data, 1)),
                        "p99": float(np.percentile(data, 99)),
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
                        "checksum": "",
                        "mean": None,
                        "std": None,
                        "p1": None,
                        "p99": None,
                    }
                )
            ratio = float(image[1][expert > 0].mean() / image[0][expert > 0].mean())
            bbox = [int(v.min()) for v in np.nonzero(expert)]
        case_rows.append(
            {
                "patient_id": spec.patient_id,
                "dataset": spec.dataset,
                "age": spec.age,
                "pcr": spec.pcr,
                "tumor_subtype_group": spec.subtype,
                "has_images": spec.images,
                "enhancement_ratio": ratio if ratio is not None else float("nan"),
                "tumor_bbox_min_zyx": bbox,
                "acquisition_date": dt.date(2020, 1, 1 + seed),
            }
        )
    volumes = pa.Table.from_pylist(
        volume_rows,
        schema=volumes_arrow_schema(),
    )
    # A larger table, so that a cross join of it runs long enough to meet the time limit.
    readings = pa.table({"reading": pa.array(range(300), type=pa.int64())})
    tables = {
        "cases": _write_table(root, "cases", cases_table(case_rows)),
        "volumes": _write_table(root, "volumes", volumes),
        "readings": _write_table(root, "readings", readings),
    }
    return write_manifest(root, tables)


def rewrite_cases(root: Path, change: dict[str, dict[str, Any]]) -> str:
    """A re-ingest of the tables: ``change[patient_id][column] = value``; returns the new version."""
    manifest = json.loads((root / "catalog.json").read_text())
    current = pq.read_table(root / manifest["tables"]["cases"]["path"])
    rows = current.to_pylist()
    for row in rows:
        row.update(change.get(row["patient_id"], {}))
    tables = dict(manifest["tables"])
    tables["cases"] = _write_table(root, "cases", pa.Table.from_pylist(rows, schema=current.schema))
    return write_manifest(root, tables)


class LiveServer:
    """A real uvicorn server on 127.0.0.1 and a random port, in a thread."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


_SESSION: dict[str, tuple[Path, Path]] = {}


def session_catalog(factory: Any) -> tuple[Path, Path]:
    """One hand-built (catalog, raw) per test session, shared by the server test modules.

    Read-only by convention: tests that change a catalog copy it first.
    """
    if "catalog" not in _SESSION:
        base = factory.mktemp("server-catalog")
        write_catalog(base / "catalog", base / "raw")
        _SESSION["catalog"] = (base / "catalog", base / "raw")
    return _SESSION["catalog"]
