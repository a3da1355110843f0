"""Ingest of the phantom (the shared ``catalog_dir`` of release 1, and a release-2 phantom with
lowercase file names): every stored array equals SimpleITK's read of its source file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk
import zarr

from mamamia_ingest import ingest, verify, write_phantom

DATA = Path(__file__).parent / "data"
REAL_TABLE = DATA / "clinical_and_imaging_info.xlsx"


def _table(catalog: Path, name: str) -> list[dict[str, Any]]:
    ref = json.loads((catalog / "catalog.json").read_text())["tables"][name]
    return pq.read_table(catalog / ref["path"]).to_pylist()


def _round_trip(raw: Path, catalog: Path) -> int:
    """Compare every volume row with SimpleITK's read of the source the sources table names."""
    sources = {(r["patient_id"], r["role"]): r["path"] for r in _table(catalog, "sources")}
    checked = 0
    for row in _table(catalog, "volumes"):
        role = f"image:{row['phase']:04d}" if row["kind"] == "image" else row["kind"]
        image = sitk.ReadImage(str(raw / sources[(row["patient_id"], role)]))
        expected = sitk.GetArrayFromImage(image)
        arr = zarr.open_array(catalog / row["zarr_path"], mode="r")
        got = arr[row["phase"] if row["kind"] == "image" else 0]
        assert np.array_equal(got, expected), (row["patient_id"], role)
        if row["kind"] == "image":
            assert got.dtype == expected.dtype
        assert tuple(row["spacing_xyz"]) == image.GetSpacing()
        assert tuple(row["origin_xyz"]) == image.GetOrigin()
        assert tuple(row["direction"]) == image.GetDirection()
        checked += 1
    return checked


def test_shared_catalog_round_trip(phantom_raw_dir: Path, catalog_dir: Path) -> None:
    assert _round_trip(phantom_raw_dir, catalog_dir) > 0
    cases = {r["patient_id"]: r for r in _table(catalog_dir, "cases")}
    assert all(r["has_images"] and r["has_expert"] for r in cases.values())
    orientations = {r["orientation"] for r in _table(catalog_dir, "volumes")}
    assert orientations == {"LPS", "RAS"}
    report = json.loads((catalog_dir / "ingest-report.json").read_text())
    assert not [p for p in report["problems"] if p["severity"] == "error"]
    # The Synapse manifest files the phantom leaves everywhere are not dataset content.
    assert not [p for p in report["problems"] if "SYNAPSE" in (p.get("file") or "").upper()]
    assert verify(catalog_dir).ok


@pytest.fixture(scope="module")
def release2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    root = tmp_path_factory.mktemp("release2")
    raw = root / "raw"
    write_phantom(
        raw,
        ids=["DUKE_001", "ISPY1_1001", "NACT_01"],
        scale=0.12,
        seed=3,
        table=REAL_TABLE,
        release=2,
        lowercase_names=True,
        progress=False,
    )
    catalog = root / "catalog"
    report = ingest(raw, catalog, jobs=1, progress=False)
    return raw, catalog, report


def test_release2_lowercase_names(release2: tuple[Path, Path, Any]) -> None:
    raw, catalog, report = release2
    assert report.exit_code == 0, report.summary()
    assert any(p.name != p.name.upper() for p in (raw / "images").rglob("*.nii.gz"))
    assert _round_trip(raw, catalog) == sum(
        1 for _ in raw.rglob("*.nii.gz")
    )  # every source file became exactly one volume row
    manifest = json.loads((catalog / "catalog.json").read_text())
    assert manifest["dataset_release"] == 2
    rows = {r["patient_id"]: r for r in _table(catalog, "cases")}
    assert set(rows) == {"DUKE_001", "ISPY1_1001", "NACT_01"}
    row = rows["DUKE_001"]
    assert "breast_density" in row
    info = [k for k in row if k.startswith("info_")]
    assert "info_clinical_data_age" in info
    assert "info_primary_lesion_breast_coordinates_x_min" in info
    assert row["info_imaging_data_dataset"] in ("DUKE", "duke")
    assert all(r["split"] in ("train", "test") for r in rows.values())
    # The JSON's breast box (numpy axes of the SimpleITK array) in the project's (z, y, x).
    for r in rows.values():
        assert r["info_breast_bbox_min_zyx"] == [
            r["info_primary_lesion_breast_coordinates_x_min"],
            r["info_primary_lesion_breast_coordinates_y_min"],
            r["info_primary_lesion_breast_coordinates_z_min"],
        ]


def test_release1_has_null_info_columns(catalog_dir: Path) -> None:
    rows = _table(catalog_dir, "cases")
    assert all(r["info_clinical_data_age"] is None for r in rows)
    assert all(r["info_breast_bbox_min_zyx"] is None for r in rows)
